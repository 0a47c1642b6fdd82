package state

import (
	"cmp"
	"math/bits"
	"slices"
)

// idOrder holds a pool's evals or allocs in the order the fold inserted
// them (they are never removed but all at once, when the pool is deleted),
// and counts where that order is not the order of their ids. Ingest gives
// evals ids that grow with time, so in the common case the insertion
// order is already id order and listing them by id is a copy, not a sort.
type idOrder[T any] struct {
	items []T
	// last is the id of the last item added.
	last string
	// descents counts the items added with an id smaller than the id of
	// the item before them: with none, items is in id order.
	descents int
}

// add appends it, whose id is id.
func (o *idOrder[T]) add(it T, id string) {
	if len(o.items) > 0 && id < o.last {
		o.descents++
	}
	o.items = append(o.items, it)
	o.last = id
}

// presize makes room for the items that the events Expect announced will
// likely add, in the proportion seen so far (as presized does for maps).
func (o *idOrder[T]) presize(s *State) {
	if want := presizeWant(s, len(o.items), 0); want > 0 {
		o.items = slices.Grow(o.items, want-len(o.items))
	}
}

// sorted returns the items sorted by id, in a new slice.
func (o *idOrder[T]) sorted(id func(T) string) []T {
	out := make([]T, len(o.items))
	copy(out, o.items)
	if o.descents > 0 {
		sortByID(out, id)
	}
	return out
}

// keyed is an item with its id and an 8-byte key of that id: the id's
// bytes from some depth on (idPrefixOf of them). Sorting keyed items by
// (key, id) mostly reads keys held side by side and rarely follows a
// pointer to an id's bytes, let alone to an item, which at a million items
// are cache misses.
type keyed[T any] struct {
	key  uint64
	id   string
	item T
}

// idKeyAt is the key of id at depth: idPrefixOf of its bytes from depth on.
// Among ids whose bytes before depth are equal (or equal once padded with
// zero bytes to depth), ordering by key then id is the order of the ids.
func idKeyAt(id string, depth int) uint64 {
	return idPrefixOf(id[min(depth, len(id)):])
}

func lessKeyed[T any](a, b *keyed[T]) bool {
	return a.key < b.key || a.key == b.key && a.id < b.id
}

func compareKeyed[T any](a, b keyed[T]) int {
	if c := cmp.Compare(a.key, b.key); c != 0 {
		return c
	}
	return cmp.Compare(a.id, b.id)
}

// Sizes that choose how keyed items are sorted.
const (
	// insertionSortMax is the most items sorted by insertion.
	insertionSortMax = 16
	// bucketSortMin is the fewest items sorted by bucket; fewer are
	// sorted by comparison.
	bucketSortMin = 256
	// maxKeyDepth bounds how deep into the ids keys are taken; ids that
	// agree that far are sorted by comparison.
	maxKeyDepth = 256
)

// sortByID sorts items by id, exactly in the order of the ids' bytes.
// Large sets are sorted by bucket: items are spread over about n/4
// buckets by the value of the first 8 bytes of their id (between the
// smallest and largest such value), with one counting pass and one pass
// that moves each item once, and each bucket is then sorted by (key, id),
// by insertion when it is small. Uniformly spread ids (alloc ids, hashes)
// leave a few items in each bucket; ids that crowd into few values
// (a common prefix, ULIDs of one second) fill large buckets, which are
// sorted the same way on their next 8 bytes, or by comparison.
func sortByID[T any](items []T, id func(T) string) {
	n := len(items)
	if n < 2 {
		return
	}
	keys := make([]uint64, n)
	lo, hi := ^uint64(0), uint64(0)
	for i, it := range items {
		k := idPrefixOf(id(it))
		keys[i] = k
		lo, hi = min(lo, k), max(hi, k)
	}
	ks := make([]keyed[T], n)
	if n < bucketSortMin || lo == hi {
		for i, it := range items {
			ks[i] = keyed[T]{key: keys[i], id: id(it), item: it}
		}
		keys = nil
		sortKeyed(ks, nil, 0)
	} else {
		// Spread the items straight from items into their buckets.
		shift, nb := bucketShift(n, lo, hi)
		start := make([]int, nb+1)
		for _, k := range keys {
			start[(k-lo)>>shift+1]++
		}
		for b := 1; b <= nb; b++ {
			start[b] += start[b-1]
		}
		next := slices.Clone(start[:nb])
		for i, it := range items {
			b := (keys[i] - lo) >> shift
			ks[next[b]] = keyed[T]{key: keys[i], id: id(it), item: it}
			next[b]++
		}
		keys, next = nil, nil
		sortBuckets(ks, start, 0)
	}
	for i := range ks {
		items[i] = ks[i].item
	}
}

// bucketShift returns how far to shift a key's distance from lo to get its
// bucket, so that n keys between lo and hi (lo < hi) fall in nb buckets,
// at most about n/4.
func bucketShift(n int, lo, hi uint64) (shift uint, nb int) {
	b := max(bits.Len(uint(n))-2, 1)
	shift = uint(max(bits.Len64(hi-lo)-b, 0))
	return shift, int((hi-lo)>>shift) + 1
}

// sortKeyed sorts ks by (key, id), where every key is taken at depth and
// the ids' bytes before depth are equal. scratch is nil or at least as long
// as ks.
func sortKeyed[T any](ks, scratch []keyed[T], depth int) {
	n := len(ks)
	switch {
	case n < 2:
		return
	case n <= insertionSortMax:
		insertionSortKeyed(ks)
		return
	case n < bucketSortMin:
		slices.SortFunc(ks, compareKeyed)
		return
	}
	lo, hi := ks[0].key, ks[0].key
	for i := range ks {
		lo, hi = min(lo, ks[i].key), max(hi, ks[i].key)
	}
	if lo == hi {
		// The ids agree on 8 more bytes: go deeper, unless every id
		// ends there (then they differ at most in trailing zero bytes).
		if depth += 8; depth > maxKeyDepth {
			slices.SortFunc(ks, compareKeyed)
			return
		}
		longer := false
		for i := range ks {
			ks[i].key = idKeyAt(ks[i].id, depth)
			longer = longer || len(ks[i].id) > depth
		}
		if !longer {
			slices.SortFunc(ks, compareKeyed)
			return
		}
		sortKeyed(ks, scratch, depth)
		return
	}
	shift, nb := bucketShift(n, lo, hi)
	start := make([]int, nb+1)
	for i := range ks {
		start[(ks[i].key-lo)>>shift+1]++
	}
	for b := 1; b <= nb; b++ {
		start[b] += start[b-1]
	}
	if len(scratch) < n {
		scratch = make([]keyed[T], n)
	}
	next := slices.Clone(start[:nb])
	for i := range ks {
		b := (ks[i].key - lo) >> shift
		scratch[next[b]] = ks[i]
		next[b]++
	}
	copy(ks, scratch[:n])
	sortBuckets(ks, start, depth)
}

// sortBuckets sorts each bucket of ks, the items from start[b] to
// start[b+1], by (key, id). Every bucket is smaller than ks (at least two
// hold items), so that sorting one by bucket again ends.
func sortBuckets[T any](ks []keyed[T], start []int, depth int) {
	var scratch []keyed[T]
	for b := 0; b+1 < len(start); b++ {
		bucket := ks[start[b]:start[b+1]]
		switch {
		case len(bucket) < 2:
		case len(bucket) <= insertionSortMax:
			insertionSortKeyed(bucket)
		default:
			if len(scratch) < len(bucket) {
				scratch = make([]keyed[T], len(bucket))
			}
			sortKeyed(bucket, scratch, depth)
		}
	}
}

// insertionSortKeyed sorts a few keyed items by (key, id).
func insertionSortKeyed[T any](ks []keyed[T]) {
	for i := 1; i < len(ks); i++ {
		x := ks[i]
		j := i
		for ; j > 0 && lessKeyed(&x, &ks[j-1]); j-- {
			ks[j] = ks[j-1]
		}
		ks[j] = x
	}
}

func (a *Alloc) id() string { return a.ID }
func (e *Eval) id() string  { return e.ID }

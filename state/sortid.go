package state

import (
	"cmp"
	"math"
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
	// runs holds the indexes of those items while there are at most
	// maxMergedRuns of them: items is then that many runs in id order.
	runs []int
}

// maxMergedRuns is the most descents for which the items are listed by
// merging their runs rather than by sorting them.
const maxMergedRuns = 64

// add appends it, whose id is id.
func (o *idOrder[T]) add(it T, id string) {
	if len(o.items) > 0 && id < o.last {
		if o.descents++; o.descents <= maxMergedRuns {
			o.runs = append(o.runs, len(o.items))
		}
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
	switch {
	case o.descents == 0:
		out := make([]T, len(o.items))
		copy(out, o.items)
		return out
	case o.descents <= maxMergedRuns:
		return mergedRuns(o.items, o.runs, id)
	}
	return sortedByID(o.items, id)
}

// mergedRuns returns items sorted by id, in a new slice, given that the
// runs of items that start at 0 and at each index of starts (ascending)
// are each in id order: it merges them two by two, each round one pass.
func mergedRuns[T any](items []T, starts []int, id func(T) string) []T {
	n := len(items)
	bounds := make([]int, 0, len(starts)+2)
	bounds = append(append(append(bounds, 0), starts...), n)
	src := make([]T, n)
	copy(src, items)
	if len(bounds) <= 2 {
		return src
	}
	dst := make([]T, n)
	for len(bounds) > 2 {
		merged := bounds[:1]
		for i := 0; i+1 < len(bounds); i += 2 {
			if i+2 >= len(bounds) {
				copy(dst[bounds[i]:], src[bounds[i]:bounds[i+1]])
				merged = append(merged, bounds[i+1])
				break
			}
			mergeTwo(dst[bounds[i]:bounds[i+2]], src[bounds[i]:bounds[i+1]], src[bounds[i+1]:bounds[i+2]], id)
			merged = append(merged, bounds[i+2])
		}
		bounds = merged
		src, dst = dst, src
	}
	return src
}

// mergeTwo merges a and b, each in id order, into dst (as long as both).
func mergeTwo[T any](dst, a, b []T, id func(T) string) {
	i, j, k := 0, 0, 0
	for i < len(a) && j < len(b) {
		if id(b[j]) < id(a[i]) {
			dst[k] = b[j]
			j++
		} else {
			dst[k] = a[i]
			i++
		}
		k++
	}
	k += copy(dst[k:], a[i:])
	copy(dst[k:], b[j:])
}

// keyed stands for the item at index idx of the items being sorted, with
// an 8-byte key of its id: the id's bytes from some depth on (idPrefixOf
// of them). Sorting keyed values by key reads keys held side by side and
// follows no pointer to an item or an id's bytes (at a million items,
// cache misses) but where keys tie; holding no pointer, they cost the
// collector nothing and moving them needs no write barrier.
type keyed struct {
	key uint64
	idx uint32
	// bucket is where a bucket sort puts it (it fills what would be
	// padding).
	bucket uint32
}

// idKeyAt is the key of id at depth: idPrefixOf its bytes from depth on.
// Among ids whose bytes before depth are equal (or equal once padded with
// zero bytes to depth), ordering by key then id is the order of the ids.
func idKeyAt(id string, depth int) uint64 {
	return idPrefixOf(id[min(depth, len(id)):])
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
	// bucketBytes is the most bytes of a key that choose its bucket.
	bucketBytes = 4
)

// sortByID sorts items by id, exactly in the order of the ids' bytes
// (sortedByID).
func sortByID[T any](items []T, id func(T) string) {
	if len(items) > 1 {
		copy(items, sortedByID(items, id))
	}
}

// sortedByID returns items sorted by id, exactly in the order of the ids'
// bytes, in a new slice. Large sets are sorted by bucket: items are spread
// over about n/4 buckets by the first bytes of their ids that differ
// (bucketMap), with one counting pass and one pass that moves each item's
// key once, and each bucket is then sorted by (key, id), by insertion
// when it is small. Uniformly spread ids (alloc ids, hashes) leave a few
// items in each bucket; ids that crowd together (a long common prefix,
// ULIDs of one second) fill large buckets, which are sorted the same way
// on their next bytes, or by comparison.
func sortedByID[T any](items []T, id func(T) string) []T {
	n := len(items)
	out := make([]T, n)
	if uint64(n) > math.MaxUint32 {
		copy(out, items)
		slices.SortStableFunc(out, func(a, b T) int { return cmp.Compare(id(a), id(b)) })
		return out
	}
	s := idSorter[T]{items: items, id: id}
	ks := make([]keyed, n)
	lo, hi := ^uint64(0), uint64(0)
	for i, it := range items {
		k := idPrefixOf(id(it))
		ks[i] = keyed{key: k, idx: uint32(i)}
		lo, hi = min(lo, k), max(hi, k)
	}
	ks = s.sort(ks, make([]keyed, n), 0, lo, hi)
	for i := range ks {
		out[i] = items[ks[i].idx]
	}
	return out
}

// idSorter sorts keyed values standing for items.
type idSorter[T any] struct {
	items []T
	id    func(T) string
}

func (s *idSorter[T]) idOf(k keyed) string { return s.id(s.items[k.idx]) }

func (s *idSorter[T]) less(a, b keyed) bool {
	return a.key < b.key || a.key == b.key && s.idOf(a) < s.idOf(b)
}

func (s *idSorter[T]) compare(a, b keyed) int {
	if c := cmp.Compare(a.key, b.key); c != 0 {
		return c
	}
	return cmp.Compare(s.idOf(a), s.idOf(b))
}

// sort sorts ks by (key, id), where every key is taken at depth, lies
// between lo and hi, and the ids' bytes before depth are equal. It
// returns the sorted values, in ks or in scratch (as long as ks).
func (s *idSorter[T]) sort(ks, scratch []keyed, depth int, lo, hi uint64) []keyed {
	n := len(ks)
	switch {
	case n < 2:
		return ks
	case n <= insertionSortMax:
		s.insertionSort(ks)
		return ks
	case n < bucketSortMin:
		slices.SortFunc(ks, s.compare)
		return ks
	}
	var m bucketMap
	for {
		m = bucketMap{}
		m.init(lo, hi)
		if m.first < 8 {
			for i := range ks {
				m.see(ks[i].key)
			}
			m.build(n)
			if m.first == 0 || m.n >= max(n/4, 2)/8 {
				break
			}
		}
		// The keys agree on their first bytes and tell too few buckets
		// apart: take them from after those bytes, unless every id ends
		// there (then they differ at most in trailing zero bytes).
		if depth += m.first; depth > maxKeyDepth {
			slices.SortFunc(ks, s.compare)
			return ks
		}
		longer := false
		lo, hi = ^uint64(0), uint64(0)
		for i := range ks {
			id := s.idOf(ks[i])
			k := idKeyAt(id, depth)
			ks[i].key = k
			lo, hi = min(lo, k), max(hi, k)
			longer = longer || len(id) > depth
		}
		if !longer {
			slices.SortFunc(ks, s.compare)
			return ks
		}
	}
	start := make([]uint32, m.n+1)
	for i := range ks {
		b := m.bucket(ks[i].key)
		ks[i].bucket = b
		start[b+1]++
	}
	for b := 1; b <= m.n; b++ {
		start[b] += start[b-1]
	}
	next := slices.Clone(start[:m.n])
	for _, k := range ks {
		scratch[next[k.bucket]] = k
		next[k.bucket]++
	}
	next = nil
	// Every bucket is smaller than ks (lo and hi fall in different
	// ones), so that sorting one by bucket again ends.
	for b := range m.n {
		bucket := scratch[start[b]:start[b+1]]
		switch {
		case len(bucket) < 2:
		case len(bucket) <= insertionSortMax:
			s.insertionSort(bucket)
		default:
			blo, bhi := bucket[0].key, bucket[0].key
			for _, k := range bucket {
				blo, bhi = min(blo, k.key), max(bhi, k.key)
			}
			if sorted := s.sort(bucket, ks[start[b]:start[b+1]], depth, blo, bhi); &sorted[0] != &bucket[0] {
				copy(bucket, sorted)
			}
		}
	}
	return scratch
}

// insertionSort sorts a few keyed values by (key, id).
func (s *idSorter[T]) insertionSort(ks []keyed) {
	for i := 1; i < len(ks); i++ {
		x := ks[i]
		j := i
		for ; j > 0 && s.less(x, ks[j-1]); j-- {
			ks[j] = ks[j-1]
		}
		ks[j] = x
	}
}

// bucketMap maps keys between lo and hi (lo < hi) to buckets in their
// order: a key's bucket is made of the ranks of its bytes, from the first
// byte in which lo and hi differ on (bytes before it are the same in every
// key), among the values each of those bytes takes in the keys. As many
// bytes are taken as the number of buckets allows, the last one perhaps
// in part. Ids often use a few byte values (base32, digits): ranking the
// values that occur, rather than cutting the keys' range in equal parts,
// keeps buckets from being left empty while others fill.
type bucketMap struct {
	// first is the first byte that differs; used the bytes taken.
	first, used int
	// seen marks the values each byte takes.
	seen [bucketBytes][256]bool
	// part holds what each value of each byte adds to the bucket.
	part [bucketBytes][256]uint32
	// n is the number of buckets.
	n int
}

func (m *bucketMap) init(lo, hi uint64) {
	m.first = bits.LeadingZeros64(lo^hi) / 8
	m.used = min(bucketBytes, 8-m.first)
}

// byteAt returns byte first+j of k.
func (m *bucketMap) byteAt(k uint64, j int) byte { return byte(k >> (56 - 8*uint(m.first+j))) }

// see notes the byte values of k.
func (m *bucketMap) see(k uint64) {
	for j := range m.used {
		m.seen[j][m.byteAt(k, j)] = true
	}
}

// build sets the buckets for n keys: at most about n/4, at least two.
func (m *bucketMap) build(n int) {
	target := max(n/4, 2)
	var radix [bucketBytes]int
	m.n = 1
	used := 0
	for j := range m.used {
		var rank [256]int
		c := 0
		for v := range 256 {
			if m.seen[j][v] {
				rank[v] = c
				c++
			}
		}
		if c == 1 {
			radix[j] = 1
			used = j + 1
			continue
		}
		if m.n*c <= target {
			for v := range 256 {
				m.part[j][v] = uint32(rank[v])
			}
			radix[j] = c
		} else {
			// Take this byte in part: its c values in r ranges.
			r := max(target/m.n, 1)
			for v := range 256 {
				m.part[j][v] = uint32(rank[v] * r / c)
			}
			radix[j] = r
		}
		m.n *= radix[j]
		used = j + 1
		if radix[j] != c {
			break
		}
	}
	m.used = used
	// Weigh each byte by the buckets the bytes after it tell apart.
	w := 1
	for j := used - 1; j >= 0; j-- {
		for v := range 256 {
			m.part[j][v] *= uint32(w)
		}
		w *= radix[j]
	}
}

// bucket returns the bucket of k.
func (m *bucketMap) bucket(k uint64) uint32 {
	b := uint32(0)
	for j := range m.used {
		b += m.part[j][m.byteAt(k, j)]
	}
	return b
}

func (a *Alloc) id() string { return a.ID }
func (e *Eval) id() string  { return e.ID }

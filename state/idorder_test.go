package state

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/line-sched/line/events"
)

// idKinds names the shapes of id sets the property tests draw.
var idKinds = []string{"base32", "ulid", "counter", "small-alphabet", "skewed", "long-prefix", "mixed"}

// drawIDs draws up to n distinct ids of the named kind; larger sets come
// from a drawn seed, small ones element by element (so that they shrink).
func drawIDs(t *rapid.T, kind string, n int, label string) []string {
	var ids []string
	if n <= 40 {
		ids = rapid.SliceOfNDistinct(rapid.Map(rapid.Uint64(), func(w uint64) string { return idFor(kind, w) }),
			0, n, rapid.ID[string]).Draw(t, label)
	} else {
		seed := rapid.Uint64().Draw(t, label+"-seed")
		r := rand.New(rand.NewPCG(seed, 17))
		seen := make(map[string]bool, n)
		for range n {
			id := idFor(kind, r.Uint64())
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// idFor maps a random word to an id of the named kind.
func idFor(kind string, w uint64) string {
	t0 := time.Date(2026, 11, 26, 19, 0, 0, 0, time.UTC)
	r := rand.New(rand.NewPCG(w, w>>7|1))
	switch kind {
	case "base32":
		return bxAllocID("p", fmt.Sprint(w))
	case "ulid":
		return events.NewULID(t0.Add(time.Duration(w%5_000_000) * time.Microsecond))
	case "counter":
		// Ids sharing their first 8 bytes, differing late.
		return fmt.Sprintf("eval-%09d", w%1_000_000)
	case "small-alphabet":
		// Short ids over three bytes: shared prefixes, ids shorter
		// than 8 bytes, trailing NUL bytes.
		const small = "\x00a\xff"
		b := make([]byte, r.IntN(20))
		for i := range b {
			b[i] = small[r.IntN(len(small))]
		}
		return string(b)
	case "skewed":
		// Most ids in one narrow range of prefixes, a few anywhere.
		if r.IntN(10) == 0 {
			return bxAllocID("q", fmt.Sprint(w))
		}
		return fmt.Sprintf("aaaaaaa%c%s", 'a'+r.IntN(2), bxAllocID("p", fmt.Sprint(w))[:r.IntN(27)])
	case "long-prefix":
		// Ids that agree on 30 bytes or more.
		return "0123456789abcdefghijklmnopqrst" + bxAllocID("p", fmt.Sprint(w))[:r.IntN(5)]
	default:
		return idFor(idKinds[r.IntN(len(idKinds)-1)], w)
	}
}

// drawOrder reorders ids as a fold may receive them: in id order, reversed,
// shuffled, in order but for a few moved, or in order with one early
// straggler.
func drawOrder(t *rapid.T, ids []string, label string) []string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	r := rand.New(rand.NewPCG(rapid.Uint64().Draw(t, label+"-seed"), 3))
	switch rapid.SampledFrom([]string{"sorted", "reversed", "shuffled", "nearly", "straggler"}).Draw(t, label) {
	case "reversed":
		slices.Reverse(ids)
	case "shuffled":
		r.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	case "nearly":
		for range 1 + len(ids)/50 {
			if len(ids) > 1 {
				i, j := r.IntN(len(ids)), r.IntN(len(ids))
				ids[i], ids[j] = ids[j], ids[i]
			}
		}
	case "straggler":
		if len(ids) > 1 {
			last := ids[len(ids)-1]
			copy(ids[1:], ids[:len(ids)-1])
			ids[0] = last
		}
	}
	return ids
}

// TestSortByIDProperty: sortByID puts any set of ids, in any order, with
// repeats or without, in exactly the order of the ids' bytes.
func TestSortByIDProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		kind := rapid.SampledFrom(idKinds).Draw(t, "kind")
		ids := drawOrder(t, drawIDs(t, kind, rapid.SampledFrom([]int{1, 2, 5, 40, 300, 3000}).Draw(t, "n"), "ids"), "order")
		if rapid.Bool().Draw(t, "repeats") && len(ids) > 0 {
			ids = append(ids, ids[:1+len(ids)/3]...)
		}
		items := make([]*Alloc, len(ids))
		for i, id := range ids {
			items[i] = &Alloc{ID: id}
		}
		sortByID(items, (*Alloc).id)
		want := slices.Sorted(slices.Values(ids))
		if len(items) != len(want) {
			t.Fatalf("%d items sorted, want %d", len(items), len(want))
		}
		for i := range want {
			if items[i].ID != want[i] {
				t.Fatalf("position %d of %d holds %q, want %q", i, len(want), items[i].ID, want[i])
			}
		}
	})
}

// TestPoolListsInIDOrderProperty: whatever ids evals and allocs get and in
// whatever order the fold inserts them, Pool.Evals and Pool.Allocs list
// exactly the pool's evals and allocs, each once, sorted by id; a second
// submission of an id adds nothing; a deleted pool lists none.
func TestPoolListsInIDOrderProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.SampledFrom([]int{0, 1, 2, 30, 400, 2000}).Draw(t, "n")
		evalIDs := drawOrder(t, drawIDs(t, rapid.SampledFrom(idKinds).Draw(t, "eval-kind"), n, "evals"), "eval-order")
		allocIDs := drawOrder(t, drawIDs(t, rapid.SampledFrom(idKinds).Draw(t, "alloc-kind"), len(evalIDs), "allocs"), "alloc-order")
		s := New()
		if rapid.Bool().Draw(t, "expect") {
			s.Expect(int64(2 + len(evalIDs) + len(allocIDs)))
		}
		at := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
		apply := func(d events.Data) error {
			return s.Apply(events.New("p", at, d), events.Position{Offset: s.Applied})
		}
		must := func(d events.Data) {
			if err := apply(d); err != nil {
				t.Fatalf("%T does not apply: %v", d, err)
			}
		}
		must(events.PoolCreatedData{Strategy: events.Spread})
		must(events.WorkerRegisteredData{WorkerID: "w", Capacity: 1 << 40, Topic: "line.allocs.p.w", Deadline: at.Add(time.Hour)})
		for i, id := range evalIDs {
			must(events.EvalSubmittedData{EvalID: id, Size: 1})
			if i%7 == 3 {
				if err := apply(events.EvalSubmittedData{EvalID: evalIDs[i/2], Size: 1}); err == nil {
					t.Fatalf("a second submission of eval %q applied", evalIDs[i/2])
				}
			}
		}
		// Place a drawn share of the evals, in a shuffled order, with the
		// alloc ids in their drawn order.
		placed := rapid.IntRange(0, len(allocIDs)).Draw(t, "placed")
		order := rand.New(rand.NewPCG(uint64(placed), 5)).Perm(len(evalIDs))
		for i := range placed {
			must(events.AllocPlacedData{AllocID: allocIDs[i], EvalID: evalIDs[order[i]], WorkerID: "w", Size: 1, Attempt: 1,
				Deadline: at.Add(time.Minute), Topic: "line.allocs.p.w", Strategy: events.Spread, Locality: events.LocalityNone})
		}
		p := s.Pool("p")
		checkListed(t, "evals", p.Evals(), (*Eval).id, evalIDs, p.evals)
		checkListed(t, "allocs", p.Allocs(), (*Alloc).id, allocIDs[:placed], p.allocs)
		if rapid.Bool().Draw(t, "delete") {
			must(events.PoolDisbandedData{DeleteAt: at})
			must(events.PoolDeletedData{})
			if len(p.Evals()) != 0 || len(p.Allocs()) != 0 {
				t.Fatalf("deleted pool lists %d evals and %d allocs", len(p.Evals()), len(p.Allocs()))
			}
		}
	})
}

// checkListed checks that got lists the items of byID, whose ids are ids,
// sorted by id.
func checkListed[T comparable](t *rapid.T, what string, got []T, id func(T) string, ids []string, byID map[string]T) {
	want := slices.Sorted(slices.Values(ids))
	if len(got) != len(want) || len(byID) != len(want) {
		t.Fatalf("%s: %d listed, %d in the pool, want %d", what, len(got), len(byID), len(want))
	}
	for i, it := range got {
		if id(it) != want[i] {
			t.Fatalf("%s: position %d of %d holds %q, want %q", what, i, len(want), id(it), want[i])
		}
		if byID[want[i]] != it {
			t.Fatalf("%s: position %d holds another item than the pool's %q", what, i, want[i])
		}
	}
}

// idPrefixByCopy is idPrefixOf spelled out: the first 8 bytes copied into
// a zeroed array, read big-endian.
func idPrefixByCopy(id string) uint64 {
	var b [8]byte
	copy(b[:], id)
	return binary.BigEndian.Uint64(b[:])
}

// TestIDKeyIsTheIDPrefix: idPrefixOf reads the same 8 bytes, padded the
// same way, as copying them does, and idKeyAt those from depth on.
func TestIDKeyIsTheIDPrefix(t *testing.T) {
	for _, id := range toIDs(rand.New(rand.NewPCG(1, 1))) {
		if got, want := idPrefixOf(id), idPrefixByCopy(id); got != want {
			t.Fatalf("idPrefixOf(%q) = %#016x, copying gives %#016x", id, got, want)
		}
		for depth := range len(id) + 2 {
			if got, want := idKeyAt(id, depth), idPrefixByCopy(id[min(depth, len(id)):]); got != want {
				t.Fatalf("idKeyAt(%q, %d) = %#016x, want %#016x", id, depth, got, want)
			}
		}
	}
}

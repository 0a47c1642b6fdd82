package state

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
	"unsafe"
)

// lessTTLByIDs is the TTL order spelled out without the id prefixes: the
// order lessTTL must keep, whatever shortcut it takes.
func lessTTLByIDs(a, b ttlItem) bool {
	if a.sec != b.sec {
		return a.sec < b.sec
	}
	if a.nsec != b.nsec {
		return a.nsec < b.nsec
	}
	if a.kind != b.kind {
		return a.kind < b.kind
	}
	if a.kind == TTLAlloc {
		return a.alloc.ID < b.alloc.ID
	}
	if c := cmp.Compare(a.worker.ID, b.worker.ID); c != 0 {
		return c < 0
	}
	return a.datasetID() < b.datasetID()
}

// sortedByIDs sorts items in the order lessTTLByIDs spells out.
func sortedByIDs(items []ttlItem) []ttlItem {
	slices.SortFunc(items, func(a, b ttlItem) int {
		switch {
		case lessTTLByIDs(a, b):
			return -1
		case lessTTLByIDs(b, a):
			return 1
		}
		return 0
	})
	return items
}

// toIDs returns ids that stress the id prefix: random scheduler-like ids,
// ids that share 8 or more bytes, ids shorter than 8 bytes, the empty id,
// ids with NUL bytes (which the zero padding must not confuse with a shorter
// id) and with bytes above 0x7f (which must compare unsigned).
func toIDs(r *rand.Rand) []string {
	ids := []string{"", "\x00", "\x00\x00", "a", "a\x00", "a\x00\x00", "a\x00b", "ab", "abcdefg", "abcdefg\x00",
		"abcdefgh", "abcdefgh\x00", "abcdefghi", "abcdefgg\xff", "abcdefgi", "\xff", "\xff\xff\xff\xff\xff\xff\xff\xff",
		"\xff\xff\xff\xff\xff\xff\xff\xff\x00", "\x7f", "\x80", "w-00001", "w-000010", "w-00002",
		"aaaaaaaaaaaaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaaaaaaaaaaab", "aaaaaaaabaaaaaaaaaaaaaaaaa"}
	const base32 = "abcdefghijklmnopqrstuvwxyz234567"
	for range 200 {
		b := make([]byte, 26)
		for i := range b {
			b[i] = base32[r.IntN(len(base32))]
		}
		ids = append(ids, string(b))
	}
	// A small alphabet and short lengths: many ids share their first 8
	// bytes, many are shorter, many end in NUL bytes.
	const small = "\x00a\xff"
	for range 300 {
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = small[r.IntN(len(small))]
		}
		ids = append(ids, string(b))
	}
	// Ids that agree on a long prefix and differ late.
	for range 50 {
		b := []byte("01jdx0000000000000000000000")
		b[8+r.IntN(len(b)-8)] = small[r.IntN(len(small))]
		ids = append(ids, string(b[:8+r.IntN(len(b)-7)]))
	}
	return ids
}

// toItems builds index items of every kind over ids, at a few deadlines
// (most items share one, as a round of placements does). Each owner holds
// its item's deadline, as the fold keeps it.
func toItems(r *rand.Rand, ids []string) []ttlItem {
	t0 := time.Date(2026, 11, 26, 19, 0, 0, 0, time.UTC)
	deadlines := []time.Time{t0, t0, t0, t0.Add(time.Nanosecond), t0.Add(time.Second)}
	var out []ttlItem
	allocs := map[string]bool{}
	for _, id := range ids {
		at := deadlines[r.IntN(len(deadlines))]
		ds := ids[r.IntN(len(ids))]
		w := &Worker{ID: id, Deadline: at, Replicas: map[string]time.Time{ds: at}}
		out = append(out, itemOf(workerTTL(w)), itemOf(replicaTTL(w, ds, at)))
		// A pool's alloc ids are unique: one alloc, one entry, per id.
		if !allocs[id] {
			allocs[id] = true
			out = append(out, itemOf(allocTTL(&Alloc{ID: id, deadline: toStamp(at)})))
		}
	}
	return out
}

func TestLessTTLAgreesWithTheOrderOfTheIDs(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	items := toItems(r, toIDs(r))
	for _, a := range items {
		for _, b := range items {
			if got, want := lessTTL(a, b), lessTTLByIDs(a, b); got != want {
				t.Fatalf("lessTTL(%s %q %q, %s %q %q) = %v, the order of the ids says %v", a.kind, toID(a), a.datasetID(),
					b.kind, toID(b), b.datasetID(), got, want)
			}
		}
	}
}

func TestIDPrefixOrdersAsTheIDs(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 7))
	ids := toIDs(r)
	for _, a := range ids {
		for _, b := range ids {
			pa, pb := idPrefixOf(a), idPrefixOf(b)
			if pa < pb && a >= b || pa > pb && a <= b {
				t.Fatalf("prefixes %#016x of %q and %#016x of %q disagree with the ids", pa, a, pb, b)
			}
		}
	}
	if got := idPrefixOf("ab"); got != 0x6162<<48 {
		t.Fatalf(`idPrefixOf("ab") = %#016x, want the bytes big-endian, zero-padded`, got)
	}
}

func TestTTLIndexKeepsTheOrderOfTheIDs(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 9))
	items := toItems(r, toIDs(r))
	ix := newTTLIndex()
	for _, it := range items {
		ix.put(it.entry())
	}
	want := sortedByIDs(slices.Clone(items))
	want = slices.CompactFunc(want, func(a, b ttlItem) bool { return !lessTTLByIDs(a, b) && !lessTTLByIDs(b, a) })
	var got []ttlItem
	ix.Each(func(e TTLEntry) bool { got = append(got, itemOf(e)); return true })
	if len(got) != len(want) {
		t.Fatalf("index holds %d entries, want %d", len(got), len(want))
	}
	for i := range got {
		if lessTTLByIDs(got[i], want[i]) || lessTTLByIDs(want[i], got[i]) {
			t.Fatalf("entry %d is %s %q, want %s %q", i, got[i].kind, toID(got[i]), want[i].kind, toID(want[i]))
		}
	}
	// Removing every entry by an equal item empties the index: the prefix of
	// a removed entry is the prefix it was put with.
	for _, it := range items {
		ix.remove(it.entry())
	}
	if ix.Len() != 0 {
		t.Fatalf("index holds %d entries after removing all", ix.Len())
	}
}

func TestTTLItemTakes48Bytes(t *testing.T) {
	// A larger item puts the nodes of the tree in a larger size class
	// (see ttlItem).
	if n := unsafe.Sizeof(ttlItem{}); n != 48 {
		t.Fatalf("ttlItem takes %d bytes, want 48", n)
	}
}

func toID(it ttlItem) string {
	if it.kind == TTLAlloc {
		return it.alloc.ID
	}
	return it.worker.ID
}

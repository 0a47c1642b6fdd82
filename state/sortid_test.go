package state

import (
	"cmp"
	"math/rand/v2"
	"os"
	"slices"
	"testing"

	"github.com/line-sched/line/events"
)

// TestSortByIDIsTheOrderOfTheIDs: sortByID orders adversarial and random
// ids (repeated ones included) exactly as sorting by the ids does.
func TestSortByIDIsTheOrderOfTheIDs(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	ids := toIDs(r)
	ids = append(ids, ids[:20]...) // ties
	for round := range 20 {
		allocs := make([]*Alloc, len(ids))
		for i, j := range r.Perm(len(ids)) {
			allocs[i] = &Alloc{ID: ids[j]}
		}
		got := slices.Clone(allocs)
		sortByID(got, (*Alloc).id)
		want := slices.Clone(allocs)
		slices.SortStableFunc(want, func(a, b *Alloc) int { return cmp.Compare(a.ID, b.ID) })
		for i := range got {
			if got[i].ID != want[i].ID {
				t.Fatalf("round %d: position %d holds %q, want %q", round, i, got[i].ID, want[i].ID)
			}
		}
		if len(got) != len(allocs) {
			t.Fatalf("round %d: %d items, want %d", round, len(got), len(allocs))
		}
	}
}

// BenchmarkPoolAllocsSorted measures Pool.Allocs (every alloc sorted by id)
// over the fold of a c1m-like history: what the projector's bulk load and
// the queries pay to list them.
func BenchmarkPoolAllocsSorted(b *testing.B) {
	nEvals, nWorkers := 200_000, 5_000
	if os.Getenv("LINE_BENCH_SMALL") != "" {
		nEvals, nWorkers = 2_000, 50
	}
	s := bxFold(b, bxHistory(nEvals, nWorkers), events.Unmarshal)
	p := s.Pool("c1m")
	b.ReportAllocs()
	b.ResetTimer()
	cpu := bxCPU()
	for b.Loop() {
		if len(p.Allocs()) == 0 {
			b.Fatal("no allocs")
		}
	}
	b.ReportMetric(cpu()/float64(b.N)*1e3, "cpu-ms/op")
}

package state

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/line-sched/line/events"
)

// BenchmarkSortByID1M measures sortByID alone on a million allocs in the
// order they were made: random ids (as the scheduler's), ULIDs shuffled,
// and ids sharing a long prefix shuffled.
func BenchmarkSortByID1M(b *testing.B) {
	const n = 1_000_000
	r := rand.New(rand.NewPCG(9, 9))
	t0 := time.Date(2026, 11, 26, 19, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		id   func(i int) string
	}{
		{"random", func(i int) string { return bxAllocID("c1m", fmt.Sprint(i)) }},
		{"ulid-shuffled", func(i int) string { return events.NewULID(t0.Add(time.Duration(i) * time.Microsecond)) }},
		{"counter-shuffled", func(i int) string { return fmt.Sprintf("eval-%012d", i) }},
	} {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = c.id(i)
		}
		if c.name != "random" {
			r.Shuffle(n, func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		}
		items := make([]*Alloc, n)
		for i, id := range ids {
			items[i] = &Alloc{ID: id}
		}
		b.Run(c.name, func(b *testing.B) {
			cpu := bxCPU()
			for b.Loop() {
				out := slices.Clone(items)
				sortByID(out, (*Alloc).id)
			}
			b.ReportMetric(cpu()/float64(b.N)*1e3, "cpu-ms/op")
		})
	}
}

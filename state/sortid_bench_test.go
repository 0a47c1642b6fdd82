package state

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/line-sched/line/events"
)

// bsSorted is the fold that BenchmarkPoolSorted1M lists, built once per
// process: the c1m history (1M evals with ids in submission order, each
// placed as an alloc with a random id) in pool "c1m", 1M evals with
// ULIDs as ingest makes them in pool "ulid", and the same ULIDs submitted
// in a random order (as clients choosing their own ids may) in pool
// "shuffled", and ingest's ULIDs but for 16 ids chosen by clients in pool
// "mostly".
var bsSorted struct {
	once sync.Once
	s    *State
}

func bsSortedState(b *testing.B) *State {
	bsSorted.once.Do(func() {
		nEvals, nWorkers := 1_000_000, 5_000
		if os.Getenv("LINE_BENCH_SMALL") != "" {
			nEvals, nWorkers = 10_000, 50
		}
		s := New()
		for j, e := range bxDecoded(b, bxHistory(nEvals, nWorkers)) {
			if err := s.Apply(e, events.Position{Offset: int64(j)}); err != nil {
				b.Fatal(err)
			}
		}
		t0 := time.Date(2026, 11, 26, 19, 0, 0, 0, time.UTC)
		ids := make([]string, nEvals)
		for i := range ids {
			ids[i] = events.NewULID(t0.Add(time.Duration(i) * time.Microsecond))
		}
		r := rand.New(rand.NewPCG(1, 2))
		shuffled := make([]string, nEvals)
		for i, j := range r.Perm(nEvals) {
			shuffled[i] = ids[j]
		}
		// A few ids that clients chose, among ingest's.
		mostly := slices.Clone(ids)
		for i := range 16 {
			mostly[r.IntN(nEvals)] = fmt.Sprintf("client-%02d-%d", i, r.Uint64())
		}
		for _, pool := range []struct {
			id  string
			ids []string
		}{{"ulid", ids}, {"shuffled", shuffled}, {"mostly", mostly}} {
			if err := s.Apply(events.New(pool.id, t0, events.PoolCreatedData{Strategy: events.Spread}), events.Position{}); err != nil {
				b.Fatal(err)
			}
			for i, id := range pool.ids {
				if err := s.Apply(events.New(pool.id, t0, events.EvalSubmittedData{EvalID: id, Size: 1}),
					events.Position{Offset: int64(i)}); err != nil {
					b.Fatal(err)
				}
			}
		}
		bsSorted.s = s
	})
	return bsSorted.s
}

// BenchmarkPoolSorted1M measures Pool.Evals and Pool.Allocs (every eval or
// alloc sorted by id) at a million of them: the c1m history's evals and
// allocs, ingest's ULIDs in submission order, ULIDs submitted in a random
// order, and ULIDs in order among a few ids chosen by clients.
func BenchmarkPoolSorted1M(b *testing.B) {
	s := bsSortedState(b)
	for _, c := range []struct {
		name string
		list func() int
	}{
		{"evals=c1m", func() int { return len(s.Pool("c1m").Evals()) }},
		{"allocs=c1m", func() int { return len(s.Pool("c1m").Allocs()) }},
		{"evals=ulid", func() int { return len(s.Pool("ulid").Evals()) }},
		{"evals=shuffled", func() int { return len(s.Pool("shuffled").Evals()) }},
		{"evals=mostly", func() int { return len(s.Pool("mostly").Evals()) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu := bxCPU()
			for b.Loop() {
				if c.list() == 0 {
					b.Fatalf("%s: nothing listed", c.name)
				}
			}
			b.ReportMetric(cpu()/float64(b.N)*1e3, "cpu-ms/op")
		})
	}
}

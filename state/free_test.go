package state

import (
	"sync"
	"testing"

	"github.com/line-sched/line/events"
)

// TestFreeIndexConcurrentReaders: the free index catches up with the fold
// lazily, on the first read; readers that share the state (under a read
// lock) may be the first together. Run with -race.
func TestFreeIndexConcurrentReaders(t *testing.T) {
	s := bxFold(t, bxHistory(2_000, 40), events.Unmarshal)
	p := s.Pool("c1m")
	if len(p.free.dirty) == 0 {
		t.Fatal("the fold left no worker to move: the index is not lazy")
	}
	var wg sync.WaitGroup
	maxes := make([]int64, 4)
	for i := range maxes {
		wg.Go(func() {
			var n int
			p.Free().Descending(1, func(*Worker) bool { n++; return true })
			maxes[i] = p.Free().MaxFree()
		})
	}
	wg.Wait()
	var want int64
	for _, w := range p.Workers() {
		want = max(want, w.Free())
	}
	for i, got := range maxes {
		if got != want {
			t.Errorf("reader %d: MaxFree = %d, want %d", i, got, want)
		}
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

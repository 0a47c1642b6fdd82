package events_test

import (
	"sync"
	"testing"

	"github.com/line-sched/line/events"
)

// TestDecodeChunksCoversEverySlotOnce checks that the chunks cover [0, n)
// exactly once, are at least minChunk long (but the last), and use no more
// than workers goroutines.
func TestDecodeChunksCoversEverySlotOnce(t *testing.T) {
	for _, c := range []struct{ n, workers, minChunk, wantChunks int }{
		{0, 4, 1, 0}, {1, 4, 1, 1}, {10, 1, 1, 1}, {10, 4, 1, 4}, {10, 4, 4, 3},
		{1000, 2, 512, 2}, {1000, 2, 1024, 1}, {1024, 2, 512, 2}, {5000, 2, 512, 2}, {5000, 8, 1024, 5},
	} {
		seen := make([]int, c.n)
		var mu sync.Mutex
		chunks := 0
		events.DecodeChunks(c.n, c.workers, c.minChunk, func(lo, hi int) {
			mu.Lock()
			defer mu.Unlock()
			chunks++
			if hi-lo < c.minChunk && hi != c.n {
				t.Errorf("%+v: chunk [%d,%d) shorter than %d", c, lo, hi, c.minChunk)
			}
			for i := lo; i < hi; i++ {
				seen[i]++
			}
		})
		if chunks != c.wantChunks {
			t.Errorf("%+v: %d chunks, want %d", c, chunks, c.wantChunks)
		}
		for i, k := range seen {
			if k != 1 {
				t.Fatalf("%+v: slot %d decoded %d times", c, i, k)
			}
		}
	}
}

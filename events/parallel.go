package events

import "sync"

// DecodeChunks runs decode(lo, hi) over [0, n) cut into contiguous
// chunks, on up to workers goroutines (the caller's among them), each
// chunk at least minChunk long, and returns when every chunk is done. It
// is how the readers of the log (the scheduler's rebuild, the projector,
// the audit) decode a batch of records on every core while keeping their
// order: decoding is pure, so each slot gets what one goroutine would have
// given it, and the caller applies the slots in log order afterwards.
func DecodeChunks(n, workers, minChunk int, decode func(lo, hi int)) {
	if n <= 0 {
		return
	}
	chunk := max((n+workers-1)/max(workers, 1), minChunk, 1)
	if workers <= 1 || chunk >= n {
		decode(0, n)
		return
	}
	var wg sync.WaitGroup
	for lo := chunk; lo < n; lo += chunk {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			decode(lo, hi)
		}(lo, min(lo+chunk, n))
	}
	decode(0, chunk)
	wg.Wait()
}

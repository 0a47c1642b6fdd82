package state

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkTTLPutRounds measures TTLIndex.put alone for allocs placed the
// way the scheduler places them in the c1m gate: rounds of 10,000 that
// share one deadline, with random ids like the scheduler's. A round's
// allocs go to one bucket, in no order (sorted when listed).
func BenchmarkTTLPutRounds(b *testing.B) {
	const n, round = 200_000, 10_000
	t0 := time.Date(2026, 11, 26, 19, 0, 0, 0, time.UTC)
	allocs := make([]*Alloc, n)
	for i := range allocs {
		allocs[i] = &Alloc{ID: bxAllocID("c1m", fmt.Sprintf("01jdx%021d", i)),
			deadline: toStamp(t0.Add(time.Duration(i/round) * 10 * time.Millisecond))}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := bxCPU()
	for range b.N {
		ix := newTTLIndex()
		for _, a := range allocs {
			ix.put(allocTTL(a))
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/cpu(), "puts/cpu-s")
}

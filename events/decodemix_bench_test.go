package events

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// BenchmarkUnmarshalC1MRound decodes rounds of a c1m-shaped log: each
// round submits evals and places them on 5,000 workers in turn (every
// fifth eval names one of 1,000 datasets), so that the strings that repeat
// across records (worker ids, topics, dataset ids) cycle the way they do in
// a replay of the gate's history.
func BenchmarkUnmarshalC1MRound(b *testing.B) {
	const nWorkers, nEvals = 5_000, 20_000
	at := time.Date(2026, 11, 26, 19, 0, 0, 0, time.UTC)
	var recs [][]byte
	add := func(d Data) {
		buf, err := Marshal(New("c1m", at, d))
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, buf)
	}
	for i := range nEvals {
		ds := ""
		if i%5 == 0 {
			ds = fmt.Sprintf("ds%04d", (i*7)%1000)
		}
		add(EvalSubmittedData{EvalID: fmt.Sprintf("e%08d", i), Size: 1 + int64(i%4), DatasetID: ds})
	}
	for i := range nEvals {
		ds := ""
		if i%5 == 0 {
			ds = fmt.Sprintf("ds%04d", (i*7)%1000)
		}
		w := fmt.Sprintf("w%05d", i%nWorkers)
		add(AllocPlacedData{AllocID: fmt.Sprintf("a%025d", i*7919), EvalID: fmt.Sprintf("e%08d", i), WorkerID: w,
			DatasetID: ds, Size: 1 + int64(i%4), Attempt: 1, Deadline: at.Add(6 * time.Hour), Topic: "line.allocs.c1m." + w,
			Strategy: Spread, Locality: LocalityNone, Candidates: nWorkers, WaitedMs: 100, Basis: int64(nEvals)})
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuSeconds()
	for range b.N {
		for _, r := range recs {
			if _, err := Unmarshal(r); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(len(recs))*float64(b.N)/(cpuSeconds()-cpu0), "events/cpu-s")
}

// cpuSeconds is the CPU time of the process so far (GC included): on a
// shared machine, rates per CPU second are steadier than per wall second.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

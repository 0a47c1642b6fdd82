package scheduler

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/state"
)

// Benchmark sizes: small by default so that CI runs them quickly; the
// target size is -decide.workers=5000 -decide.evals=1000000 (or the
// environment variables LINE_BENCH_WORKERS and LINE_BENCH_EVALS).
var (
	benchWorkers = flag.Int("decide.workers", envInt("LINE_BENCH_WORKERS", 500), "workers in BenchmarkDecide")
	benchEvals   = flag.Int("decide.evals", envInt("LINE_BENCH_EVALS", 10000), "pending evals in BenchmarkDecide")
)

// cpuTime is the CPU time the process used so far, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// benchPool builds a pool of nw workers and ne pending evals of sizes 1-4;
// 20% of the evals name one of 100 datasets, each held by 3 workers. The
// total capacity is the total size of the evals times fill.
func benchPool(b *testing.B, strategy events.Strategy, nw, ne int, fill float64) (*state.State, *state.Pool) {
	b.Helper()
	s := state.New()
	var off int64
	apply := func(d events.Data) {
		e := events.Envelope{ID: "x", Type: d.EventType(), V: events.SchemaVersion, Pool: "bench", At: t0, Data: d}
		if err := s.Apply(e, events.Position{Offset: off}); err != nil {
			b.Fatal(err)
		}
		off++
	}
	apply(events.PoolCreatedData{Strategy: strategy, LocalityWaitMs: 5000})
	sizes := make([]int64, ne)
	var total int64
	x := uint64(88172645463325252)
	for i := range sizes {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		sizes[i] = int64(x%4) + 1
		total += sizes[i]
	}
	capacity := max(int64(float64(total)*fill)/int64(nw), 4)
	const datasets = 100
	for i := range nw {
		var ds []string
		for k := range datasets {
			if (3*k)%nw <= i && i < (3*k)%nw+3 {
				ds = append(ds, fmt.Sprintf("d%03d", k))
			}
		}
		id := fmt.Sprintf("w%05d", i)
		apply(events.WorkerRegisteredData{WorkerID: id, Capacity: capacity, Topic: "line.allocs.bench." + id,
			Deadline: t0.Add(time.Hour), Datasets: ds, ReplicaDeadline: t0.Add(time.Hour)})
	}
	for i, size := range sizes {
		ds := ""
		if i%5 == 0 {
			ds = fmt.Sprintf("d%03d", (i/5)%datasets)
		}
		apply(events.EvalSubmittedData{EvalID: fmt.Sprintf("e%07d", i), Size: size, DatasetID: ds})
	}
	return s, s.Pool("bench")
}

func BenchmarkDecide(b *testing.B) {
	for _, strategy := range []events.Strategy{events.Spread, events.Binpack} {
		b.Run(fmt.Sprintf("%s/workers=%d/evals=%d", strategy, *benchWorkers, *benchEvals), func(b *testing.B) {
			_, p := benchPool(b, strategy, *benchWorkers, *benchEvals, 1.0)
			now := t0.Add(time.Minute)
			b.ReportAllocs()
			b.ResetTimer()
			var d Decision
			cpu0 := cpuTime()
			for b.Loop() {
				d = Decide(p, now, Config{})
			}
			// Wall time depends on what else runs on the machine; the
			// process's CPU time (GC included) per placement does less.
			cpu := cpuTime() - cpu0
			b.ReportMetric(float64(d.Stats.Placed), "placements/op")
			b.ReportMetric(float64(d.Stats.Placed)*float64(b.N)/b.Elapsed().Seconds(), "placements/s")
			b.ReportMetric(float64(d.Stats.Placed)*float64(b.N)/cpu.Seconds(), "placements/cpu-s")
			b.ReportMetric(float64(d.Stats.LocalityHits)/float64(max(d.Stats.Placed, 1)), "hit-ratio")
		})
	}
}

// BenchmarkDecideFull is a round on a full pool with a long queue: nothing
// fits, so the round must cost next to nothing.
func BenchmarkDecideFull(b *testing.B) {
	s, p := benchPool(b, events.Spread, *benchWorkers, *benchEvals, 0.5)
	// Fold the placements so the pool is full.
	now := t0.Add(time.Minute)
	d := Decide(p, now, Config{})
	for _, data := range d.Events {
		if err := s.Apply(events.Envelope{ID: "x", Type: data.EventType(), V: events.SchemaVersion, Pool: p.ID, At: now, Data: data}, events.Position{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		d = Decide(p, now.Add(time.Second), Config{})
	}
	if d.Stats.Placed != 0 {
		b.Fatalf("placed %d in a full pool", d.Stats.Placed)
	}
}

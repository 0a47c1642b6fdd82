package schedloop

import (
	"fmt"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/line-sched/line/config"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/scheduler"
	"github.com/line-sched/line/state"
)

// benchRoundPartition is a caught-up partition holding one pool of 500
// workers with room for all of its 10,000 pending evals (a fifth of them
// naming a dataset), under delivery d.
func benchRoundPartition(b *testing.B, d events.Delivery, t0 time.Time) *partition {
	b.Helper()
	st := state.New()
	var off int64
	apply := func(data events.Data) {
		e := events.New("bench", t0, data)
		if err := st.Apply(e, events.Position{Offset: off}); err != nil {
			b.Fatal(err)
		}
		off++
	}
	apply(events.PoolCreatedData{Strategy: events.Spread, Delivery: d})
	const workers, evals = 500, 10000
	for i := range workers {
		id := fmt.Sprintf("w%05d", i)
		apply(events.WorkerRegisteredData{WorkerID: id, Capacity: 2 * evals / workers, Topic: "line.allocs.bench." + id,
			Deadline: t0.Add(time.Hour), ReplicaDeadline: t0.Add(time.Hour), Datasets: []string{fmt.Sprintf("d%02d", i%50)}})
	}
	for i := range evals {
		ds := ""
		if i%5 == 0 {
			ds = fmt.Sprintf("d%02d", i%50)
		}
		apply(events.EvalSubmittedData{EvalID: fmt.Sprintf("e%07d", i), Size: 1, DatasetID: ds,
			Payload: []byte(`{"cmd":["run","x"],"n":3}`)})
	}
	part := newPartition(0, off, t0, 0)
	part.st = st
	part.next = off
	part.warmed = true
	return part
}

// BenchmarkRoundEncode measures one scheduler round of 10,000 placements
// as decideLocked runs it: the core's decision, then every event and
// delivery encoded as a record. The decide sub-benchmark is the core alone
// on the same pool, so the difference is the loop's encoding.
func BenchmarkRoundEncode(b *testing.B) {
	t0 := time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)
	now := t0.Add(time.Minute)
	cfg := config.Default()
	for _, d := range []events.Delivery{events.PerWorker, events.Shared} {
		part := benchRoundPartition(b, d, t0)
		l := &Loop{
			opts:   Options{MaxRoundEvents: 20000, MaxAheadEvents: 80000},
			cfg:    cfg,
			topic:  cfg.Topics.Events(),
			now:    func() time.Time { return now },
			log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
			parts:  map[int32]*partition{0: part},
			warm:   make(map[string]struct{}),
			warmed: make(map[string]struct{}),
		}
		b.Run(fmt.Sprintf("delivery=%s/decide", d), func(b *testing.B) {
			scfg := scheduler.Config{AllocTTL: cfg.AllocTTL, MaxRetry: cfg.MaxRetry, ExpireFrom: t0.Add(cfg.WorkerTTL), MaxPlacements: 10000}
			b.ReportAllocs()
			for b.Loop() {
				if dec := scheduler.Decide(part.st.Pool("bench"), now, scfg); dec.Stats.Placed != 10000 {
					b.Fatalf("placed %d, want 10000", dec.Stats.Placed)
				}
			}
		})
		b.Run(fmt.Sprintf("delivery=%s/round", d), func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				recs, rounds, _ := l.decideLocked()
				if len(recs) != 20000 || len(rounds) != 1 {
					b.Fatalf("%d records in %d rounds, want 20000 in 1", len(recs), len(rounds))
				}
			}
			// Wall time depends on what else runs on the machine; the
			// process's CPU time (GC included) less.
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the CPU time the process used so far, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

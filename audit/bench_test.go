package audit

import (
	"context"
	"flag"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"testing"
	"time"

	"github.com/line-sched/line/audit/audittest"
	"github.com/line-sched/line/bootstrap"
	"github.com/line-sched/line/testkit"
)

// BenchmarkChecker measures the checker alone on a simulated history.
func BenchmarkChecker(b *testing.B) {
	hist, err := audittest.Simulate(audittest.Options{Seed: 1, Steps: 5000, Pools: []string{"p1", "p2", "p3", "p4"}, Delayed: true})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu0 := audittest.CPUTime()
	for range b.N {
		c := NewChecker()
		for _, e := range hist {
			c.Check(e.Envelope, e.Position)
		}
		c.Finish()
	}
	cpu := audittest.CPUTime() - cpu0
	b.ReportMetric(float64(len(hist)*b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(len(hist)*b.N)/cpu.Seconds(), "events/cpu-s")
}

var (
	replayEvals   = flag.Int("replay.evals", 50_000, "BenchmarkReplay: evals of the c1m-shaped history (twice as many events)")
	replayWorkers = flag.Int("replay.workers", 1_000, "BenchmarkReplay: workers of the c1m-shaped history")
	replayRuns    = flag.Int("replay.runs", 1, "BenchmarkReplay: replays per iteration (one history; use -benchtime 1x -replay.runs N for the median of N replays)")
	replayProfile = flag.String("replay.cpuprofile", "", "BenchmarkReplay: write a CPU profile of the replays alone (not of making and producing the history) to this file")
)

// BenchmarkReplay runs Replay (what line audit runs: read, decode, fold,
// check every decision) over a c1m-shaped history on the embedded broker,
// and reports events/s.
func BenchmarkReplay(b *testing.B) {
	emb := testkit.StartBroker(b)
	cfg := testkit.Config(b)
	ctx := context.Background()
	if err := bootstrap.EnsureTopics(ctx, cfg, emb.Addrs()); err != nil {
		b.Fatal(err)
	}
	hist, err := audittest.C1M(audittest.C1MOptions{Partitions: cfg.EventsPartitions, Workers: *replayWorkers, Evals: *replayEvals})
	if err != nil {
		b.Fatal(err)
	}
	if err := audittest.Produce(ctx, emb.Addrs(), cfg.Topics.Events(), hist, 10_000); err != nil {
		b.Fatal(err)
	}
	if *replayProfile != "" {
		f, err := os.Create(*replayProfile)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	runtime.GC()
	b.ResetTimer()
	cpu0 := audittest.CPUTime()
	var rates []float64
	for range b.N * max(*replayRuns, 1) {
		t0 := time.Now()
		rep, err := Replay(ctx, Options{Brokers: emb.Addrs(), Deployment: cfg.Deployment})
		if err != nil {
			b.Fatal(err)
		}
		if n := rep.Summary.Violations; n != 0 || len(rep.Violations) != 0 {
			b.Fatalf("replay of a clean history found %d violations: %v", n, rep.Violations[:min(3, len(rep.Violations))])
		}
		if rep.Summary.Events != int64(len(hist)) {
			b.Fatalf("replayed %d events, want %d", rep.Summary.Events, len(hist))
		}
		rates = append(rates, float64(len(hist))/time.Since(t0).Seconds())
	}
	cpu := audittest.CPUTime() - cpu0
	n := len(hist) * len(rates)
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(n)/cpu.Seconds(), "events/cpu-s")
	// On a shared machine the median of several replays (-replay.runs N:
	// one history, N replays) says more than their mean.
	slices.Sort(rates)
	b.ReportMetric(rates[len(rates)/2], "median-events/s")
}

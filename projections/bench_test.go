package projections_test

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/line-sched/line/audit/audittest"
	"github.com/line-sched/line/bootstrap"
	"github.com/line-sched/line/projections"
	"github.com/line-sched/line/testkit"
)

var (
	rebuildEvals   = flag.Int("rebuild.evals", 50_000, "BenchmarkRebuild: evals of the c1m-shaped history (twice as many events)")
	rebuildWorkers = flag.Int("rebuild.workers", 1_000, "BenchmarkRebuild: workers of the c1m-shaped history")
	rebuildVerbose = flag.Bool("rebuild.v", false, "BenchmarkRebuild: log the projector's messages to stderr")
	rebuildBulk    = flag.Bool("rebuild.bulk", true, "BenchmarkRebuild: rebuild by a bulk load (false: batch by batch)")
	liveEvals      = flag.Int("live.evals", envInt("LINE_BENCH_LIVE_EVALS", 200_000), "BenchmarkLive: evals of the c1m-shaped history (twice as many events)")
	liveWorkers    = flag.Int("live.workers", envInt("LINE_BENCH_LIVE_WORKERS", 1_000), "BenchmarkLive: workers of the c1m-shaped history")
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkRebuild rebuilds the views from offset 0 (Open with Rebuild,
// default sync writes, until CatchUp) over a c1m-shaped history on the
// embedded broker, and reports events/s.
func BenchmarkRebuild(b *testing.B) {
	maxBulk := 0
	if !*rebuildBulk {
		maxBulk = -1
	}
	benchProject(b, *rebuildEvals, *rebuildWorkers, maxBulk)
}

// BenchmarkLive measures the live path: the views are written batch by
// batch (no bulk load; only the first batch finds them empty), each batch
// folding what the consumer buffered, up to Options.MaxBatchRecords, as
// the projector does while it follows the log or catches up with it. It
// reports events/s, events per CPU second (the whole process: the
// embedded broker serves the fetches) and the heap's peak, over a
// c1m-shaped history of -live.evals evals (LINE_BENCH_LIVE_EVALS).
func BenchmarkLive(b *testing.B) {
	benchProject(b, *liveEvals, *liveWorkers, -1)
}

// benchProject builds a c1m-shaped history on the embedded broker, then
// b.N times projects it into new views (Open with Rebuild, default sync
// writes, until CatchUp) and reports rates, the heap's peak and Pebble's
// compaction work (and the peak of the memory its memtables and large
// batches take, Pebble's own count, in and out of the Go heap).
func benchProject(b *testing.B, evals, workers, maxBulk int) {
	emb := testkit.StartBroker(b)
	cfg := testkit.Config(b)
	ctx := context.Background()
	if err := bootstrap.EnsureTopics(ctx, cfg, emb.Addrs()); err != nil {
		b.Fatal(err)
	}
	hist, err := audittest.C1M(audittest.C1MOptions{Partitions: cfg.EventsPartitions, Workers: workers, Evals: evals})
	if err != nil {
		b.Fatal(err)
	}
	if err := audittest.Produce(ctx, emb.Addrs(), cfg.Topics.Events(), hist, 10_000); err != nil {
		b.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if *rebuildVerbose {
		quiet = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	// The heap the history and the broker hold, then the peak while the
	// projector writes (sampled): their difference is about what the
	// projector holds.
	runtime.GC()
	base := heapBytes()
	var peak, memPeak atomic.Uint64
	var running atomic.Pointer[projections.Projector]
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if h := heapBytes(); h > peak.Load() {
				peak.Store(h)
			}
			if p := running.Load(); p != nil {
				if m := projections.MemTableBytes(p); m > memPeak.Load() {
					memPeak.Store(m)
				}
			}
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
		}
	}()
	var compacted, flushed, written uint64
	b.ResetTimer()
	cpu0 := audittest.CPUTime()
	for range b.N {
		p, err := projections.Open(ctx, projections.Options{Config: cfg, Brokers: emb.Addrs(), Dir: b.TempDir(), Rebuild: true, Logger: quiet,
			MaxBulkRecords: maxBulk})
		if err != nil {
			b.Fatal(err)
		}
		running.Store(p)
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		if err := p.CatchUp(ctx); err != nil {
			b.Fatal(err)
		}
		running.Store(nil)
		c, f, w := projections.WriteWork(p)
		compacted, flushed, written = compacted+c, flushed+f, written+w
		if err := p.Close(); err != nil {
			b.Fatal(err)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	cpu := audittest.CPUTime() - cpu0
	b.StopTimer()
	close(stopSampling)
	<-sampled
	n := float64(b.N)
	b.ReportMetric(float64(base)/(1<<20), "base-heap-MiB")
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(memPeak.Load())/(1<<20), "peak-memtables-MiB")
	b.ReportMetric(float64(len(hist))*n/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(len(hist))*n/cpu.Seconds(), "events/cpu-s")
	b.ReportMetric(float64(written)/n/(1<<20), "batch-MiB")
	b.ReportMetric(float64(flushed)/n/(1<<20), "flushed-MiB")
	b.ReportMetric(float64(compacted)/n/(1<<20), "compacted-MiB")
}

// heapBytes is the memory of the heap's live and not yet swept objects.
func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

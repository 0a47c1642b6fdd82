package state

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/line-sched/line/events"
)

// bxHistory is a c1m-like history of one pool as it sits on the log: the
// pool, nWorkers registered workers, then nEvals evals each submitted and
// placed (half the events eval.submitted, half alloc.placed), in rounds the
// way the scheduler writes them. A third of the evals name a dataset, one in
// eight carries a small payload. Alloc ids are random like the
// scheduler's (bxAllocID). Every placement applies: the workers have
// room for all evals.
func bxHistory(nEvals, nWorkers int) [][]byte {
	r := rand.New(rand.NewPCG(7, 11))
	t0 := time.Date(2026, 11, 26, 19, 0, 0, 0, time.UTC)
	const pool = "c1m"
	var out [][]byte
	add := func(at time.Time, d events.Data) {
		b, err := events.Marshal(events.New(pool, at, d))
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	add(t0, events.PoolCreatedData{Strategy: events.Spread, LocalityWaitMs: 2000})
	capacity := int64(4*nEvals/nWorkers + 8)
	workers := make([]string, nWorkers)
	for i := range workers {
		workers[i] = fmt.Sprintf("w-%05d", i)
		add(t0, events.WorkerRegisteredData{WorkerID: workers[i], Capacity: capacity, Topic: "line.allocs." + pool + "." + workers[i],
			Deadline: t0.Add(time.Hour), Datasets: []string{fmt.Sprintf("ds-%03d", i%200)}, ReplicaDeadline: t0.Add(time.Hour)})
	}
	type ev struct {
		id, ds string
		size   int64
	}
	const round = 500
	at := t0.Add(time.Second)
	for done := 0; done < nEvals; done += round {
		n := min(round, nEvals-done)
		batch := make([]ev, n)
		for i := range batch {
			e := ev{id: fmt.Sprintf("01jdx%021d", done+i), size: int64(1 + r.IntN(4))}
			if r.IntN(3) == 0 {
				e.ds = fmt.Sprintf("ds-%03d", r.IntN(200))
			}
			d := events.EvalSubmittedData{EvalID: e.id, DatasetID: e.ds, Size: e.size}
			if r.IntN(8) == 0 {
				d.Payload = json.RawMessage(fmt.Sprintf(`{"job":"train","shard":%d}`, r.IntN(1000)))
			}
			add(at, d)
			batch[i] = e
		}
		at = at.Add(5 * time.Millisecond)
		basis := int64(len(out))
		for i, e := range batch {
			w := workers[(done+i)%nWorkers]
			loc := events.LocalityNone
			if e.ds != "" {
				loc = events.LocalityMiss
			}
			add(at, events.AllocPlacedData{AllocID: bxAllocID(pool, e.id), EvalID: e.id,
				WorkerID: w, DatasetID: e.ds, Size: e.size, Attempt: 1, Deadline: at.Add(30 * time.Second),
				Topic: "line.allocs." + pool + "." + w, Strategy: events.Spread, Locality: loc, Candidates: nWorkers,
				WaitedMs: 5, Basis: basis})
		}
		at = at.Add(5 * time.Millisecond)
	}
	return out
}

// bxAllocID is an alloc id shaped like the scheduler's (26 characters of
// lowercase base32 of a SHA-256 of the pool, the eval and the attempt):
// uniformly spread, so that the indexes keyed by alloc id see what they see
// in production, not ids that share a long prefix.
func bxAllocID(pool, eval string) string {
	sum := sha256.Sum256([]byte(pool + "\x00" + eval + "\x001"))
	return bxIDEncoding.EncodeToString(sum[:17])[:26]
}

var bxIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// bxFold decodes and folds a history the way a replaying consumer does.
func bxFold(tb testing.TB, h [][]byte, decode func([]byte) (events.Envelope, error)) *State {
	s := New()
	for i, b := range h {
		e, err := decode(b)
		if err != nil {
			tb.Fatalf("event %d does not decode: %v", i, err)
		}
		if err := s.Apply(e, events.Position{Offset: int64(i)}); err != nil {
			tb.Fatalf("event %d does not apply: %v", i, err)
		}
	}
	return s
}

var bxSink *State

// BenchmarkFold measures decode plus apply over a c1m-like history (half
// eval.submitted, half alloc.placed): events/s is the replay and takeover
// rate of one core; heap-B/eval is the live heap the fold keeps per eval
// (each with its running alloc) after a GC.
func BenchmarkFold(b *testing.B) {
	const nEvals, nWorkers = 100_000, 5_000
	h := bxHistory(nEvals, nWorkers)
	bxSink = bxFold(b, h, events.Unmarshal)
	heap := bxRetained()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := bxCPU()
	for i := 0; i < b.N; i++ {
		bxSink = bxFold(b, h, events.Unmarshal)
	}
	b.ReportMetric(float64(len(h))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(len(h))*float64(b.N)/cpu(), "events/cpu-s")
	b.ReportMetric(float64(heap)/float64(nEvals), "heap-B/eval")
}

// BenchmarkFoldHeap1M folds the history of the c1m gate (1M evals placed on
// 5,000 workers, 2M events) once per iteration and reports the live heap
// the fold keeps (total and per eval with its alloc) and the memory the
// process got from the OS. Run it with -benchtime 1x.
func BenchmarkFoldHeap1M(b *testing.B) {
	nEvals, nWorkers := 1_000_000, 5_000
	if os.Getenv("LINE_BENCH_SMALL") != "" {
		nEvals, nWorkers = 10_000, 50 // make bench-smoke: keep it compiling and running, not measuring
	}
	h := bxHistory(nEvals, nWorkers)
	b.ResetTimer()
	var heap uint64
	for i := 0; i < b.N; i++ {
		bxSink = bxFold(b, h, events.Unmarshal)
		heap = bxRetained()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(heap)/float64(nEvals), "heap-B/eval")
	b.ReportMetric(float64(ms.Sys)/(1<<20), "sys-MiB")
}

// BenchmarkCheck1M measures State.Check over the fold of the c1m gate's
// history (1M evals placed on 5,000 workers): what the audit's final check
// costs. cpu-s/op is the CPU it takes (several goroutines), s/op its wall
// time.
func BenchmarkCheck1M(b *testing.B) {
	nEvals, nWorkers := 1_000_000, 5_000
	if os.Getenv("LINE_BENCH_SMALL") != "" {
		nEvals, nWorkers = 10_000, 50
	}
	s := bxFold(b, bxHistory(nEvals, nWorkers), events.Unmarshal)
	runtime.GC()
	b.ResetTimer()
	cpu := bxCPU()
	for i := 0; i < b.N; i++ {
		if err := s.Check(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(cpu()/float64(b.N), "cpu-s/op")
}

// BenchmarkDecodeHistory measures events.Unmarshal alone over the same
// history.
func BenchmarkDecodeHistory(b *testing.B) {
	h := bxHistory(20_000, 1_000)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := bxCPU()
	for i := 0; i < b.N; i++ {
		for _, r := range h {
			if _, err := events.Unmarshal(r); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(len(h))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(len(h))*float64(b.N)/cpu(), "events/cpu-s")
}

// BenchmarkApplyHistory measures Apply alone over the decoded history.
func BenchmarkApplyHistory(b *testing.B) {
	h := bxHistory(100_000, 5_000)
	es := bxDecoded(b, h)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := bxCPU()
	for i := 0; i < b.N; i++ {
		s := New()
		for j, e := range es {
			if err := s.Apply(e, events.Position{Offset: int64(j)}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(len(h))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(len(h))*float64(b.N)/cpu(), "events/cpu-s")
}

// bxCPU starts a CPU clock of the whole process (GC workers included): on a
// shared machine the rate per CPU second is steadier than per wall second.
// The returned func gives the CPU seconds since the start.
func bxCPU() func() float64 {
	now := func() float64 {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return 0
		}
		return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	}
	start := now()
	return func() float64 { return now() - start }
}

// bxRetained returns how much live heap bxSink holds: the heap after a GC
// with it, minus the heap after a GC without it. It clears bxSink.
func bxRetained() uint64 {
	var with, without runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&with)
	bxSink = nil
	runtime.GC()
	runtime.ReadMemStats(&without)
	return with.HeapAlloc - without.HeapAlloc
}

// BenchmarkApplyHistory1M measures Apply alone over the decoded history of
// the c1m gate (1M evals placed on 5,000 workers, 2M events), without and
// with Expect announcing the events to come (as a rebuild does), and the
// live heap of the fold.
func BenchmarkApplyHistory1M(b *testing.B) {
	nEvals, nWorkers := 1_000_000, 5_000
	if os.Getenv("LINE_BENCH_SMALL") != "" {
		nEvals, nWorkers = 10_000, 50
	}
	h := bxHistory(nEvals, nWorkers)
	es := bxDecoded(b, h)
	h = nil
	for _, expect := range []bool{false, true} {
		b.Run(fmt.Sprintf("expect=%v", expect), func(b *testing.B) {
			var heap uint64
			runtime.GC()
			b.ResetTimer()
			cpu := bxCPU()
			for i := 0; i < b.N; i++ {
				s := New()
				if expect {
					s.Expect(int64(len(es)))
				}
				for j, e := range es {
					if err := s.Apply(e, events.Position{Offset: int64(j)}); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				bxSink = s
				heap = bxRetained()
				b.StartTimer()
			}
			b.ReportMetric(float64(len(es))*float64(b.N)/cpu(), "events/cpu-s")
			b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
		})
	}
}

// bxDecoded decodes a history's records.
func bxDecoded(b *testing.B, h [][]byte) []events.Envelope {
	es := make([]events.Envelope, len(h))
	for i, r := range h {
		e, err := events.Unmarshal(r)
		if err != nil {
			b.Fatal(err)
		}
		es[i] = e
	}
	return es
}

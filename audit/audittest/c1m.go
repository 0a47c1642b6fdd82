package audittest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/scheduler"
	"github.com/line-sched/line/state"
)

// C1MOptions shape a history like the c1m scenario's (see BENCHMARKS.md):
// one spread pool, workers registered with 1.25 times the capacity the
// evals need, evals submitted in batches, each batch followed by the
// scheduler's rounds that place it. Zero fields take the defaults below.
type C1MOptions struct {
	// Seed makes the history (default 1).
	Seed uint64
	// Pool is the pool id (default "c1m").
	Pool string
	// Partitions is the partition count of the events topic (default 1).
	Partitions int32
	// Workers (default 500) and Evals (default 10,000).
	Workers, Evals int
	// Batch is the evals submitted between two rounds (default 10,000).
	Batch int
	// Datasets is the number of datasets (default Workers/5), each held by
	// three workers; every fifth eval names one.
	Datasets int
	// Start is the time of the first event (default 2026-11-26T19:00Z).
	Start time.Time
}

// C1M returns a clean c1m-shaped history: pool.created, worker.registered,
// then eval.submitted in batches, each followed by its round's
// alloc.placed (decided by scheduler.Decide on the fold, stamped with its
// basis). Every event applies.
func C1M(o C1MOptions) ([]Event, error) {
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Pool == "" {
		o.Pool = "c1m"
	}
	if o.Partitions <= 0 {
		o.Partitions = 1
	}
	if o.Workers <= 0 {
		o.Workers = 500
	}
	if o.Evals <= 0 {
		o.Evals = 10_000
	}
	if o.Batch <= 0 {
		o.Batch = 10_000
	}
	if o.Datasets <= 0 {
		o.Datasets = max(1, o.Workers/5)
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2026, 11, 26, 19, 0, 0, 0, time.UTC)
	}
	s := &sim{opts: Options{Partitions: o.Partitions}, rng: rand.New(rand.NewPCG(o.Seed, 0xc1)), st: state.New(),
		now: o.Start, next: map[int32]int64{}, pending: map[string]*round{}}
	sizes := make([]int64, o.Evals)
	var total int64
	for i := range sizes {
		sizes[i] = int64(1 + s.rng.IntN(4))
		total += sizes[i]
	}
	s.append(o.Pool, s.now, events.PoolCreatedData{Strategy: events.Spread})
	holders := make([][]string, o.Workers)
	for d := range o.Datasets {
		for k := range 3 {
			w := (d*3 + k) % o.Workers
			holders[w] = append(holders[w], fmt.Sprintf("ds%04d", d))
		}
	}
	capacity := (total*5/4 + int64(o.Workers) - 1) / int64(o.Workers)
	ttl := 6 * time.Hour
	for i := range o.Workers {
		id := fmt.Sprintf("w%05d", i)
		s.now = s.now.Add(time.Millisecond)
		s.append(o.Pool, s.now, events.WorkerRegisteredData{WorkerID: id, Capacity: capacity,
			Topic: "line.allocs." + o.Pool + "." + id, Deadline: s.now.Add(ttl), Datasets: holders[i],
			ReplicaDeadline: s.now.Add(ttl)})
	}
	cfg := scheduler.Config{AllocTTL: ttl, MaxPlacements: o.Batch}
	part := events.PartitionFor(o.Pool, o.Partitions)
	for from := 0; from < o.Evals; from += o.Batch {
		s.now = s.now.Add(100 * time.Millisecond)
		for i := from; i < min(from+o.Batch, o.Evals); i++ {
			ds := ""
			if i%5 == 0 {
				ds = fmt.Sprintf("ds%04d", s.rng.IntN(o.Datasets))
			}
			s.append(o.Pool, s.now, events.EvalSubmittedData{EvalID: fmt.Sprintf("e%08d", i), Size: sizes[i], DatasetID: ds})
		}
		for s.err == nil {
			s.now = s.now.Add(100 * time.Millisecond)
			d := scheduler.Decide(s.st.Pool(o.Pool), s.now, cfg)
			if len(d.Events) == 0 {
				break
			}
			s.pending[o.Pool] = &round{at: s.now, basis: s.next[part], d: d}
			s.flush(o.Pool)
		}
	}
	return s.out, s.err
}

// Produce writes a history to topic as line's services do, each event
// encoded by events.Record on its position's partition, in produce
// requests of at most chunk records. It uses no transactions, so that the
// records land exactly on the history's positions (a fresh topic, one
// history): the bases of its decisions stay true.
func Produce(ctx context.Context, brokers []string, topic string, hist []Event, chunk int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(8<<20), kgo.MaxBufferedRecords(chunk+1), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		return fmt.Errorf("audittest: producer: %w", err)
	}
	defer cl.Close()
	for from := 0; from < len(hist); from += chunk {
		var recs []*kgo.Record
		for _, e := range hist[from:min(from+chunk, len(hist))] {
			r, err := events.Record(topic, e.Envelope)
			if err != nil {
				return fmt.Errorf("audittest: encode %s: %w", e.Type, err)
			}
			r.Partition = e.Position.Partition
			recs = append(recs, r)
		}
		res := cl.ProduceSync(ctx, recs...)
		if err := res.FirstErr(); err != nil {
			return fmt.Errorf("audittest: produce to %s: %w", topic, err)
		}
		for i, r := range res {
			if want := hist[from+i].Position; r.Record.Offset != want.Offset {
				return fmt.Errorf("audittest: %s landed on offset %d, not %s: produce to a fresh topic", hist[from+i].Type, r.Record.Offset, want)
			}
		}
	}
	return nil
}

// CPUTime is the CPU time (user and system) this process used so far: a
// benchmark on a shared machine divides its work by the difference.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

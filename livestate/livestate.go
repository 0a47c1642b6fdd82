// Package livestate keeps an in-memory state.State folded up to the committed
// end of the events topic. Ingest validates commands against it; it reads
// every partition with read_committed isolation and applies each record with
// the shared fold, so it never holds a meaning of its own. Before applying,
// it drops what the fold would store but ingest never reads (payloads,
// completion messages) and shares repeated strings (slim.go).
package livestate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/state"
)

// Follower tails the events topic into a state.State.
type Follower struct {
	topic string
	cl    *kgo.Client
	adm   *kadm.Client
	log   *slog.Logger

	mu      sync.RWMutex
	st      *state.State
	next    map[int32]int64 // next offset to apply, per partition
	changed chan struct{}   // closed and replaced whenever next advances

	poison atomic.Int64
	slim   slimmer // used by the run goroutine only
	cancel context.CancelFunc
	done   chan struct{}
}

// Options configure a Follower.
type Options struct {
	// Brokers to bootstrap from.
	Brokers []string
	// Topic is the events topic.
	Topic string
	// Logger for poison records; nil means slog.Default().
	Logger *slog.Logger
	// ClientOpts are extra franz-go options (e.g. for tests).
	ClientOpts []kgo.Opt
}

// Start begins tailing the events topic from offset 0. Use WaitCaughtUp to
// know when the state reflects everything committed at start.
func Start(opts Options) (*Follower, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	kopts := append([]kgo.Opt{
		kgo.SeedBrokers(opts.Brokers...),
		kgo.ConsumeTopics(opts.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers take offsets too, often the last ones
		// before the committed end: without them, next would stop
		// short of the end after every batch and CatchUp would wait
		// for a record that never comes.
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(250 * time.Millisecond),
		kgo.MetadataMinAge(250 * time.Millisecond),
	}, opts.ClientOpts...)
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("livestate: create consumer: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Follower{
		topic:   opts.Topic,
		cl:      cl,
		adm:     kadm.NewClient(cl),
		log:     logger,
		st:      state.New(),
		next:    make(map[int32]int64),
		changed: make(chan struct{}),
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	go f.run(ctx)
	return f, nil
}

func (f *Follower) run(ctx context.Context) {
	defer close(f.done)
	var batch []decoded
	for {
		fetches := f.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				f.log.Warn("livestate: fetch error", "topic", topic, "partition", p, "err", err)
			}
		})
		// Decode outside the lock: commands read the state while the
		// next fetch is being decoded, and wait for the write lock
		// only while the decoded events are applied.
		batch = batch[:0]
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			for _, r := range fp.Records {
				batch = append(batch, f.decode(r))
			}
		})
		f.mu.Lock()
		for i := range batch {
			d := &batch[i]
			f.next[d.pos.Partition] = d.pos.Offset + 1
			if d.ok {
				// A rejection leaves the state unchanged; the
				// scheduler and the audit report those, so here it
				// is only counted (in the state).
				share(f.st, &d.e)
				_ = f.st.Apply(d.e, d.pos)
			}
		}
		ch := f.changed
		f.changed = make(chan struct{})
		f.mu.Unlock()
		close(ch)
		clear(batch) // drop the events: the state keeps what it needs
	}
}

// decoded is one fetched record ready to apply: ok is false for control
// records and poison (nothing to apply, but the offset is consumed).
type decoded struct {
	pos events.Position
	e   events.Envelope
	ok  bool
}

func (f *Follower) decode(r *kgo.Record) decoded {
	pos := events.Position{Partition: r.Partition, Offset: r.Offset}
	if r.Attrs.IsControl() {
		return decoded{pos: pos}
	}
	e, err := events.FromRecord(r)
	if err != nil {
		f.poison.Add(1)
		f.log.Warn("livestate: skipping undecodable record", "position", pos.String(), "err", err)
		return decoded{pos: pos}
	}
	f.slim.slim(&e)
	return decoded{pos: pos, e: e, ok: true}
}

// Read calls fn with the state under a read lock. fn must not keep the
// state or anything in it after returning.
func (f *Follower) Read(fn func(*state.State)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.st)
}

// Applied reports the next offset to apply for each partition seen so far.
func (f *Follower) Applied() map[int32]int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make(map[int32]int64, len(f.next))
	for p, o := range f.next {
		out[p] = o
	}
	return out
}

// Poison counts records skipped because they could not be decoded.
func (f *Follower) Poison() int64 { return f.poison.Load() }

// Changed returns a channel closed the next time the applied offsets move.
func (f *Follower) Changed() <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.changed
}

// WaitApplied waits until the record at pos has been applied.
func (f *Follower) WaitApplied(ctx context.Context, pos events.Position) error {
	return f.waitFor(ctx, map[int32]int64{pos.Partition: pos.Offset + 1})
}

// waitFor waits until next[p] >= want[p] for every p.
func (f *Follower) waitFor(ctx context.Context, want map[int32]int64) error {
	for {
		f.mu.RLock()
		ok := true
		for p, o := range want {
			if f.next[p] < o {
				ok = false
				break
			}
		}
		ch := f.changed
		f.mu.RUnlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("livestate: waiting for the events topic to be applied: %w", ctx.Err())
		case <-ch:
		}
	}
}

// CatchUp waits until the state reflects everything committed on the given
// partitions (all partitions if none are given) at the time of the call.
func (f *Follower) CatchUp(ctx context.Context, partitions ...int32) error {
	ends, err := f.adm.ListCommittedOffsets(ctx, f.topic)
	if err != nil {
		return fmt.Errorf("livestate: list committed end offsets of %s: %w", f.topic, err)
	}
	if err := ends.Error(); err != nil {
		return fmt.Errorf("livestate: list committed end offsets of %s: %w", f.topic, err)
	}
	want := make(map[int32]int64)
	ends.Each(func(o kadm.ListedOffset) {
		if len(partitions) > 0 && !contains(partitions, o.Partition) {
			return
		}
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	return f.waitFor(ctx, want)
}

func contains(ps []int32, p int32) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// Close stops tailing.
func (f *Follower) Close() {
	f.cancel()
	<-f.done
	f.cl.Close()
}

package testkit

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/line-sched/line/events"
)

// Client returns a franz-go client for brokers with opts, closed when the
// test ends.
func Client(t testing.TB, brokers []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		t.Fatalf("testkit: kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Admin returns an admin client for brokers, closed when the test ends.
func Admin(t testing.TB, brokers []string) *kadm.Client {
	t.Helper()
	return kadm.NewClient(Client(t, brokers))
}

// use runs fn with a client for brokers (opts added) that is closed when
// fn returns, and a context bounded by Timeout.
func use(t testing.TB, brokers []string, fn func(ctx context.Context, cl *kgo.Client), opts ...kgo.Opt) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		t.Fatalf("testkit: kafka client: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	fn(ctx, cl)
}

// TopicExists reports whether topic exists on brokers.
func TopicExists(t testing.TB, brokers []string, topic string) bool {
	t.Helper()
	var (
		tds kadm.TopicDetails
		err error
	)
	use(t, brokers, func(ctx context.Context, cl *kgo.Client) { tds, err = kadm.NewClient(cl).ListTopics(ctx, topic) })
	if err != nil {
		t.Fatalf("testkit: list topic %s: %v", topic, err)
	}
	td, ok := tds[topic]
	if !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
		return false
	}
	if td.Err != nil {
		t.Fatalf("testkit: list topic %s: %v", topic, td.Err)
	}
	return true
}

// Partitions returns the partition count of topic.
func Partitions(t testing.TB, brokers []string, topic string) int32 {
	t.Helper()
	var (
		tds kadm.TopicDetails
		err error
	)
	use(t, brokers, func(ctx context.Context, cl *kgo.Client) { tds, err = kadm.NewClient(cl).ListTopics(ctx, topic) })
	if err != nil || tds.Error() != nil {
		t.Fatalf("testkit: list topic %s: %v", topic, errors.Join(err, tds.Error()))
	}
	return int32(len(tds[topic].Partitions))
}

// EndOffsets returns the high watermark of every partition of topic: the
// offset the next record will get, counting uncommitted and aborted records
// and transaction markers. Comparing two snapshots tells whether anything at
// all was written in between.
func EndOffsets(t testing.TB, brokers []string, topic string) map[int32]int64 {
	t.Helper()
	return offsets(t, brokers, "end", topic, func(ctx context.Context, adm *kadm.Client) (kadm.ListedOffsets, error) {
		return adm.ListEndOffsets(ctx, topic)
	})
}

// CommittedOffsets returns the last stable offset of every partition of
// topic: what a read_committed consumer reads up to.
func CommittedOffsets(t testing.TB, brokers []string, topic string) map[int32]int64 {
	t.Helper()
	return offsets(t, brokers, "committed end", topic, func(ctx context.Context, adm *kadm.Client) (kadm.ListedOffsets, error) {
		return adm.ListCommittedOffsets(ctx, topic)
	})
}

func offsets(t testing.TB, brokers []string, what, topic string, list func(context.Context, *kadm.Client) (kadm.ListedOffsets, error)) map[int32]int64 {
	t.Helper()
	var (
		los kadm.ListedOffsets
		err error
	)
	use(t, brokers, func(ctx context.Context, cl *kgo.Client) { los, err = list(ctx, kadm.NewClient(cl)) })
	if err == nil {
		err = los.Error()
	}
	if err != nil {
		t.Fatalf("testkit: list %s offsets of %s: %v", what, topic, err)
	}
	out := make(map[int32]int64)
	los.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// ReadRecords reads topic from the start of every partition up to the
// committed end offsets listed when it is called, as a read_committed
// consumer: records of aborted transactions and transaction markers are
// left out. Records are ordered by partition, then offset.
func ReadRecords(t testing.TB, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	ends := CommittedOffsets(t, brokers, topic)
	starts := offsets(t, brokers, "start", topic, func(ctx context.Context, adm *kadm.Client) (kadm.ListedOffsets, error) {
		return adm.ListStartOffsets(ctx, topic)
	})
	want := make(map[int32]int64)
	from := make(map[int32]kgo.Offset)
	for p, end := range ends {
		if start := starts[p]; end > start {
			want[p] = end
			from[p] = kgo.NewOffset().At(start)
		}
	}
	if len(want) == 0 {
		return nil
	}
	var out []*kgo.Record
	// A fresh client that reads every partition with read_committed and
	// keeps transaction markers: a marker is often the last offset before
	// the committed end, and only seeing it tells that the end is reached.
	use(t, brokers, func(ctx context.Context, cl *kgo.Client) {
		next := make(map[int32]int64)
		for {
			done := true
			for p, end := range want {
				if next[p] < end {
					done = false
					break
				}
			}
			if done {
				return
			}
			fs := cl.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				t.Fatalf("testkit: read %s up to %v: got up to %v: %v", topic, want, next, err)
			}
			fs.EachError(func(_ string, p int32, err error) {
				t.Fatalf("testkit: read %s partition %d: %v", topic, p, err)
			})
			fs.EachRecord(func(r *kgo.Record) {
				if r.Offset >= want[r.Partition] {
					return // written after the snapshot of end offsets
				}
				next[r.Partition] = r.Offset + 1
				if !r.Attrs.IsControl() {
					out = append(out, r)
				}
			})
		}
	},
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(100*time.Millisecond),
	)
	slices.SortFunc(out, func(a, b *kgo.Record) int {
		return cmp.Or(cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
	})
	return out
}

// Event is one decoded record of the events topic.
type Event struct {
	events.Envelope
	// Position is where the record sits.
	Position events.Position
	// Record is the record itself (key, headers, value).
	Record *kgo.Record
}

// Header returns the value of the record header key, or "" without one.
func (e Event) Header(key string) string {
	for _, h := range e.Record.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Log is a sequence of events, ordered by partition then offset.
type Log []Event

// OfType returns the events of type typ.
func (l Log) OfType(typ events.Type) Log {
	var out Log
	for _, e := range l {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// OfPool returns the events of pool.
func (l Log) OfPool(pool string) Log {
	var out Log
	for _, e := range l {
		if e.Pool == pool {
			out = append(out, e)
		}
	}
	return out
}

// At returns the event at pos.
func (l Log) At(pos events.Position) (Event, bool) {
	for _, e := range l {
		if e.Position == pos {
			return e, true
		}
	}
	return Event{}, false
}

// Where returns the events for which keep is true.
func (l Log) Where(keep func(Event) bool) Log {
	var out Log
	for _, e := range l {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}

// ReadEvents reads the events topic like ReadRecords and decodes every
// record with events.FromRecord; an undecodable record fails the test.
func ReadEvents(t testing.TB, brokers []string, topic string) Log {
	t.Helper()
	var out Log
	for _, r := range ReadRecords(t, brokers, topic) {
		pos := events.Position{Partition: r.Partition, Offset: r.Offset}
		e, err := events.FromRecord(r)
		if err != nil {
			t.Fatalf("testkit: record %s of %s: %v", pos, topic, err)
		}
		out = append(out, Event{Envelope: e, Position: pos, Record: r})
	}
	return out
}

// Append writes envelopes to the events topic as line does: encoded by
// events.Record, on partition events.PartitionFor(pool, partitions of the
// topic), acknowledged by all in-sync replicas. It returns their positions.
// Use it to put on the log what another service (the scheduler) would have
// written.
func Append(t testing.TB, brokers []string, topic string, envs ...events.Envelope) []events.Position {
	t.Helper()
	n := Partitions(t, brokers, topic)
	recs := make([]*kgo.Record, len(envs))
	for i, e := range envs {
		r, err := events.Record(topic, e)
		if err != nil {
			t.Fatalf("testkit: encode %s: %v", e.Type, err)
		}
		r.Partition = events.PartitionFor(e.Pool, n)
		recs[i] = r
	}
	var res kgo.ProduceResults
	use(t, brokers, func(ctx context.Context, cl *kgo.Client) { res = cl.ProduceSync(ctx, recs...) },
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err := res.FirstErr(); err != nil {
		t.Fatalf("testkit: append to %s: %v", topic, err)
	}
	out := make([]events.Position, len(res))
	for i, r := range res {
		out[i] = events.Position{Partition: r.Record.Partition, Offset: r.Record.Offset}
	}
	return out
}

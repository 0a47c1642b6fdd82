package schedloop_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/line-sched/line/broker"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/schedloop"
	"github.com/line-sched/line/state"
	"github.com/line-sched/line/testkit"
)

// metadataCounter counts the Metadata requests a client writes.
type metadataCounter struct{ n atomic.Int64 }

func (c *metadataCounter) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == int16(kmsg.Metadata) && err == nil {
		c.n.Add(1)
	}
}

var _ kgo.HookBrokerWrite = (*metadataCounter)(nil)

// registerRaw puts n workers of pool on the log as ingest would (their alloc
// topics created first), without n HTTP round trips. It returns the topics.
func registerRaw(t *testing.T, e *env, pool string, n int, capacity int64) []string {
	t.Helper()
	now := time.Now()
	specs := make([]broker.TopicSpec, n)
	envs := make([]events.Envelope, n)
	topics := make([]string, n)
	for i := range n {
		w := fmt.Sprintf("w%05d", i)
		topics[i] = e.cfg.Topics.WorkerAllocs(pool, w)
		specs[i] = broker.TopicSpec{Name: topics[i], Partitions: 1}
		envs[i] = events.New(pool, now, events.WorkerRegisteredData{WorkerID: w, Capacity: capacity, Topic: topics[i],
			Deadline: now.Add(time.Hour), ReplicaDeadline: now.Add(time.Hour)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	if err := broker.EnsureTopics(ctx, testkit.Admin(t, e.brokers), specs...); err != nil {
		t.Fatalf("create %d alloc topics: %v", n, err)
	}
	testkit.Append(t, e.brokers, e.cfg.Topics.Events(), envs...)
	return topics
}

// TestWarmTopicsOnCatchUp: a scheduler taking over a pool of 2,000 workers
// loads the metadata of all their alloc topics once it caught up, in a
// transaction of its own, so that the rounds that then deliver to one new
// worker after the other (spread: each eval to the next empty worker) ask
// for no metadata at all; no warming record reaches any topic. Counts only,
// no timing. (Without warming, every such round asks for the metadata of
// its new topic: 60 requests here, each for every topic the producer
// knows, while the round waits for it.)
func TestWarmTopicsOnCatchUp(t *testing.T) {
	const workers, evals = 2000, 60
	e := newEnv(t, nil, longTTLs)
	e.createPool("warm", events.Spread, 0)
	topics := registerRaw(t, e, "warm", workers, 4)
	e.waitView(testkit.Timeout, "ingest folded the workers", func(st *state.State) bool {
		p := st.Pool("warm")
		return p != nil && p.NumWorkers() == workers
	})

	meta := &metadataCounter{}
	l, err := schedloop.New(schedloop.Options{Config: e.cfg, Brokers: e.brokers, InstanceID: "warm",
		Logger: testkit.Logger(t), ClientOpts: []kgo.Opt{kgo.WithHooks(meta)}})
	if err != nil {
		t.Fatalf("schedloop.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		l.Close()
	}()
	testkit.WaitFor(t, testkit.Timeout, "the loop warmed every alloc topic", func() bool {
		return l.Stats().WarmedTopics >= workers
	})
	// The warming transaction asked for one metadata update: wait until
	// no request was written for a second.
	before := meta.n.Load()
	for quiet := time.Now(); time.Since(quiet) < time.Second; time.Sleep(50 * time.Millisecond) {
		if n := meta.n.Load(); n != before {
			before, quiet = n, time.Now()
		}
	}
	t.Logf("metadata requests from the start until warmed: %d", before)
	// Bootstrap, group join and the warming update (and their retries
	// on a loaded machine): a handful, never one per topic.
	if before > workers/50 {
		t.Errorf("%d metadata requests to start and warm %d topics, want a handful", before, workers)
	}

	for i := range evals {
		id := fmt.Sprintf("e%03d", i)
		e.submit("warm", evalReq{ID: id, Size: 1})
		e.waitView(testkit.Timeout, "eval "+id+" placed", func(st *state.State) bool {
			return evalOf(st, "warm", id).Status() == state.EvalPlaced
		})
	}
	after := meta.n.Load()
	t.Logf("metadata requests while placing %d evals on %d new workers, one per round: %d", evals, evals, after-before)
	// Usually none; a loaded machine sees a few (a metadata update that
	// was still due), never one per round.
	if after-before > evals/6 {
		t.Errorf("%d metadata requests while delivering to warmed topics in %d rounds, want a few at most", after-before, evals)
	}
	// The alloc topics, the events topic and the dead-evals topic.
	if s := l.Stats(); s.WarmedTopics != workers+2 {
		t.Errorf("warmed %d topics, want %d", s.WarmedTopics, workers+2)
	}

	// The evals went to as many distinct workers; no warming record
	// reached any topic: every other alloc topic is empty.
	delivered := map[string]bool{}
	e.view(func(st *state.State) {
		for _, a := range st.Pool("warm").Allocs() {
			delivered[a.Topic()] = true
		}
	})
	if len(delivered) != evals {
		t.Fatalf("%d evals went to %d workers, want one each", evals, len(delivered))
	}
	ends := endOffsetsOf(t, e.brokers, topics)
	for _, topic := range topics {
		if !delivered[topic] && ends[topic] != 0 {
			t.Errorf("topic %s, never delivered to, ends at offset %d: a warming record was written", topic, ends[topic])
		}
	}
}

// endOffsetsOf lists the end offset of partition 0 of each topic.
func endOffsetsOf(t *testing.T, brokers []string, topics []string) map[string]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	listed, err := testkit.Admin(t, brokers).ListEndOffsets(ctx, topics...)
	if err != nil {
		t.Fatalf("list end offsets: %v", err)
	}
	out := make(map[string]int64, len(topics))
	listed.Each(func(o kadm.ListedOffset) { out[o.Topic] = o.Offset })
	return out
}

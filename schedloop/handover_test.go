package schedloop_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/state"
	"github.com/line-sched/line/testkit"
)

// TestRebuildBehindOpenTransaction: a scheduler that rebuilds a partition
// (a restart, a rebalance, a lost session) while another producer's
// transaction is open on it must not decide from the part of the log it can
// already read. Its predecessor's committed decisions may sit past the open
// transaction's first record, where a read_committed reader does not see
// them yet; deciding at the last stable offset would place those evals a
// second time (new alloc ids, delivered on the worker topics) the moment it
// caught up. The open transaction stands for an ingest batch in flight.
func TestRebuildBehindOpenTransaction(t *testing.T) {
	e := newEnv(t, nil, longTTLs)
	const pool = "p1"
	e.createPool(pool, events.Spread, 0)
	topic := e.registerWorker(pool, "w1", 10)
	e.submit(pool, evalReq{ID: "e1"})
	e.waitView(15*time.Second, "e1 submitted", func(st *state.State) bool {
		return evalOf(st, pool, "e1").Status() == state.EvalPending
	})

	// The first scheduler decides to place e1; its first record waits (a
	// produce hook) while another producer opens a transaction on the
	// pool's partition and keeps it open: from then on, read_committed
	// readers of that partition stop before the open transaction's first
	// record, and the decision lands after it, invisible to them, while
	// the alloc record on the worker topic is readable.
	hold := &holdFirstProduce{topic: e.cfg.Topics.Events(), held: make(chan struct{}), release: make(chan struct{})}
	a, stopA := startLoopWith(t, e.cfg, e.brokers, "sched-a", kgo.WithHooks(hold))
	select {
	case <-hold.held:
	case <-time.After(15 * time.Second):
		t.Fatal("the first scheduler did not decide in 15s")
	}
	foreign := testkit.Client(t, e.brokers,
		kgo.TransactionalID(e.cfg.Deployment+"-foreign"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.TransactionTimeout(time.Minute))
	if err := foreign.BeginTransaction(); err != nil {
		t.Fatalf("begin foreign transaction: %v", err)
	}
	partition := events.PartitionFor(pool, e.cfg.EventsPartitions)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := foreign.ProduceSync(ctx, &kgo.Record{Topic: e.cfg.Topics.Events(), Partition: partition,
		Key: []byte(pool), Value: []byte("in flight")}).FirstErr(); err != nil {
		t.Fatalf("produce in the foreign transaction: %v", err)
	}
	close(hold.release)
	testkit.WaitFor(t, 15*time.Second, "e1 delivered", func() bool {
		return len(testkit.ReadRecords(t, e.brokers, topic)) > 0
	})
	visible := a.Stats().Applied
	stopA()

	// Its successor rebuilds the partition from the log while the
	// transaction is still open.
	b, _ := startLoopWith(t, e.cfg, e.brokers, "sched-a")
	testkit.WaitFor(t, 15*time.Second, "the successor read what is visible", func() bool {
		return b.Stats().Applied >= visible
	})
	// A few ticks to decide, if it (wrongly) would.
	time.Sleep(2 * time.Second)
	if s := b.Stats(); s.Transactions > 0 {
		t.Errorf("the successor committed %d transactions (%d placements) before it could read its predecessor's decisions", s.Transactions, s.Placed)
	}
	if err := foreign.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatalf("abort the foreign transaction: %v", err)
	}
	testkit.WaitFor(t, 15*time.Second, "the successor read its predecessor's decision", func() bool {
		return b.Stats().Applied > visible
	})
	time.Sleep(time.Second)

	allocs, _ := allocRecords(t, e.brokers, topic)
	if len(allocs) != 1 {
		t.Errorf("%d alloc records on %s, want 1: %+v", len(allocs), topic, allocs)
	}
	f := fold(t, readEvents(t, e.brokers, e.cfg.Topics.Events()), nil)
	if len(f.rejected) > 0 {
		t.Errorf("events that did not apply: %v", f.rejected)
	}
	if n := len(f.placedOK["e1"]); n != 1 {
		t.Errorf("e1 placed %d times, want 1", n)
	}
}

// holdFirstProduce is a produce hook that holds the first record to topic
// (in the producing goroutine) until release is closed.
type holdFirstProduce struct {
	topic   string
	once    sync.Once
	held    chan struct{}
	release chan struct{}
}

// OnProduceRecordBuffered implements kgo.HookProduceRecordBuffered.
func (h *holdFirstProduce) OnProduceRecordBuffered(r *kgo.Record) {
	if r.Topic == h.topic {
		h.once.Do(func() {
			close(h.held)
			<-h.release
		})
	}
}

// TestRoundNotCommittedDecidedAgainOnce: an EndTxn that fails with an
// unknown server error leaves the commit's outcome unknown; franz-go then
// aborts by reloading the producer id and End reports "not committed"
// without an error. The loop does not re-decide from memory: it waits
// until the partition has read the log up to its end listed after End,
// then decides again, and the eval is placed and delivered once.
func TestRoundNotCommittedDecidedAgainOnce(t *testing.T) {
	emb := testkit.StartBrokerWith(t, nil)
	cfg := testkit.Config(t)
	longTTLs(&cfg)
	base, svc := testkit.StartIngest(t, cfg, emb.Addrs())
	e := &env{t: t, brokers: emb.Addrs(), cfg: cfg, base: base, svc: svc}
	const pool = "p1"
	e.createPool(pool, events.Spread, 0)
	topic := e.registerWorker(pool, "w1", 10)

	// The loop's first transaction warms the topic metadata (no records);
	// the fault is for the round that places e1, submitted after it.
	txnID := cfg.Deployment + "-scheduler-one"
	warmed := emb.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, TxnID: txnID, Observe: true, Count: -1})
	l, _ := startLoop(t, e.cfg, e.brokers, "one")
	for deadline := time.Now().Add(20 * time.Second); warmed.Hits() < 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the loop did not end its warming transaction within 20s")
		}
	}
	warmed.Remove()
	fault := emb.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, TxnID: txnID, Err: kerr.UnknownServerError})
	defer fault.Remove()
	e.submit(pool, evalReq{ID: "e1"})
	e.waitView(20*time.Second, "e1 placed", func(st *state.State) bool {
		return evalOf(st, pool, "e1").Status() == state.EvalPlaced
	})
	if fault.Hits() != 1 {
		t.Fatalf("the EndTxn fault hit %d times, want 1", fault.Hits())
	}
	if s := l.Stats(); s.Aborted < 1 {
		t.Errorf("stats %+v: want the faulted round counted as aborted", s)
	}
	allocs, _ := allocRecords(t, e.brokers, topic)
	if len(allocs) != 1 {
		t.Errorf("%d alloc records on %s, want 1: %+v", len(allocs), topic, allocs)
	}
	f := fold(t, readEvents(t, e.brokers, e.cfg.Topics.Events()), nil)
	if len(f.rejected) > 0 {
		t.Errorf("events that did not apply: %v", f.rejected)
	}
	if n := len(f.placedOK["e1"]); n != 1 {
		t.Errorf("e1 placed %d times, want 1", n)
	}
}

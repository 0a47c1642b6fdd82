package schedloop_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/line-sched/line/audit"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/schedloop"
	"github.com/line-sched/line/state"
	"github.com/line-sched/line/testkit"
)

// startLoopOpts runs an in-process scheduler with opts (Config, Brokers,
// Logger filled in) until the test ends; before, if set, is called with the
// loop before Run.
func startLoopOpts(t *testing.T, e *env, opts schedloop.Options, before func(*schedloop.Loop)) *schedloop.Loop {
	t.Helper()
	opts.Config, opts.Brokers, opts.Logger = e.cfg, e.brokers, testkit.Logger(t)
	l, err := schedloop.New(opts)
	if err != nil {
		t.Fatalf("schedloop.New: %v", err)
	}
	if before != nil {
		before(l)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("Run did not return 30s after cancel")
		}
		l.Close()
	})
	return l
}

// checkPartitionFold waits until the loop has read back everything on
// partition p of the events topic (nothing applied ahead left), then checks
// that its state is, byte for byte, the fold of that partition's log, and
// that the audit finds nothing wrong with the log: no overcommit at any
// offset, no eval placed twice, every decision valid where it landed.
func checkPartitionFold(t *testing.T, e *env, l *schedloop.Loop, p int32) testkit.Log {
	t.Helper()
	topic := e.cfg.Topics.Events()
	var dump []byte
	testkit.WaitFor(t, testkit.Timeout, "the loop read back its partition", func() bool {
		end := testkit.EndOffsets(t, e.brokers, topic)[p]
		d, next, ahead, ok := l.PartitionDump(p)
		dump = d
		return ok && next >= end && ahead == 0
	})
	log := readEvents(t, e.brokers, topic).Where(func(ev testkit.Event) bool { return ev.Position.Partition == p })
	st := state.New()
	c := audit.NewChecker()
	for _, ev := range log {
		_ = st.Apply(ev.Envelope, ev.Position)
		for _, v := range c.Check(ev.Envelope, ev.Position) {
			t.Errorf("audit: %s", v)
		}
	}
	for _, v := range c.Finish() {
		t.Errorf("audit at the end: %s", v)
	}
	if err := st.Check(); err != nil {
		t.Errorf("fold invariants: %v", err)
	}
	if want := state.Dump(st); !bytes.Equal(dump, want) {
		t.Errorf("the loop's state differs from the fold of the log:\nloop: %.2000s\nlog:  %.2000s", dump, want)
	}
	return log
}

// TestPipelinedRoundsFoldExactly: with rounds capped at 25 placements and
// 2,000 evals arriving in batches, the loop decides round after round
// without waiting for the previous ones to be read back (they are applied
// ahead), while workers heartbeat their allocs and complete some, which
// frees capacity and interleaves ingest's events with the loop's. The log
// then folds, event by event, without overcommit or a decision that did
// not apply, every eval is placed exactly once, and the loop's state is
// exactly the fold of the log.
func TestPipelinedRoundsFoldExactly(t *testing.T) {
	e := newEnv(t, nil, longTTLs)
	const pool, total = "pipe", 2000
	e.createPool(pool, events.Spread, 0)
	var workers []string
	for i := range 8 {
		w := fmt.Sprintf("w%d", i)
		workers = append(workers, w)
		// Room for every eval (the completions below, slow under
		// -race, only interleave releases, nothing waits for them).
		e.registerWorker(pool, w, 260)
	}
	l := startLoopOpts(t, e, schedloop.Options{InstanceID: "pipe", MaxRoundEvents: 50}, nil)
	var stopBeats []func()
	for _, w := range workers {
		stopBeats = append(stopBeats, e.keepAlive(pool, w, true))
	}

	// Complete half of what runs, now and then, as workers would.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var completed atomic.Int64
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			var ids []string
			e.view(func(st *state.State) {
				for _, a := range st.Pool(pool).Allocs() {
					if a.Status() == state.AllocRunning && len(ids) < 40 {
						ids = append(ids, a.ID)
					}
				}
			})
			for i, id := range ids {
				if i%2 != 0 {
					continue
				}
				r, err := testkit.Send(context.Background(), "POST", e.base+"/v1/pools/"+pool+"/allocs/"+id+"/complete",
					map[string]any{"status": "succeeded"})
				if err == nil && r.Status == 202 {
					completed.Add(1)
				}
			}
		}
	})
	s := &stream{pools: []string{pool}, total: total}
	if err := s.submit(e, 250, 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	e.waitView(2*testkit.Timeout, "every eval placed or completed", func(st *state.State) bool {
		n := 0
		for _, ev := range st.Pool(pool).Evals() {
			if ev.Status() == state.EvalPlaced || ev.Status() == state.EvalCompleted {
				n++
			}
		}
		return n == total
	})
	close(stop)
	wg.Wait()
	for _, stop := range stopBeats {
		stop() // the log stops growing
	}

	p := events.PartitionFor(pool, e.cfg.EventsPartitions)
	log := checkPartitionFold(t, e, l, p)
	placed := map[string]int{}
	for _, ev := range log.OfType(events.AllocPlaced) {
		placed[ev.Data.(events.AllocPlacedData).EvalID]++
	}
	for id, n := range placed {
		if n != 1 {
			t.Errorf("eval %s placed %d times", id, n)
		}
	}
	if len(placed) != total {
		t.Errorf("%d evals placed, want %d", len(placed), total)
	}
	st := l.Stats()
	t.Logf("stats %+v; %d allocs completed meanwhile", st, completed.Load())
	if st.AheadRounds == 0 {
		t.Errorf("no round was decided with placements applied ahead: nothing was pipelined")
	}
	if st.Refolds != 0 || st.Rejected != 0 {
		t.Errorf("%d refolds, %d rejected events; want none", st.Refolds, st.Rejected)
	}
	if completed.Load() == 0 {
		t.Errorf("no alloc was completed: the test did not interleave releases")
	}
}

// TestPipelineConflictFoldsAgain: a heartbeat naming an alloc that a
// round is about to place, appended (as no well-behaved agent could) just
// before the round's records, lands before the placement but is read after
// the placement was applied ahead. In log order the heartbeat does not touch
// the alloc (it does not exist yet); folded after it, it would push the
// alloc's deadline. The loop notices the conflict, folds the partition again
// from offset 0 and ends with exactly the fold of the log, and goes on
// placing.
func TestPipelineConflictFoldsAgain(t *testing.T) {
	e := newEnv(t, nil, longTTLs)
	const pool = "conflict"
	e.createPool(pool, events.Spread, 0)
	e.registerWorker(pool, "w0", 10)
	var once sync.Once
	var injected atomic.Bool
	l := startLoopOpts(t, e, schedloop.Options{InstanceID: "conflict"}, func(l *schedloop.Loop) {
		l.SetBeforeProduce(func(recs []*kgo.Record) {
			for _, r := range recs {
				if r.Topic != e.cfg.Topics.Events() {
					continue
				}
				env, err := events.FromRecord(r)
				if err != nil {
					continue
				}
				d, ok := env.Data.(events.AllocPlacedData)
				if !ok {
					continue
				}
				once.Do(func() {
					now := time.Now()
					hb := events.New(pool, now, events.WorkerHeartbeatData{WorkerID: d.WorkerID,
						Deadline: now.Add(time.Hour), ReplicaDeadline: now.Add(time.Hour),
						Allocs: []string{d.AllocID}, AllocDeadline: now.Add(3 * time.Hour)})
					testkit.Append(t, e.brokers, e.cfg.Topics.Events(), hb)
					injected.Store(true)
				})
			}
		})
	})
	e.submit(pool, evalReq{ID: "first", Size: 1})
	e.waitView(testkit.Timeout, "first placed", func(st *state.State) bool {
		return evalOf(st, pool, "first").Status() == state.EvalPlaced
	})
	if !injected.Load() {
		t.Fatal("the heartbeat was not injected")
	}
	// It goes on placing.
	for i := range 5 {
		e.submit(pool, evalReq{ID: fmt.Sprintf("next%d", i), Size: 1})
	}
	e.waitView(testkit.Timeout, "the next evals placed", func(st *state.State) bool {
		for i := range 5 {
			if evalOf(st, pool, fmt.Sprintf("next%d", i)).Status() != state.EvalPlaced {
				return false
			}
		}
		return true
	})
	checkPartitionFold(t, e, l, events.PartitionFor(pool, e.cfg.EventsPartitions))
	if s := l.Stats(); s.Refolds != 1 {
		t.Errorf("%d refolds, want 1", s.Refolds)
	}
}

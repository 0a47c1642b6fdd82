package projections_test

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/line-sched/line/config"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/projections"
	"github.com/line-sched/line/scheduler"
	"github.com/line-sched/line/testkit"
)

// TestLiveViewEqualsRebuild runs a real scheduler with failures and
// retries (completed, failed, expired and requeued allocs, dead letters, an
// expired worker and replica, a disbanded then deleted pool) under a live
// projector, then checks that its view equals, byte for byte, a view
// rebuilt from offset 0 and a full materialization of the fold of the log,
// and that the TTL and free-capacity indexes equal the fold's own.
func TestLiveViewEqualsRebuild(t *testing.T) {
	e := newEnv(t, func(c *config.Config) {
		c.AllocTTL = 600 * time.Millisecond
		c.WorkerTTL = 2 * time.Second
		c.ReplicaTTL = time.Second
		c.PoolTTL = time.Second
		c.MaxRetry = 2
	})
	live := e.start(e.options(filepath.Join(t.TempDir(), "live")))
	stopScheduler := e.startScheduler()

	e.do("POST", "/v1/pools", map[string]any{"pool_id": "p1", "strategy": "spread", "locality_wait": "0s"}, 201)
	e.do("POST", "/v1/pools", map[string]any{"pool_id": "p2", "strategy": "binpack"}, 201)
	e.do("POST", "/v1/pools/p1/workers", map[string]any{"worker_id": "w1", "capacity": 4, "datasets": []string{"d1", "d2"}}, 201)
	e.do("POST", "/v1/pools/p1/workers", map[string]any{"worker_id": "w2", "capacity": 2, "datasets": []string{"d1"}}, 201)

	// Heartbeats keep w1 and w2 and the allocs of the keep evals alive
	// (whatever their attempt); w1 stops reporting d2. The fail evals are
	// never heartbeated: their allocs expire, are requeued, expire again
	// and are dead-lettered.
	keep := []string{"keep-1", "keep-2", "keep-3", "loc-1"}
	var kept []string
	for _, id := range keep {
		for a := 1; a <= e.cfg.MaxRetry; a++ {
			kept = append(kept, scheduler.AllocID("p1", id, a))
		}
	}
	hbCtx, stopHeartbeats := context.WithCancel(context.Background())
	var hbWG sync.WaitGroup
	hbWG.Add(1)
	go func() {
		defer hbWG.Done()
		tick := time.NewTicker(150 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, w := range []string{"w1", "w2"} {
				_, _ = testkit.Send(hbCtx, "POST", e.base+"/v1/pools/p1/workers/"+w+"/heartbeat",
					map[string]any{"allocs": kept, "datasets": []string{"d1"}})
			}
			select {
			case <-hbCtx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	defer func() { stopHeartbeats(); hbWG.Wait() }()

	for _, id := range []string{"keep-1", "keep-2", "keep-3", "fail-1", "fail-2"} {
		e.do("POST", "/v1/pools/p1/evals", map[string]any{"eval_id": id, "size": 1}, 202)
	}
	e.do("POST", "/v1/pools/p1/evals", map[string]any{"eval_id": "loc-1", "dataset_id": "d1", "size": 1, "payload": map[string]any{"n": 1}}, 202)
	// p2's worker, eval (placed or not) and alloc rows go with the pool.
	e.do("POST", "/v1/pools/p2/workers", map[string]any{"worker_id": "w9", "capacity": 1, "datasets": []string{"d9"}}, 201)
	e.do("POST", "/v1/pools/p2/evals", map[string]any{"eval_id": "rej-1"}, 202)
	e.do("POST", "/v1/pools/p2/evals", map[string]any{"eval_id": "rej-2"}, 202)
	e.do("DELETE", "/v1/pools/p2", nil, 202)

	placed := func(id string) (projections.EvalDetail, bool) {
		v, ok := eval(t, live, "p1", id)
		return v, ok && v.Alloc != nil && v.Alloc.Status == "running"
	}
	testkit.WaitFor(t, 20*time.Second, "keep evals running", func() bool {
		for _, id := range keep {
			if _, ok := placed(id); !ok {
				return false
			}
		}
		return true
	})
	k1, _ := placed("keep-1")
	k2, _ := placed("keep-2")
	e.do("POST", "/v1/pools/p1/allocs/"+k1.AllocID+"/complete", map[string]any{"status": "succeeded"}, 202)
	e.do("POST", "/v1/pools/p1/allocs/"+k2.AllocID+"/complete", map[string]any{"status": "failed", "exit_code": 3, "message": "boom"}, 202)
	// A worker that never heartbeats expires (with whatever was placed on
	// it).
	e.do("POST", "/v1/pools/p1/workers", map[string]any{"worker_id": "w3", "capacity": 1}, 201)

	snapshot := func(fn func(s *projections.Snapshot)) {
		s := snap(t, live)
		defer s.Close()
		fn(s)
	}
	testkit.WaitFor(t, 30*time.Second, "dead letters, expiries and the deletion of p2", func() bool {
		done := true
		snapshot(func(s *projections.Snapshot) {
			dl, _, err := s.DeadLetters("p1", projections.Page{})
			if err != nil || len(dl) != 2 {
				done = false
			}
			if _, err := s.Worker("p1", "w3"); err == nil {
				done = false
			}
			if rs, _, _ := s.Replicas("p1", "d2", projections.Page{}); len(rs) != 0 {
				done = false
			}
			if p2, err := s.Pool("p2"); err != nil || p2.Status != "deleted" {
				done = false
			}
		})
		return done
	})
	stopHeartbeats()
	hbWG.Wait()
	stopScheduler()
	e.quiesce()
	catchUp(t, live)

	// What the run went through.
	snapshot(func(s *projections.Snapshot) {
		for _, id := range []string{"fail-1", "fail-2"} {
			v, err := s.Eval("p1", id)
			if err != nil || v.Status != "dead_lettered" || v.Attempts != 2 || v.Alloc == nil || v.Alloc.Status != "expired" {
				t.Errorf("eval %s: %+v %v, want dead_lettered after 2 expired attempts", id, v, err)
			}
		}
		if v, _ := s.Eval("p1", "keep-1"); v.Status != "completed" || v.Result != "succeeded" {
			t.Errorf("keep-1: %+v, want completed (succeeded)", v.EvalView)
		}
		if v, _ := s.Eval("p1", "keep-2"); v.Status != "completed" || v.Result != "failed" ||
			v.Alloc == nil || v.Alloc.Completion == nil || *v.Alloc.Completion.ExitCode != 3 {
			t.Errorf("keep-2: %+v, want completed (failed, exit code 3)", v)
		}
		if v, _ := s.Eval("p1", "loc-1"); v.Alloc == nil || v.Alloc.Placement.Locality != events.LocalityHit ||
			(v.Alloc.WorkerID != "w1" && v.Alloc.WorkerID != "w2") || v.Alloc.Placement.Candidates < 1 {
			t.Errorf("loc-1: %+v, want a locality hit on a holder of d1", v)
		}
		if p, err := s.Pool("p1"); err != nil || p.Rejected != 0 || p.Events < 20 {
			t.Errorf("pool p1: %+v %v", p, err)
		}
	})

	// Live == rebuilt (by a bulk load, batch by batch, or a bulk load of
	// the first records then batches) == the fold of the log,
	// materialized at once.
	rebuild := func(name string, maxBulk int) projections.Stats {
		rebuilt := e.start(projections.Options{Config: e.cfg, Brokers: e.brokers, Dir: filepath.Join(t.TempDir(), name),
			Rebuild: true, Logger: testkit.Logger(t), MaxBatchRecords: 7, MaxBulkRecords: maxBulk})
		catchUp(t, rebuilt)
		sameDump(t, "live view vs view rebuilt from offset 0 ("+name+")", dump(t, live), dump(t, rebuilt))
		return rebuilt.Stats()
	}
	if st := rebuild("bulk", 0); st.Batches < 1 || st.Replayed != 0 {
		t.Errorf("bulk rebuild stats %+v: want a batch, nothing replayed", st)
	}
	if st := rebuild("batches", -1); st.Batches < 3 || st.Replayed != 0 {
		t.Errorf("rebuild stats %+v: want several batches, nothing replayed", st)
	}
	if st := rebuild("bulk-then-batches", 30); st.Batches < 3 || st.Replayed != 0 {
		t.Errorf("rebuild stats %+v: want a bulk load then batches, nothing replayed", st)
	}
	liveDump := dump(t, live)
	recs := testkit.ReadRecords(t, e.brokers, e.cfg.Topics.Events())
	model := projections.FoldRecords(recs)
	if err := model.State().Check(); err != nil {
		t.Fatalf("fold of the log: %v", err)
	}
	sameDump(t, "live view vs full materialization of the fold", liveDump, model.Dump())
	if got, want := projections.IndexKeys(liveDump), model.IndexFromState(); !slices.Equal(got, want) {
		t.Errorf("TTL and free indexes of the view:\n%v\nthe fold's own:\n%v", got, want)
	}
	// Each pool's counter equals its events on the log.
	log := testkit.ReadEvents(t, e.brokers, e.cfg.Topics.Events())
	for _, pool := range []string{"p1", "p2"} {
		n, _, ok := projections.PoolCounters(liveDump, pool)
		if want := int64(len(log.OfPool(pool))); !ok || n != want {
			t.Errorf("pool %s: events %d in the view, %d on the log", pool, n, want)
		}
	}
	t.Logf("%d records; the view:\n%s", len(recs), liveDump)
}

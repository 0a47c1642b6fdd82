//go:build unix

package agent

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/line-sched/line/api"
	"github.com/line-sched/line/client"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/testkit"
)

// TestAgentsOfASharedPool: two agents of a pool with shared delivery whose
// workers share a partition of the shared alloc topic each start exactly
// the allocs placed on their own worker, and every alloc runs once.
func TestAgentsOfASharedPool(t *testing.T) {
	l := startLine(t, nil)
	ctx := context.Background()
	if _, err := l.c.CreatePool(ctx, api.CreatePoolRequest{PoolId: ptr("s"), Delivery: ptr(api.DeliveryShared)}); err != nil {
		t.Fatal(err)
	}
	// Two worker ids on one partition.
	var ids []string
	part := events.PartitionFor("wk-0", testkit.AllocsPartitions)
	for i := 0; len(ids) < 2; i++ {
		if id := fmt.Sprintf("wk-%d", i); events.PartitionFor(id, testkit.AllocsPartitions) == part {
			ids = append(ids, id)
		}
	}
	type agentOf struct {
		worker  string
		started chan events.AllocRecord
		state   string
	}
	var agents []agentOf
	for _, id := range ids {
		a := agentOf{worker: id, started: make(chan events.AllocRecord, 100), state: t.TempDir()}
		cfg := Config{Client: l.c, Brokers: l.brokers, Pool: "s", WorkerID: id, Capacity: 2,
			Command: []string{"sh", "-c", "sleep 0.05"}, StateDir: a.state, Logger: testkit.Logger(t),
			OnStarted: func(rec events.AllocRecord) { a.started <- rec }}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- Run(rctx, cfg) }()
		t.Cleanup(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Error("agent did not stop")
			}
		})
		agents = append(agents, a)
	}
	testkit.WaitFor(t, 30*time.Second, "two workers registered", func() bool {
		p, _, err := l.c.GetPool(ctx, "s", client.Q{})
		return err == nil && p.Workers == 2
	})
	var reqs []api.EvalRequest
	for i := range 20 {
		reqs = append(reqs, api.EvalRequest{EvalId: ptr(fmt.Sprintf("e%02d", i)), Size: ptr(int64(1))})
	}
	if _, err := l.c.SubmitEvals(ctx, "s", reqs); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 60*time.Second, "20 completed evals", func() bool {
		el, _, err := l.c.ListEvals(ctx, "s", api.EvalStatusCompleted, client.Page{Limit: 100}, client.Q{})
		return err == nil && len(el.Items) == 20
	})
	ran := map[string]string{} // alloc -> worker whose agent started it
	for _, a := range agents {
		n := 0
	drain:
		for {
			select {
			case rec := <-a.started:
				n++
				if rec.WorkerID != a.worker || rec.PoolID != "s" {
					t.Errorf("agent of %s started alloc %s of worker %s/%s", a.worker, rec.AllocID, rec.PoolID, rec.WorkerID)
				}
				if prev, ok := ran[rec.AllocID]; ok {
					t.Errorf("alloc %s started by %s and %s", rec.AllocID, prev, a.worker)
				}
				ran[rec.AllocID] = a.worker
			default:
				break drain
			}
		}
		if n == 0 {
			t.Errorf("agent of %s started nothing (spread places on both workers)", a.worker)
		}
		saved, err := (&stateFile{path: StatePath(a.state, "s", a.worker)}).load()
		if err != nil || saved == nil {
			t.Fatalf("state of %s: %v", a.worker, err)
		}
		if saved.Topic != l.cfg.Topics.SharedAllocs() || saved.Partition != part || saved.Delivery != "shared" {
			t.Errorf("state of %s: %+v, want topic %s partition %d delivery shared", a.worker, saved, l.cfg.Topics.SharedAllocs(), part)
		}
	}
	if len(ran) != 20 {
		t.Errorf("%d allocs started, want 20", len(ran))
	}
	for alloc, worker := range ran {
		a, _, err := l.c.GetAlloc(ctx, "s", alloc, client.Q{})
		if err != nil {
			t.Fatal(err)
		}
		if a.WorkerId != worker {
			t.Errorf("alloc %s placed on %s, started by the agent of %s", alloc, a.WorkerId, worker)
		}
	}
}

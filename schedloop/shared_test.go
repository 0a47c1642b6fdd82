package schedloop_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/line-sched/line/config"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/state"
	"github.com/line-sched/line/testkit"
)

// TestSharedDelivery: the evals of a pool with shared delivery land on the
// shared alloc topic, each exactly once, on the partition of its worker
// and keyed by the worker id, and alloc.placed names that topic; a pool
// with per-worker delivery beside it still delivers to its workers' own
// topics, and nothing of it reaches the shared topic. When the shared pool
// is deleted (which hands every worker's topic, here the shared one, to the
// topic deleter), the shared topic stays.
func TestSharedDelivery(t *testing.T) {
	e := newEnv(t, nil, func(c *config.Config) {
		c.WorkerTTL, c.AllocTTL, c.ReplicaTTL, c.PoolTTL = time.Hour, time.Hour, time.Hour, 2*time.Second
	})
	shared := e.cfg.Topics.SharedAllocs()
	e.do("POST", "/v1/pools", map[string]any{"pool_id": "sh", "delivery": "shared"}, 201)
	e.createPool("pw", events.Spread, 0)
	workers := []string{"wa", "wb", "wc", "wd", "we", "wf"}
	for _, w := range workers {
		r := e.do("POST", "/v1/pools/sh/workers", map[string]any{"worker_id": w, "capacity": 5}, 201)
		if r.Str("topic") != shared {
			t.Fatalf("register %s in the shared pool: topic %q, want %q", w, r.Str("topic"), shared)
		}
	}
	pwTopic := e.registerWorker("pw", "wa", 5)
	startLoop(t, e.cfg, e.brokers, "one")

	var evs []evalReq
	for i := range 24 {
		evs = append(evs, evalReq{ID: fmt.Sprintf("e%02d", i), Size: 1})
	}
	if err := e.submitBatch("sh", evs); err != nil {
		t.Fatal(err)
	}
	if err := e.submitBatch("pw", evs[:3]); err != nil {
		t.Fatal(err)
	}
	e.waitView(30*time.Second, "27 evals placed", func(st *state.State) bool {
		return st.Pool("sh") != nil && st.Pool("pw") != nil &&
			len(st.Pool("sh").Allocs()) == 24 && len(st.Pool("pw").Allocs()) == 3
	})

	recs := testkit.ReadRecords(t, e.brokers, shared)
	seen := map[string]bool{}
	for _, r := range recs {
		var a events.AllocRecord
		if err := json.Unmarshal(r.Value, &a); err != nil {
			t.Fatalf("record %d/%d of %s: %v", r.Partition, r.Offset, shared, err)
		}
		if a.PoolID != "sh" {
			t.Errorf("alloc %s of pool %s on the shared topic", a.AllocID, a.PoolID)
		}
		if string(r.Key) != a.WorkerID {
			t.Errorf("alloc %s: key %q, want its worker %q", a.AllocID, r.Key, a.WorkerID)
		}
		if want := events.PartitionFor(a.WorkerID, testkit.AllocsPartitions); r.Partition != want {
			t.Errorf("alloc %s of worker %s on partition %d, want %d", a.AllocID, a.WorkerID, r.Partition, want)
		}
		if seen[a.AllocID] {
			t.Errorf("alloc %s delivered twice", a.AllocID)
		}
		seen[a.AllocID] = true
	}
	e.view(func(st *state.State) {
		for _, a := range st.Pool("sh").Allocs() {
			if !seen[a.ID] {
				t.Errorf("alloc %s (eval %s, worker %s) not on %s", a.ID, a.EvalID, a.WorkerID(), shared)
			}
			if a.Topic() != shared {
				t.Errorf("alloc.placed of %s names topic %q, want %q", a.ID, a.Topic(), shared)
			}
		}
		if len(seen) != len(st.Pool("sh").Allocs()) {
			t.Errorf("%d allocs on %s, the pool has %d", len(seen), shared, len(st.Pool("sh").Allocs()))
		}
	})
	if got, _ := allocRecords(t, e.brokers, pwTopic); len(got) != 3 {
		t.Errorf("per-worker pool: %d records on %s, want 3", len(got), pwTopic)
	}

	// Disbanding and deleting the shared pool leaves the shared topic.
	e.do("DELETE", "/v1/pools/sh", nil, 202)
	e.waitView(45*time.Second, "pool sh deleted", func(st *state.State) bool {
		return st.Pool("sh") != nil && st.Pool("sh").Status == state.PoolDeleted
	})
	time.Sleep(time.Second) // the deleter runs after the commit
	if !topicExists(t, testkit.Admin(t, e.brokers), shared) {
		t.Errorf("deleting a shared pool deleted %s", shared)
	}
}

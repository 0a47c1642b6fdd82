package schedloop_test

import (
	"slices"
	"testing"
	"time"

	"github.com/line-sched/line/config"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/scheduler"
	"github.com/line-sched/line/state"
	"github.com/line-sched/line/testkit"
)

// TestDisbandRejectsAndDeletes: after DELETE /v1/pools/{pool}, the pending
// evals that fit nowhere are rejected; once the pool TTL passes the pool is
// deleted, and its worker topics only after that is committed.
func TestDisbandRejectsAndDeletes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, func(c *config.Config) {
		longTTLs(c)
		c.PoolTTL = 2 * time.Second
	})
	const pool = "db"
	e.createPool(pool, events.Binpack, 0)
	topics := []string{e.registerWorker(pool, "w1", 1), e.registerWorker(pool, "w2", 1)}
	startLoop(t, e.cfg, e.brokers, "one")

	ids := []string{"e1", "e2", "e3", "e4"}
	for _, id := range ids {
		e.submit(pool, evalReq{ID: id})
	}
	e.waitView(30*time.Second, "two evals placed", func(st *state.State) bool {
		p := st.Pool(pool)
		return p != nil && p.Queue().Len() == 2 && p.NumEvals() == 4
	})
	time.Sleep(500 * time.Millisecond) // more rounds: nothing else fits
	var running, pending []string
	e.view(func(st *state.State) {
		for _, ev := range st.Pool(pool).Evals() {
			switch ev.Status() {
			case state.EvalPlaced:
				running = append(running, ev.ID)
			case state.EvalPending:
				pending = append(pending, ev.ID)
			}
		}
	})
	if !slices.Equal(running, []string{"e1", "e2"}) || !slices.Equal(pending, []string{"e3", "e4"}) {
		t.Fatalf("placed %v, pending %v: want e1, e2 placed (2 units of capacity) and e3, e4 pending", running, pending)
	}

	e.do("DELETE", "/v1/pools/"+pool, nil, 202)
	e.waitView(20*time.Second, "pending evals rejected", func(st *state.State) bool {
		p := st.Pool(pool)
		return p.Status == state.PoolDeleted || (p.Eval("e3").Status() == state.EvalRejected && p.Eval("e4").Status() == state.EvalRejected)
	})
	adm := testkit.Admin(t, e.brokers)
	deadline := time.Now().Add(30 * time.Second)
	for _, topic := range topics {
		for topicExists(t, adm, topic) {
			if time.Now().After(deadline) {
				t.Fatalf("worker topic %s of the deleted pool still exists", topic)
			}
			time.Sleep(50 * time.Millisecond)
		}
		// Gone: pool.deleted must be committed already.
		if n := len(testkit.ReadEvents(t, e.brokers, e.cfg.Topics.Events()).OfPool(pool).OfType(events.PoolDeleted)); n != 1 {
			t.Fatalf("topic %s deleted with %d pool.deleted committed, want 1", topic, n)
		}
	}
	time.Sleep(500 * time.Millisecond) // nothing follows pool.deleted

	log := testkit.ReadEvents(t, e.brokers, e.cfg.Topics.Events()).OfPool(pool)
	if f := fold(t, log, nil); len(f.rejected) > 0 {
		t.Errorf("the fold rejected %v", f.rejected)
	}
	var disbanded, deleted int64 = -1, -1
	rejected := map[string]int64{}
	for _, ev := range log {
		switch d := ev.Data.(type) {
		case events.PoolDisbandedData:
			disbanded = ev.Position.Offset
		case events.PoolDeletedData:
			deleted = ev.Position.Offset
		case events.EvalRejectedData:
			if _, dup := rejected[d.EvalID]; dup || d.Reason != scheduler.ReasonPoolDisbanded {
				t.Errorf("eval.rejected %+v: twice, or not for the disband", d)
			}
			rejected[d.EvalID] = ev.Position.Offset
		}
	}
	if len(rejected) != 2 || rejected["e3"] == 0 || rejected["e4"] == 0 {
		t.Errorf("rejected evals %v, want e3 and e4", rejected)
	}
	for id, off := range rejected {
		if off < disbanded || off > deleted {
			t.Errorf("eval.rejected of %s at offset %d, not between pool.disbanded (%d) and pool.deleted (%d)", id, off, disbanded, deleted)
		}
	}
	if disbanded < 0 || deleted < disbanded || log[len(log)-1].Type != events.PoolDeleted {
		t.Errorf("pool.disbanded at %d, pool.deleted at %d, last event %s: want pool.deleted last, after the disband",
			disbanded, deleted, log[len(log)-1].Type)
	}
	for _, ev := range log.OfType(events.PoolDeleted) {
		var disbandAt time.Time
		for _, d := range log.OfType(events.PoolDisbanded) {
			disbandAt = d.Data.(events.PoolDisbandedData).DeleteAt
		}
		if ev.At.Before(disbandAt) {
			t.Errorf("pool.deleted at %s, before delete_at %s", ev.At, disbandAt)
		}
	}
}

package schedloop_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/line-sched/line/config"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/scheduler"
	"github.com/line-sched/line/state"
	"github.com/line-sched/line/testkit"
)

// Short TTLs: a worker lives 1s without heartbeat, an alloc 2s, and an
// eval gets 2 placements.
func expiryConfig(c *config.Config) {
	c.WorkerTTL = time.Second
	c.AllocTTL = 2 * time.Second
	c.ReplicaTTL = time.Hour
	c.PoolTTL = time.Hour
	c.MaxRetry = 2
}

// evalHistory returns the events of log that concern an eval or its
// allocs, in log order.
func evalHistory(log testkit.Log, evalID string) testkit.Log {
	allocs := map[string]bool{}
	return log.Where(func(e testkit.Event) bool {
		switch d := e.Data.(type) {
		case events.EvalSubmittedData:
			return d.EvalID == evalID
		case events.AllocPlacedData:
			if d.EvalID == evalID {
				allocs[d.AllocID] = true
				return true
			}
		case events.AllocExpiredData:
			return allocs[d.AllocID]
		case events.AllocCompletedData:
			return allocs[d.AllocID]
		case events.EvalRequeuedData:
			return d.EvalID == evalID
		case events.EvalDeadLetteredData:
			return d.EvalID == evalID
		case events.EvalRejectedData:
			return d.EvalID == evalID
		}
		return false
	})
}

func types(log testkit.Log) string {
	var b []string
	for _, e := range log {
		b = append(b, string(e.Type))
	}
	return strings.Join(b, " ")
}

// TestExpiryRequeueOnOtherWorker: a worker that stops heartbeating loses
// its running alloc (alloc.expired), then itself (worker.expired), then its
// alloc topic, deleted only once worker.expired is committed; the eval is
// requeued with attempt 2 and placed on the other worker, which keeps it by
// heartbeating it.
func TestExpiryRequeueOnOtherWorker(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, expiryConfig)
	const pool = "rq"
	e.createPool(pool, events.Spread, 0)
	topicA := e.registerWorker(pool, "wa", 2) // most free: takes the first attempt
	topicB := e.registerWorker(pool, "wb", 1)
	stopA := e.keepAlive(pool, "wa", false)
	e.keepAlive(pool, "wb", true)
	startLoop(t, e.cfg, e.brokers, "one")

	e.submit(pool, evalReq{ID: "e1", Payload: `{"job":1}`})
	alloc1 := scheduler.AllocID(pool, "e1", 1)
	e.waitView(30*time.Second, "e1 placed", func(st *state.State) bool {
		return evalOf(st, pool, "e1").Status() == state.EvalPlaced
	})
	e.view(func(st *state.State) {
		if a := st.Pool(pool).Alloc(alloc1); a == nil || a.WorkerID() != "wa" {
			t.Fatalf("first attempt: alloc %+v, want %s on wa", a, alloc1)
		}
	})
	stopA() // wa goes silent

	alloc2 := scheduler.AllocID(pool, "e1", 2)
	e.waitView(20*time.Second, "e1 placed again", func(st *state.State) bool {
		ev := evalOf(st, pool, "e1")
		return ev.Status() == state.EvalPlaced && ev.Attempts == 2
	})
	// The alloc topic of wa goes away, but only once worker.expired is
	// on the log (read_committed).
	adm := testkit.Admin(t, e.brokers)
	deadline := time.Now().Add(20 * time.Second)
	for topicExists(t, adm, topicA) {
		if time.Now().After(deadline) {
			t.Fatalf("alloc topic %s of the expired worker still exists", topicA)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(testkit.ReadEvents(t, e.brokers, e.cfg.Topics.Events()).OfPool(pool).OfType(events.WorkerExpired)); n != 1 {
		t.Fatalf("topic %s deleted with %d worker.expired committed, want 1", topicA, n)
	}

	// wb heartbeats the alloc: it outlives two alloc TTLs.
	time.Sleep(2*e.cfg.AllocTTL + 500*time.Millisecond)
	e.view(func(st *state.State) {
		a := st.Pool(pool).Alloc(alloc2)
		if a == nil || a.WorkerID() != "wb" || a.Status() != state.AllocRunning || a.Attempt != 2 {
			t.Errorf("second attempt: alloc %+v, want %s running on wb with attempt 2", a, alloc2)
		}
	})

	log := testkit.ReadEvents(t, e.brokers, e.cfg.Topics.Events()).OfPool(pool)
	if f := fold(t, log, nil); len(f.rejected) > 0 {
		t.Errorf("the fold rejected %v", f.rejected)
	}
	h := evalHistory(log, "e1")
	want := "eval.submitted alloc.placed alloc.expired eval.requeued alloc.placed"
	if got := types(h); got != want {
		t.Fatalf("history of e1: %s, want %s", got, want)
	}
	if d := h[1].Data.(events.AllocPlacedData); d.AllocID != alloc1 || d.WorkerID != "wa" || d.Attempt != 1 {
		t.Errorf("first placement %+v", d)
	}
	if d := h[2].Data.(events.AllocExpiredData); d.AllocID != alloc1 || d.Reason == "" {
		t.Errorf("expiry %+v", d)
	}
	if d := h[3].Data.(events.EvalRequeuedData); d.AllocID != alloc1 || d.Attempt != 2 {
		t.Errorf("requeue %+v, want attempt 2 after %s", d, alloc1)
	}
	if d := h[4].Data.(events.AllocPlacedData); d.AllocID != alloc2 || d.WorkerID != "wb" || d.Attempt != 2 || d.Topic != topicB {
		t.Errorf("second placement %+v, want %s on wb, attempt 2", d, alloc2)
	}
	// wa's running alloc expired before wa did.
	we := log.OfType(events.WorkerExpired)
	if len(we) != 1 || we[0].Data.(events.WorkerExpiredData).WorkerID != "wa" {
		t.Fatalf("worker.expired events %v, want one for wa", types(we))
	}
	if h[2].Position.Partition != we[0].Position.Partition || h[2].Position.Offset >= we[0].Position.Offset {
		t.Errorf("alloc.expired at %s, worker.expired at %s: the alloc must expire first", h[2].Position, we[0].Position)
	}
	// wb received the second attempt, once.
	recs, _ := allocRecords(t, e.brokers, topicB)
	if len(recs) != 1 || recs[0].AllocID != alloc2 || recs[0].Attempt != 2 || string(recs[0].Payload) != `{"job":1}` {
		t.Errorf("records on %s: %+v, want one of %s, attempt 2", topicB, recs, alloc2)
	}
}

// TestExpiryDeadLetter: allocs nobody heartbeats expire; the eval is
// requeued once, then (MaxRetry 2) dead-lettered, with one record on the
// dead-letter topic.
func TestExpiryDeadLetter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, expiryConfig)
	const pool = "dl"
	e.createPool(pool, events.Spread, 0)
	topic := e.registerWorker(pool, "wd", 1)
	e.keepAlive(pool, "wd", false) // the worker lives; its allocs are not heartbeated
	startLoop(t, e.cfg, e.brokers, "one")

	const payload = `{"job":"dl","n":[1,2]}`
	e.submit(pool, evalReq{ID: "e1", Dataset: "ds-1", Size: 1, Payload: payload})
	e.waitView(40*time.Second, "e1 dead-lettered", func(st *state.State) bool {
		return evalOf(st, pool, "e1").Status() == state.EvalDeadLettered
	})
	time.Sleep(time.Second) // no third attempt comes

	log := testkit.ReadEvents(t, e.brokers, e.cfg.Topics.Events()).OfPool(pool)
	if f := fold(t, log, nil); len(f.rejected) > 0 {
		t.Errorf("the fold rejected %v", f.rejected)
	}
	h := evalHistory(log, "e1")
	want := "eval.submitted alloc.placed alloc.expired eval.requeued alloc.placed alloc.expired eval.dead_lettered"
	if got := types(h); got != want {
		t.Fatalf("history of e1: %s, want %s", got, want)
	}
	alloc1, alloc2 := scheduler.AllocID(pool, "e1", 1), scheduler.AllocID(pool, "e1", 2)
	for i, id := range map[int]string{1: alloc1, 4: alloc2} {
		if d := h[i].Data.(events.AllocPlacedData); d.AllocID != id || d.WorkerID != "wd" {
			t.Errorf("placement %+v, want %s on wd", d, id)
		}
	}
	for i, id := range map[int]string{2: alloc1, 5: alloc2} {
		if d := h[i].Data.(events.AllocExpiredData); d.AllocID != id || d.Reason != scheduler.ReasonNotHeartbeated {
			t.Errorf("expiry %+v, want %s %q", d, id, scheduler.ReasonNotHeartbeated)
		}
	}
	if d := h[3].Data.(events.EvalRequeuedData); d.Attempt != 2 || d.AllocID != alloc1 {
		t.Errorf("requeue %+v", d)
	}
	dl := h[6].Data.(events.EvalDeadLetteredData)
	if dl.Attempts != 2 || dl.AllocID != alloc2 {
		t.Errorf("dead letter %+v, want 2 attempts, alloc %s", dl, alloc2)
	}

	recs := testkit.ReadRecords(t, e.brokers, e.cfg.Topics.DeadEvals())
	if len(recs) != 1 {
		t.Fatalf("%d records on %s, want 1", len(recs), e.cfg.Topics.DeadEvals())
	}
	var r events.DeadLetterRecord
	dec := json.NewDecoder(bytes.NewReader(recs[0].Value))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("dead letter record %s: %v", recs[0].Value, err)
	}
	if string(recs[0].Key) != pool || r.PoolID != pool || r.EvalID != "e1" || r.DatasetID != "ds-1" || r.Size != 1 ||
		r.Attempts != 2 || string(r.Payload) != payload || r.Reason != dl.Reason || !r.At.Equal(h[6].At) {
		t.Errorf("dead letter record %+v (key %q), want pool %s, e1, ds-1, size 1, 2 attempts, payload %s, reason %q at %s",
			r, recs[0].Key, pool, payload, dl.Reason, h[6].At)
	}
	// Both attempts were delivered to the worker.
	ars, _ := allocRecords(t, e.brokers, topic)
	if len(ars) != 2 || ars[0].AllocID != alloc1 || ars[1].AllocID != alloc2 {
		t.Errorf("records on %s: %+v, want %s then %s", topic, ars, alloc1, alloc2)
	}
}

package httpapi_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/testkit"
)

// The six calls of the original system, with its JSON field names, each
// answered 200 with the event it appended.
func TestLegacyCalls(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const post = http.MethodPost

	// CreatePool: no body, or {}.
	r := e.expect(e.do(post, "/CreatePool", nil), http.StatusOK)
	keys(t, r, "pool_id", "position")
	pool := r.Str("pool_id")
	if err := events.ValidateID(events.PoolID, pool); err != nil {
		t.Fatalf("pool id: %v", err)
	}
	d0 := data[events.PoolCreatedData](t, e.eventAt(r.Str("position"), events.PoolCreated, pool))
	if d0.Strategy != events.Spread || d0.LocalityWaitMs != 0 {
		t.Errorf("pool.created data %+v", d0)
	}
	r2 := e.expect(e.do(post, "/CreatePool", map[string]any{}), http.StatusOK)
	if r2.Str("pool_id") == pool {
		t.Errorf("two CreatePool calls gave the same pool %s", pool)
	}
	e.eventAt(r2.Str("position"), events.PoolCreated, r2.Str("pool_id"))

	// RegisterWorker {pool_id, capacity}: queue_url is the alloc topic.
	r = e.expect(e.do(post, "/RegisterWorker", map[string]any{"pool_id": pool, "capacity": 5}), http.StatusOK)
	keys(t, r, "pool_id", "worker_id", "queue_url", "capacity", "position")
	worker := r.Str("worker_id")
	topic := e.cfg.Topics.WorkerAllocs(pool, worker)
	if r.Str("pool_id") != pool || r.Str("queue_url") != topic || r.JSON["capacity"] != json.Number("5") {
		t.Errorf("answer %s, want queue_url %s", r, topic)
	}
	if !testkit.TopicExists(t, e.brokers, topic) {
		t.Errorf("queue %s does not exist", topic)
	}
	ev := e.eventAt(r.Str("position"), events.WorkerRegistered, pool)
	dw := data[events.WorkerRegisteredData](t, ev)
	if dw.WorkerID != worker || dw.Capacity != 5 || dw.Topic != topic {
		t.Errorf("worker.registered data %+v", dw)
	}
	sameTime(t, "deadline", dw.Deadline, ev.At.Add(testkit.WorkerTTL))

	// ScheduleEval {pool_id, dataset_id, size}.
	r = e.expect(e.do(post, "/ScheduleEval", map[string]any{"pool_id": pool, "dataset_id": "ds-1", "size": 2}), http.StatusOK)
	keys(t, r, "pool_id", "eval_id", "position")
	evalID := r.Str("eval_id")
	de := data[events.EvalSubmittedData](t, e.eventAt(r.Str("position"), events.EvalSubmitted, pool))
	if r.Str("pool_id") != pool || de.EvalID != evalID || de.DatasetID != "ds-1" || de.Size != 2 || de.Payload != nil {
		t.Errorf("answer %s, eval.submitted data %+v", r, de)
	}
	r = e.expect(e.do(post, "/ScheduleEval", map[string]any{"pool_id": pool}), http.StatusOK)
	if de := data[events.EvalSubmittedData](t, e.eventAt(r.Str("position"), events.EvalSubmitted, pool)); de.Size != 1 || de.DatasetID != "" {
		t.Errorf("eval without size: data %+v, want size 1", de)
	}

	// SendHeartbeat {pool_id, worker_id, allocs, datasets}.
	r = e.expect(e.do(post, "/SendHeartbeat", map[string]any{"pool_id": pool, "worker_id": worker,
		"allocs": []string{"x1"}, "datasets": []string{"ds-1"}}), http.StatusOK)
	keys(t, r, "pool_id", "position")
	ev = e.eventAt(r.Str("position"), events.WorkerHeartbeat, pool)
	dh := data[events.WorkerHeartbeatData](t, ev)
	if dh.WorkerID != worker || !slices.Equal(dh.Allocs, []string{"x1"}) || !slices.Equal(dh.Datasets, []string{"ds-1"}) {
		t.Errorf("worker.heartbeat data %+v", dh)
	}
	sameTime(t, "alloc_deadline", dh.AllocDeadline, ev.At.Add(testkit.AllocTTL))

	// CompleteAlloc {pool_id, alloc_id}: place the eval as the scheduler
	// would, then complete it at once (ingest catches up by itself).
	at := time.Now()
	testkit.Append(t, e.brokers, e.topic, events.New(pool, at, events.AllocPlacedData{
		AllocID: "alloc-1", EvalID: evalID, WorkerID: worker, Size: 2, Attempt: 1,
		Deadline: events.Truncate(at).Add(testkit.AllocTTL), Topic: topic,
		Strategy: events.Spread, Locality: events.LocalityMiss, Candidates: 1,
	}))
	r = e.expect(e.do(post, "/CompleteAlloc", map[string]any{"pool_id": pool, "alloc_id": "alloc-1"}), http.StatusOK)
	keys(t, r, "pool_id", "position")
	dc := data[events.AllocCompletedData](t, e.eventAt(r.Str("position"), events.AllocCompleted, pool))
	if dc.AllocID != "alloc-1" || dc.Status != events.Succeeded || dc.ExitCode != nil || dc.Message != "" {
		t.Errorf("alloc.completed data %+v", dc)
	}
	testkit.ExpectError(t, e.do(post, "/CompleteAlloc", map[string]any{"pool_id": pool, "alloc_id": "alloc-1"}), http.StatusConflict, "alloc_completed")

	// DisbandPool {pool_id}.
	r = e.expect(e.do(post, "/DisbandPool", map[string]any{"pool_id": pool}), http.StatusOK)
	keys(t, r, "pool_id", "position")
	ev = e.eventAt(r.Str("position"), events.PoolDisbanded, pool)
	sameTime(t, "delete_at", data[events.PoolDisbandedData](t, ev).DeleteAt, ev.At.Add(testkit.PoolTTL))

	// Nothing else reached the log: 2 pools, a worker, 2 evals, a
	// heartbeat, the placement, a completion and a disband.
	if n := len(e.log()); n != 9 {
		t.Errorf("%d events on the log, want 9", n)
	}
}

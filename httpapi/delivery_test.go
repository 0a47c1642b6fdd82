package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/testkit"
)

// TestSharedDeliveryPool: a pool created with delivery shared says so in
// its answer and its pool.created; an unknown delivery is a 400 that
// appends nothing; a worker of the shared pool gets the shared alloc topic,
// its partition and the start offset, and registering it creates no topic;
// a per-worker pool still creates the worker's own topic.
func TestSharedDeliveryPool(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if !testkit.TopicExists(t, e.brokers, e.cfg.Topics.SharedAllocs()) {
		t.Fatalf("bootstrap did not create %s", e.cfg.Topics.SharedAllocs())
	}
	if n := testkit.Partitions(t, e.brokers, e.cfg.Topics.SharedAllocs()); n != testkit.AllocsPartitions {
		t.Fatalf("%s has %d partitions, want %d", e.cfg.Topics.SharedAllocs(), n, testkit.AllocsPartitions)
	}

	runBad(t, e, []badCase{
		{"unknown delivery", http.MethodPost, "/v1/pools", map[string]any{"pool_id": "bad", "delivery": "broadcast"}, 400, ""},
		{"delivery not a string", http.MethodPost, "/v1/pools", map[string]any{"pool_id": "bad", "delivery": 1}, 400, ""},
	})

	r := e.expect(e.do(http.MethodPost, "/v1/pools", map[string]any{"pool_id": "sh", "delivery": "shared"}), http.StatusCreated)
	keys(t, r, "pool_id", "strategy", "locality_wait", "delivery", "position")
	if r.Str("delivery") != "shared" {
		t.Errorf("answer %s, want delivery shared", r)
	}
	if d := data[events.PoolCreatedData](t, e.eventAt(r.Str("position"), events.PoolCreated, "sh")); d.Delivery != events.Shared {
		t.Errorf("pool.created data %+v, want delivery shared", d)
	}
	r = e.createPool("pw")
	if r.Str("delivery") != "per-worker" {
		t.Errorf("default pool: answer %s, want delivery per-worker", r)
	}
	if d := data[events.PoolCreatedData](t, e.eventAt(r.Str("position"), events.PoolCreated, "pw")); d.Delivery != "" {
		t.Errorf("per-worker pool.created data %+v, want no delivery field", d)
	}

	before := topicCount(t, e)
	for _, w := range []string{"w-1", "w-2", "w-3"} {
		r = e.registerWorker("sh", w, 4)
		keys(t, r, "pool_id", "worker_id", "capacity", "topic", "partition", "start_offset", "deadline", "position")
		want := e.cfg.Topics.AllocTarget(events.Shared, "sh", w, testkit.AllocsPartitions)
		if r.Str("topic") != want.Topic || r.JSON["partition"] != jsonInt(want.Partition) || r.JSON["start_offset"] != jsonInt(0) {
			t.Errorf("register %s: answer %s, want topic %s partition %d start_offset 0", w, r, want.Topic, want.Partition)
		}
		d := data[events.WorkerRegisteredData](t, e.eventAt(r.Str("position"), events.WorkerRegistered, "sh"))
		if d.Topic != want.Topic {
			t.Errorf("worker.registered topic %q, want %q", d.Topic, want.Topic)
		}
		if testkit.TopicExists(t, e.brokers, e.cfg.Topics.WorkerAllocs("sh", w)) {
			t.Errorf("registering %s in a shared pool created a per-worker topic", w)
		}
	}
	if n := topicCount(t, e); n != before {
		t.Errorf("%d topics after registering 3 workers in a shared pool, %d before", n, before)
	}
	r = e.registerWorker("pw", "w-1", 4)
	if want := e.cfg.Topics.WorkerAllocs("pw", "w-1"); r.Str("topic") != want || !testkit.TopicExists(t, e.brokers, want) {
		t.Errorf("per-worker pool: topic %q, want existing %q", r.Str("topic"), want)
	}
}

// jsonInt is n as testkit.Response decodes numbers.
func jsonInt[T int32 | int64 | int](n T) json.Number {
	return json.Number(strconv.FormatInt(int64(n), 10))
}

package httpapi_test

import (
	"maps"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/line-sched/line/broker"
	"github.com/line-sched/line/config"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/ingest"
	"github.com/line-sched/line/testkit"
)

// env is one embedded broker with one ingest serving the HTTP API.
type env struct {
	t       *testing.T
	emb     *broker.Embedded
	brokers []string
	cfg     config.Config
	base    string
	svc     *ingest.Service
	topic   string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	emb := testkit.StartBroker(t)
	cfg := testkit.Config(t)
	base, svc := testkit.StartIngest(t, cfg, emb.Addrs())
	return &env{t: t, emb: emb, brokers: emb.Addrs(), cfg: cfg, base: base, svc: svc, topic: cfg.Topics.Events()}
}

func (e *env) do(method, path string, body any) testkit.Response {
	e.t.Helper()
	return testkit.Do(e.t, method, e.base+path, body)
}

// expect checks the status of r and returns it.
func (e *env) expect(r testkit.Response, status int) testkit.Response {
	e.t.Helper()
	if r.Status != status {
		e.t.Fatalf("status %d, want %d: %s", r.Status, status, r)
	}
	return r
}

func (e *env) createPool(id string) testkit.Response {
	e.t.Helper()
	return e.expect(e.do(http.MethodPost, "/v1/pools", map[string]any{"pool_id": id}), http.StatusCreated)
}

func (e *env) registerWorker(pool, id string, capacity int64) testkit.Response {
	e.t.Helper()
	return e.expect(e.do(http.MethodPost, "/v1/pools/"+pool+"/workers", map[string]any{"worker_id": id, "capacity": capacity}), http.StatusCreated)
}

func (e *env) submitEval(pool string, body map[string]any) testkit.Response {
	e.t.Helper()
	return e.expect(e.do(http.MethodPost, "/v1/pools/"+pool+"/evals", body), http.StatusAccepted)
}

func (e *env) disband(pool string) testkit.Response {
	e.t.Helper()
	return e.expect(e.do(http.MethodDelete, "/v1/pools/"+pool, nil), http.StatusAccepted)
}

// log reads the whole events topic back.
func (e *env) log() testkit.Log {
	e.t.Helper()
	return testkit.ReadEvents(e.t, e.brokers, e.topic)
}

// ends snapshots the high watermarks of the events topic.
func (e *env) ends() map[int32]int64 {
	e.t.Helper()
	return testkit.EndOffsets(e.t, e.brokers, e.topic)
}

// nothingAppended fails unless the events topic ends where it did.
func (e *env) nothingAppended(before map[int32]int64, what string) {
	e.t.Helper()
	if after := e.ends(); !maps.Equal(before, after) {
		e.t.Errorf("%s appended to the events topic: end offsets %v, then %v", what, before, after)
	}
}

// eventAt returns the event at the position a response named, after
// checking what every event must carry: its type, the pool as record key,
// the type and v headers, and the pool's partition.
func (e *env) eventAt(position string, typ events.Type, pool string) testkit.Event {
	e.t.Helper()
	pos, err := events.ParsePosition(position)
	if err != nil {
		e.t.Fatalf("response position: %v", err)
	}
	ev, ok := e.log().At(pos)
	if !ok {
		e.t.Fatalf("no committed event at position %s", position)
	}
	checkEvent(e.t, ev, typ, pool)
	return ev
}

func checkEvent(t *testing.T, ev testkit.Event, typ events.Type, pool string) {
	t.Helper()
	if ev.Type != typ {
		t.Errorf("event at %s is %s, want %s", ev.Position, ev.Type, typ)
	}
	if ev.Pool != pool || string(ev.Record.Key) != pool {
		t.Errorf("event at %s: pool %q, key %q, want %q", ev.Position, ev.Pool, ev.Record.Key, pool)
	}
	if got := ev.Header("type"); got != string(typ) {
		t.Errorf("event at %s: header type %q, want %q", ev.Position, got, typ)
	}
	if got := ev.Header("v"); got != strconv.Itoa(events.SchemaVersion) {
		t.Errorf("event at %s: header v %q, want %d", ev.Position, got, events.SchemaVersion)
	}
	if want := events.PartitionFor(pool, testkit.EventsPartitions); ev.Position.Partition != want {
		t.Errorf("event of pool %s on partition %d, want %d", pool, ev.Position.Partition, want)
	}
	if ev.V != events.SchemaVersion || ev.ID == "" || ev.At.IsZero() {
		t.Errorf("event at %s: v %d, id %q, at %s", ev.Position, ev.V, ev.ID, ev.At)
	}
}

// data returns the event's data as a T, failing if it is another type.
func data[T events.Data](t *testing.T, ev testkit.Event) T {
	t.Helper()
	d, ok := ev.Data.(T)
	if !ok {
		t.Fatalf("event at %s holds %T, want %T", ev.Position, ev.Data, *new(T))
	}
	return d
}

func parseTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("time %q: %v", s, err)
	}
	return tm
}

// sameTime fails unless got equals want (the event's deadline).
func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s = %s, want %s", what, got.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
	}
}

// keys fails unless the JSON object r holds exactly the given fields.
func keys(t *testing.T, r testkit.Response, want ...string) {
	t.Helper()
	got := make(map[string]bool, len(r.JSON))
	for k := range r.JSON {
		got[k] = true
	}
	ok := len(got) == len(want)
	for _, k := range want {
		ok = ok && got[k]
	}
	if !ok {
		t.Errorf("response fields %v, want exactly %v: %s", slices.Sorted(maps.Keys(got)), want, r)
	}
}

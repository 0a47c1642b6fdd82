package httpapi_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/ingest"
	"github.com/line-sched/line/state"
	"github.com/line-sched/line/testkit"
)

func TestCreatePool(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	cases := []struct {
		name     string
		body     any
		id       string // "" = generated
		strategy events.Strategy
		waitMs   events.Millis
		wait     string
	}{
		{"no body", nil, "", events.Spread, 0, "0s"},
		{"empty object", map[string]any{}, "", events.Spread, 0, "0s"},
		{"default strategy", map[string]any{"pool_id": "p-spread"}, "p-spread", events.Spread, 0, "0s"},
		{"binpack", map[string]any{"pool_id": "p-binpack", "strategy": "binpack"}, "p-binpack", events.Binpack, 0, "0s"},
		{"spread with locality wait", map[string]any{"pool_id": "p_wait", "strategy": "spread", "locality_wait": "1.5s"}, "p_wait", events.Spread, 1500, "1.5s"},
		{"locality wait in minutes", map[string]any{"pool_id": "0-wait", "locality_wait": "1m30s"}, "0-wait", events.Spread, 90000, "1m30s"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.expect(e.do(http.MethodPost, "/v1/pools", c.body), http.StatusCreated)
			keys(t, r, "pool_id", "strategy", "locality_wait", "delivery", "position")
			id := r.Str("pool_id")
			if c.id != "" && id != c.id {
				t.Errorf("pool_id %q, want %q", id, c.id)
			}
			if err := events.ValidateID(events.PoolID, id); err != nil {
				t.Errorf("returned pool id: %v", err)
			}
			if r.Str("strategy") != string(c.strategy) || r.Str("locality_wait") != c.wait {
				t.Errorf("strategy %q, locality_wait %q; want %q, %q", r.Str("strategy"), r.Str("locality_wait"), c.strategy, c.wait)
			}
			ev := e.eventAt(r.Str("position"), events.PoolCreated, id)
			d := data[events.PoolCreatedData](t, ev)
			if d.Strategy != c.strategy || d.LocalityWaitMs != c.waitMs {
				t.Errorf("pool.created data %+v, want strategy %s, locality_wait_ms %d", d, c.strategy, c.waitMs)
			}
		})
	}
	// Generated ids are distinct.
	if got := len(e.log().OfType(events.PoolCreated)); got != len(cases) {
		t.Errorf("%d pool.created events, want %d", got, len(cases))
	}
}

func TestDisbandPool(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createPool("doomed")
	r := e.disband("doomed")
	keys(t, r, "pool_id", "status", "delete_at", "position")
	if r.Str("pool_id") != "doomed" || r.Str("status") != "disbanded" {
		t.Errorf("answer %s", r)
	}
	ev := e.eventAt(r.Str("position"), events.PoolDisbanded, "doomed")
	d := data[events.PoolDisbandedData](t, ev)
	sameTime(t, "delete_at", d.DeleteAt, ev.At.Add(testkit.PoolTTL))
	sameTime(t, "answered delete_at", parseTime(t, r.Str("delete_at")), d.DeleteAt)
}

func TestRegisterWorker(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createPool("pw")

	// Watch the broker: the worker's topic must be created before
	// worker.registered is produced.
	var (
		mu    sync.Mutex
		order []string
	)
	note := func(what string) func(kmsg.Request) bool {
		var last kmsg.Request // kfake may ask twice about one request
		return func(req kmsg.Request) bool {
			mu.Lock()
			if req != last {
				order = append(order, what)
				last = req
			}
			mu.Unlock()
			return true
		}
	}
	topic := e.cfg.Topics.WorkerAllocs("pw", "w-1")
	h := e.emb.Cluster().Fault(
		kfake.Fault{Keys: []kmsg.Key{kmsg.CreateTopics}, Topic: topic, Observe: true, Count: -1, When: note("create")},
		kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: e.topic, Observe: true, Count: -1, When: note("produce")},
	)
	r := e.expect(e.do(http.MethodPost, "/v1/pools/pw/workers", map[string]any{
		"worker_id": "w-1", "capacity": 8, "datasets": []string{"ds.a", "ds:b"}}), http.StatusCreated)
	h.Remove()
	mu.Lock()
	if !slices.Equal(order, []string{"create", "produce"}) {
		t.Errorf("broker saw %v, want the topic created, then the event produced", order)
	}
	mu.Unlock()

	keys(t, r, "pool_id", "worker_id", "capacity", "topic", "partition", "start_offset", "deadline", "position")
	if r.Str("pool_id") != "pw" || r.Str("worker_id") != "w-1" || r.Str("topic") != topic || r.JSON["capacity"] != json.Number("8") {
		t.Errorf("answer %s, want topic %s", r, topic)
	}
	if !testkit.TopicExists(t, e.brokers, topic) {
		t.Errorf("alloc topic %s does not exist", topic)
	}
	ev := e.eventAt(r.Str("position"), events.WorkerRegistered, "pw")
	d := data[events.WorkerRegisteredData](t, ev)
	if d.WorkerID != "w-1" || d.Capacity != 8 || d.Topic != topic || !slices.Equal(d.Datasets, []string{"ds.a", "ds:b"}) {
		t.Errorf("worker.registered data %+v", d)
	}
	sameTime(t, "deadline", d.Deadline, ev.At.Add(testkit.WorkerTTL))
	sameTime(t, "replica_deadline", d.ReplicaDeadline, ev.At.Add(testkit.ReplicaTTL))
	sameTime(t, "answered deadline", parseTime(t, r.Str("deadline")), d.Deadline)

	// Without worker_id, line generates one; its topic exists too.
	r = e.expect(e.do(http.MethodPost, "/v1/pools/pw/workers", map[string]any{"capacity": 2147483647}), http.StatusCreated)
	id := r.Str("worker_id")
	if err := events.ValidateID(events.WorkerID, id); err != nil {
		t.Errorf("generated worker id: %v", err)
	}
	if want := e.cfg.Topics.WorkerAllocs("pw", id); r.Str("topic") != want || !testkit.TopicExists(t, e.brokers, want) {
		t.Errorf("topic %q, want existing %q", r.Str("topic"), want)
	}
	d = data[events.WorkerRegisteredData](t, e.eventAt(r.Str("position"), events.WorkerRegistered, "pw"))
	if d.WorkerID != id || d.Capacity != 2147483647 || len(d.Datasets) != 0 {
		t.Errorf("worker.registered data %+v", d)
	}
}

// If the worker's topic cannot be created, nothing is appended and the
// worker does not exist: the topic comes first.
func TestRegisterWorkerTopicFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createPool("pf")
	topic := e.cfg.Topics.WorkerAllocs("pf", "w")
	e.emb.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.CreateTopics}, Topic: topic, Err: kerr.PolicyViolation})
	before := e.ends()
	r := e.do(http.MethodPost, "/v1/pools/pf/workers", map[string]any{"worker_id": "w", "capacity": 1})
	testkit.ExpectError(t, r, http.StatusServiceUnavailable, "")
	e.nothingAppended(before, "a registration whose topic failed")
	// The fault was for one request: registering again works.
	r = e.registerWorker("pf", "w", 1)
	e.eventAt(r.Str("position"), events.WorkerRegistered, "pf")
}

func TestHeartbeat(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createPool("ph")
	e.registerWorker("ph", "w", 4)
	r := e.expect(e.do(http.MethodPost, "/v1/pools/ph/workers/w/heartbeat", map[string]any{
		"allocs": []string{"a1", "A.2", "a1"}, "datasets": []string{"d1", "d2", "d1"}}), http.StatusAccepted)
	keys(t, r, "pool_id", "worker_id", "deadline", "position")
	if r.Str("pool_id") != "ph" || r.Str("worker_id") != "w" {
		t.Errorf("answer %s", r)
	}
	ev := e.eventAt(r.Str("position"), events.WorkerHeartbeat, "ph")
	d := data[events.WorkerHeartbeatData](t, ev)
	if d.WorkerID != "w" || !slices.Equal(d.Allocs, []string{"a1", "A.2"}) || !slices.Equal(d.Datasets, []string{"d1", "d2"}) {
		t.Errorf("worker.heartbeat data %+v (repeats should be dropped)", d)
	}
	sameTime(t, "deadline", d.Deadline, ev.At.Add(testkit.WorkerTTL))
	sameTime(t, "replica_deadline", d.ReplicaDeadline, ev.At.Add(testkit.ReplicaTTL))
	sameTime(t, "alloc_deadline", d.AllocDeadline, ev.At.Add(testkit.AllocTTL))
	sameTime(t, "answered deadline", parseTime(t, r.Str("deadline")), d.Deadline)

	// An empty heartbeat only pushes the worker.
	r = e.expect(e.do(http.MethodPost, "/v1/pools/ph/workers/w/heartbeat", map[string]any{}), http.StatusAccepted)
	d = data[events.WorkerHeartbeatData](t, e.eventAt(r.Str("position"), events.WorkerHeartbeat, "ph"))
	if len(d.Allocs) != 0 || len(d.Datasets) != 0 {
		t.Errorf("empty heartbeat data %+v", d)
	}
}

func TestSubmitEval(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createPool("pe")

	// Numbers that a float64 round trip would change, key order, unicode
	// and escapes: the payload must reach the log unchanged.
	payload := `{"z":1,"big":123456789012345678901234567890,"f":1.50,"e":1E+2,"neg":-0.0,"s":"é\u00e9\"\/","html":"<b>&amp;</b>","ls":"` + "\u2028" + `","a":[true,false,null,{}],"nested":{"b":[],"a":"x"}}`
	body := `{"eval_id":"job-42:shard-7","dataset_id":"ds.2024-06-01","payload":` + payload + `}`
	r := e.expect(e.do(http.MethodPost, "/v1/pools/pe/evals", body), http.StatusAccepted)
	keys(t, r, "pool_id", "eval_id", "position", "duplicate")
	if r.Str("pool_id") != "pe" || r.Str("eval_id") != "job-42:shard-7" || r.JSON["duplicate"] != false {
		t.Errorf("answer %s", r)
	}
	ev := e.eventAt(r.Str("position"), events.EvalSubmitted, "pe")
	d := data[events.EvalSubmittedData](t, ev)
	if d.EvalID != "job-42:shard-7" || d.DatasetID != "ds.2024-06-01" || d.Size != 1 {
		t.Errorf("eval.submitted data %+v, want size 1 (omitted)", d)
	}
	if string(d.Payload) != payload {
		t.Errorf("payload on the log\n%s\nwant\n%s", d.Payload, payload)
	}

	// Payloads of every JSON type, with and without size; no eval_id
	// means a generated one.
	for i, c := range []struct {
		body    string
		size    int64
		payload string
	}{
		{`{}`, 1, ""},
		{`{"size":0}`, 1, ""},
		{`{"size":7,"payload":"text"}`, 7, `"text"`},
		{`{"size":2147483647,"payload":[1,2]}`, 2147483647, `[1,2]`},
		{`{"payload":42}`, 1, `42`},
		{`{"payload":false}`, 1, `false`},
		{`{"payload":null}`, 1, ""},
	} {
		r := e.expect(e.do(http.MethodPost, "/v1/pools/pe/evals", c.body), http.StatusAccepted)
		id := r.Str("eval_id")
		if err := events.ValidateID(events.EvalID, id); err != nil {
			t.Errorf("case %d: generated eval id: %v", i, err)
		}
		d := data[events.EvalSubmittedData](t, e.eventAt(r.Str("position"), events.EvalSubmitted, "pe"))
		if d.EvalID != id || d.Size != c.size || string(d.Payload) != c.payload || d.DatasetID != "" {
			t.Errorf("case %d %s: data %+v payload %s, want size %d payload %s", i, c.body, d, d.Payload, c.size, c.payload)
		}
	}

	// Whitespace between tokens is not part of the value: the log keeps
	// the payload compacted, everything else as sent.
	spaced := "{ \"k\" : [ 1 ,\n\t2.50 ] , \"s\" : \" a  b \" }"
	r = e.submitEval("pe", map[string]any{"eval_id": "spaced", "payload": json.RawMessage(spaced)})
	d = data[events.EvalSubmittedData](t, e.eventAt(r.Str("position"), events.EvalSubmitted, "pe"))
	if want := `{"k":[1,2.50],"s":" a  b "}`; string(d.Payload) != want {
		t.Errorf("payload on the log %s, want %s", d.Payload, want)
	}

	// The largest payload is accepted, byte for byte.
	big := `"` + strings.Repeat("x", events.MaxPayloadBytes-2) + `"`
	r = e.submitEval("pe", map[string]any{"eval_id": "big", "payload": json.RawMessage(big)})
	d = data[events.EvalSubmittedData](t, e.eventAt(r.Str("position"), events.EvalSubmitted, "pe"))
	if !bytes.Equal(d.Payload, []byte(big)) {
		t.Errorf("64 KiB payload changed on the log (%d bytes)", len(d.Payload))
	}
}

func TestSubmitEvalBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createPool("pb")
	old := e.submitEval("pb", map[string]any{"eval_id": "old"})

	before := e.ends()
	evals := []map[string]any{
		{"eval_id": "b1", "size": 3, "dataset_id": "ds1", "payload": json.RawMessage(`{"k":[1,2.50]}`)},
		{"eval_id": "old"},
		{"eval_id": "b2"},
		{"eval_id": "b1", "size": 9},
		{"size": 2},
	}
	r := e.expect(e.do(http.MethodPost, "/v1/pools/pb/evals/batch", map[string]any{"evals": evals}), http.StatusAccepted)
	keys(t, r, "pool_id", "count", "evals")
	var res struct {
		PoolID string `json:"pool_id"`
		Count  int    `json:"count"`
		Evals  []struct {
			PoolID    string `json:"pool_id"`
			EvalID    string `json:"eval_id"`
			Position  string `json:"position"`
			Duplicate bool   `json:"duplicate"`
		} `json:"evals"`
	}
	r.Decode(t, &res)
	if res.PoolID != "pb" || res.Count != 5 || len(res.Evals) != 5 {
		t.Fatalf("answer %s", r)
	}
	wantDup := []bool{false, true, false, true, false}
	for i, a := range res.Evals {
		if a.Duplicate != wantDup[i] || a.PoolID != "pb" {
			t.Errorf("evals[%d] = %+v, want duplicate %v", i, a, wantDup[i])
		}
	}
	if res.Evals[1].Position != old.Str("position") {
		t.Errorf("known id answered at %s, want its first position %s", res.Evals[1].Position, old.Str("position"))
	}
	if res.Evals[3].Position != res.Evals[0].Position {
		t.Errorf("repeat within the batch at %s, want %s", res.Evals[3].Position, res.Evals[0].Position)
	}

	// One event per new eval, each where the answer says.
	log := e.log()
	want := map[int]struct {
		size    int64
		dataset string
		payload string
	}{0: {3, "ds1", `{"k":[1,2.50]}`}, 2: {1, "", ""}, 4: {2, "", ""}}
	var recs []testkit.Event
	for i, w := range want {
		pos, _ := events.ParsePosition(res.Evals[i].Position)
		ev, ok := log.At(pos)
		if !ok {
			t.Fatalf("evals[%d]: no event at %s", i, pos)
		}
		checkEvent(t, ev, events.EvalSubmitted, "pb")
		d := data[events.EvalSubmittedData](t, ev)
		if d.EvalID != res.Evals[i].EvalID || d.Size != w.size || d.DatasetID != w.dataset || string(d.Payload) != w.payload {
			t.Errorf("evals[%d]: data %+v payload %s, want %+v", i, d, d.Payload, w)
		}
		recs = append(recs, ev)
	}
	if n := len(log.OfType(events.EvalSubmitted)); n != 4 {
		t.Errorf("%d eval.submitted events, want 4 (1 before + 3 new)", n)
	}

	// All in one transaction: transactional records of one producer
	// epoch, at consecutive offsets, then exactly one commit marker.
	slices.SortFunc(recs, func(a, b testkit.Event) int { return int(a.Position.Offset - b.Position.Offset) })
	p := recs[0].Position.Partition
	for i, ev := range recs {
		rec := ev.Record
		if !rec.Attrs.IsTransactional() || rec.ProducerID != recs[0].Record.ProducerID || rec.ProducerEpoch != recs[0].Record.ProducerEpoch {
			t.Errorf("record %s: transactional %v, producer %d/%d; want one transaction", ev.Position, rec.Attrs.IsTransactional(), rec.ProducerID, rec.ProducerEpoch)
		}
		if ev.Position.Offset != before[p]+int64(i) {
			t.Errorf("record %d at %s, want offset %d", i, ev.Position, before[p]+int64(i))
		}
	}
	after := e.ends()
	for q := range after {
		want := before[q]
		if q == p {
			want += 3 + 1 // three records and the commit marker
		}
		if after[q] != want {
			t.Errorf("partition %d ends at %d, want %d", q, after[q], want)
		}
	}
}

// The largest batch (10,000 evals) is accepted.
func TestSubmitEvalBatchMax(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createPool("max")
	submitLarge(t, e, "max", ingest.MaxBatch, 0)
}

// A batch too large for one Kafka produce request (the broker takes at most
// 1 MiB per record batch, after compression) is still accepted, in one
// transaction: here 2 MiB of evals whose payloads do not compress, and
// without the race detector (which makes it slow) 15 MiB.
func TestSubmitEvalBatchLarge(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createPool("large")
	submitLarge(t, e, "large", 1000, 2000)
	if !raceEnabled {
		e.createPool("larger")
		submitLarge(t, e, "larger", ingest.MaxBatch, 1540)
	}
}

// submitLarge submits n evals with payloads of padding random hex digits
// in one batch and checks the answer and the log.
func submitLarge(t *testing.T, e *env, pool string, n, padding int) {
	t.Helper()
	rnd := make([]byte, padding/2+1)
	var b bytes.Buffer
	b.WriteString(`{"evals":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"eval_id":"e` + strconv.Itoa(i) + `"`)
		if padding > 0 {
			_, _ = rand.Read(rnd)
			b.WriteString(`,"payload":"` + hex.EncodeToString(rnd)[:padding] + `"`)
		}
		b.WriteString(`}`)
	}
	b.WriteString(`]}`)
	t.Logf("batch of %d evals, %.1f MiB", n, float64(b.Len())/(1<<20))
	r := e.do(http.MethodPost, "/v1/pools/"+pool+"/evals/batch", b.Bytes())
	if r.Status != http.StatusAccepted {
		t.Fatalf("batch of %d bytes: %s", b.Len(), r)
	}
	var res struct {
		Count int `json:"count"`
		Evals []struct {
			EvalID   string `json:"eval_id"`
			Position string `json:"position"`
		} `json:"evals"`
	}
	r.Decode(t, &res)
	if res.Count != n || len(res.Evals) != n {
		t.Fatalf("count %d, %d answers; want %d", res.Count, len(res.Evals), n)
	}
	log := e.log().OfPool(pool).OfType(events.EvalSubmitted)
	if len(log) != n {
		t.Fatalf("%d eval.submitted events, want %d", len(log), n)
	}
	ids := make(map[string]bool, n)
	pid := log[0].Record.ProducerID
	for i, ev := range log {
		d := data[events.EvalSubmittedData](t, ev)
		ids[d.EvalID] = true
		if ev.Position.String() != res.Evals[i].Position || d.EvalID != res.Evals[i].EvalID || (padding > 0) != (len(d.Payload) == padding+2) {
			t.Fatalf("evals[%d] answered %s at %s, log has %s at %s (payload of %d bytes)", i, res.Evals[i].EvalID, res.Evals[i].Position, d.EvalID, ev.Position, len(d.Payload))
		}
		if ev.Record.ProducerID != pid || !ev.Record.Attrs.IsTransactional() {
			t.Fatalf("record %s not in the batch's transaction", ev.Position)
		}
	}
	if len(ids) != n {
		t.Errorf("%d distinct eval ids, want %d", len(ids), n)
	}
}

func TestCompleteAlloc(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createPool("pc")
	reg := e.registerWorker("pc", "w", 4)
	e.submitEval("pc", map[string]any{"eval_id": "ev1", "size": 3})

	// What the scheduler would write: place ev1 on w.
	at := time.Now()
	placed := events.New("pc", at, events.AllocPlacedData{
		AllocID: "al-1", EvalID: "ev1", WorkerID: "w", Size: 3, Attempt: 1,
		Deadline: events.Truncate(at).Add(testkit.AllocTTL), Topic: reg.Str("topic"),
		Strategy: events.Spread, Locality: events.LocalityNone, Candidates: 1,
	})
	pos := testkit.Append(t, e.brokers, e.topic, placed)[0]
	if want := events.PartitionFor("pc", testkit.EventsPartitions); pos.Partition != want {
		t.Fatalf("alloc.placed on partition %d, want %d", pos.Partition, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.svc.View().WaitApplied(ctx, pos); err != nil {
		t.Fatal(err)
	}
	e.svc.View().Read(func(st *state.State) {
		a := st.Pool("pc").Alloc("al-1")
		if a == nil || a.Status() != state.AllocRunning || st.Pool("pc").Worker("w").Used != 3 {
			t.Fatalf("the fold did not accept the placement: alloc %+v", a)
		}
	})

	r := e.expect(e.do(http.MethodPost, "/v1/pools/pc/allocs/al-1/complete", map[string]any{
		"status": "failed", "exit_code": -3, "message": "out of memory"}), http.StatusAccepted)
	keys(t, r, "pool_id", "alloc_id", "status", "position")
	if r.Str("pool_id") != "pc" || r.Str("alloc_id") != "al-1" || r.Str("status") != "failed" {
		t.Errorf("answer %s", r)
	}
	ev := e.eventAt(r.Str("position"), events.AllocCompleted, "pc")
	d := data[events.AllocCompletedData](t, ev)
	if d.AllocID != "al-1" || d.Status != events.Failed || d.ExitCode == nil || *d.ExitCode != -3 || d.Message != "out of memory" {
		t.Errorf("alloc.completed data %+v", d)
	}

	// Completing it again: 409, nothing appended.
	before := e.ends()
	r = e.do(http.MethodPost, "/v1/pools/pc/allocs/al-1/complete", map[string]any{"status": "succeeded"})
	testkit.ExpectError(t, r, http.StatusConflict, "alloc_completed")
	// Unknown alloc: 404.
	r = e.do(http.MethodPost, "/v1/pools/pc/allocs/nope/complete", map[string]any{"status": "succeeded"})
	testkit.ExpectError(t, r, http.StatusNotFound, "alloc_not_found")
	e.nothingAppended(before, "refused completions")

	// The capacity came back.
	e.svc.View().Read(func(st *state.State) {
		if w := st.Pool("pc").Worker("w"); w.Used != 0 {
			t.Errorf("worker uses %d after completion, want 0", w.Used)
		}
	})
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.expect(e.do(http.MethodGet, "/healthz", nil), http.StatusOK)
	keys(t, r, "status", "kafka", "applied")
	if r.Str("status") != "ok" || r.Str("kafka") != "ok" {
		t.Errorf("answer %s", r)
	}
	// applied reports, per partition, the offset of the last event
	// applied: an event is applied once applied >= its offset.
	created := e.createPool("ph")
	pos, _ := events.ParsePosition(created.Str("position"))
	testkit.WaitFor(t, 10*time.Second, "healthz to report the pool applied", func() bool {
		r := e.expect(e.do(http.MethodGet, "/healthz", nil), http.StatusOK)
		applied, _ := r.JSON["applied"].(map[string]any)
		s, _ := applied[strconv.Itoa(int(pos.Partition))].(string)
		off, err := strconv.ParseInt(s, 10, 64)
		if err == nil && off > pos.Offset {
			t.Fatalf("applied %d on partition %d, but the last event is at %d: %s", off, pos.Partition, pos.Offset, r)
		}
		return err == nil && off == pos.Offset
	})
}

package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/projections"
	"github.com/line-sched/line/testkit"
)

// seedPool builds pool p1 with two workers and three evals, and appends
// the scheduler's decisions itself: e1 placed on w2 (binpack, locality hit,
// 2 candidates, waited 15ms) then completed through the API; e2 placed,
// expired and dead-lettered; e3 placed on w1 and running. It returns the
// position of the last event.
func seedPool(q *qenv) events.Position {
	q.t.Helper()
	q.do("POST", "/v1/pools", map[string]any{"pool_id": "p1", "strategy": "binpack"}, 201)
	q.do("POST", "/v1/pools/p1/workers", map[string]any{"worker_id": "w1", "capacity": 2, "datasets": []string{"d1"}}, 201)
	q.do("POST", "/v1/pools/p1/workers", map[string]any{"worker_id": "w2", "capacity": 3, "datasets": []string{"d1", "d2"}}, 201)
	q.do("POST", "/v1/pools/p1/evals", map[string]any{"eval_id": "e1", "dataset_id": "d1", "size": 2, "payload": map[string]any{"job": 1}}, 202)
	q.do("POST", "/v1/pools/p1/evals", map[string]any{"eval_id": "e2"}, 202)
	q.do("POST", "/v1/pools/p1/evals", map[string]any{"eval_id": "e3"}, 202)
	now := time.Now().UTC()
	placed := func(alloc, eval, worker, dataset string, size int64, loc events.Locality) events.AllocPlacedData {
		return events.AllocPlacedData{AllocID: alloc, EvalID: eval, WorkerID: worker, DatasetID: dataset, Size: size, Attempt: 1,
			Deadline: now.Add(time.Hour), Topic: q.cfg.Topics.WorkerAllocs("p1", worker), Strategy: events.Binpack,
			Locality: loc, Candidates: 2, WaitedMs: 15, Basis: 7}
	}
	topic := q.cfg.Topics.Events()
	testkit.Append(q.t, q.brokers, topic,
		events.New("p1", now, placed("a1", "e1", "w2", "d1", 2, events.LocalityHit)),
		events.New("p1", now, placed("a2", "e2", "w1", "", 1, events.LocalityNone)),
		events.New("p1", now, events.AllocExpiredData{AllocID: "a2", Reason: "not heartbeated"}),
		events.New("p1", now, events.EvalDeadLetteredData{EvalID: "e2", AllocID: "a2", Attempts: 1, Reason: "out of attempts"}),
		events.New("p1", now, placed("a3", "e3", "w1", "", 1, events.LocalityNone)),
	)
	r := q.do("POST", "/v1/pools/p1/allocs/a1/complete", map[string]any{"status": "failed", "exit_code": 7, "message": "oom"}, 202)
	pos, err := events.ParsePosition(r.Str("position"))
	if err != nil {
		q.t.Fatal(err)
	}
	return pos
}

func TestQueryRoutes(t *testing.T) {
	q := newQueryEnv(t, false)
	pos := seedPool(q)
	ix := "index=" + pos.String() + "&wait=10s"

	// Pools.
	r := q.get("/v1/pools?" + ix)
	pools, next := items[projections.PoolView](t, r)
	if len(pools) != 1 || pools[0].PoolID != "p1" || next != "" {
		t.Fatalf("pools: %s", r)
	}
	if got := index(t, r)[pos.Partition]; got < pos.Offset {
		t.Errorf("X-Line-Index %q does not cover the awaited position %s", r.Header.Get("X-Line-Index"), pos)
	}
	var pool projections.PoolView
	q.get("/v1/pools/p1?"+ix).Decode(t, &pool)
	if pool.Strategy != events.Binpack || pool.Status != "active" || pool.Workers != 2 || pool.Evals != 3 || pool.Pending != 0 ||
		pool.MaxFree != 3 || pool.Events != 12 || pool.Rejected != 0 || pool.LastPosition != pos.String() || pool.NextDeadline == "" {
		t.Errorf("pool p1: %+v", pool)
	}
	testkit.ExpectError(t, q.get("/v1/pools/nope"), 404, "pool_not_found")

	// Workers.
	ws, _ := items[projections.WorkerView](t, q.get("/v1/pools/p1/workers"))
	if len(ws) != 2 || ws[0].WorkerID != "w1" || ws[1].WorkerID != "w2" || ws[0].Used != 1 || ws[0].Free != 1 || ws[1].Free != 3 {
		t.Errorf("workers: %+v", ws)
	}
	ws, _ = items[projections.WorkerView](t, q.get("/v1/pools/p1/workers?min_free=2"))
	if len(ws) != 1 || ws[0].WorkerID != "w2" {
		t.Errorf("workers with min_free=2: %+v", ws)
	}
	ws, _ = items[projections.WorkerView](t, q.get("/v1/pools/p1/workers?min_free=4"))
	if len(ws) != 0 {
		t.Errorf("workers with min_free=4: %+v", ws)
	}
	testkit.ExpectError(t, q.get("/v1/pools/nope/workers"), 404, "pool_not_found")
	var w1 projections.WorkerDetail
	q.get("/v1/pools/p1/workers/w1").Decode(t, &w1)
	if w1.Capacity != 2 || w1.Used != 1 || len(w1.Allocs) != 1 || w1.Allocs[0].AllocID != "a3" || w1.Allocs[0].Status != "running" ||
		len(w1.Replicas) != 1 || w1.Replicas[0].DatasetID != "d1" || w1.Deadline == "" {
		t.Errorf("worker w1: %+v", w1)
	}
	testkit.ExpectError(t, q.get("/v1/pools/p1/workers/nope"), 404, "worker_not_found")
	testkit.ExpectError(t, q.get("/v1/pools/nope/workers/w1"), 404, "pool_not_found")

	// Evals.
	es, _ := items[projections.EvalView](t, q.get("/v1/pools/p1/evals"))
	if ids := evalIDs(es); !slices.Equal(ids, []string{"e1", "e2", "e3"}) {
		t.Errorf("evals: %v", ids)
	}
	es, _ = items[projections.EvalView](t, q.get("/v1/pools/p1/evals?status=completed"))
	if ids := evalIDs(es); !slices.Equal(ids, []string{"e1"}) {
		t.Errorf("completed evals: %v", ids)
	}
	es, _ = items[projections.EvalView](t, q.get("/v1/pools/p1/evals?status=pending"))
	if len(es) != 0 {
		t.Errorf("pending evals: %+v", es)
	}
	testkit.ExpectError(t, q.get("/v1/pools/nope/evals"), 404, "pool_not_found")
	var e1 projections.EvalDetail
	r = q.get("/v1/pools/p1/evals/e1")
	r.Decode(t, &e1)
	pl := e1.Alloc.Placement
	if e1.Status != "completed" || e1.Result != "failed" || e1.Attempts != 1 || e1.AllocID != "a1" || string(e1.Payload) != `{"job":1}` ||
		e1.Alloc == nil || e1.Alloc.WorkerID != "w2" || pl.Strategy != events.Binpack || pl.Locality != events.LocalityHit ||
		pl.Candidates != 2 || pl.WaitedMs != 15 || e1.Alloc.Completion == nil || *e1.Alloc.Completion.ExitCode != 7 {
		t.Errorf("eval e1: %s", r)
	}
	testkit.ExpectError(t, q.get("/v1/pools/p1/evals/nope"), 404, "eval_not_found")
	// .../evals/batch is the batch submission (POST): an eval named
	// "batch" is listed, not read by id (documented).
	testkit.ExpectError(t, testkit.Do(t, "GET", q.base+"/v1/pools/p1/evals/batch", nil), 405, "no_such_route")
	testkit.ExpectError(t, q.get("/v1/pools/nope/evals/e1"), 404, "pool_not_found")

	// Allocs.
	var a2 projections.AllocView
	q.get("/v1/pools/p1/allocs/a2").Decode(t, &a2)
	if a2.Status != "expired" || a2.ExpiryReason != "not heartbeated" || a2.EvalID != "e2" || a2.EndedAt == "" {
		t.Errorf("alloc a2: %+v", a2)
	}
	testkit.ExpectError(t, q.get("/v1/pools/p1/allocs/nope"), 404, "alloc_not_found")
	testkit.ExpectError(t, q.get("/v1/pools/nope/allocs/a1"), 404, "pool_not_found")

	// Replicas by dataset.
	rs, _ := items[projections.ReplicaView](t, q.get("/v1/pools/p1/datasets/d1/replicas"))
	if len(rs) != 2 || rs[0].WorkerID != "w1" || rs[1].WorkerID != "w2" || rs[0].Deadline == "" {
		t.Errorf("replicas of d1: %+v", rs)
	}
	rs, _ = items[projections.ReplicaView](t, q.get("/v1/pools/p1/datasets/d9/replicas"))
	if len(rs) != 0 {
		t.Errorf("replicas of d9: %+v", rs)
	}
	testkit.ExpectError(t, q.get("/v1/pools/nope/datasets/d1/replicas"), 404, "pool_not_found")

	// Dead letters.
	for _, path := range []string{"/v1/dead-letters", "/v1/dead-letters?pool=p1"} {
		dl, _ := items[projections.EvalView](t, q.get(path))
		if len(dl) != 1 || dl[0].EvalID != "e2" || dl[0].Status != "dead_lettered" || dl[0].Reason != "out of attempts" {
			t.Errorf("%s: %+v", path, dl)
		}
	}
	if dl, _ := items[projections.EvalView](t, q.get("/v1/dead-letters?pool=other")); len(dl) != 0 {
		t.Errorf("dead letters of another pool: %+v", dl)
	}
}

func evalIDs(es []projections.EvalView) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.EvalID
	}
	return out
}

// pages walks a list with limit 2 and returns the ids of every page.
func pages[T any](t *testing.T, q *qenv, path string, id func(T) string) [][]string {
	t.Helper()
	var out [][]string
	cursor := ""
	for i := 0; i < 10; i++ {
		u := path + "limit=2"
		if cursor != "" {
			u += "&cursor=" + url.QueryEscape(cursor)
		}
		r := q.get(u)
		list, next := items[T](t, r)
		// The same page again is the same page.
		if again, next2 := items[T](t, q.get(u)); len(again) != len(list) || next2 != next {
			t.Errorf("%s: two answers differ", u)
		}
		var ids []string
		for _, v := range list {
			ids = append(ids, id(v))
		}
		out = append(out, ids)
		if next == "" {
			return out
		}
		cursor = next
	}
	t.Fatalf("%s: more than 10 pages", path)
	return nil
}

func TestQueryPagination(t *testing.T) {
	q := newQueryEnv(t, false)
	var last string
	for i := 5; i >= 1; i-- { // created out of order
		pool := fmt.Sprintf("p%d", i)
		q.do("POST", "/v1/pools", map[string]any{"pool_id": pool}, 201)
		q.do("POST", "/v1/pools/p5/workers", map[string]any{"worker_id": fmt.Sprintf("w%d", i), "capacity": i, "datasets": []string{"d"}}, 201)
		last = q.do("POST", "/v1/pools/p5/evals", map[string]any{"eval_id": fmt.Sprintf("e%d", i)}, 202).Str("position")
	}
	q.get("/v1/pools/p5/evals?index=" + last)
	want := [][]string{{"1", "2"}, {"3", "4"}, {"5"}}
	check := func(what string, got [][]string, prefix string) {
		t.Helper()
		var w [][]string
		for _, page := range want {
			var p []string
			for _, id := range page {
				p = append(p, prefix+id)
			}
			w = append(w, p)
		}
		if fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("%s: pages %v, want %v", what, got, w)
		}
	}
	check("pools", pages(t, q, "/v1/pools?", func(v projections.PoolView) string { return v.PoolID }), "p")
	check("workers", pages(t, q, "/v1/pools/p5/workers?", func(v projections.WorkerView) string { return v.WorkerID }), "w")
	check("evals", pages(t, q, "/v1/pools/p5/evals?", func(v projections.EvalView) string { return v.EvalID }), "e")
	check("pending evals", pages(t, q, "/v1/pools/p5/evals?status=pending&", func(v projections.EvalView) string { return v.EvalID }), "e")
	check("replicas", pages(t, q, "/v1/pools/p5/datasets/d/replicas?", func(v projections.ReplicaView) string { return v.WorkerID }), "w")
	check("workers with min_free", pages(t, q, "/v1/pools/p5/workers?min_free=1&", func(v projections.WorkerView) string { return v.WorkerID }), "w")
	if got := pages(t, q, "/v1/pools/p5/workers?min_free=4&", func(v projections.WorkerView) string { return v.WorkerID }); fmt.Sprint(got) != "[[w4 w5]]" {
		t.Errorf("workers with min_free=4: %v", got)
	}
	// Default and maximum page sizes.
	if ps, next := items[projections.PoolView](t, q.get("/v1/pools")); len(ps) != 5 || next != "" {
		t.Errorf("default page: %d pools, next %q", len(ps), next)
	}
	if ps, _ := items[projections.PoolView](t, q.get("/v1/pools?limit=1000")); len(ps) != 5 {
		t.Errorf("limit=1000: %d pools", len(ps))
	}
}

func TestBlockingQueries(t *testing.T) {
	q := newQueryEnv(t, false)
	q.do("POST", "/v1/pools", map[string]any{"pool_id": "p1"}, 201)
	pos := q.do("POST", "/v1/pools/p1/evals", map[string]any{"eval_id": "e1"}, 202).Str("position")

	// Read-your-write: the answer comes as soon as the view has the eval.
	start := time.Now()
	r := q.get("/v1/pools/p1/evals/e1?index=" + pos + "&wait=30s")
	if r.Status != 200 || r.Str("eval_id") != "e1" || r.Str("status") != "pending" {
		t.Fatalf("eval with index=%s: %s", pos, r)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("read-your-write took %s", d)
	}
	at, _ := events.ParsePosition(pos)
	if got := index(t, r)[at.Partition]; got < at.Offset {
		t.Errorf("X-Line-Index %s does not cover %s", r.Header.Get("X-Line-Index"), pos)
	}

	// A query waiting for the next position of the partition returns once
	// a write lands there, with that write.
	nextPos := events.Position{Partition: at.Partition, Offset: index(t, r)[at.Partition] + 1}.String()
	got := make(chan testkit.Response, 1)
	start = time.Now()
	go func() {
		r, _ := testkit.Send(context.Background(), "GET", q.base+"/v1/pools/p1/evals?index="+nextPos+"&wait=20s", nil)
		got <- r
	}()
	time.Sleep(300 * time.Millisecond)
	select {
	case r := <-got:
		t.Fatalf("query for a position not yet written answered at once: %s", r)
	default:
	}
	q.do("POST", "/v1/pools/p1/evals", map[string]any{"eval_id": "e2"}, 202)
	select {
	case r := <-got:
		q.check("/v1/pools/p1/evals", r)
		es, _ := items[projections.EvalView](t, r)
		if r.Status != 200 || len(es) != 2 {
			t.Errorf("blocked query: %s, want both evals", r)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("blocked query answered after %s", d)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("blocked query did not return after the write")
	}

	// A position the view will not reach in time: 504 index_timeout after
	// about wait.
	far := events.Position{Partition: at.Partition, Offset: 1 << 40}.String()
	start = time.Now()
	r = q.get("/v1/pools/p1?index=" + far + "&wait=200ms")
	d := time.Since(start)
	testkit.ExpectError(t, r, http.StatusGatewayTimeout, "index_timeout")
	if d < 200*time.Millisecond || d > 5*time.Second {
		t.Errorf("timeout after %s, want about 200ms", d)
	}
	if r.Header.Get("Retry-After") == "" || index(t, r)[at.Partition] < at.Offset {
		t.Errorf("504 headers: %v", r.Header)
	}
	// wait=0 does not wait.
	testkit.ExpectError(t, q.get("/v1/pools/p1?index="+far+"&wait=0"), http.StatusGatewayTimeout, "index_timeout")

	// Bad parameters: 400 with a JSON error, on every route.
	for _, path := range []string{
		"/v1/pools/p1?index=abc",
		"/v1/pools/p1?index=1",
		"/v1/pools/p1?index=-1:0",
		"/v1/pools/p1?wait=soon",
		"/v1/pools/p1?wait=-1s",
		"/v1/pools?limit=0",
		"/v1/pools?limit=1001",
		"/v1/pools?limit=x",
		"/v1/pools?cursor=%21%21",
		"/v1/pools/p1/evals?status=bogus",
		"/v1/pools/p1/workers?min_free=-1",
		"/v1/pools/P1",
		"/v1/pools/p1/evals/.e",
		"/v1/dead-letters?pool=Bad",
		"/v1/pools/p1/events?from=-1",
		"/v1/pools/p1/events?from=x",
	} {
		testkit.ExpectError(t, q.get(path), http.StatusBadRequest, "")
	}
	for path, code := range map[string]string{
		"/v1/pools/p1?index=99:0":        "invalid_index",
		"/v1/pools/p1?wait=61s":          "invalid_wait",
		"/v1/pools?cursor=AA&limit=1":    "",
		"/v1/pools/p1/workers?wait=1m1s": "invalid_wait",
	} {
		r := q.get(path)
		if code == "" {
			// A cursor that decodes is a place in the list: valid.
			if r.Status != 200 {
				t.Errorf("%s: %s", path, r)
			}
			continue
		}
		testkit.ExpectError(t, r, http.StatusBadRequest, code)
	}
	// wait without index has no effect; the maximum wait is accepted.
	if r := q.get("/v1/pools/p1?wait=60s"); r.Status != 200 {
		t.Errorf("wait=60s without index: %s", r)
	}
}

func TestEventStream(t *testing.T) {
	q := newQueryEnv(t, false)
	q.do("POST", "/v1/pools", map[string]any{"pool_id": "p1"}, 201)
	// Another pool on the same partition, whose events the stream leaves
	// out.
	part := events.PartitionFor("p1", q.cfg.EventsPartitions)
	other := ""
	for i := 0; other == ""; i++ {
		if c := "q" + strconv.Itoa(i); events.PartitionFor(c, q.cfg.EventsPartitions) == part {
			other = c
		}
	}
	q.do("POST", "/v1/pools", map[string]any{"pool_id": other}, 201)
	q.do("POST", "/v1/pools/p1/workers", map[string]any{"worker_id": "w1", "capacity": 1}, 201)
	q.do("POST", "/v1/pools/"+other+"/evals", map[string]any{"eval_id": "x"}, 202)
	last := q.do("POST", "/v1/pools/p1/evals", map[string]any{"eval_id": "e1"}, 202).Str("position")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, ch := q.stream(ctx, "/v1/pools/p1/events?from=0&index="+last, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("X-Line-Index") == "" {
		t.Fatalf("stream: %d %v", resp.StatusCode, resp.Header)
	}
	log := testkit.ReadEvents(t, q.brokers, q.cfg.Topics.Events()).OfPool("p1")
	if len(log) != 3 {
		t.Fatalf("log of p1: %d events", len(log))
	}
	check := func(ev sseEvent, want testkit.Event) {
		t.Helper()
		e, err := events.Unmarshal([]byte(ev.data))
		if err != nil || ev.id != want.Position.String() || ev.typ != string(want.Type) || e.ID != want.ID || e.Pool != "p1" {
			t.Errorf("event %+v (%v), want %s %s %s", ev, err, want.Position, want.Type, want.ID)
		}
	}
	for _, want := range log {
		check(next(t, ch), want)
	}
	// Live: a new event of the pool arrives; the other pool's do not.
	q.do("POST", "/v1/pools/"+other+"/evals", map[string]any{"eval_id": "y"}, 202)
	pos := q.do("POST", "/v1/pools/p1/evals", map[string]any{"eval_id": "e2"}, 202).Str("position")
	ev := next(t, ch)
	if ev.id != pos || ev.typ != string(events.EvalSubmitted) {
		t.Errorf("live event %+v, want eval.submitted at %s", ev, pos)
	}
	cancel()

	// Resume after the second event with Last-Event-ID.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	_, ch2 := q.stream(ctx2, "/v1/pools/p1/events", http.Header{"Last-Event-ID": {log[1].Position.String()}})
	check(next(t, ch2), log[2])
	cancel2()

	// From an offset: the pool's events at or after it.
	ctx3, cancel3 := context.WithCancel(context.Background())
	defer cancel3()
	_, ch3 := q.stream(ctx3, fmt.Sprintf("/v1/pools/p1/events?from=%d", log[2].Position.Offset), nil)
	check(next(t, ch3), log[2])
	cancel3()

	testkit.ExpectError(t, q.get("/v1/pools/nope/events"), 404, "pool_not_found")
	testkit.ExpectError(t, q.get("/v1/pools/p1/events?from=0&index=99:0"), http.StatusBadRequest, "invalid_index")
}

// TestServersOfOneKind: a projector-only server (cmd/projector) answers
// queries and refuses commands; an ingest-only server (cmd/ingest)
// refuses queries.
func TestServersOfOneKind(t *testing.T) {
	q := newQueryEnv(t, true)
	testkit.ExpectError(t, q.do("POST", "/v1/pools", map[string]any{"pool_id": "p1"}, 404), 404, "no_such_route")
	testkit.ExpectError(t, q.do("POST", "/CreatePool", map[string]any{}, 404), 404, "no_such_route")
	if ps, _ := items[projections.PoolView](t, q.get("/v1/pools")); len(ps) != 0 {
		t.Errorf("pools: %+v", ps)
	}
	testkit.WaitFor(t, 10*time.Second, "the projector's health", func() bool {
		return testkit.Do(t, "GET", q.base+"/healthz", nil).Status == 200
	})
	if r := testkit.Do(t, "GET", q.base+"/healthz", nil); r.Str("status") != "ok" || r.Str("kafka") != "ok" {
		t.Errorf("healthz: %s", r)
	}

	emb := testkit.StartBroker(t)
	base, _ := testkit.StartIngest(t, testkit.Config(t), emb.Addrs())
	testkit.ExpectError(t, testkit.Do(t, "GET", base+"/v1/pools", nil), 404, "no_such_route")
	testkit.ExpectError(t, testkit.Do(t, "GET", base+"/v1/pools/p1/evals/e1", nil), 404, "no_such_route")
}

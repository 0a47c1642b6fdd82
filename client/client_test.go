package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/line-sched/line/api"
	"github.com/line-sched/line/client"
	"github.com/line-sched/line/events"
)

func TestErrorsAreDecoded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/pools/gone":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":{"code":"pool_not_found","message":"pool gone does not exist"}}`)
		case "/v1/pools":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"error":{"code":"kafka_unavailable","message":"retry later"}}`)
		default:
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, "<html>bad gateway</html>")
		}
	}))
	defer srv.Close()
	c, err := client.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	_, err = c.DisbandPool(ctx, "gone")
	e := client.AsError(err)
	if e == nil || e.Status != 404 || e.Code != "pool_not_found" || e.Message != "pool gone does not exist" || e.Method != "DELETE" || e.Path != "/v1/pools/gone" {
		t.Fatalf("404: %#v", err)
	}
	if !client.IsNotFound(err) || client.Temporary(err) || err.Error() != "pool gone does not exist (404 pool_not_found)" {
		t.Errorf("404: IsNotFound %v, Temporary %v, %q", client.IsNotFound(err), client.Temporary(err), err)
	}

	_, err = c.CreatePool(ctx, api.CreatePoolRequest{})
	if e := client.AsError(err); e == nil || e.Status != 503 || e.RetryAfter != 3*time.Second || !client.Temporary(err) {
		t.Errorf("503: %#v", err)
	}

	_, err = c.SubmitEval(ctx, "p", api.EvalRequest{})
	if e := client.AsError(err); e == nil || e.Status != 502 || e.Code != "" || e.Message != "<html>bad gateway</html>" {
		t.Errorf("502 with an HTML body: %#v", err)
	}
}

func TestConnectionRefusedIsConnError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := client.New(addr) // no scheme: http://
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr() != "http://"+addr {
		t.Errorf("Addr %q", c.Addr())
	}
	_, err = c.Health(context.Background())
	var ce *client.ConnError
	if !errors.As(err, &ce) || !client.Temporary(err) || !strings.HasPrefix(err.Error(), "cannot reach line at http://"+addr+": ") ||
		!strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("refused: %T %v", err, err)
	}
	if _, err := client.New("ftp://x"); err == nil {
		t.Error("ftp:// accepted")
	}
}

func TestTokenIsSentOnEveryCall(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization")+" "+r.URL.RawQuery)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":{"code":"unauthorized","message":"bad token"}}`)
	}))
	defer srv.Close()
	c, _ := client.New(srv.URL+"/", client.WithToken("s3cret"))
	ctx := context.Background()
	_, _ = c.CreatePool(ctx, api.CreatePoolRequest{})
	_, _, _ = c.GetEval(ctx, "p", "e", client.Q{Index: "1:2", Wait: 1500 * time.Millisecond})
	err := c.StreamEvents(ctx, "p", client.StreamFrom{After: "1:5"}, func(client.Event) error { return nil })
	if client.StatusOf(err) != 401 || client.CodeOf(err) != "unauthorized" {
		t.Errorf("stream: %v", err)
	}
	want := []string{
		"POST /v1/pools Bearer s3cret ",
		"GET /v1/pools/p/evals/e Bearer s3cret index=1%3A2&wait=1.5s",
		"GET /v1/pools/p/events Bearer s3cret ",
	}
	if strings.Join(seen, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}
}

func TestStreamParsesServerSentEvents(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("Last-Event-ID"); got != "" || r.URL.Query().Get("from") != "7" {
			t.Errorf("Last-Event-ID %q, from %q", got, r.URL.Query().Get("from"))
		}
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, ": hello\n\nid: 0:7\nevent: pool.created\ndata: {\"a\":1}\n\n: keepalive\n\nid: 0:8\nevent: eval.submitted\ndata: {\"b\":\ndata: 2}\n\n")
	}))
	defer srv.Close()
	c, _ := client.New(srv.URL)
	var got []client.Event
	err := c.StreamEvents(context.Background(), "p", client.StreamFrom{Offset: 7}, func(e client.Event) error {
		got = append(got, e)
		return nil
	})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("end of stream: %v", err)
	}
	if len(got) != 2 || got[0].ID != "0:7" || got[0].Type != "pool.created" || string(got[0].Data) != `{"a":1}` ||
		got[1].ID != "0:8" || string(got[1].Data) != "{\"b\":\n2}" {
		t.Fatalf("events: %+v", got)
	}
	stop := errors.New("stop")
	err = c.StreamEvents(context.Background(), "p", client.StreamFrom{Offset: 7}, func(client.Event) error { return stop })
	if !errors.Is(err, stop) {
		t.Errorf("callback error: %v", err)
	}
}

func TestIndex(t *testing.T) {
	idx := client.ParseIndex("0:12, 2:7,bad,3:x")
	if len(idx) != 2 || idx[0] != 12 || idx[2] != 7 || idx.String() != "0:12,2:7" {
		t.Fatalf("ParseIndex: %v", idx)
	}
	if idx.Next(2) != "2:8" || idx.Next(5) != "5:0" {
		t.Errorf("Next: %s %s", idx.Next(2), idx.Next(5))
	}
}

func TestBlockWaitsForTheNextRecordOfThePartition(t *testing.T) {
	var asked []string
	answers := []struct {
		idx  client.Index
		err  error
		done bool
	}{
		{idx: client.Index{1: 9, 2: 40}},                         // since applied; not done
		{err: &client.Error{Status: 504, Code: "index_timeout"}}, // nothing within wait
		{idx: client.Index{1: 9, 2: 41}},                         // one more record
		{idx: client.Index{1: 12, 2: 45}, done: true},            // done
		{err: errors.New("must not be asked")},
	}
	i := 0
	v, err := client.Block(context.Background(), "2:40", 2*time.Second, func(_ context.Context, q client.Q) (bool, client.Index, error) {
		if q.Wait != 2*time.Second {
			t.Errorf("wait %s", q.Wait)
		}
		asked = append(asked, q.Index)
		a := answers[i]
		i++
		return a.done, a.idx, a.err
	}, func(done bool) bool { return done })
	if err != nil || !v {
		t.Fatalf("Block: %v %v", v, err)
	}
	if strings.Join(asked, " ") != "2:40 2:41 2:41 2:42" {
		t.Errorf("indexes asked: %v", asked)
	}
	_, err = client.Block(context.Background(), "2:40", 0, func(context.Context, client.Q) (bool, client.Index, error) {
		return false, nil, &client.Error{Status: 404, Code: "eval_not_found"}
	}, func(bool) bool { return true })
	if client.CodeOf(err) != "eval_not_found" {
		t.Errorf("404 ends Block: %v", err)
	}
}

// TestAgainstLine runs every call against a real line: commands, queries
// (read-your-writes with index), the blocking helper, the alloc topic and
// the event stream.
func TestAgainstLine(t *testing.T) {
	l := startLine(t, nil)
	c := l.c
	ctx := ctxT(t)

	pc, err := c.CreatePool(ctx, api.CreatePoolRequest{PoolId: ptr("p1"), LocalityWait: ptr("1s")})
	if err != nil || pc.PoolId != "p1" || pc.LocalityWait != "1s" || pc.Strategy != api.StrategySpread {
		t.Fatalf("CreatePool: %+v %v", pc, err)
	}
	if _, err := c.CreatePool(ctx, api.CreatePoolRequest{PoolId: ptr("p1")}); !client.IsConflict(err) || client.CodeOf(err) != "pool_exists" {
		t.Errorf("CreatePool again: %v", err)
	}
	p, idx, err := c.GetPool(ctx, "p1", client.Q{Index: pc.Position, Wait: 10 * time.Second})
	pos, _ := events.ParsePosition(pc.Position)
	if err != nil || p.Status != api.PoolStatusActive || idx[pos.Partition] < pos.Offset {
		t.Fatalf("GetPool after its write: %+v %v %v", p, idx, err)
	}
	if _, _, err := c.GetPool(ctx, "nope", client.Q{}); client.CodeOf(err) != "pool_not_found" {
		t.Errorf("GetPool unknown: %v", err)
	}
	if _, err := c.SubmitEval(ctx, "nope", api.EvalRequest{}); client.StatusOf(err) != 404 || client.CodeOf(err) != "pool_not_found" {
		t.Errorf("SubmitEval to an unknown pool: %v", err)
	}

	wr, err := c.RegisterWorker(ctx, "p1", api.RegisterWorkerRequest{WorkerId: ptr("w1"), Capacity: 2, Datasets: &[]string{"d1"}})
	if err != nil || wr.Topic != l.cfg.Topics.WorkerAllocs("p1", "w1") || !wr.Deadline.After(time.Now()) {
		t.Fatalf("RegisterWorker: %+v %v", wr, err)
	}
	hbCtx, stopHB := context.WithCancel(ctx)
	defer stopHB()
	hbErr := make(chan error, 1)
	hb := &client.Heartbeater{Client: c, Pool: "p1", Worker: "w1", TTL: wr.Deadline.Sub(time.Now()),
		Report: func() api.HeartbeatRequest { return api.HeartbeatRequest{Datasets: &[]string{"d1"}} }}
	go func() { hbErr <- hb.Run(hbCtx) }()
	if _, err := c.Heartbeat(ctx, "p1", "nobody", api.HeartbeatRequest{}); client.CodeOf(err) != "worker_not_found" {
		t.Errorf("Heartbeat of an unknown worker: %v", err)
	}

	cons, err := client.ConsumeAllocs(l.brokers, wr.Topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()

	ea, err := c.SubmitEval(ctx, "p1", api.EvalRequest{EvalId: ptr("e1"), DatasetId: ptr("d1"), Size: ptr(int64(2)), Payload: json.RawMessage(`{"n":1}`)})
	if err != nil || ea.Duplicate {
		t.Fatalf("SubmitEval: %+v %v", ea, err)
	}
	if dup, err := c.SubmitEval(ctx, "p1", api.EvalRequest{EvalId: ptr("e1")}); err != nil || !dup.Duplicate {
		t.Errorf("SubmitEval again: %+v %v", dup, err)
	}
	ev, err := client.Block(ctx, ea.Position, 5*time.Second, func(ctx context.Context, q client.Q) (*api.EvalDetail, client.Index, error) {
		return c.GetEval(ctx, "p1", "e1", q)
	}, func(e *api.EvalDetail) bool { return e.Status != api.EvalStatusPending })
	if err != nil || ev.Status != api.EvalStatusPlaced || ev.Alloc == nil || ev.Alloc.WorkerId != "w1" || ev.Alloc.Placement.Locality != api.LocalityHit {
		t.Fatalf("Block until placed: %+v %v", ev, err)
	}

	m, err := cons.Next(ctx)
	if err != nil || m.Err != nil || m.Offset != 0 || m.Record.AllocID != ev.Alloc.AllocId || m.Record.EvalID != "e1" ||
		m.Record.Size != 2 || m.Record.DatasetID != "d1" || string(m.Record.Payload) != `{"n":1}` || m.Record.WorkerID != "w1" {
		t.Fatalf("alloc record: %+v %v", m, err)
	}
	w, _, err := c.GetWorker(ctx, "p1", "w1", client.Q{})
	if err != nil || w.Used != 2 || len(w.Allocs) != 1 {
		t.Errorf("GetWorker: %+v %v", w, err)
	}

	done, err := c.CompleteAlloc(ctx, "p1", m.Record.AllocID, api.CompleteAllocRequest{Status: api.AllocStatusFailed, ExitCode: ptr(int32(3)), Message: ptr("boom")})
	if err != nil || done.Status != api.AllocStatusFailed {
		t.Fatalf("CompleteAlloc: %+v %v", done, err)
	}
	if _, err := c.CompleteAlloc(ctx, "p1", m.Record.AllocID, api.CompleteAllocRequest{Status: api.AllocStatusSucceeded}); !client.IsConflict(err) {
		t.Errorf("CompleteAlloc again: %v", err)
	}
	a, _, err := c.GetAlloc(ctx, "p1", m.Record.AllocID, client.Q{Index: done.Position})
	if err != nil || a.Status != api.AllocStateCompleted || a.Completion == nil || *a.Completion.ExitCode != 3 || *a.Completion.Message != "boom" {
		t.Errorf("GetAlloc: %+v %v", a, err)
	}

	batch, err := c.SubmitEvals(ctx, "p1", []api.EvalRequest{{EvalId: ptr("e1")}, {EvalId: ptr("e2")}, {}})
	if err != nil || batch.Count != 3 || !batch.Evals[0].Duplicate || batch.Evals[1].Duplicate || batch.Evals[2].EvalId == "" {
		t.Fatalf("SubmitEvals: %+v %v", batch, err)
	}
	el, _, err := c.ListEvals(ctx, "p1", api.EvalStatusCompleted, client.Page{}, client.Q{Index: batch.Evals[2].Position})
	if err != nil || len(el.Items) != 1 || el.Items[0].EvalId != "e1" || *el.Items[0].Result != api.AllocStatusFailed {
		t.Errorf("ListEvals completed: %+v %v", el, err)
	}
	all, err := client.All(ctx, 1, func(ctx context.Context, pg client.Page) ([]api.Eval, *string, error) {
		l, _, err := c.ListEvals(ctx, "p1", "", pg, client.Q{})
		if err != nil {
			return nil, nil, err
		}
		return l.Items, l.NextCursor, nil
	})
	if err != nil || len(all) != 3 {
		t.Errorf("All evals, a page of 1 at a time: %d %v", len(all), err)
	}
	pl, _, err := c.ListPools(ctx, client.Page{}, client.Q{})
	if err != nil || len(pl.Items) != 1 || pl.Items[0].PoolId != "p1" {
		t.Errorf("ListPools: %+v %v", pl, err)
	}
	ws, _, err := c.ListWorkers(ctx, "p1", 0, client.Page{}, client.Q{})
	if err != nil || len(ws.Items) != 1 {
		t.Errorf("ListWorkers: %+v %v", ws, err)
	}
	rl, _, err := c.ListReplicas(ctx, "p1", "d1", client.Page{}, client.Q{})
	if err != nil || len(rl.Items) != 1 || rl.Items[0].WorkerId != "w1" {
		t.Errorf("ListReplicas: %+v %v", rl, err)
	}
	if dl, _, err := c.ListDeadLetters(ctx, "p1", client.Page{}, client.Q{}); err != nil || len(dl.Items) != 0 {
		t.Errorf("ListDeadLetters: %+v %v", dl, err)
	}

	// The stream: the pool's history in order, then live.
	var types []string
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	stop := errors.New("enough")
	err = c.StreamEvents(sctx, "p1", client.StreamFrom{}, func(e client.Event) error {
		env, err := e.Envelope()
		if err != nil || string(env.Type) != e.Type {
			t.Errorf("event %s: %v", e.ID, err)
		}
		types = append(types, e.Type)
		if e.Type == "alloc.completed" {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || types[0] != "pool.created" || types[1] != "worker.registered" {
		t.Errorf("stream: %v %v", types, err)
	}

	// Legacy calls.
	lp, err := c.LegacyCreatePool(ctx)
	if err != nil || lp.PoolId == "" {
		t.Fatalf("LegacyCreatePool: %+v %v", lp, err)
	}
	if _, err := c.LegacyScheduleEval(ctx, api.LegacyScheduleEvalRequest{PoolId: lp.PoolId}); err != nil {
		t.Errorf("LegacyScheduleEval: %v", err)
	}
	if _, err := c.LegacyDisbandPool(ctx, lp.PoolId); err != nil {
		t.Errorf("LegacyDisbandPool: %v", err)
	}
	if _, err := c.DisbandPool(ctx, lp.PoolId); client.CodeOf(err) != "pool_disbanded" {
		t.Errorf("DisbandPool of a disbanded pool: %v", err)
	}

	stopHB()
	if err := <-hbErr; err != nil {
		t.Errorf("Heartbeater: %v", err)
	}
}

func TestHeartbeaterStopsWhenTheWorkerIsGone(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":{"code":"worker_not_found","message":"gone"}}`)
	}))
	defer srv.Close()
	c, _ := client.New(srv.URL)
	var results int
	hb := &client.Heartbeater{Client: c, Pool: "p", Worker: "w", Interval: time.Hour,
		OnResult: func(_ *api.HeartbeatAccepted, err error) { results++ }}
	err := hb.Run(context.Background())
	if client.CodeOf(err) != "worker_not_found" || results != 1 {
		t.Fatalf("Run: %v after %d heartbeats", err, results)
	}
}

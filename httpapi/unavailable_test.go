package httpapi_test

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/testkit"
)

// A stopped broker: writes answer 503 with Retry-After and a JSON error
// within the produce timeout, nothing of them reaches the log, and once a
// broker is back on the same data dir and port, ingest accepts writes again.
func TestBrokerDown(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	emb := testkit.StartBrokerAt(t, dir, "127.0.0.1:0")
	addr := emb.Addrs()[0]
	cfg := testkit.Config(t)
	cfg.ProduceTimeout = 1500 * time.Millisecond
	base, _ := testkit.StartIngest(t, cfg, emb.Addrs())
	// A refused command answers within seconds; 20s means it hangs.
	send := func(method, path string, body any) (testkit.Response, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		return testkit.Send(ctx, method, base+path, body)
	}
	do := func(method, path string, body any) testkit.Response {
		t.Helper()
		r, err := send(method, path, body)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return r
	}
	expect := func(r testkit.Response, status int) testkit.Response {
		t.Helper()
		if r.Status != status {
			t.Fatalf("status %d, want %d: %s", r.Status, status, r)
		}
		return r
	}
	expect(do(http.MethodPost, "/v1/pools", map[string]any{"pool_id": "pd"}), http.StatusCreated)
	expect(do(http.MethodPost, "/v1/pools/pd/workers", map[string]any{"worker_id": "w", "capacity": 2}), http.StatusCreated)
	expect(do(http.MethodPost, "/v1/pools/pd/evals", map[string]any{"eval_id": "before"}), http.StatusAccepted)
	expect(do(http.MethodPost, "/v1/pools/pd/evals/batch", map[string]any{"evals": []map[string]any{{"eval_id": "before-batch"}}}), http.StatusAccepted)

	if err := emb.Close(); err != nil {
		t.Fatalf("close broker: %v", err)
	}

	unavailable := func(what string, r testkit.Response, took time.Duration) {
		t.Helper()
		testkit.ExpectError(t, r, http.StatusServiceUnavailable, "")
		if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 {
			t.Errorf("%s: Retry-After %q, want a number of seconds", what, r.Header.Get("Retry-After"))
		}
		if took > cfg.ProduceTimeout+3*time.Second { // it was 5s late before the fix
			t.Errorf("%s: answered after %s, produce timeout is %s", what, took, cfg.ProduceTimeout)
		}
	}
	// All at once, to keep the test short; each must fail on its own.
	cases := []struct {
		what string
		path string
		body any
	}{
		{"eval", "/v1/pools/pd/evals", map[string]any{"eval_id": "refused-1"}},
		{"batch", "/v1/pools/pd/evals/batch", map[string]any{"evals": []map[string]any{{"eval_id": "refused-2"}, {"eval_id": "refused-3"}}}},
		{"heartbeat", "/v1/pools/pd/workers/w/heartbeat", map[string]any{"datasets": []string{"refused-ds"}}},
		{"pool", "/v1/pools", map[string]any{"pool_id": "refused-pool"}},
		{"legacy eval", "/ScheduleEval", map[string]any{"pool_id": "pd", "dataset_id": "refused-ds"}},
	}
	type answer struct {
		r    testkit.Response
		err  error
		took time.Duration
	}
	answers := make([]answer, len(cases))
	var health answer
	var wg sync.WaitGroup
	for i, c := range cases {
		wg.Go(func() {
			start := time.Now()
			r, err := send(http.MethodPost, c.path, c.body)
			answers[i] = answer{r, err, time.Since(start)}
		})
	}
	wg.Go(func() {
		r, err := send(http.MethodGet, "/healthz", nil)
		health = answer{r: r, err: err}
	})
	wg.Wait()
	for i, c := range cases {
		if answers[i].err != nil {
			t.Fatalf("%s: %v", c.what, answers[i].err)
		}
		unavailable(c.what, answers[i].r, answers[i].took)
	}
	if r := health.r; health.err != nil || r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" || r.Str("status") != "starting" {
		t.Errorf("healthz with the broker down: %s %v (Retry-After %q)", r, health.err, r.Header.Get("Retry-After"))
	}

	// The same broker again: same data dir, same port.
	emb = testkit.StartBrokerAt(t, dir, addr)
	if emb.Addrs()[0] != addr {
		t.Fatalf("restarted broker on %s, want %s", emb.Addrs()[0], addr)
	}
	refused := func(log testkit.Log) []string {
		var out []string
		for _, ev := range log {
			switch d := ev.Data.(type) {
			case events.EvalSubmittedData:
				if d.EvalID != "before" && d.EvalID != "before-batch" && d.EvalID != "after" && d.EvalID != "refused-1" {
					out = append(out, d.EvalID)
				}
			case events.WorkerHeartbeatData:
				out = append(out, "heartbeat")
			case events.PoolCreatedData:
				if ev.Pool != "pd" {
					out = append(out, ev.Pool)
				}
			}
		}
		return out
	}
	log := testkit.ReadEvents(t, emb.Addrs(), cfg.Topics.Events())
	if got := refused(log); len(got) != 0 || len(log.OfType(events.EvalSubmitted)) != 2 {
		t.Fatalf("after the restart the log holds refused writes %v (%d evals, want 2)", got, len(log.OfType(events.EvalSubmitted)))
	}

	// Ingest recovers by itself: a new eval is accepted within seconds.
	start := time.Now()
	var ok testkit.Response
	testkit.WaitFor(t, 15*time.Second, "ingest to accept an eval after the restart", func() bool {
		ok = do(http.MethodPost, "/v1/pools/pd/evals", map[string]any{"eval_id": "after"})
		if ok.Status != http.StatusAccepted && ok.Status != http.StatusServiceUnavailable {
			t.Fatalf("after the restart: %s", ok)
		}
		return ok.Status == http.StatusAccepted
	})
	t.Logf("ingest accepted writes %s after the broker restarted", time.Since(start).Round(time.Millisecond))
	// A refused eval was not accepted: submitting it again is not a
	// duplicate. Batches work again too.
	r := expect(do(http.MethodPost, "/v1/pools/pd/evals", map[string]any{"eval_id": "refused-1"}), http.StatusAccepted)
	if r.JSON["duplicate"] != false {
		t.Errorf("refused eval answered as duplicate: %s", r)
	}
	expect(do(http.MethodPost, "/v1/pools/pd/evals/batch", map[string]any{"evals": []map[string]any{{"eval_id": "refused-2"}}}), http.StatusAccepted)
	expect(do(http.MethodGet, "/healthz", nil), http.StatusOK)

	log = testkit.ReadEvents(t, emb.Addrs(), cfg.Topics.Events())
	counts := make(map[string]int)
	for _, ev := range log.OfType(events.EvalSubmitted) {
		counts[data[events.EvalSubmittedData](t, ev).EvalID]++
	}
	want := map[string]int{"before": 1, "before-batch": 1, "after": 1, "refused-1": 1, "refused-2": 1}
	if len(counts) != len(want) {
		t.Errorf("evals on the log %v, want %v", counts, want)
	}
	for id, n := range want {
		if counts[id] != n {
			t.Errorf("evals on the log %v, want %v", counts, want)
			break
		}
	}
	if n := len(log.OfType(events.WorkerHeartbeat)); n != 0 {
		t.Errorf("%d heartbeats on the log, want 0", n)
	}
}

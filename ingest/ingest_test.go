package ingest_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/line-sched/line/config"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/ingest"
	"github.com/line-sched/line/state"
	"github.com/line-sched/line/testkit"
)

// poolOn returns a pool id of the given prefix on partition p.
func poolOn(prefix string, p int32) string {
	for i := 0; ; i++ {
		id := prefix + strconv.Itoa(i)
		if events.PartitionFor(id, testkit.EventsPartitions) == p {
			return id
		}
	}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func newService(t *testing.T, ctx context.Context, cfg config.Config, brokers []string) *ingest.Service {
	t.Helper()
	svc, err := ingest.New(ctx, ingest.Options{Config: cfg, Brokers: brokers, Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatalf("ingest.New: %v", err)
	}
	t.Cleanup(svc.Close)
	return svc
}

// A batch ends with a transaction marker; the live fold must count it as
// applied, or every catch-up on that partition waits for a record that
// never comes: a second ingest could not start, and every 404 took the
// whole catch-up wait.
func TestCatchUpAfterBatch(t *testing.T) {
	t.Parallel()
	emb := testkit.StartBroker(t)
	cfg := testkit.Config(t)
	_, svc := testkit.StartIngest(t, cfg, emb.Addrs())
	ctx := ctxFor(t, 30*time.Second)
	pool := poolOn("cu-", 1)
	if _, err := svc.CreatePool(ctx, ingest.CreatePool{ID: pool}); err != nil {
		t.Fatal(err)
	}
	// The answer comes once the service's view holds the pool: the
	// pool's next commands find it at once.
	known := false
	svc.View().Read(func(st *state.State) { known = st.Pool(pool) != nil })
	if !known {
		t.Fatalf("CreatePool answered before the service's view held pool %s", pool)
	}
	res, err := svc.SubmitEvals(ctx, pool, []ingest.SubmitEval{{ID: "a"}, {ID: "b", Size: 2}})
	if err != nil {
		t.Fatal(err)
	}
	ends := testkit.CommittedOffsets(t, emb.Addrs(), cfg.Topics.Events())
	if last := res[1].Position; ends[1] != last.Offset+2 {
		t.Fatalf("partition 1 ends at %d; want the last eval at %d, then the commit marker", ends[1], last.Offset)
	}

	// The fold catches up with the marker.
	if err := svc.View().CatchUp(ctxFor(t, 2*time.Second)); err != nil {
		t.Errorf("catch up after a batch: %v", err)
	}
	// An unknown pool on that partition is answered at once.
	start := time.Now()
	_, err = svc.SubmitEval(ctx, poolOn("unknown-", 1), ingest.SubmitEval{})
	if e := ingest.AsError(err); e == nil || e.Status != http.StatusNotFound {
		t.Errorf("eval in an unknown pool: %v, want 404", err)
	}
	if took := time.Since(start); took > 2*time.Second { // the catch-up wait is 3s
		t.Errorf("404 took %s", took)
	}
	// A second ingest starts on this log and knows the batch.
	start = time.Now()
	svc2 := newService(t, ctxFor(t, 10*time.Second), cfg, emb.Addrs())
	t.Logf("second ingest ready in %s", time.Since(start))
	r, err := svc2.SubmitEval(ctx, pool, ingest.SubmitEval{ID: "b"})
	if err != nil || !r.Duplicate || r.Position != res[1].Position {
		t.Errorf("second ingest: eval b = %+v, %v; want a duplicate at %s", r, err, res[1].Position)
	}
}

// An id of a batch that the pool already knows appends nothing: waiting for
// its "position" must not hold up the next submission of that id.
func TestKnownIDInBatch(t *testing.T) {
	t.Parallel()
	emb := testkit.StartBroker(t)
	cfg := testkit.Config(t)
	_, svc := testkit.StartIngest(t, cfg, emb.Addrs())
	ctx := ctxFor(t, 30*time.Second)
	// A pool off partition 0, and partition 0 empty: a wait for
	// position 0:0 would never end.
	pool := poolOn("known-", 2)
	if _, err := svc.CreatePool(ctx, ingest.CreatePool{ID: pool}); err != nil {
		t.Fatal(err)
	}
	first, err := svc.SubmitEval(ctx, pool, ingest.SubmitEval{ID: "k"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := svc.SubmitEvals(ctx, pool, []ingest.SubmitEval{{ID: "k"}, {ID: "n"}, {ID: "k"}, {ID: "n"}})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		dup bool
		pos events.Position
	}{{true, first.Position}, {false, res[1].Position}, {true, first.Position}, {true, res[1].Position}} {
		if res[i].Duplicate != want.dup || res[i].Position != want.pos {
			t.Errorf("evals[%d] = %+v, want duplicate %v at %s", i, res[i], want.dup, want.pos)
		}
	}
	for _, cmd := range []func(context.Context) (ingest.EvalAccepted, error){
		func(ctx context.Context) (ingest.EvalAccepted, error) {
			return svc.SubmitEval(ctx, pool, ingest.SubmitEval{ID: "k"})
		},
		func(ctx context.Context) (ingest.EvalAccepted, error) {
			rs, err := svc.SubmitEvals(ctx, pool, []ingest.SubmitEval{{ID: "k"}})
			if err != nil {
				return ingest.EvalAccepted{}, err
			}
			return rs[0], nil
		},
	} {
		start := time.Now()
		r, err := cmd(ctxFor(t, 2*time.Second))
		if err != nil || !r.Duplicate || r.Position != first.Position {
			t.Errorf("k again: %+v, %v; want a duplicate at %s", r, err, first.Position)
		}
		if took := time.Since(start); took > 1500*time.Millisecond {
			t.Errorf("k again took %s", took)
		}
	}
	if n := len(testkit.ReadEvents(t, emb.Addrs(), cfg.Topics.Events()).OfType(events.EvalSubmitted)); n != 2 {
		t.Errorf("%d eval.submitted events, want 2", n)
	}
}

// A batch whose transaction fails drops its producer; the replacement must
// not take the transactional id of a producer still in use (that would
// fence it and fail its next batch), and it takes the dropped producer's
// id, which aborts the transaction the failure left open.
func TestFailedBatchProducerReplaced(t *testing.T) {
	t.Parallel()
	emb := testkit.StartBroker(t)
	cfg := testkit.Config(t)
	_, svc := testkit.StartIngest(t, cfg, emb.Addrs())
	ctx := ctxFor(t, 60*time.Second)
	pools := []string{poolOn("fb-", 0), poolOn("fb-", 1), poolOn("fb-", 2)}
	for _, p := range pools {
		if _, err := svc.CreatePool(ctx, ingest.CreatePool{ID: p}); err != nil {
			t.Fatal(err)
		}
	}
	// The commit of the first producer's first transaction fails.
	h := emb.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, TopLevel: true, Err: kerr.InvalidTxnState,
		When: func(req kmsg.Request) bool {
			r, ok := req.(*kmsg.EndTxnRequest)
			return ok && r.Commit && strings.HasSuffix(r.TransactionalID, "-1")
		}})

	var (
		mu       sync.Mutex
		accepted = map[string]events.Position{}
		failed   []string
	)
	round := func(r, n int) {
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				id := "r" + strconv.Itoa(r) + "-" + strconv.Itoa(i)
				res, err := svc.SubmitEvals(ctx, pools[i%len(pools)], []ingest.SubmitEval{{ID: id}})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					if e := ingest.AsError(err); e == nil || e.Status != http.StatusServiceUnavailable {
						t.Errorf("batch %s: %v", id, err)
					}
					failed = append(failed, id)
					return
				}
				accepted[id] = res[0].Position
			})
		}
		wg.Wait()
	}
	round(0, 2) // makes producers 1 and 2; the one with id 1 fails
	if h.Hits() != 1 || len(failed) != 1 {
		t.Fatalf("fault hit %d times, %d batches failed (%v); want 1 and 1", h.Hits(), len(failed), failed)
	}
	for r := 1; r <= 6; r++ {
		round(r, 3)
	}
	if len(failed) != 1 {
		t.Errorf("batches failed after the first: %v", failed[1:])
	}

	// Every accepted eval becomes visible to read_committed readers (the
	// failed transaction is aborted, not left open), the failed one never.
	testkit.WaitFor(t, 10*time.Second, "every accepted eval on the log", func() bool {
		seen := map[string]events.Position{}
		for _, ev := range testkit.ReadEvents(t, emb.Addrs(), cfg.Topics.Events()).OfType(events.EvalSubmitted) {
			seen[ev.Data.(events.EvalSubmittedData).EvalID] = ev.Position
		}
		if _, ok := seen[failed[0]]; ok {
			t.Fatalf("failed batch %s is on the log", failed[0])
		}
		for id, pos := range accepted {
			if seen[id] != pos {
				return false
			}
		}
		return len(seen) == len(accepted)
	})
}

// Without a broker answering, commands are refused within the produce
// timeout, as 503s.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	emb := testkit.StartBroker(t)
	cfg := testkit.Config(t)
	cfg.ProduceTimeout = time.Second
	_, svc := testkit.StartIngest(t, cfg, emb.Addrs())
	ctx := ctxFor(t, 30*time.Second)
	if _, err := svc.CreatePool(ctx, ingest.CreatePool{ID: "u"}); err != nil {
		t.Fatal(err)
	}
	// Every produce request fails as a timeout would.
	emb.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})
	for name, cmd := range map[string]func() error{
		"eval": func() error { _, err := svc.SubmitEval(ctx, "u", ingest.SubmitEval{ID: "x"}); return err },
		"batch": func() error {
			_, err := svc.SubmitEvals(ctx, "u", []ingest.SubmitEval{{ID: "y"}, {ID: "z"}})
			return err
		},
	} {
		start := time.Now()
		err := cmd()
		e := ingest.AsError(err)
		if e == nil || e.Status != http.StatusServiceUnavailable || e.RetryAfter < 1 || e.Code != "kafka_unavailable" {
			t.Errorf("%s: %v, want 503 kafka_unavailable with Retry-After", name, err)
		}
		if took := time.Since(start); took > cfg.ProduceTimeout+2500*time.Millisecond { // 5s before the fix
			t.Errorf("%s: refused after %s", name, took)
		}
	}
	// Nothing reached the log (a batch's aborted transaction leaves only
	// its abort marker).
	if n := len(testkit.ReadEvents(t, emb.Addrs(), cfg.Topics.Events()).OfType(events.EvalSubmitted)); n != 0 {
		t.Errorf("%d eval.submitted events, want 0", n)
	}
}

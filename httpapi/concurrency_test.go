package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/testkit"
)

// twoPools returns two pool ids on different partitions.
func twoPools() (string, string) {
	a := "cc-0"
	for i := 1; ; i++ {
		b := "cc-" + strconv.Itoa(i)
		if events.PartitionFor(a, testkit.EventsPartitions) != events.PartitionFor(b, testkit.EventsPartitions) {
			return a, b
		}
	}
}

// run calls fn(i) for i in [0, n) on workers goroutines and collects the
// answers; a transport error fails the test.
func run(t *testing.T, n, workers int, fn func(i int) (testkit.Response, error)) []testkit.Response {
	t.Helper()
	out := make([]testkit.Response, n)
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				out[i], errs[i] = fn(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	return out
}

func TestConcurrentSubmissions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := twoPools()
	e.createPool(a)
	e.createPool(b)
	const n = 1000
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	rs := run(t, n, 64, func(i int) (testkit.Response, error) {
		pool := []string{a, b}[i%2]
		body := map[string]any{"size": i%5 + 1}
		if i%4 == 0 {
			body["eval_id"] = fmt.Sprintf("given-%d", i) // the others get generated ids
		}
		return testkit.Send(ctx, http.MethodPost, e.base+"/v1/pools/"+pool+"/evals", body)
	})
	answered := make(map[string]string, n) // eval id -> position
	for i, r := range rs {
		if r.Status != http.StatusAccepted || r.JSON["duplicate"] != false {
			t.Fatalf("request %d: %s", i, r)
		}
		answered[r.Str("eval_id")] = r.Str("position")
	}
	if len(answered) != n {
		t.Errorf("%d distinct eval ids answered, want %d", len(answered), n)
	}
	log := e.log().OfType(events.EvalSubmitted)
	if len(log) != n {
		t.Fatalf("%d eval.submitted events, want %d", len(log), n)
	}
	seen := make(map[string]bool, n)
	for _, ev := range log {
		id := data[events.EvalSubmittedData](t, ev).EvalID
		if seen[id] {
			t.Errorf("eval %s twice on the log", id)
		}
		seen[id] = true
		if answered[id] != ev.Position.String() {
			t.Errorf("eval %s answered at %q, on the log at %s", id, answered[id], ev.Position)
		}
		if want := events.PartitionFor(ev.Pool, testkit.EventsPartitions); ev.Position.Partition != want {
			t.Errorf("eval %s of pool %s on partition %d, want %d", id, ev.Pool, ev.Position.Partition, want)
		}
	}
}

func TestDuplicateEval(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := twoPools()
	e.createPool(a)
	e.createPool(b)
	first := e.submitEval(a, map[string]any{"eval_id": "once", "size": 2})

	// Same id again, even with other content: 200, duplicate, the first
	// position, nothing appended.
	before := e.ends()
	for _, body := range []map[string]any{{"eval_id": "once", "size": 2}, {"eval_id": "once", "size": 7, "payload": []int{1}}} {
		r := e.expect(e.do(http.MethodPost, "/v1/pools/"+a+"/evals", body), http.StatusOK)
		if r.JSON["duplicate"] != true || r.Str("position") != first.Str("position") || r.Str("eval_id") != "once" {
			t.Errorf("second submission: %s, want duplicate at %s", r, first.Str("position"))
		}
	}
	r := e.expect(e.do(http.MethodPost, "/v1/pools/"+a+"/evals/batch", map[string]any{"evals": []map[string]any{{"eval_id": "once"}}}), http.StatusAccepted)
	if want := `"duplicate":true,"eval_id":"once","pool_id":"` + a + `","position":"` + first.Str("position") + `"`; !bytes.Contains(r.Body, []byte(want)) {
		t.Errorf("batch with a known id: %s, want %s", r, want)
	}
	e.nothingAppended(before, "duplicate submissions")

	// Ids are per pool: the same id in another pool is a new eval.
	other := e.submitEval(b, map[string]any{"eval_id": "once"})
	if other.JSON["duplicate"] != false || other.Str("position") == first.Str("position") {
		t.Errorf("same id in another pool: %s", other)
	}
	if n := len(e.log().OfType(events.EvalSubmitted)); n != 2 {
		t.Errorf("%d eval.submitted events, want 2", n)
	}
}

func TestConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createPool("dup")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	// 20 submissions of one id at once: exactly one is accepted.
	rs := run(t, 20, 20, func(int) (testkit.Response, error) {
		return testkit.Send(ctx, http.MethodPost, e.base+"/v1/pools/dup/evals", map[string]any{"eval_id": "same", "size": 3})
	})
	accepted, pos := 0, ""
	for _, r := range rs {
		switch r.Status {
		case http.StatusAccepted:
			accepted++
			pos = r.Str("position")
		case http.StatusOK:
			if r.JSON["duplicate"] != true {
				t.Errorf("200 without duplicate: %s", r)
			}
		default:
			t.Errorf("answer %s", r)
		}
	}
	if accepted != 1 {
		t.Fatalf("%d submissions accepted, want 1", accepted)
	}
	for _, r := range rs {
		if r.Str("position") != pos {
			t.Errorf("answer at %s, want %s for every submission", r.Str("position"), pos)
		}
	}

	// Singles and batches racing for one id: one eval.
	rs = run(t, 20, 20, func(i int) (testkit.Response, error) {
		if i%2 == 0 {
			return testkit.Send(ctx, http.MethodPost, e.base+"/v1/pools/dup/evals", map[string]any{"eval_id": "raced"})
		}
		return testkit.Send(ctx, http.MethodPost, e.base+"/v1/pools/dup/evals/batch", map[string]any{"evals": []map[string]any{
			{"eval_id": "raced"}, {"eval_id": "own-" + strconv.Itoa(i)}}})
	})
	for _, r := range rs {
		if r.Status != http.StatusOK && r.Status != http.StatusAccepted {
			t.Errorf("answer %s", r)
		}
	}

	counts := make(map[string]int)
	for _, ev := range e.log().OfType(events.EvalSubmitted) {
		counts[data[events.EvalSubmittedData](t, ev).EvalID]++
	}
	if counts["same"] != 1 || counts["raced"] != 1 || len(counts) != 2+10 {
		t.Errorf("eval.submitted per id: %v; want same and raced once, and 10 own-*", counts)
	}
}

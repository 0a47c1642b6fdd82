package livestate

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/state"
)

// history is a c1m-like stream as decoded from the log: a pool, workers
// with datasets, evals (some with a dataset and a payload), their
// placements, and some completions.
func history(tb testing.TB, workers, evals int) []events.Envelope {
	tb.Helper()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	pool := "c1m"
	var out []events.Envelope
	add := func(d events.Data) {
		rec, err := events.Record("line.events", events.New(pool, at, d))
		if err != nil {
			tb.Fatal(err)
		}
		e, err := events.FromRecord(rec) // strings as decoded, not shared
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, e)
	}
	add(events.PoolCreatedData{Strategy: events.Spread})
	deadline := at.Add(6 * time.Hour)
	for w := range workers {
		id := fmt.Sprintf("worker-%05d", w)
		add(events.WorkerRegisteredData{WorkerID: id, Capacity: int64(evals/workers + 2), Topic: "line.allocs." + pool + "." + id,
			Deadline: deadline, Datasets: []string{fmt.Sprintf("ds-%04d", w%1000)}, ReplicaDeadline: deadline})
	}
	for i := range evals {
		ds := ""
		if i%5 == 0 {
			ds = fmt.Sprintf("ds-%04d", i%1000)
		}
		var payload []byte
		if i%2 == 0 {
			payload = []byte(fmt.Sprintf(`{"job":%d,"args":["--shard","%d"]}`, i, i))
		}
		id := events.NewULID(at.Add(time.Duration(i)))
		add(events.EvalSubmittedData{EvalID: id, DatasetID: ds, Size: 1, Payload: payload})
		w := fmt.Sprintf("worker-%05d", i%workers)
		add(events.AllocPlacedData{AllocID: "a-" + id, EvalID: id, WorkerID: w, DatasetID: ds, Size: 1, Attempt: 1,
			Deadline: deadline, Topic: "line.allocs." + pool + "." + w, Strategy: events.Spread, Locality: events.LocalityNone,
			Candidates: workers, WaitedMs: 12, Basis: int64(i)})
		if i%3 == 0 {
			add(events.AllocCompletedData{AllocID: "a-" + id, Status: events.Succeeded, Message: "done: exit 0 after a while"})
		}
	}
	return out
}

// fold applies hs as the Follower does, slimmed or not.
func fold(hs []events.Envelope, slimmed bool) *state.State {
	st := state.New()
	var sl slimmer
	for i, e := range hs {
		if slimmed {
			sl.slim(&e)
			share(st, &e)
		}
		_ = st.Apply(e, events.Position{Offset: int64(i)})
	}
	return st
}

// TestSlimFoldsTheSame: the slimmed events apply exactly as the originals:
// same rejections, statuses, capacities, positions.
func TestSlimFoldsTheSame(t *testing.T) {
	hs := history(t, 50, 2000)
	// Repeats and invalid events must be rejected alike.
	hs = append(hs, hs[60], hs[61], hs[len(hs)-1])
	full, slim := fold(hs, false), fold(hs, true)
	if full.Applied != slim.Applied || full.Rejected != slim.Rejected || full.Rejected != 3 {
		t.Fatalf("applied/rejected: full %d/%d, slimmed %d/%d (want 3 rejected)", full.Applied, full.Rejected, slim.Applied, slim.Rejected)
	}
	fp, sp := full.Pool("c1m"), slim.Pool("c1m")
	if fp.NumEvals() != sp.NumEvals() || fp.NumWorkers() != sp.NumWorkers() || fp.Queue().Len() != sp.Queue().Len() {
		t.Fatalf("pool sizes differ")
	}
	for _, w := range fp.Workers() {
		s := sp.Worker(w.ID)
		if s == nil || s.Used != w.Used || s.Capacity != w.Capacity || s.NumRunning() != w.NumRunning() || len(s.Replicas) != len(w.Replicas) {
			t.Errorf("worker %s: full %+v, slimmed %+v", w.ID, w, s)
		}
	}
	for _, ev := range fp.Evals() {
		s := sp.Eval(ev.ID)
		if s == nil || s.Status() != ev.Status() || s.Position != ev.Position || s.AllocID != ev.AllocID || s.Size != ev.Size || s.DatasetID != ev.DatasetID {
			t.Errorf("eval %s: full %+v, slimmed %+v", ev.ID, ev, s)
		}
		if s != nil && len(s.Payload()) != 0 {
			t.Errorf("eval %s keeps its payload in the slimmed fold", ev.ID)
		}
	}
	for _, a := range fp.Allocs() {
		s := sp.Alloc(a.ID)
		if s == nil || s.Status() != a.Status() || s.WorkerID() != a.WorkerID() || s.Topic() != a.Topic() || s.Placement().Locality != a.Placement().Locality {
			t.Errorf("alloc %s: full %+v, slimmed %+v", a.ID, a, s)
		}
	}
}

// BenchmarkFoldMemory reports the heap the live fold keeps per eval (each
// submitted and placed, a third completed), with and without slimming.
// Run with -benchtime=1x.
func BenchmarkFoldMemory(b *testing.B) {
	const workers, evals = 5000, 200_000
	for _, slimmed := range []bool{false, true} {
		b.Run(fmt.Sprintf("slim=%v", slimmed), func(b *testing.B) {
			for range b.N {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				hs := history(b, workers, evals)
				st := fold(hs, slimmed)
				hs = nil
				runtime.GC()
				runtime.ReadMemStats(&after)
				runtime.KeepAlive(st)
				b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/evals, "B/eval")
			}
		})
	}
}

package state

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/line-sched/line/events"
)

// Tests of the indexes the scheduler relies on (TTL index, retry set, size
// lists of the queue), of Dump and of Check. Helpers are prefixed with tt.

var ttT0 = time.Date(2026, 11, 26, 19, 0, 0, 0, time.UTC)

func ttAt(n int) time.Time { return ttT0.Add(time.Duration(n) * time.Second) }

type ttFold struct {
	t   *testing.T
	s   *State
	off int64
	log []events.Envelope
}

func ttNew(t *testing.T) *ttFold {
	f := &ttFold{t: t, s: New()}
	f.ok(ttAt(0), events.PoolCreatedData{Strategy: events.Spread})
	return f
}

func (f *ttFold) ok(at time.Time, d events.Data) {
	f.t.Helper()
	e := events.Envelope{ID: fmt.Sprint(f.off), Type: d.EventType(), V: events.SchemaVersion, Pool: "p", At: at, Data: d}
	f.log = append(f.log, e)
	if err := f.s.Apply(e, events.Position{Offset: f.off}); err != nil {
		f.t.Fatalf("%s: %v", d.EventType(), err)
	}
	f.off++
	if err := f.s.Check(); err != nil {
		f.t.Fatalf("after %s: %v", d.EventType(), err)
	}
}

func (f *ttFold) p() *Pool { return f.s.Pool("p") }

// due lists the entries due at now as "kind:id@seconds".
func (f *ttFold) due(now time.Time) string {
	var out []string
	f.p().TTL().Due(now, func(e TTLEntry) bool {
		id := ""
		switch e.Kind {
		case TTLAlloc:
			id = e.Alloc.ID
		case TTLWorker:
			id = e.Worker.ID
		case TTLReplica:
			id = e.Dataset + ":" + e.Worker.ID
		}
		out = append(out, fmt.Sprintf("%s:%s@%d", e.Kind, id, int(e.Deadline.Sub(ttT0)/time.Second)))
		return true
	})
	return strings.Join(out, " ")
}

func ttWorker(id string, capacity int64, deadline, replicas time.Time, datasets ...string) events.WorkerRegisteredData {
	return events.WorkerRegisteredData{WorkerID: id, Capacity: capacity, Topic: "t." + id, Deadline: deadline,
		Datasets: datasets, ReplicaDeadline: replicas}
}

func ttPlace(alloc, eval, worker string, size int64, attempt int, deadline time.Time) events.AllocPlacedData {
	return events.AllocPlacedData{AllocID: alloc, EvalID: eval, WorkerID: worker, Size: size, Attempt: attempt,
		Deadline: deadline, Strategy: events.Spread, Locality: events.LocalityNone}
}

func TestTTLIndexFollowsDeadlines(t *testing.T) {
	f := ttNew(t)
	f.ok(ttAt(0), ttWorker("a", 10, ttAt(30), ttAt(20), "d1", "d2"))
	f.ok(ttAt(0), ttWorker("b", 10, ttAt(30), ttAt(25)))
	f.ok(ttAt(1), events.EvalSubmittedData{EvalID: "e1", Size: 1})
	f.ok(ttAt(1), events.EvalSubmittedData{EvalID: "e2", Size: 1})
	f.ok(ttAt(1), ttPlace("x1", "e1", "a", 1, 1, ttAt(10)))
	f.ok(ttAt(1), ttPlace("x2", "e2", "b", 1, 1, ttAt(10)))
	if next, ok := f.p().TTL().Next(); !ok || !next.Equal(ttAt(10)) {
		t.Fatalf("next deadline %v %v", next, ok)
	}
	want := "alloc:x1@10 alloc:x2@10 replica:d1:a@20 replica:d2:a@20 worker:a@30 worker:b@30"
	if got := f.due(ttAt(30)); got != want {
		t.Fatalf("due = %s\nwant %s", got, want)
	}
	if got := f.due(ttAt(9)); got != "" {
		t.Fatalf("due before any deadline: %s", got)
	}
	// A heartbeat moves deadlines forward only; a new dataset is added.
	f.ok(ttAt(5), events.WorkerHeartbeatData{WorkerID: "a", Deadline: ttAt(40), Datasets: []string{"d1", "d3"},
		ReplicaDeadline: ttAt(35), Allocs: []string{"x1", "x2"}, AllocDeadline: ttAt(15)})
	f.ok(ttAt(6), events.WorkerHeartbeatData{WorkerID: "b", Deadline: ttAt(20), ReplicaDeadline: ttAt(1), AllocDeadline: ttAt(1)})
	want = "alloc:x2@10 alloc:x1@15 replica:d2:a@20 worker:b@30 replica:d1:a@35 replica:d3:a@35 worker:a@40"
	if got := f.due(ttAt(100)); got != want {
		t.Fatalf("due = %s\nwant %s", got, want)
	}
	f.ok(ttAt(7), events.AllocCompletedData{AllocID: "x1", Status: events.Succeeded})
	f.ok(ttAt(11), events.AllocExpiredData{AllocID: "x2", Reason: "r"})
	f.ok(ttAt(21), events.ReplicaExpiredData{WorkerID: "a", DatasetID: "d2", Deadline: ttAt(20)})
	f.ok(ttAt(31), events.WorkerExpiredData{WorkerID: "b", Deadline: ttAt(30)})
	want = "replica:d1:a@35 replica:d3:a@35 worker:a@40"
	if got := f.due(ttAt(100)); got != want {
		t.Fatalf("due = %s\nwant %s", got, want)
	}
	f.ok(ttAt(41), events.WorkerExpiredData{WorkerID: "a", Deadline: ttAt(40)})
	if n := f.p().TTL().Len(); n != 0 {
		t.Fatalf("%d entries left", n)
	}
	if _, ok := f.p().TTL().Next(); ok {
		t.Fatal("next deadline in an empty index")
	}
}

func TestTTLIndexClearedByPoolDeleted(t *testing.T) {
	f := ttNew(t)
	f.ok(ttAt(0), ttWorker("a", 10, ttAt(30), ttAt(20), "d1"))
	f.ok(ttAt(1), events.EvalSubmittedData{EvalID: "e1", Size: 1})
	f.ok(ttAt(1), ttPlace("x1", "e1", "a", 1, 1, ttAt(10)))
	f.ok(ttAt(2), events.AllocExpiredData{AllocID: "x1", Reason: "r"})
	f.ok(ttAt(3), events.PoolDisbandedData{DeleteAt: ttAt(4)})
	f.ok(ttAt(4), events.PoolDeletedData{})
	if f.p().TTL().Len() != 0 || f.p().NumAwaitingRetry() != 0 || f.p().Queue().Len() != 0 {
		t.Fatal("indexes survive pool.deleted")
	}
}

func TestRetrySetInExpiryOrder(t *testing.T) {
	f := ttNew(t)
	f.ok(ttAt(0), ttWorker("a", 10, ttAt(300), ttAt(300)))
	for _, e := range []string{"e1", "e2", "e3"} {
		f.ok(ttAt(1), events.EvalSubmittedData{EvalID: e, Size: 1})
		f.ok(ttAt(1), ttPlace("x"+e, e, "a", 1, 1, ttAt(10)))
	}
	f.ok(ttAt(2), events.AllocExpiredData{AllocID: "xe3", Reason: "r"})
	f.ok(ttAt(2), events.AllocExpiredData{AllocID: "xe1", Reason: "r"})
	f.ok(ttAt(2), events.AllocCompletedData{AllocID: "xe2", Status: events.Failed})
	ids := func() string {
		var out []string
		for _, e := range f.p().AwaitingRetryEvals() {
			out = append(out, e.ID)
		}
		return strings.Join(out, " ")
	}
	if got := ids(); got != "e3 e1" {
		t.Fatalf("awaiting retry = %q", got)
	}
	f.ok(ttAt(3), events.EvalRequeuedData{EvalID: "e3", AllocID: "xe3", Attempt: 2, Reason: "r"})
	if got := ids(); got != "e1" {
		t.Fatalf("awaiting retry = %q", got)
	}
	f.ok(ttAt(3), events.EvalDeadLetteredData{EvalID: "e1", AllocID: "xe1", Attempts: 1, Reason: "r"})
	if got := ids(); got != "" {
		t.Fatalf("awaiting retry = %q", got)
	}
	// Requeued: placed again, expired again, rejected.
	f.ok(ttAt(4), ttPlace("ye3", "e3", "a", 1, 2, ttAt(10)))
	f.ok(ttAt(5), events.AllocExpiredData{AllocID: "ye3", Reason: "r"})
	f.ok(ttAt(5), events.EvalRejectedData{EvalID: "e3", Reason: "pool disbanded"})
	if f.p().NumAwaitingRetry() != 0 {
		t.Fatal("rejected eval still awaits retry")
	}
}

func TestQueueSizeLists(t *testing.T) {
	f := ttNew(t)
	f.ok(ttAt(0), ttWorker("a", 10, ttAt(300), ttAt(300)))
	sizes := map[string]int64{"e1": 3, "e2": 1, "e3": 3, "e4": 7, "e5": 1, "e6": 3}
	for _, e := range []string{"e1", "e2", "e3", "e4", "e5", "e6"} {
		f.ok(ttAt(1), events.EvalSubmittedData{EvalID: e, Size: sizes[e]})
	}
	q := f.p().Queue()
	list := func(lo, hi int64) string {
		var out []string
		q.Sizes(lo, hi, func(size int64, n int, first *Eval) bool {
			var ids []string
			for e := first; e != nil; e = q.NextOfSize(e) {
				ids = append(ids, e.ID)
			}
			out = append(out, fmt.Sprintf("%d(%d):%s", size, n, strings.Join(ids, ",")))
			return true
		})
		return strings.Join(out, " ")
	}
	if got := list(0, 100); got != "1(2):e2,e5 3(3):e1,e3,e6 7(1):e4" {
		t.Fatalf("sizes = %s", got)
	}
	if got := list(2, 6); got != "3(3):e1,e3,e6" {
		t.Fatalf("sizes in [2,6] = %s", got)
	}
	if lo, _ := q.MinSize(); lo != 1 {
		t.Fatalf("min size %d", lo)
	}
	if hi, _ := q.MaxSize(); hi != 7 {
		t.Fatalf("max size %d", hi)
	}
	f.ok(ttAt(2), ttPlace("x3", "e3", "a", 3, 1, ttAt(10)))
	f.ok(ttAt(2), ttPlace("x4", "e4", "a", 7, 1, ttAt(10)))
	if got := list(0, 100); got != "1(2):e2,e5 3(2):e1,e6" {
		t.Fatalf("sizes = %s", got)
	}
	if hi, _ := q.MaxSize(); hi != 3 {
		t.Fatalf("max size %d", hi)
	}
	// A requeued eval goes to the back of its size list too.
	f.ok(ttAt(3), events.AllocExpiredData{AllocID: "x3", Reason: "r"})
	f.ok(ttAt(3), events.EvalRequeuedData{EvalID: "e3", AllocID: "x3", Attempt: 2, Reason: "r"})
	if got := list(0, 100); got != "1(2):e2,e5 3(3):e1,e6,e3" {
		t.Fatalf("sizes = %s", got)
	}
	e1, e3 := f.p().Eval("e1"), f.p().Eval("e3")
	if e1.QueueSeq() >= e3.QueueSeq() {
		t.Fatalf("queue seq %d, %d", e1.QueueSeq(), e3.QueueSeq())
	}
	if q.NextOfSize(f.p().Eval("e4")) != nil {
		t.Fatal("next of a placed eval")
	}
}

func TestDumpIsCanonical(t *testing.T) {
	build := func(zone *time.Location) *ttFold {
		f := ttNew(t)
		at := func(n int) time.Time { return ttAt(n).In(zone) }
		f.ok(at(0), ttWorker("b", 10, at(30), at(20), "d2", "d1"))
		f.ok(at(0), ttWorker("a", 5, at(30), at(20), "d1"))
		for i, size := range []int64{2, 1, 4, 3} {
			f.ok(at(1), events.EvalSubmittedData{EvalID: fmt.Sprintf("e%d", 4-i), Size: size, DatasetID: "d1", Payload: []byte(`{"k":1}`)})
		}
		f.ok(at(2), ttPlace("x1", "e1", "b", 3, 1, at(10)))
		f.ok(at(2), ttPlace("x2", "e2", "a", 4, 1, at(10)))
		f.ok(at(3), events.AllocExpiredData{AllocID: "x2", Reason: "r"})
		f.ok(at(3), events.AllocCompletedData{AllocID: "x1", Status: events.Succeeded, Message: "done"})
		return f
	}
	a, b := build(time.UTC), build(time.FixedZone("x", 3600))
	da, db := Dump(a.s), Dump(b.s)
	if !bytes.Equal(da, db) {
		t.Fatalf("dumps differ across time zones:\n%s\n%s", da, db)
	}
	for range 5 {
		if !bytes.Equal(Dump(a.s), da) {
			t.Fatal("dump not stable")
		}
	}
	// Replaying the log gives the same dump; one more event changes it.
	s := New()
	for i, e := range a.log {
		_ = s.Apply(e, events.Position{Offset: int64(i)})
	}
	if !bytes.Equal(Dump(s), da) {
		t.Fatalf("replay dump differs")
	}
	a.ok(ttAt(4), events.EvalRejectedData{EvalID: "e3", Reason: "r"})
	if bytes.Equal(Dump(a.s), da) {
		t.Fatal("dump did not change with the state")
	}
	for _, want := range []string{`"queue":["e4","e3"]`, `"awaiting_retry":["e2"]`, `"replicas":{"d1":"2026-11-26T19:00:20Z","d2":"2026-11-26T19:00:20Z"}`} {
		if !bytes.Contains(da, []byte(want)) {
			t.Fatalf("dump lacks %s:\n%s", want, da)
		}
	}
	if !bytes.Equal(DumpPool(a.p()), DumpPool(a.s.Pool("p"))) {
		t.Fatal("DumpPool not stable")
	}
}

func TestCheckFindsCorruption(t *testing.T) {
	f := ttNew(t)
	f.ok(ttAt(0), ttWorker("a", 10, ttAt(30), ttAt(20), "d1"))
	f.ok(ttAt(1), events.EvalSubmittedData{EvalID: "e1", Size: 2})
	f.ok(ttAt(1), ttPlace("x1", "e1", "a", 2, 1, ttAt(10)))
	w := f.p().Worker("a")
	w.Used = 11
	err := f.s.Check()
	if err == nil || !strings.Contains(err.Error(), "used 11") {
		t.Fatalf("Check = %v", err)
	}
	w.Used = 2
	w.Deadline = ttAt(99) // behind the TTL index's back
	if err := f.s.Check(); err == nil || !strings.Contains(err.Error(), "TTL entry of worker a stale") {
		t.Fatalf("Check = %v", err)
	}
}

package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/line-sched/line/events"
)

// The helpers of this file are prefixed with fx so that they do not collide
// with helpers of other test files in the package.

var fxT0 = time.Date(2026, 11, 26, 19, 0, 0, 0, time.UTC)

// fxAt is fxT0 plus n seconds.
func fxAt(n int) time.Time { return fxT0.Add(time.Duration(n) * time.Second) }

const fxPool = "p1"

// fxFold applies events to a State the way a consumer does: every event goes
// through events.Marshal and events.Unmarshal first, so the fold sees exactly
// what it would read from the log.
type fxFold struct {
	t   *testing.T
	s   *State
	off int64
	log []fxLogged
}

type fxLogged struct {
	e   events.Envelope
	pos events.Position
}

func fxNew(t *testing.T) *fxFold { return &fxFold{t: t, s: New()} }

func (f *fxFold) envelope(pool string, at time.Time, d events.Data) events.Envelope {
	f.t.Helper()
	e := events.Envelope{ID: fmt.Sprintf("ev%05d", len(f.log)+1), Type: d.EventType(), V: events.SchemaVersion, Pool: pool, At: at, Data: d}
	b, err := events.Marshal(e)
	if err != nil {
		f.t.Fatalf("test event %s does not marshal: %v", d.EventType(), err)
	}
	out, err := events.Unmarshal(b)
	if err != nil {
		f.t.Fatalf("test event does not decode: %v\n%s", err, b)
	}
	return out
}

// apply folds one event and returns Apply's error.
func (f *fxFold) apply(pool string, at time.Time, d events.Data) error {
	f.t.Helper()
	e := f.envelope(pool, at, d)
	pos := events.Position{Partition: 3, Offset: f.off}
	f.off++
	f.log = append(f.log, fxLogged{e, pos})
	return f.s.Apply(e, pos)
}

// ok folds an event that must apply.
func (f *fxFold) ok(pool string, at time.Time, d events.Data) {
	f.t.Helper()
	if err := f.apply(pool, at, d); err != nil {
		f.t.Fatalf("%s %+v: %v", d.EventType(), d, err)
	}
}

// reject folds an event that must not apply: Apply returns a *Rejection
// naming the event whose reason contains reason, the counters move, and
// nothing else changes.
func (f *fxFold) reject(pool string, at time.Time, d events.Data, reason string) {
	f.t.Helper()
	before := fxSnapshot(f.s)
	applied, rejected := f.s.Applied, f.s.Rejected
	err := f.apply(pool, at, d)
	var r *Rejection
	if !errors.As(err, &r) {
		f.t.Fatalf("%s %+v: err = %v, want a *Rejection", d.EventType(), d, err)
	}
	if r.Type != d.EventType() || r.Pool != pool || !strings.Contains(r.Reason, reason) {
		f.t.Errorf("rejection = %+v, want type %s, pool %s, reason containing %q", r, d.EventType(), pool, reason)
	}
	if !strings.Contains(r.Error(), r.Reason) || !strings.Contains(r.Error(), string(r.Type)) {
		f.t.Errorf("Rejection.Error() = %q", r.Error())
	}
	if after := fxSnapshot(f.s); after != before {
		f.t.Errorf("rejected %s changed the state:\n%s", d.EventType(), fxDiff(before, after))
	}
	if f.s.Applied != applied+1 || f.s.Rejected != rejected+1 {
		f.t.Errorf("counters after a rejection: applied %d->%d, rejected %d->%d", applied, f.s.Applied, rejected, f.s.Rejected)
	}
}

func (f *fxFold) pool() *Pool {
	f.t.Helper()
	p := f.s.Pool(fxPool)
	if p == nil {
		f.t.Fatalf("pool %s missing", fxPool)
	}
	return p
}

func (f *fxFold) worker(id string) *Worker {
	f.t.Helper()
	w := f.pool().Worker(id)
	if w == nil {
		f.t.Fatalf("worker %s missing", id)
	}
	return w
}

func (f *fxFold) eval(id string) *Eval {
	f.t.Helper()
	e := f.pool().Eval(id)
	if e == nil {
		f.t.Fatalf("eval %s missing", id)
	}
	return e
}

func (f *fxFold) alloc(id string) *Alloc {
	f.t.Helper()
	a := f.pool().Alloc(id)
	if a == nil {
		f.t.Fatalf("alloc %s missing", id)
	}
	return a
}

// Event builders with valid defaults.

func fxCreated(s events.Strategy) events.PoolCreatedData {
	return events.PoolCreatedData{Strategy: s, LocalityWaitMs: 2500}
}

func fxRegistered(id string, capacity int64, deadline time.Time, datasets ...string) events.WorkerRegisteredData {
	return events.WorkerRegisteredData{WorkerID: id, Capacity: capacity, Topic: "line.allocs." + fxPool + "." + id,
		Deadline: deadline, Datasets: datasets, ReplicaDeadline: deadline.Add(30 * time.Second)}
}

func fxHeartbeat(id string, deadline time.Time, datasets []string, allocs ...string) events.WorkerHeartbeatData {
	return events.WorkerHeartbeatData{WorkerID: id, Deadline: deadline, Datasets: datasets, ReplicaDeadline: deadline.Add(30 * time.Second),
		Allocs: allocs, AllocDeadline: deadline.Add(30 * time.Second)}
}

func fxSubmitted(id string, size int64, dataset string) events.EvalSubmittedData {
	return events.EvalSubmittedData{EvalID: id, Size: size, DatasetID: dataset, Payload: json.RawMessage(`{"eval":"` + id + `"}`)}
}

func fxPlaced(alloc, eval, worker string, size int64, attempt int, deadline time.Time) events.AllocPlacedData {
	return events.AllocPlacedData{AllocID: alloc, EvalID: eval, WorkerID: worker, Size: size, Attempt: attempt,
		Deadline: deadline, Topic: "line.allocs." + fxPool + "." + worker, Strategy: events.Spread,
		Locality: events.LocalityNone, Candidates: 2, WaitedMs: 7}
}

func fxCompleted(alloc string) events.AllocCompletedData {
	return events.AllocCompletedData{AllocID: alloc, Status: events.Succeeded}
}

func fxExpired(alloc string) events.AllocExpiredData {
	return events.AllocExpiredData{AllocID: alloc, Reason: "no heartbeat"}
}

// fxSample is a valid event of each type, for tests that only need "some
// event of type t".
func fxSample(t events.Type) events.Data {
	switch t {
	case events.PoolCreated:
		return fxCreated(events.Spread)
	case events.PoolDisbanded:
		return events.PoolDisbandedData{DeleteAt: fxAt(3600)}
	case events.PoolDeleted:
		return events.PoolDeletedData{}
	case events.WorkerRegistered:
		return fxRegistered("w9", 4, fxAt(100), "d9")
	case events.WorkerHeartbeat:
		return fxHeartbeat("w1", fxAt(100), []string{"d1"}, "a1")
	case events.WorkerExpired:
		return events.WorkerExpiredData{WorkerID: "w1", Deadline: fxAt(30)}
	case events.ReplicaExpired:
		return events.ReplicaExpiredData{WorkerID: "w1", DatasetID: "d1", Deadline: fxAt(60)}
	case events.EvalSubmitted:
		return fxSubmitted("e9", 1, "")
	case events.EvalRejected:
		return events.EvalRejectedData{EvalID: "e1", Reason: "pool disbanded"}
	case events.EvalRequeued:
		return events.EvalRequeuedData{EvalID: "e1", AllocID: "a1", Attempt: 2, Reason: "alloc expired"}
	case events.EvalDeadLettered:
		return events.EvalDeadLetteredData{EvalID: "e1", AllocID: "a1", Attempts: 1, Reason: "max retries"}
	case events.AllocPlaced:
		return fxPlaced("a9", "e1", "w1", 1, 1, fxAt(100))
	case events.AllocCompleted:
		return fxCompleted("a1")
	case events.AllocExpired:
		return fxExpired("a1")
	}
	panic("no sample for " + string(t))
}

// fxSnapshot renders everything the fold keeps, except the counters, in a
// deterministic text: two states are the same when their snapshots are.
func fxSnapshot(s *State) string {
	var b strings.Builder
	ft := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	for _, p := range s.Pools() {
		fmt.Fprintf(&b, "pool %s status=%s strategy=%s wait=%v created=%s disbanded=%s delete_at=%s deleted=%s\n",
			p.ID, p.Status, p.Strategy, p.LocalityWait, ft(p.CreatedAt), ft(p.DisbandedAt), ft(p.DeleteAt), ft(p.DeletedAt))
		fmt.Fprintf(&b, " counts workers=%d evals=%d\n", p.NumWorkers(), p.NumEvals())
		for _, w := range p.Workers() {
			fmt.Fprintf(&b, " worker %s cap=%d used=%d free=%d deadline=%s topic=%s registered=%s\n",
				w.ID, w.Capacity, w.Used, w.Free(), ft(w.Deadline), w.Topic, ft(w.RegisteredAt))
			for _, ds := range w.Datasets() {
				fmt.Fprintf(&b, "  replica %s until %s\n", ds, ft(w.Replicas[ds]))
			}
			for _, a := range w.RunningAllocs() {
				fmt.Fprintf(&b, "  running %s\n", a.ID)
			}
		}
		for _, e := range p.Evals() {
			fmt.Fprintf(&b, " eval %s ds=%s size=%d payload=%s status=%s attempts=%d next=%d alloc=%s submitted=%s queued=%s ended=%s reason=%q result=%s pos=%s\n",
				e.ID, e.DatasetID, e.Size, e.Payload(), e.Status(), e.Attempts, e.NextAttempt, e.AllocID,
				ft(e.SubmittedAt()), ft(e.QueuedAt()), ft(e.EndedAt()), e.Reason(), e.Result(), e.Position)
		}
		for _, a := range p.Allocs() {
			pl := a.PlacedData()
			fmt.Fprintf(&b, " alloc %s eval=%s worker=%s ds=%s size=%d attempt=%d deadline=%s status=%s placed=%s ended=%s topic=%s expiry=%q\n",
				a.ID, a.EvalID, a.WorkerID(), a.DatasetID, a.Size, a.Attempt, ft(a.Deadline()), a.Status(), ft(a.PlacedAt()), ft(a.EndedAt()), a.Topic(), a.ExpiryReason())
			fmt.Fprintf(&b, "  placement %s %s %s %s %d %d %s %s %s %s %d %d\n", pl.AllocID, pl.EvalID, pl.WorkerID, pl.DatasetID,
				pl.Size, pl.Attempt, ft(pl.Deadline), pl.Topic, pl.Strategy, pl.Locality, pl.Candidates, pl.WaitedMs)
			if c := a.Completion(); c != nil {
				code := "-"
				if c.ExitCode != nil {
					code = fmt.Sprint(*c.ExitCode)
				}
				fmt.Fprintf(&b, "  completion %s %s %q\n", c.Status, code, c.Message)
			}
		}
		b.WriteString(" queue")
		for _, e := range p.Queue().Slice() {
			b.WriteString(" " + e.ID)
		}
		fmt.Fprintf(&b, " (len %d)\n free", p.Queue().Len())
		p.Free().Descending(math.MinInt64, func(w *Worker) bool {
			fmt.Fprintf(&b, " %s:%d", w.ID, w.Free())
			return true
		})
		fmt.Fprintf(&b, " (len %d max %d)\n", p.Free().Len(), p.Free().MaxFree())
		datasets := make([]string, 0, len(p.holders))
		for ds := range p.holders {
			datasets = append(datasets, ds)
		}
		slices.Sort(datasets)
		for _, ds := range datasets {
			fmt.Fprintf(&b, " holders %s: %s\n", ds, fxIDs(p.Holders(ds)))
		}
	}
	return b.String()
}

func fxIDs(ws []*Worker) string {
	ids := make([]string, len(ws))
	for i, w := range ws {
		ids[i] = w.ID
	}
	return strings.Join(ids, ",")
}

func fxQueue(p *Pool) string {
	var ids []string
	for _, e := range p.Queue().Slice() {
		ids = append(ids, e.ID)
	}
	return strings.Join(ids, ",")
}

func fxDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out strings.Builder
	for i := 0; i < max(len(al), len(bl)); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			fmt.Fprintf(&out, "- %s\n+ %s\n", x, y)
		}
	}
	return out.String()
}

// fxBase is a pool with two workers (w1 cap 10 holding d1, w2 cap 6
// holding d1 and d2), live until fxAt(100).
func fxBase(t *testing.T) *fxFold {
	f := fxNew(t)
	f.ok(fxPool, fxAt(0), fxCreated(events.Spread))
	f.ok(fxPool, fxAt(1), fxRegistered("w1", 10, fxAt(100), "d1"))
	f.ok(fxPool, fxAt(1), fxRegistered("w2", 6, fxAt(100), "d1", "d2"))
	return f
}

func TestApplyPoolCreated(t *testing.T) {
	f := fxNew(t)
	if f.s.Pool(fxPool) != nil || len(f.s.Pools()) != 0 {
		t.Fatal("new state is not empty")
	}
	f.ok(fxPool, fxAt(5), events.PoolCreatedData{Strategy: events.Binpack, LocalityWaitMs: 2500})
	p := f.pool()
	if p.ID != fxPool || p.Status != PoolActive || p.Strategy != events.Binpack || p.LocalityWait != 2500*time.Millisecond || !p.CreatedAt.Equal(fxAt(5)) {
		t.Errorf("pool = %+v", p)
	}
	if p.NumWorkers() != 0 || p.NumEvals() != 0 || p.Queue().Len() != 0 || p.Free().Len() != 0 || p.Free().MaxFree() != 0 || len(p.Allocs()) != 0 {
		t.Error("new pool is not empty")
	}
	f.reject(fxPool, fxAt(6), fxCreated(events.Spread), "already exists")
	if p.Strategy != events.Binpack {
		t.Error("a rejected pool.created changed the strategy")
	}
	f.ok("p2", fxAt(7), fxCreated(events.Spread))
	if got := f.s.Pools(); len(got) != 2 || got[0].ID != fxPool || got[1].ID != "p2" {
		t.Errorf("Pools() = %v", got)
	}
	if f.s.Applied != 3 || f.s.Rejected != 1 {
		t.Errorf("counters applied=%d rejected=%d, want 3, 1", f.s.Applied, f.s.Rejected)
	}
}

func TestApplyUnknownPool(t *testing.T) {
	f := fxBase(t)
	for _, typ := range events.Types {
		if typ == events.PoolCreated {
			continue
		}
		f.reject("nope", fxAt(10), fxSample(typ), "unknown pool")
	}
	if f.s.Pool("nope") != nil {
		t.Error("events of an unknown pool created it")
	}
}

func TestApplyDataWithoutMeaning(t *testing.T) {
	f := fxBase(t)
	before := fxSnapshot(f.s)
	ptr := &events.EvalSubmittedData{EvalID: "e1", Size: 1}
	for _, e := range []events.Envelope{
		{ID: "x", Type: events.EvalSubmitted, V: 1, Pool: fxPool, At: fxAt(3)},                              // no data
		{ID: "x", Type: events.EvalSubmitted, V: 1, Pool: fxPool, At: fxAt(3), Data: ptr},                   // pointer form
		{ID: "x", Type: events.PoolCreated, V: 1, Pool: "p9", At: fxAt(3), Data: &events.PoolCreatedData{}}, // pointer form
	} {
		err := f.s.Apply(e, events.Position{})
		var r *Rejection
		if !errors.As(err, &r) {
			t.Errorf("Apply(%#v) = %v, want a *Rejection", e.Data, err)
		}
	}
	if after := fxSnapshot(f.s); after != before {
		t.Errorf("events without meaning changed the state:\n%s", fxDiff(before, after))
	}
}

func TestApplyPoolDisbanded(t *testing.T) {
	f := fxBase(t)
	f.ok(fxPool, fxAt(2), fxSubmitted("e1", 2, ""))
	f.ok(fxPool, fxAt(2), fxSubmitted("e2", 3, ""))
	f.ok(fxPool, fxAt(3), fxPlaced("a1", "e1", "w1", 2, 1, fxAt(60)))

	f.ok(fxPool, fxAt(10), events.PoolDisbandedData{DeleteAt: fxAt(3610)})
	p := f.pool()
	if p.Status != PoolDisbanded || !p.DisbandedAt.Equal(fxAt(10)) || !p.DeleteAt.Equal(fxAt(3610)) || !p.DeletedAt.IsZero() {
		t.Errorf("disbanded pool = %+v", p)
	}
	// Pending evals stay pending until the scheduler rejects them.
	if e := f.eval("e2"); e.Status() != EvalPending || fxQueue(p) != "e2" {
		t.Errorf("pending eval after disband: %s, queue %q", e.Status(), fxQueue(p))
	}
	if f.eval("e1").Status() != EvalPlaced || f.alloc("a1").Status() != AllocRunning {
		t.Error("disband touched the running alloc")
	}
	f.reject(fxPool, fxAt(11), events.PoolDisbandedData{DeleteAt: fxAt(9999)}, "pool is disbanded")
	f.reject(fxPool, fxAt(11), fxRegistered("w3", 4, fxAt(100)), "pool is disbanded")

	// An eval submitted after the disband (a race with ingest) is accepted
	// as pending; the scheduler rejects it.
	f.ok(fxPool, fxAt(12), fxSubmitted("e3", 1, ""))
	if e := f.eval("e3"); e.Status() != EvalPending || fxQueue(p) != "e2,e3" {
		t.Errorf("eval submitted in a disbanded pool: %s, queue %q", e.Status(), fxQueue(p))
	}
	// A placement decided before the scheduler saw the disband still
	// applies.
	f.ok(fxPool, fxAt(13), fxPlaced("a2", "e2", "w2", 3, 1, fxAt(70)))
	if f.eval("e2").Status() != EvalPlaced || f.worker("w2").Used != 3 || fxQueue(p) != "e3" {
		t.Error("placement after disband did not apply")
	}
	// Heartbeats, completions and rejections go on.
	f.ok(fxPool, fxAt(14), fxHeartbeat("w1", fxAt(200), nil, "a1"))
	f.ok(fxPool, fxAt(15), fxCompleted("a1"))
	f.ok(fxPool, fxAt(16), events.EvalRejectedData{EvalID: "e3", Reason: "pool disbanded"})
	if f.worker("w1").Used != 0 || f.eval("e3").Status() != EvalRejected || p.Queue().Len() != 0 {
		t.Error("events after disband did not apply")
	}
}

func TestApplyPoolDeleted(t *testing.T) {
	f := fxBase(t)
	f.reject(fxPool, fxAt(2), events.PoolDeletedData{}, "not disbanded")
	f.ok(fxPool, fxAt(2), fxSubmitted("e1", 2, "d1"))
	f.ok(fxPool, fxAt(2), fxSubmitted("e2", 3, ""))
	f.ok(fxPool, fxAt(3), fxPlaced("a1", "e1", "w1", 2, 1, fxAt(60)))
	f.ok(fxPool, fxAt(10), events.PoolDisbandedData{DeleteAt: fxAt(3610)})
	f.ok("p2", fxAt(10), fxCreated(events.Spread))
	f.ok("p2", fxAt(10), fxRegistered("w1", 5, fxAt(100), "d1"))

	f.ok(fxPool, fxAt(3610), events.PoolDeletedData{})
	p := f.s.Pool(fxPool)
	if p == nil {
		t.Fatal("deleted pool forgotten entirely; its id must stay taken")
	}
	if p.Status != PoolDeleted || !p.DeletedAt.Equal(fxAt(3610)) || !p.DisbandedAt.Equal(fxAt(10)) {
		t.Errorf("deleted pool = %+v", p)
	}
	if p.NumWorkers() != 0 || p.NumEvals() != 0 || len(p.Allocs()) != 0 || p.Queue().Len() != 0 ||
		p.Free().Len() != 0 || p.Free().MaxFree() != 0 || len(p.Holders("d1")) != 0 || len(p.holders) != 0 {
		t.Errorf("deleted pool still holds things:\n%s", fxSnapshot(f.s))
	}
	if p.Worker("w1") != nil || p.Eval("e1") != nil || p.Alloc("a1") != nil {
		t.Error("deleted pool still finds its worker, eval or alloc")
	}
	// Every event of the deleted pool is rejected, pool.created too.
	for _, typ := range events.Types {
		reason := "pool deleted"
		if typ == events.PoolCreated {
			reason = "already exists"
		}
		f.reject(fxPool, fxAt(3700), fxSample(typ), reason)
	}
	// Other pools are untouched.
	if q := f.s.Pool("p2"); q == nil || q.Status != PoolActive || q.Worker("w1") == nil || len(q.Holders("d1")) != 1 {
		t.Error("deleting p1 touched p2")
	}
}

func TestApplyWorkerRegistered(t *testing.T) {
	f := fxNew(t)
	f.ok(fxPool, fxAt(0), fxCreated(events.Spread))
	f.ok(fxPool, fxAt(2), fxRegistered("w1", 8, fxAt(32), "d1", "d2"))
	w := f.worker("w1")
	if w.ID != "w1" || w.Capacity != 8 || w.Used != 0 || w.Free() != 8 || !w.Deadline.Equal(fxAt(32)) ||
		w.Topic != "line.allocs.p1.w1" || !w.RegisteredAt.Equal(fxAt(2)) || w.NumRunning() != 0 {
		t.Errorf("worker = %+v", w)
	}
	if got := w.Datasets(); !slices.Equal(got, []string{"d1", "d2"}) {
		t.Errorf("datasets = %v", got)
	}
	for _, ds := range []string{"d1", "d2"} {
		if !w.Replicas[ds].Equal(fxAt(62)) {
			t.Errorf("replica %s deadline = %v, want the replica deadline %v", ds, w.Replicas[ds], fxAt(62))
		}
		if got := fxIDs(f.pool().Holders(ds)); got != "w1" {
			t.Errorf("holders of %s = %q", ds, got)
		}
	}
	if f.pool().Free().Len() != 1 || f.pool().Free().MaxFree() != 8 {
		t.Error("worker not in the free index")
	}
	f.reject(fxPool, fxAt(3), fxRegistered("w1", 99, fxAt(300)), "already registered")
	f.ok(fxPool, fxAt(3), fxRegistered("w2", 1, fxAt(300)))
	if w2 := f.worker("w2"); len(w2.Replicas) != 0 || len(w2.Datasets()) != 0 {
		t.Errorf("worker registered without datasets holds %v", w2.Datasets())
	}
	if got := fxIDs(f.pool().Workers()); got != "w1,w2" {
		t.Errorf("Workers() = %s", got)
	}
}

func TestApplyWorkerHeartbeat(t *testing.T) {
	f := fxBase(t)
	f.ok(fxPool, fxAt(2), fxSubmitted("e1", 2, ""))
	f.ok(fxPool, fxAt(2), fxSubmitted("e2", 1, ""))
	f.ok(fxPool, fxAt(2), fxSubmitted("e3", 1, ""))
	f.ok(fxPool, fxAt(3), fxPlaced("a1", "e1", "w1", 2, 1, fxAt(60)))
	f.ok(fxPool, fxAt(3), fxPlaced("a2", "e2", "w2", 1, 1, fxAt(60)))
	f.ok(fxPool, fxAt(3), fxPlaced("a3", "e3", "w1", 1, 1, fxAt(60)))
	f.ok(fxPool, fxAt(4), fxCompleted("a3"))

	// Forward: worker, listed replicas (new one added), listed allocs
	// running on this worker. a2 runs on w2 and a3 ended: untouched.
	f.ok(fxPool, fxAt(10), fxHeartbeat("w1", fxAt(110), []string{"d1", "d3"}, "a1", "a2", "a3", "nope"))
	w1 := f.worker("w1")
	if !w1.Deadline.Equal(fxAt(110)) {
		t.Errorf("worker deadline = %v, want %v", w1.Deadline, fxAt(110))
	}
	if !w1.Replicas["d1"].Equal(fxAt(140)) || !w1.Replicas["d3"].Equal(fxAt(140)) {
		t.Errorf("replicas = %v", w1.Replicas)
	}
	if got := fxIDs(f.pool().Holders("d3")); got != "w1" {
		t.Errorf("holders of d3 = %q, want w1 (added by heartbeat)", got)
	}
	if !f.alloc("a1").Deadline().Equal(fxAt(140)) {
		t.Errorf("a1 deadline = %v, want %v", f.alloc("a1").Deadline(), fxAt(140))
	}
	if !f.alloc("a2").Deadline().Equal(fxAt(60)) || !f.alloc("a3").Deadline().Equal(fxAt(60)) {
		t.Error("heartbeat of w1 moved the deadline of an alloc not running on w1")
	}
	if w1.Used != 2 || w1.Capacity != 10 {
		t.Error("heartbeat changed capacity accounting")
	}

	// Backward: nothing moves, and nothing else changes.
	before := fxSnapshot(f.s)
	f.ok(fxPool, fxAt(11), fxHeartbeat("w1", fxAt(50), []string{"d1", "d3"}, "a1"))
	if after := fxSnapshot(f.s); after != before {
		t.Errorf("a heartbeat with earlier deadlines changed the state:\n%s", fxDiff(before, after))
	}
	// Equal deadlines do not change anything either.
	f.ok(fxPool, fxAt(12), fxHeartbeat("w1", fxAt(110), []string{"d1"}, "a1"))
	if after := fxSnapshot(f.s); after != before {
		t.Errorf("a heartbeat with equal deadlines changed the state:\n%s", fxDiff(before, after))
	}
	// A heartbeat that lists no datasets keeps the replicas.
	f.ok(fxPool, fxAt(13), fxHeartbeat("w2", fxAt(120), nil))
	if got := f.worker("w2").Datasets(); !slices.Equal(got, []string{"d1", "d2"}) {
		t.Errorf("w2 datasets after an empty heartbeat = %v", got)
	}

	f.reject(fxPool, fxAt(14), fxHeartbeat("w9", fxAt(200), []string{"d1"}), "unknown worker w9")
}

func TestApplyWorkerExpired(t *testing.T) {
	f := fxBase(t)
	f.ok(fxPool, fxAt(2), fxSubmitted("e1", 4, ""))
	f.ok(fxPool, fxAt(3), fxPlaced("a1", "e1", "w2", 4, 1, fxAt(60)))

	f.reject(fxPool, fxAt(101), events.WorkerExpiredData{WorkerID: "w2", Deadline: fxAt(100)}, "still has 1 running allocs")
	f.reject(fxPool, fxAt(101), events.WorkerExpiredData{WorkerID: "w9", Deadline: fxAt(100)}, "unknown worker w9")

	f.ok(fxPool, fxAt(101), fxExpired("a1"))
	// Expiries are decisions: a heartbeat that came in after the decision
	// does not stop the expiry.
	f.ok(fxPool, fxAt(101), fxHeartbeat("w2", fxAt(500), []string{"d2"}))
	f.ok(fxPool, fxAt(102), events.WorkerExpiredData{WorkerID: "w2", Deadline: fxAt(100)})
	p := f.pool()
	if p.Worker("w2") != nil || p.NumWorkers() != 1 {
		t.Fatal("expired worker still registered")
	}
	if got := fxIDs(p.Holders("d1")); got != "w1" {
		t.Errorf("holders of d1 = %q, want w1", got)
	}
	if got := p.Holders("d2"); len(got) != 0 {
		t.Errorf("holders of d2 = %q, want none", fxIDs(got))
	}
	if _, ok := p.holders["d2"]; ok {
		t.Error("empty holder set of d2 kept")
	}
	if p.Free().Len() != 1 || p.Free().MaxFree() != 10 {
		t.Errorf("free index after expiry: len %d max %d", p.Free().Len(), p.Free().MaxFree())
	}
	// History stays: the alloc that ran on the worker is still known.
	if a := f.alloc("a1"); a.Status() != AllocExpired || a.WorkerID() != "w2" {
		t.Errorf("alloc after its worker expired = %+v", a)
	}
	f.reject(fxPool, fxAt(103), events.WorkerExpiredData{WorkerID: "w2", Deadline: fxAt(100)}, "unknown worker w2")
	f.reject(fxPool, fxAt(103), fxHeartbeat("w2", fxAt(600), nil), "unknown worker w2")
	f.reject(fxPool, fxAt(103), events.ReplicaExpiredData{WorkerID: "w2", DatasetID: "d2", Deadline: fxAt(100)}, "unknown worker w2")

	// A requeued eval cannot land on the expired worker.
	f.ok(fxPool, fxAt(104), events.EvalRequeuedData{EvalID: "e1", AllocID: "a1", Attempt: 2, Reason: "alloc expired"})
	f.reject(fxPool, fxAt(105), fxPlaced("a2", "e1", "w2", 4, 2, fxAt(160)), "unknown worker w2")

	// The id can be registered again, as a new worker.
	f.ok(fxPool, fxAt(106), fxRegistered("w2", 3, fxAt(200)))
	if w := f.worker("w2"); w.Capacity != 3 || w.Used != 0 || len(w.Replicas) != 0 {
		t.Errorf("re-registered worker = %+v", w)
	}
	// A late completion of the old alloc returns nothing to the new worker.
	f.reject(fxPool, fxAt(107), fxCompleted("a1"), "alloc a1 is expired")
	if f.worker("w2").Used != 0 {
		t.Error("old alloc touched the re-registered worker")
	}
}

func TestApplyReplicaExpired(t *testing.T) {
	f := fxBase(t)
	f.ok(fxPool, fxAt(130), events.ReplicaExpiredData{WorkerID: "w2", DatasetID: "d1", Deadline: fxAt(130)})
	p := f.pool()
	if got := f.worker("w2").Datasets(); !slices.Equal(got, []string{"d2"}) {
		t.Errorf("w2 datasets = %v, want [d2]", got)
	}
	if got := fxIDs(p.Holders("d1")); got != "w1" {
		t.Errorf("holders of d1 = %q, want w1", got)
	}
	if got := fxIDs(p.Holders("d2")); got != "w2" {
		t.Errorf("holders of d2 = %q, want w2", got)
	}
	f.reject(fxPool, fxAt(131), events.ReplicaExpiredData{WorkerID: "w2", DatasetID: "d1", Deadline: fxAt(130)}, "holds no replica of d1")
	f.reject(fxPool, fxAt(131), events.ReplicaExpiredData{WorkerID: "w9", DatasetID: "d1", Deadline: fxAt(130)}, "unknown worker w9")

	f.ok(fxPool, fxAt(132), events.ReplicaExpiredData{WorkerID: "w1", DatasetID: "d1", Deadline: fxAt(130)})
	if len(p.Holders("d1")) != 0 {
		t.Error("d1 still has holders")
	}
	if _, ok := p.holders["d1"]; ok {
		t.Error("empty holder set of d1 kept")
	}
	// The worker itself stays.
	if w := f.worker("w1"); len(w.Replicas) != 0 || w.Capacity != 10 {
		t.Errorf("w1 after losing its replica = %+v", w)
	}
	// Reported again, the replica comes back.
	f.ok(fxPool, fxAt(133), fxHeartbeat("w1", fxAt(150), []string{"d1"}))
	if got := fxIDs(p.Holders("d1")); got != "w1" {
		t.Errorf("holders of d1 after a new report = %q", got)
	}
}

func TestApplyEvalSubmitted(t *testing.T) {
	f := fxBase(t)
	f.ok(fxPool, fxAt(2), fxSubmitted("e1", 3, "d1"))
	e := f.eval("e1")
	wantPos := f.log[len(f.log)-1].pos
	if e.ID != "e1" || e.DatasetID != "d1" || e.Size != 3 || string(e.Payload()) != `{"eval":"e1"}` || e.Status() != EvalPending ||
		e.Attempts != 0 || e.NextAttempt != 1 || e.AllocID != "" || !e.SubmittedAt().Equal(fxAt(2)) || !e.QueuedAt().Equal(fxAt(2)) ||
		!e.EndedAt().IsZero() || e.Position != wantPos {
		t.Errorf("eval = %+v (want position %v)", e, wantPos)
	}
	if fxQueue(f.pool()) != "e1" {
		t.Errorf("queue = %q", fxQueue(f.pool()))
	}
	f.reject(fxPool, fxAt(3), fxSubmitted("e1", 1, ""), "already submitted")
	// Ids stay unique for ever, also after the eval ended.
	f.ok(fxPool, fxAt(4), fxPlaced("a1", "e1", "w1", 3, 1, fxAt(60)))
	f.ok(fxPool, fxAt(5), fxCompleted("a1"))
	f.reject(fxPool, fxAt(6), fxSubmitted("e1", 3, "d1"), "already submitted")
	// The same eval id in another pool is another eval.
	f.ok("p2", fxAt(7), fxCreated(events.Spread))
	f.ok("p2", fxAt(7), fxSubmitted("e1", 3, "d1"))
	if f.s.Pool("p2").Eval("e1").Status() != EvalPending || f.eval("e1").Status() != EvalCompleted {
		t.Error("pools share evals")
	}
}

// fxRetryScene: e1 placed as a1 on w1 and expired (awaiting a retry
// decision), e2 pending, e3 placed as a3 on w2 and running, e4 completed.
func fxRetryScene(t *testing.T) *fxFold {
	f := fxBase(t)
	f.ok(fxPool, fxAt(2), fxSubmitted("e1", 2, ""))
	f.ok(fxPool, fxAt(2), fxSubmitted("e2", 2, ""))
	f.ok(fxPool, fxAt(2), fxSubmitted("e3", 2, ""))
	f.ok(fxPool, fxAt(2), fxSubmitted("e4", 1, ""))
	f.ok(fxPool, fxAt(3), fxPlaced("a1", "e1", "w1", 2, 1, fxAt(60)))
	f.ok(fxPool, fxAt(3), fxPlaced("a3", "e3", "w2", 2, 1, fxAt(60)))
	f.ok(fxPool, fxAt(3), fxPlaced("a4", "e4", "w2", 1, 1, fxAt(60)))
	f.ok(fxPool, fxAt(4), fxCompleted("a4"))
	f.ok(fxPool, fxAt(61), fxExpired("a1"))
	return f
}

func TestApplyAllocExpired(t *testing.T) {
	f := fxRetryScene(t)
	a, e, w := f.alloc("a1"), f.eval("e1"), f.worker("w1")
	if a.Status() != AllocExpired || !a.EndedAt().Equal(fxAt(61)) || a.ExpiryReason() != "no heartbeat" || a.Completion() != nil {
		t.Errorf("expired alloc = %+v", a)
	}
	if w.Used != 0 || w.NumRunning() != 0 || w.Free() != 10 {
		t.Errorf("capacity not returned on expiry: used %d", w.Used)
	}
	// The eval waits for the retry decision: placed, not queued.
	if e.Status() != EvalPlaced || e.AllocID != "a1" || !f.pool().AwaitingRetry(e) || fxQueue(f.pool()) != "e2" {
		t.Errorf("eval after expiry: %+v, queue %q", e, fxQueue(f.pool()))
	}
	if f.pool().AwaitingRetry(f.eval("e3")) || f.pool().AwaitingRetry(f.eval("e2")) || f.pool().AwaitingRetry(f.eval("e4")) {
		t.Error("AwaitingRetry true for an eval without an expired alloc")
	}
	f.reject(fxPool, fxAt(62), fxExpired("a1"), "alloc a1 is expired")
	f.reject(fxPool, fxAt(62), fxExpired("a4"), "alloc a4 is completed")
	f.reject(fxPool, fxAt(62), fxExpired("a9"), "unknown alloc a9")
}

func TestApplyEvalRejected(t *testing.T) {
	f := fxRetryScene(t)
	f.reject(fxPool, fxAt(70), events.EvalRejectedData{EvalID: "e3", Reason: "r"}, "eval e3 is placed")
	f.reject(fxPool, fxAt(70), events.EvalRejectedData{EvalID: "e4", Reason: "r"}, "eval e4 is completed")
	f.reject(fxPool, fxAt(70), events.EvalRejectedData{EvalID: "e9", Reason: "r"}, "unknown eval e9")

	// A pending eval.
	f.ok(fxPool, fxAt(71), events.EvalRejectedData{EvalID: "e2", Reason: "pool disbanded"})
	e2 := f.eval("e2")
	if e2.Status() != EvalRejected || e2.Reason() != "pool disbanded" || !e2.EndedAt().Equal(fxAt(71)) || f.pool().Queue().Len() != 0 {
		t.Errorf("rejected pending eval = %+v, queue %q", e2, fxQueue(f.pool()))
	}
	// A placed eval whose alloc expired.
	f.ok(fxPool, fxAt(72), events.EvalRejectedData{EvalID: "e1", Reason: "pool disbanded"})
	if e1 := f.eval("e1"); e1.Status() != EvalRejected || f.pool().AwaitingRetry(e1) {
		t.Errorf("rejected eval awaiting retry = %+v", e1)
	}
	f.reject(fxPool, fxAt(73), events.EvalRejectedData{EvalID: "e1", Reason: "again"}, "eval e1 is rejected")
	f.reject(fxPool, fxAt(73), events.EvalRequeuedData{EvalID: "e1", AllocID: "a1", Attempt: 2, Reason: "r"}, "no expired alloc a1")
	f.reject(fxPool, fxAt(73), fxPlaced("a9", "e2", "w1", 2, 1, fxAt(100)), "eval e2 is rejected")
}

func TestApplyEvalRequeued(t *testing.T) {
	f := fxRetryScene(t)
	f.reject(fxPool, fxAt(70), events.EvalRequeuedData{EvalID: "e1", AllocID: "a3", Attempt: 2, Reason: "r"}, "no expired alloc a3")
	f.reject(fxPool, fxAt(70), events.EvalRequeuedData{EvalID: "e2", AllocID: "a1", Attempt: 2, Reason: "r"}, "eval e2 has no expired alloc")
	f.reject(fxPool, fxAt(70), events.EvalRequeuedData{EvalID: "e3", AllocID: "a3", Attempt: 2, Reason: "r"}, "eval e3 has no expired alloc")
	f.reject(fxPool, fxAt(70), events.EvalRequeuedData{EvalID: "e4", AllocID: "a4", Attempt: 2, Reason: "r"}, "eval e4 has no expired alloc")
	f.reject(fxPool, fxAt(70), events.EvalRequeuedData{EvalID: "e9", AllocID: "a1", Attempt: 2, Reason: "r"}, "unknown eval e9")

	f.ok(fxPool, fxAt(71), events.EvalRequeuedData{EvalID: "e1", AllocID: "a1", Attempt: 2, Reason: "alloc expired"})
	e1 := f.eval("e1")
	if e1.Status() != EvalPending || e1.NextAttempt != 2 || e1.Attempts != 1 || e1.Reason() != "alloc expired" ||
		!e1.QueuedAt().Equal(fxAt(71)) || !e1.SubmittedAt().Equal(fxAt(2)) || f.pool().AwaitingRetry(e1) {
		t.Errorf("requeued eval = %+v", e1)
	}
	if got := fxQueue(f.pool()); got != "e2,e1" {
		t.Errorf("queue = %q, want the requeued eval at the back", got)
	}
	f.reject(fxPool, fxAt(72), events.EvalRequeuedData{EvalID: "e1", AllocID: "a1", Attempt: 3, Reason: "r"}, "no expired alloc a1")
	// The next placement must carry the announced attempt.
	f.reject(fxPool, fxAt(73), fxPlaced("a5", "e1", "w1", 2, 1, fxAt(130)), "attempt 1, expected 2")
	f.ok(fxPool, fxAt(73), fxPlaced("a5", "e1", "w1", 2, 2, fxAt(130)))
	if e1.Status() != EvalPlaced || e1.Attempts != 2 || e1.AllocID != "a5" || e1.Reason() != "" {
		t.Errorf("re-placed eval = %+v", e1)
	}
	// The old alloc cannot be reused.
	f.reject(fxPool, fxAt(74), fxPlaced("a1", "e2", "w1", 2, 1, fxAt(130)), "alloc a1 already exists")
}

func TestApplyEvalDeadLettered(t *testing.T) {
	f := fxRetryScene(t)
	f.reject(fxPool, fxAt(70), events.EvalDeadLetteredData{EvalID: "e1", AllocID: "a3", Attempts: 1, Reason: "r"}, "no expired alloc")
	f.reject(fxPool, fxAt(70), events.EvalDeadLetteredData{EvalID: "e2", Reason: "r"}, "eval e2 has no expired alloc")
	f.reject(fxPool, fxAt(70), events.EvalDeadLetteredData{EvalID: "e3", AllocID: "a3", Reason: "r"}, "eval e3 has no expired alloc")
	f.reject(fxPool, fxAt(70), events.EvalDeadLetteredData{EvalID: "e4", Reason: "r"}, "eval e4 has no expired alloc")
	f.reject(fxPool, fxAt(70), events.EvalDeadLetteredData{EvalID: "e9", Reason: "r"}, "unknown eval e9")

	f.ok(fxPool, fxAt(71), events.EvalDeadLetteredData{EvalID: "e1", AllocID: "a1", Attempts: 1, Reason: "max retries"})
	e1 := f.eval("e1")
	if e1.Status() != EvalDeadLettered || e1.Reason() != "max retries" || !e1.EndedAt().Equal(fxAt(71)) || f.pool().AwaitingRetry(e1) {
		t.Errorf("dead-lettered eval = %+v", e1)
	}
	if fxQueue(f.pool()) != "e2" {
		t.Errorf("queue = %q", fxQueue(f.pool()))
	}
	f.reject(fxPool, fxAt(72), events.EvalDeadLetteredData{EvalID: "e1", Reason: "again"}, "no expired alloc")
	f.reject(fxPool, fxAt(72), events.EvalRequeuedData{EvalID: "e1", AllocID: "a1", Attempt: 2, Reason: "r"}, "no expired alloc")

	// Without an alloc id, any expired alloc of the eval will do.
	g := fxRetryScene(t)
	g.ok(fxPool, fxAt(71), events.EvalDeadLetteredData{EvalID: "e1", Reason: "max retries"})
	if g.eval("e1").Status() != EvalDeadLettered {
		t.Error("dead letter without alloc id did not apply")
	}
}

func TestApplyAllocPlaced(t *testing.T) {
	f := fxBase(t)
	f.ok(fxPool, fxAt(2), fxSubmitted("e1", 4, "d2"))
	f.ok(fxPool, fxAt(2), fxSubmitted("e2", 7, ""))
	f.ok(fxPool, fxAt(2), fxSubmitted("e3", 1, ""))

	placed := fxPlaced("a1", "e1", "w2", 4, 1, fxAt(63))
	placed.DatasetID, placed.Locality, placed.Strategy = "d2", events.LocalityHit, events.Binpack
	for _, c := range []struct {
		name   string
		at     int
		d      events.AllocPlacedData
		reason string
	}{
		{"unknown eval", 3, fxPlaced("a1", "e9", "w1", 4, 1, fxAt(63)), "unknown eval e9"},
		{"size differs", 3, fxPlaced("a1", "e1", "w1", 3, 1, fxAt(63)), "alloc size 3 differs from eval size 4"},
		{"attempt too high", 3, fxPlaced("a1", "e1", "w1", 4, 2, fxAt(63)), "attempt 2, expected 1"},
		{"unknown worker", 3, fxPlaced("a1", "e1", "w9", 4, 1, fxAt(63)), "unknown worker w9"},
		{"worker deadline passed", 101, fxPlaced("a1", "e1", "w1", 4, 1, fxAt(163)), "worker w1 expired"},
		{"worker deadline now", 100, fxPlaced("a1", "e1", "w1", 4, 1, fxAt(163)), "worker w1 expired"},
		{"overcommit", 3, fxPlaced("a1", "e2", "w2", 7, 1, fxAt(63)), "overcommit"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f.t = t
			f.reject(fxPool, fxAt(c.at), c.d, c.reason)
		})
	}
	f.t = t

	f.ok(fxPool, fxAt(3), placed)
	a, e, w := f.alloc("a1"), f.eval("e1"), f.worker("w2")
	if a.ID != "a1" || a.EvalID != "e1" || a.WorkerID() != "w2" || a.DatasetID != "d2" || a.Size != 4 || a.Attempt != 1 ||
		!a.Deadline().Equal(fxAt(63)) || a.Status() != AllocRunning || !a.PlacedAt().Equal(fxAt(3)) || !a.EndedAt().IsZero() ||
		a.Topic() != "line.allocs.p1.w2" || a.Completion() != nil || a.ExpiryReason() != "" {
		t.Errorf("alloc = %+v", a)
	}
	if !a.Placement().Deadline.Equal(placed.Deadline) || a.Placement().Strategy != events.Binpack || a.Placement().Locality != events.LocalityHit ||
		a.Placement().Candidates != 2 || a.Placement().WaitedMs != 7 || a.PlacedData() != placed {
		t.Errorf("placement record = %+v", a.Placement())
	}
	if e.Status() != EvalPlaced || e.Attempts != 1 || e.AllocID != "a1" || e.NextAttempt != 1 {
		t.Errorf("eval = %+v", e)
	}
	if w.Used != 4 || w.Free() != 2 || !w.Runs(a) || f.pool().Alloc("a1") != a {
		t.Errorf("worker = %+v", w)
	}
	if fxQueue(f.pool()) != "e2,e3" {
		t.Errorf("queue = %q", fxQueue(f.pool()))
	}
	f.reject(fxPool, fxAt(4), fxPlaced("a2", "e1", "w1", 4, 1, fxAt(63)), "eval e1 is placed")
	f.reject(fxPool, fxAt(4), fxPlaced("a1", "e3", "w1", 1, 1, fxAt(63)), "alloc a1 already exists")
	// An exact fit applies; one more does not.
	f.ok(fxPool, fxAt(5), fxPlaced("a2", "e2", "w1", 7, 1, fxAt(65)))
	f.ok(fxPool, fxAt(5), fxSubmitted("e5", 3, ""))
	f.ok(fxPool, fxAt(5), fxSubmitted("e6", 4, ""))
	f.reject(fxPool, fxAt(6), fxPlaced("a6", "e6", "w1", 4, 1, fxAt(66)), "worker w1 has 3 free, alloc needs 4: overcommit")
	f.ok(fxPool, fxAt(6), fxPlaced("a5", "e5", "w1", 3, 1, fxAt(66)))
	if w1 := f.worker("w1"); w1.Used != 10 || w1.Free() != 0 {
		t.Errorf("w1 after an exact fit: used %d", w1.Used)
	}
	f.reject(fxPool, fxAt(6), fxPlaced("a3", "e3", "w1", 1, 1, fxAt(66)), "overcommit")
}

func TestApplyAllocCompleted(t *testing.T) {
	f := fxBase(t)
	f.ok(fxPool, fxAt(2), fxSubmitted("e1", 4, ""))
	f.ok(fxPool, fxAt(3), fxPlaced("a1", "e1", "w1", 4, 1, fxAt(60)))
	code := int32(3)
	f.ok(fxPool, fxAt(9), events.AllocCompletedData{AllocID: "a1", Status: events.Failed, ExitCode: &code, Message: "boom"})
	a, e, w := f.alloc("a1"), f.eval("e1"), f.worker("w1")
	if a.Status() != AllocCompleted || !a.EndedAt().Equal(fxAt(9)) || a.Completion() == nil || a.Completion().Status != events.Failed ||
		a.Completion().ExitCode == nil || *a.Completion().ExitCode != 3 || a.Completion().Message != "boom" {
		t.Errorf("completed alloc = %+v (completion %+v)", a, a.Completion())
	}
	if e.Status() != EvalCompleted || e.Result() != events.Failed || !e.EndedAt().Equal(fxAt(9)) {
		t.Errorf("eval = %+v", e)
	}
	if w.Used != 0 || w.NumRunning() != 0 {
		t.Errorf("capacity not returned: used %d running %d", w.Used, w.NumRunning())
	}
	f.reject(fxPool, fxAt(10), fxCompleted("a9"), "unknown alloc a9")
}

func TestApplyCapacityReturnsExactlyOnce(t *testing.T) {
	f := fxBase(t)
	w1 := f.worker("w1")
	free := func() int64 { return w1.Free() }
	for i, size := range []int64{3, 4, 2} {
		id := fmt.Sprint(i + 1)
		f.ok(fxPool, fxAt(2), fxSubmitted("e"+id, size, ""))
		f.ok(fxPool, fxAt(3), fxPlaced("a"+id, "e"+id, "w1", size, 1, fxAt(60)))
	}
	if free() != 1 || w1.Used != 9 || f.pool().Free().MaxFree() != 6 {
		t.Fatalf("after placing 3+4+2 on 10: free %d used %d max %d", free(), w1.Used, f.pool().Free().MaxFree())
	}
	// Completed: returned once; a second completion and a later expiry are
	// rejected and return nothing.
	f.ok(fxPool, fxAt(10), fxCompleted("a1"))
	if free() != 4 {
		t.Errorf("free after completing 3 = %d, want 4", free())
	}
	f.reject(fxPool, fxAt(11), fxCompleted("a1"), "alloc a1 is completed")
	f.reject(fxPool, fxAt(61), fxExpired("a1"), "alloc a1 is completed")
	// Expired: returned once; a completion arriving later and a second
	// expiry are rejected.
	f.ok(fxPool, fxAt(61), fxExpired("a2"))
	if free() != 8 {
		t.Errorf("free after expiring 4 = %d, want 8", free())
	}
	f.reject(fxPool, fxAt(62), fxCompleted("a2"), "alloc a2 is expired")
	f.reject(fxPool, fxAt(62), fxExpired("a2"), "alloc a2 is expired")
	if free() != 8 || w1.Used != 2 {
		t.Errorf("free %d used %d after rejected releases, want 8, 2", free(), w1.Used)
	}
	f.ok(fxPool, fxAt(63), fxCompleted("a3"))
	if free() != 10 || w1.Used != 0 || w1.NumRunning() != 0 || f.pool().Free().MaxFree() != 10 {
		t.Errorf("after every alloc ended: free %d used %d running %d", free(), w1.Used, w1.NumRunning())
	}
}

// TestApplyOvercommitOverflow: the overcommit check must not overflow.
func TestApplyOvercommitOverflow(t *testing.T) {
	f := fxBase(t)
	f.ok(fxPool, fxAt(2), fxSubmitted("e1", 1, ""))
	f.ok(fxPool, fxAt(2), fxSubmitted("e2", math.MaxInt64, ""))
	f.ok(fxPool, fxAt(3), fxPlaced("a1", "e1", "w1", 1, 1, fxAt(60)))
	f.reject(fxPool, fxAt(4), fxPlaced("a2", "e2", "w1", math.MaxInt64, 1, fxAt(60)), "overcommit")
}

func TestApplyQueueOrder(t *testing.T) {
	f := fxBase(t)
	for i := 1; i <= 5; i++ {
		f.ok(fxPool, fxAt(2), fxSubmitted(fmt.Sprintf("e%d", i), int64(i), ""))
	}
	p := f.pool()
	if got := fxQueue(p); got != "e1,e2,e3,e4,e5" || p.Queue().Len() != 5 {
		t.Fatalf("queue = %q, want submission order", got)
	}
	f.ok(fxPool, fxAt(3), fxPlaced("a2", "e2", "w1", 2, 1, fxAt(60)))
	f.ok(fxPool, fxAt(3), fxPlaced("a4", "e4", "w2", 4, 1, fxAt(60)))
	if got := fxQueue(p); got != "e1,e3,e5" {
		t.Errorf("queue after placing e2, e4 = %q", got)
	}
	f.ok(fxPool, fxAt(4), fxSubmitted("e6", 1, ""))
	f.ok(fxPool, fxAt(61), fxExpired("a4"))
	f.ok(fxPool, fxAt(61), fxExpired("a2"))
	if got := fxQueue(p); got != "e1,e3,e5,e6" {
		t.Errorf("an expiry alone requeued: %q", got)
	}
	// Requeue order is decision order, not submission order.
	f.ok(fxPool, fxAt(62), events.EvalRequeuedData{EvalID: "e4", AllocID: "a4", Attempt: 2, Reason: "r"})
	f.ok(fxPool, fxAt(62), events.EvalRequeuedData{EvalID: "e2", AllocID: "a2", Attempt: 2, Reason: "r"})
	if got := fxQueue(p); got != "e1,e3,e5,e6,e4,e2" {
		t.Errorf("queue after requeues = %q, want e4 then e2 at the back", got)
	}
	f.ok(fxPool, fxAt(63), events.EvalRejectedData{EvalID: "e5", Reason: "r"})
	f.ok(fxPool, fxAt(63), fxPlaced("a1", "e1", "w1", 1, 1, fxAt(120)))
	if got := fxQueue(p); got != "e3,e6,e4,e2" || p.Queue().Len() != 4 {
		t.Errorf("queue = %q (len %d)", got, p.Queue().Len())
	}
	var seen []string
	p.Queue().Each(func(e *Eval) bool { seen = append(seen, e.ID); return len(seen) < 2 })
	if !slices.Equal(seen, []string{"e3", "e6"}) {
		t.Errorf("Each did not stop when fn returned false: %v", seen)
	}
	// The queue holds exactly the pending evals.
	for _, e := range p.Evals() {
		inQueue := slices.Contains(p.Queue().Slice(), e)
		if inQueue != (e.Status() == EvalPending) {
			t.Errorf("eval %s is %s, in queue %v", e.ID, e.Status(), inQueue)
		}
	}
}

func TestApplyFreeIndex(t *testing.T) {
	f := fxNew(t)
	f.ok(fxPool, fxAt(0), fxCreated(events.Spread))
	p := f.pool()
	if p.Free().MaxFree() != 0 || p.Free().Len() != 0 {
		t.Fatal("empty pool has free capacity")
	}
	called := false
	p.Free().Descending(0, func(*Worker) bool { called = true; return true })
	p.Free().Ascending(0, func(*Worker) bool { called = true; return true })
	if called {
		t.Error("empty index visited a worker")
	}
	for _, w := range []struct {
		id  string
		cap int64
	}{{"wa", 5}, {"wb", 8}, {"wc", 5}, {"wd", 2}, {"we", 8}} {
		f.ok(fxPool, fxAt(1), fxRegistered(w.id, w.cap, fxAt(100)))
	}
	desc := func(min int64) string {
		var out []string
		p.Free().Descending(min, func(w *Worker) bool { out = append(out, fmt.Sprintf("%s:%d", w.ID, w.Free())); return true })
		return strings.Join(out, " ")
	}
	asc := func(min int64) string {
		var out []string
		p.Free().Ascending(min, func(w *Worker) bool { out = append(out, fmt.Sprintf("%s:%d", w.ID, w.Free())); return true })
		return strings.Join(out, " ")
	}
	check := func(what, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %q, want %q", what, got, want)
		}
	}
	check("Descending(0)", desc(0), "we:8 wb:8 wc:5 wa:5 wd:2")
	check("Descending(5)", desc(5), "we:8 wb:8 wc:5 wa:5")
	check("Descending(6)", desc(6), "we:8 wb:8")
	check("Descending(9)", desc(9), "")
	check("Ascending(0)", asc(0), "wd:2 wa:5 wc:5 wb:8 we:8")
	check("Ascending(3)", asc(3), "wa:5 wc:5 wb:8 we:8")
	check("Ascending(8)", asc(8), "wb:8 we:8")
	check("Ascending(9)", asc(9), "")
	if p.Free().MaxFree() != 8 || p.Free().Len() != 5 {
		t.Errorf("MaxFree %d Len %d", p.Free().MaxFree(), p.Free().Len())
	}
	var first []string
	p.Free().Descending(0, func(w *Worker) bool { first = append(first, w.ID); return false })
	p.Free().Ascending(0, func(w *Worker) bool { first = append(first, w.ID); return false })
	if !slices.Equal(first, []string{"we", "wd"}) {
		t.Errorf("early stop visited %v", first)
	}

	// Placements, completions and expiries move workers in the index.
	f.ok(fxPool, fxAt(2), fxSubmitted("e1", 4, ""))
	f.ok(fxPool, fxAt(2), fxSubmitted("e2", 7, ""))
	f.ok(fxPool, fxAt(3), fxPlaced("a1", "e1", "we", 4, 1, fxAt(60)))
	f.ok(fxPool, fxAt(3), fxPlaced("a2", "e2", "wb", 7, 1, fxAt(60)))
	check("after placements", desc(0), "wc:5 wa:5 we:4 wd:2 wb:1")
	check("Ascending after placements", asc(2), "wd:2 we:4 wa:5 wc:5")
	if p.Free().MaxFree() != 5 {
		t.Errorf("MaxFree = %d, want 5", p.Free().MaxFree())
	}
	f.ok(fxPool, fxAt(10), fxCompleted("a2"))
	f.ok(fxPool, fxAt(61), fxExpired("a1"))
	check("after release", desc(0), "we:8 wb:8 wc:5 wa:5 wd:2")
	// Expired workers leave the index; rejected events do not move it.
	f.ok(fxPool, fxAt(101), events.WorkerExpiredData{WorkerID: "we", Deadline: fxAt(100)})
	f.ok(fxPool, fxAt(101), events.WorkerExpiredData{WorkerID: "wb", Deadline: fxAt(100)})
	check("after worker expiry", desc(0), "wc:5 wa:5 wd:2")
	if p.Free().MaxFree() != 5 || p.Free().Len() != 3 {
		t.Errorf("MaxFree %d Len %d after expiry", p.Free().MaxFree(), p.Free().Len())
	}
}

func TestApplyHoldersByDataset(t *testing.T) {
	f := fxNew(t)
	f.ok(fxPool, fxAt(0), fxCreated(events.Spread))
	p := f.pool()
	f.ok(fxPool, fxAt(1), fxRegistered("w2", 4, fxAt(100), "d1"))
	f.ok(fxPool, fxAt(1), fxRegistered("w1", 4, fxAt(100), "d1", "d2"))
	f.ok(fxPool, fxAt(1), fxRegistered("w3", 4, fxAt(100)))
	check := func(ds, want string) {
		t.Helper()
		if got := fxIDs(p.Holders(ds)); got != want {
			t.Errorf("Holders(%s) = %q, want %q", ds, got, want)
		}
	}
	check("d1", "w1,w2")
	check("d2", "w1")
	check("d3", "")
	f.ok(fxPool, fxAt(2), fxHeartbeat("w3", fxAt(100), []string{"d3", "d1"}))
	check("d1", "w1,w2,w3")
	check("d3", "w3")
	// A repeated report does not duplicate a holder.
	f.ok(fxPool, fxAt(3), fxHeartbeat("w3", fxAt(100), []string{"d1", "d1"}))
	check("d1", "w1,w2,w3")
	f.ok(fxPool, fxAt(131), events.ReplicaExpiredData{WorkerID: "w1", DatasetID: "d1", Deadline: fxAt(130)})
	check("d1", "w2,w3")
	check("d2", "w1")
	f.ok(fxPool, fxAt(132), events.WorkerExpiredData{WorkerID: "w3", Deadline: fxAt(100)})
	check("d1", "w2")
	check("d3", "")
	f.ok(fxPool, fxAt(132), events.WorkerExpiredData{WorkerID: "w1", Deadline: fxAt(100)})
	check("d2", "")
	keys := make([]string, 0)
	for ds := range p.holders {
		keys = append(keys, ds)
	}
	if !slices.Equal(keys, []string{"d1"}) {
		t.Errorf("holder sets kept for %v, want only d1", keys)
	}
}

// TestApplyReplayIsDeterministic folds the log of a busy scene again into a
// new state and compares: the fold depends only on the events.
func TestApplyReplayIsDeterministic(t *testing.T) {
	f := fxRetryScene(t)
	f.ok(fxPool, fxAt(70), events.EvalRequeuedData{EvalID: "e1", AllocID: "a1", Attempt: 2, Reason: "r"})
	f.ok(fxPool, fxAt(71), fxHeartbeat("w2", fxAt(300), []string{"d9"}, "a3"))
	f.reject(fxPool, fxAt(72), fxCompleted("a1"), "expired")
	s := New()
	for _, l := range f.log {
		_ = s.Apply(l.e, l.pos)
	}
	if a, b := fxSnapshot(f.s), fxSnapshot(s); a != b {
		t.Errorf("replay differs:\n%s", fxDiff(a, b))
	}
	if s.Applied != f.s.Applied || s.Rejected != f.s.Rejected || s.Applied != int64(len(f.log)) || s.Rejected != 1 {
		t.Errorf("replay counters %d/%d, original %d/%d", s.Applied, s.Rejected, f.s.Applied, f.s.Rejected)
	}
}

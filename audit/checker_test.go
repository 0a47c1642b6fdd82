package audit

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/state"
)

var t0 = time.Date(2026, 11, 26, 19, 0, 0, 0, time.UTC)

// ts is t0 plus sec seconds.
func ts(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

// forged feeds a hand-made history to a Checker, one partition, offsets
// from 0, and keeps what it reported.
type forged struct {
	t   *testing.T
	c   *Checker
	off int64
	vs  []Violation
}

func newForged(t *testing.T) *forged { return &forged{t: t, c: NewChecker()} }

// add appends data of pool p1 at t0+sec and returns its position.
func (f *forged) add(sec float64, d events.Data) events.Position {
	f.t.Helper()
	return f.addTo("p1", sec, d)
}

func (f *forged) addTo(pool string, sec float64, d events.Data) events.Position {
	f.t.Helper()
	e := events.New(pool, ts(sec), d)
	// Through the wire, as a consumer sees it.
	b, err := events.Marshal(e)
	if err != nil {
		f.t.Fatal(err)
	}
	if e, err = events.Unmarshal(b); err != nil {
		f.t.Fatalf("%s does not decode: %v", d.EventType(), err)
	}
	pos := events.Position{Partition: 0, Offset: f.off}
	f.off++
	f.vs = append(f.vs, f.c.Check(e, pos)...)
	return pos
}

// next is the offset the next event gets: the basis of a scheduler that
// folded everything so far.
func (f *forged) next() int64 { return f.off }

// expect checks that the violations reported are exactly one of each kind
// at each position given, in that order.
func (f *forged) expect(want ...any) {
	f.t.Helper()
	type pk struct {
		pos  events.Position
		kind Kind
	}
	var w, got []pk
	for i := 0; i+1 < len(want); i += 2 {
		w = append(w, pk{want[i].(events.Position), want[i+1].(Kind)})
	}
	for _, v := range f.vs {
		got = append(got, pk{v.Position, v.Kind})
	}
	if !slices.Equal(got, w) {
		f.t.Errorf("violations %v, want %v:\n%s", got, w, f.report())
	}
}

func (f *forged) report() string {
	var b strings.Builder
	for _, v := range f.vs {
		fmt.Fprintln(&b, "  ", v)
	}
	return b.String()
}

// Builders of event data with the defaults a test does not care about.

func created(s events.Strategy, wait time.Duration) events.PoolCreatedData {
	return events.PoolCreatedData{Strategy: s, LocalityWaitMs: events.ToMillis(wait)}
}

func registered(id string, capacity int64, deadline float64, datasets ...string) events.WorkerRegisteredData {
	return events.WorkerRegisteredData{WorkerID: id, Capacity: capacity, Topic: "line.allocs.p1." + id,
		Deadline: ts(deadline), Datasets: datasets, ReplicaDeadline: ts(deadline)}
}

func heartbeat(id string, deadline float64, datasets []string, allocs ...string) events.WorkerHeartbeatData {
	return events.WorkerHeartbeatData{WorkerID: id, Deadline: ts(deadline), Datasets: datasets,
		ReplicaDeadline: ts(deadline), Allocs: allocs, AllocDeadline: ts(deadline)}
}

func submitted(id string, size int64, dataset string) events.EvalSubmittedData {
	return events.EvalSubmittedData{EvalID: id, Size: size, DatasetID: dataset}
}

func placed(alloc, eval, worker string, size int64, dataset string, loc events.Locality, basis int64) events.AllocPlacedData {
	return events.AllocPlacedData{AllocID: alloc, EvalID: eval, WorkerID: worker, DatasetID: dataset, Size: size,
		Attempt: 1, Deadline: ts(1000), Topic: "line.allocs.p1." + worker, Strategy: events.Spread,
		Locality: loc, Candidates: 1, Basis: basis}
}

func completed(alloc string) events.AllocCompletedData {
	return events.AllocCompletedData{AllocID: alloc, Status: events.Succeeded}
}

// setup creates pool p1 with workers w1 (capacity 2) and w2 (capacity 4),
// live until t0+100s, w1 holding dataset d1.
func setup(f *forged) {
	f.add(0, created(events.Spread, 0))
	f.add(0.1, registered("w1", 2, 100, "d1"))
	f.add(0.2, registered("w2", 4, 100))
}

func TestCleanForgedHistory(t *testing.T) {
	f := newForged(t)
	setup(f)
	f.add(1, submitted("e1", 2, "d1"))
	f.add(1.1, placed("a1", "e1", "w1", 2, "d1", events.LocalityHit, f.next()))
	f.add(2, submitted("e2", 1, ""))
	f.add(2.1, placed("a2", "e2", "w2", 1, "", events.LocalityNone, f.next()))
	f.add(3, completed("a1"))
	f.add(4, events.AllocExpiredData{AllocID: "a2", Reason: "not heartbeated"})
	f.add(4.1, events.EvalRequeuedData{EvalID: "e2", AllocID: "a2", Attempt: 2, Reason: "alloc expired"})
	f.expect()
	if vs := f.c.Finish(); len(vs) != 0 {
		t.Errorf("Finish: %v", vs)
	}
	s := f.c.Summary()
	if s.Events != 10 || s.Violations != 0 || s.Evals[state.EvalCompleted] != 1 || s.Evals[state.EvalPending] != 1 ||
		s.Allocs[state.AllocCompleted] != 1 || s.Allocs[state.AllocExpired] != 1 || s.Pools[state.PoolActive] != 1 || s.Workers != 2 {
		t.Errorf("summary %+v", s)
	}
}

func TestPlacedOnFullWorker(t *testing.T) {
	f := newForged(t)
	setup(f)
	f.add(1, submitted("e1", 2, ""))
	f.add(1.1, placed("a1", "e1", "w1", 2, "", events.LocalityNone, f.next()))
	f.add(2, submitted("e2", 1, ""))
	bad := f.add(2.1, placed("a2", "e2", "w1", 1, "", events.LocalityNone, f.next()))
	f.expect(bad, KindOvercommit)
	if v := f.vs[0]; !strings.Contains(v.Message, "w1 with 0 of 2 free") || !strings.Contains(v.Message, "did not apply") ||
		v.EventID == "" || v.Type != events.AllocPlaced || v.Pool != "p1" || !v.At.Equal(ts(2.1)) {
		t.Errorf("violation %+v", v)
	}
	// The fold did not apply it: no overcommit in the state.
	if w := f.c.State().Pool("p1").Worker("w1"); w.Used != 2 {
		t.Errorf("w1 used %d", w.Used)
	}
}

func TestPlacedOnExpiredWorker(t *testing.T) {
	f := newForged(t)
	f.add(0, created(events.Spread, 0))
	f.add(0.1, registered("w1", 2, 5))
	f.add(1, submitted("e1", 1, ""))
	bad := f.add(5, placed("a1", "e1", "w1", 1, "", events.LocalityNone, f.next()))
	f.expect(bad, KindWorkerExpired)
}

func TestPlacedOnUnknownWorker(t *testing.T) {
	f := newForged(t)
	setup(f)
	f.add(1, submitted("e1", 1, ""))
	bad := f.add(1.1, placed("a1", "e1", "w9", 1, "", events.LocalityNone, f.next()))
	f.expect(bad, KindUnknownWorker)
}

func TestCompletionOfUnknownAlloc(t *testing.T) {
	f := newForged(t)
	setup(f)
	bad := f.add(1, completed("nope"))
	f.expect(bad, KindUnknownAlloc)
}

func TestExpiryOfCompletedAlloc(t *testing.T) {
	f := newForged(t)
	setup(f)
	f.add(1, submitted("e1", 1, ""))
	f.add(1.1, placed("a1", "e1", "w2", 1, "", events.LocalityNone, f.next()))
	f.add(2, completed("a1"))
	bad := f.add(3, events.AllocExpiredData{AllocID: "a1", Reason: "not heartbeated"})
	again := f.add(4, completed("a1"))
	f.expect(bad, KindAllocNotLive, again, KindAllocNotLive)
	if !strings.Contains(f.vs[0].Message, "already completed") {
		t.Errorf("message %q", f.vs[0].Message)
	}
	// Capacity came back exactly once.
	if w := f.c.State().Pool("p1").Worker("w2"); w.Used != 0 {
		t.Errorf("w2 used %d", w.Used)
	}
}

func TestRejectionIsViolation(t *testing.T) {
	f := newForged(t)
	setup(f)
	dup := f.add(1, registered("w1", 2, 100))
	unknown := f.addTo("nopool", 1, submitted("e1", 1, ""))
	f.add(2, submitted("e1", 1, ""))
	twice := f.add(3, submitted("e1", 1, ""))
	f.expect(dup, KindRejected, unknown, KindRejected, twice, KindRejected)
	if !strings.Contains(f.vs[0].Message, "already registered") {
		t.Errorf("message %q", f.vs[0].Message)
	}
}

func TestPoison(t *testing.T) {
	c := NewChecker()
	_, err := events.Unmarshal([]byte(`{"nope":1}`))
	vs := c.Poison(events.Position{Partition: 2, Offset: 7}, "p1", err)
	if len(vs) != 1 || vs[0].Kind != KindPoison || vs[0].Position.String() != "2:7" || !strings.Contains(vs[0].Message, "malformed") {
		t.Fatalf("poison: %v", vs)
	}
	if s := c.Summary(); s.Events != 1 || s.Poison != 1 || s.Violations != 1 {
		t.Errorf("summary %+v", s)
	}
}

func TestLocalityMissWhileHolderHadRoom(t *testing.T) {
	f := newForged(t)
	setup(f)
	f.add(1, submitted("e1", 1, "d1"))
	bad := f.add(1.1, placed("a1", "e1", "w2", 1, "d1", events.LocalityMiss, f.next()))
	f.expect(bad, KindLocality)
	if !strings.Contains(f.vs[0].Message, "holder w1 had 2 free") {
		t.Errorf("message %q", f.vs[0].Message)
	}
}

func TestLocalityMissHolderTooSmall(t *testing.T) {
	f := newForged(t)
	setup(f)
	f.add(1, submitted("e1", 3, "d1"))
	f.add(1.1, placed("a1", "e1", "w2", 3, "d1", events.LocalityMiss, f.next()))
	f.expect()
}

// A holder that got room only through a completion at or after the basis
// does not count: the scheduler could not see it.
func TestLocalityHolderRoomAfterBasis(t *testing.T) {
	for _, seen := range []bool{false, true} {
		t.Run(fmt.Sprintf("seen=%v", seen), func(t *testing.T) {
			f := newForged(t)
			setup(f)
			f.add(1, submitted("e0", 2, ""))
			f.add(1.1, placed("a0", "e0", "w1", 2, "", events.LocalityNone, f.next())) // w1 full
			f.add(2, submitted("e1", 1, "d1"))
			basis := f.next() // the scheduler decides now: w1 is full
			f.add(2.1, completed("a0"))
			if seen {
				basis = f.next()
			}
			p := f.add(2.2, placed("a1", "e1", "w2", 1, "d1", events.LocalityMiss, basis))
			if seen {
				f.expect(p, KindLocality)
			} else {
				f.expect()
			}
		})
	}
}

// A holder whose replica (or liveness) came with an event at or after the
// basis does not count either.
func TestLocalityReplicaAfterBasis(t *testing.T) {
	cases := map[string]struct {
		holder string
		after  events.Data
	}{
		"new replica by heartbeat":     {"w3", heartbeat("w3", 100, []string{"d1"})},
		"replica revived by heartbeat": {"w4", heartbeat("w4", 100, []string{"d1"})},
		"worker revived by heartbeat":  {"w5", heartbeat("w5", 100, nil)},
		"worker registered":            {"w6", registered("w6", 4, 100, "d1")},
	}
	for name, c := range cases {
		for _, seen := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/seen=%v", name, seen), func(t *testing.T) {
				f := newForged(t)
				f.add(0, created(events.Spread, 0))
				f.add(0.1, registered("w2", 4, 100))
				f.add(0.2, registered("w3", 4, 100))
				f.add(0.3, registered("w4", 4, 2, "d1"))
				f.add(0.4, heartbeat("w4", 100, nil)) // w4 lives on, its replica of d1 dies at 2
				w5 := registered("w5", 4, 2, "d1")
				w5.ReplicaDeadline = ts(100) // w5 dies at 2, its replica lives on
				f.add(0.5, w5)
				f.add(1, submitted("e1", 1, "d1"))
				basis := f.next()
				f.add(2.1, c.after)
				if seen {
					basis = f.next()
				}
				p := f.add(2.2, placed("a1", "e1", "w2", 1, "d1", events.LocalityMiss, basis))
				if seen {
					f.expect(p, KindLocality)
					if len(f.vs) == 1 && !strings.Contains(f.vs[0].Message, "holder "+c.holder+" ") {
						t.Errorf("wrong holder: %s", f.vs[0].Message)
					}
				} else {
					f.expect()
				}
			})
		}
	}
}

func TestLocalityRecordedWrong(t *testing.T) {
	f := newForged(t)
	setup(f)
	f.add(1, submitted("e1", 1, ""))
	none := f.add(1.1, placed("a1", "e1", "w2", 1, "", events.LocalityHit, f.next()))
	f.add(2, submitted("e2", 1, "d2"))
	hit := f.add(2.1, placed("a2", "e2", "w2", 1, "d2", events.LocalityHit, f.next()))
	f.add(3, submitted("e3", 1, "d2"))
	missing := f.add(3.1, placed("a3", "e3", "w2", 1, "d2", events.LocalityNone, f.next()))
	f.expect(none, KindLocality, hit, KindLocality, missing, KindLocality)
}

// A holder kept free for a starving eval is not a locality miss; without a
// starving eval that could fit it, it is.
func TestLocalityHolderReserved(t *testing.T) {
	for _, bigSize := range []int64{3, 5} {
		t.Run(fmt.Sprint("big=", bigSize), func(t *testing.T) {
			f := newForged(t)
			f.add(0, created(events.Spread, 0))
			f.add(0.1, registered("w1", 4, 100, "d1"))
			f.add(0.2, registered("w2", 4, 100))
			f.add(0.3, submitted("e0", 2, ""))
			f.add(0.4, placed("a0", "e0", "w1", 2, "", events.LocalityNone, f.next())) // w1: 2 free
			f.add(0.5, submitted("e1", 3, ""))
			f.add(0.6, placed("a1", "e1", "w2", 3, "", events.LocalityNone, f.next())) // w2: 1 free
			// Size 3 fits no worker now but fits w1's capacity: starving,
			// w1 (the most free) is reserved. Size 5 fits no worker ever.
			f.add(1, submitted("big", bigSize, ""))
			f.add(40, submitted("e2", 1, "d1"))
			p := f.add(40.1, placed("a2", "e2", "w2", 1, "d1", events.LocalityMiss, f.next()))
			if bigSize == 3 {
				f.expect()
			} else {
				f.expect(p, KindLocality)
			}
		})
	}
}

func TestPlacementAfterDisband(t *testing.T) {
	f := newForged(t)
	setup(f)
	f.add(1, submitted("e1", 1, ""))
	f.add(1.5, submitted("e2", 1, ""))
	basis := f.next()
	f.add(2, events.PoolDisbandedData{DeleteAt: ts(50)})
	// Decided before the scheduler saw the disband: valid.
	f.add(2.1, placed("a1", "e1", "w2", 1, "", events.LocalityNone, basis))
	// Decided after: a violation (the fold still applies it).
	bad := f.add(2.2, placed("a2", "e2", "w2", 1, "", events.LocalityNone, f.next()))
	beyond := f.add(3, events.EvalRejectedData{EvalID: "nope", Reason: "x"})
	f.expect(bad, KindPoolDisbanded, beyond, KindRejected)
}

func TestBasisBeyondOffset(t *testing.T) {
	f := newForged(t)
	setup(f)
	f.add(1, submitted("e1", 1, ""))
	bad := f.add(1.1, placed("a1", "e1", "w2", 1, "", events.LocalityNone, 99))
	f.expect(bad, KindBasis)
	if s := f.c.Summary(); s.Unjudged != 1 {
		t.Errorf("unjudged %d", s.Unjudged)
	}
}

func TestDeletedPoolCounts(t *testing.T) {
	f := newForged(t)
	setup(f)
	f.add(1, submitted("e1", 1, ""))
	f.add(1.1, placed("a1", "e1", "w2", 1, "", events.LocalityNone, f.next()))
	f.add(1.2, completed("a1"))
	f.add(1.3, submitted("e2", 1, ""))
	f.add(2, events.PoolDisbandedData{DeleteAt: ts(3)})
	f.add(2.1, events.EvalRejectedData{EvalID: "e2", Reason: "pool disbanded"})
	f.add(3, events.PoolDeletedData{})
	f.expect()
	// Nothing applies to a deleted pool: one rejection, not a misleading
	// unknown worker.
	late := f.add(4, placed("a9", "e2", "w2", 1, "", events.LocalityNone, f.next()))
	f.expect(late, KindRejected)
	f.vs = nil
	s := f.c.Summary()
	if s.Pools[state.PoolDeleted] != 1 || s.Evals[state.EvalCompleted] != 1 || s.Evals[state.EvalRejected] != 1 ||
		s.Allocs[state.AllocCompleted] != 1 || s.EvalsTotal() != 2 {
		t.Errorf("summary %+v", s)
	}
}

func TestViolationJSON(t *testing.T) {
	v := Violation{Position: events.Position{Partition: 1, Offset: 5}, At: ts(1), Pool: "p1", Type: events.AllocPlaced,
		EventID: "x", Kind: KindOvercommit, Message: "m"}
	b, err := json.Marshal(v)
	if err != nil || !strings.Contains(string(b), `"position":"1:5"`) || !strings.Contains(string(b), `"at":"2026-11-26T19:00:01.000Z"`) {
		t.Fatalf("%s %v", b, err)
	}
	var back Violation
	if err := json.Unmarshal(b, &back); err != nil || back != v {
		t.Errorf("round trip %+v %v", back, err)
	}
	end := Violation{AtEnd: true, Kind: KindInvariant, Message: "m"}
	b, _ = json.Marshal(end)
	if !strings.Contains(string(b), `"position":null`) {
		t.Errorf("%s", b)
	}
	if err := json.Unmarshal(b, &back); err != nil || back != end {
		t.Errorf("round trip %+v %v", back, err)
	}
}

func TestPoolOnTwoPartitions(t *testing.T) {
	f := newForged(t)
	setup(f)
	e := events.New("p1", ts(1), submitted("e1", 1, ""))
	pos := events.Position{Partition: 1, Offset: 0}
	vs := f.c.Check(e, pos)
	if len(vs) != 1 || vs[0].Kind != KindPartition || vs[0].Position != pos {
		t.Errorf("violations %v", vs)
	}
	// With a rejection, each is reported, the rejection's reason only on
	// the violation that stands for it.
	vs = f.c.Check(events.New("p1", ts(2), completed("nope")), events.Position{Partition: 1, Offset: 1})
	if len(vs) != 2 || vs[0].Kind != KindPartition || vs[1].Kind != KindUnknownAlloc ||
		strings.Contains(vs[0].Message, "did not apply") || !strings.Contains(vs[1].Message, "did not apply") {
		t.Errorf("violations %v", vs)
	}
}

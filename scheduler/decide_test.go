package scheduler

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/state"
)

type wspec struct {
	id       string
	capacity int64
	datasets []string
}

// scene creates the pool at t0 with workers registered until t=1000s.
func scene(t *testing.T, s events.Strategy, wait time.Duration, ws ...wspec) *fixture {
	t.Helper()
	f := newFixture(t)
	f.ok(at(0), created(s, wait))
	for _, w := range ws {
		f.ok(at(0), registered(w.id, w.capacity, at(1000), w.datasets...))
	}
	return f
}

// occupy places an alloc of size on worker through the log, as an earlier
// round would have.
func occupy(f *fixture, worker string, size int64, now time.Time) string {
	f.t.Helper()
	id := "busy-" + worker + "-" + strings.Repeat("x", int(f.off%7)) + time.Duration(f.off).String()
	f.ok(now, submitted(id, size, ""))
	f.ok(now, events.AllocPlacedData{AllocID: AllocID(f.pool, id, 1), EvalID: id, WorkerID: worker, Size: size,
		Attempt: 1, Deadline: at(1000), Topic: topicOf(worker), Strategy: events.Spread, Locality: events.LocalityNone})
	return AllocID(f.pool, id, 1)
}

func TestStrategies(t *testing.T) {
	ws := []wspec{{"a", 10, nil}, {"b", 10, nil}, {"c", 5, nil}}
	for _, tc := range []struct {
		strategy events.Strategy
		want     []string
	}{
		// spread: most free, ties by lowest id.
		{events.Spread, []string{"e1>a", "e2>b", "e3>a", "e4>b", "e5>c"}},
		// binpack: least free that fits, ties by lowest id.
		{events.Binpack, []string{"e1>c", "e2>a", "e3>a", "e4>a", "e5>b"}},
	} {
		t.Run(string(tc.strategy), func(t *testing.T) {
			f := scene(t, tc.strategy, 0, ws...)
			for _, e := range []string{"e1", "e2", "e3", "e4", "e5"} {
				f.ok(at(1), submitted(e, 3, ""))
			}
			d := f.round(at(2), Config{})
			eqSlice(t, "placements", placements(d), tc.want)
			a := placed(t, d, "e1")
			eq(t, "strategy", a.Strategy, tc.strategy)
			eq(t, "locality", a.Locality, events.LocalityNone)
			eq(t, "candidates", a.Candidates, 3)
			eq(t, "waited", a.WaitedMs, events.Millis(1000))
			eq(t, "attempt", a.Attempt, 1)
			eq(t, "deadline", a.Deadline, at(62))
			eq(t, "topic", a.Topic, topicOf(a.WorkerID))
			// Capacity left after e1..e4 for e5 is counted with this
			// round's reservations.
			eq(t, "candidates of e5", placed(t, d, "e5").Candidates, map[events.Strategy]int{events.Spread: 3, events.Binpack: 1}[tc.strategy])
			r := d.Deliveries[0]
			eq(t, "payload", string(r.Payload), `{"e":"e1"}`)
			for _, w := range f.p().Workers() {
				if w.Used > w.Capacity {
					t.Fatalf("worker %s overcommitted", w.ID)
				}
			}
			eq(t, "pending after", f.p().Queue().Len(), 0)
		})
	}
}

func TestSpreadFillsAndStopsWhenFull(t *testing.T) {
	f := scene(t, events.Spread, 0, wspec{"a", 3, nil}, wspec{"b", 2, nil})
	for _, e := range []string{"e1", "e2", "e3", "e4", "e5", "e6", "e7"} {
		f.ok(at(1), submitted(e, 1, ""))
	}
	d := f.round(at(2), Config{})
	// e2: a and b both have 2 left; b had less at the start of the round
	// (it received less in this round) and wins the tie.
	eqSlice(t, "placements", placements(d), []string{"e1>a", "e2>b", "e3>a", "e4>b", "e5>a"})
	eq(t, "visited", d.Stats.Visited, 5)
	eq(t, "pending", f.p().Queue().Len(), 2)
	// Nothing fits any more: a round does nothing and visits nothing.
	d = f.round(at(3), Config{})
	eq(t, "events", len(d.Events), 0)
	eq(t, "visited", d.Stats.Visited, 0)
}

func TestLocality(t *testing.T) {
	ws := []wspec{{"a", 10, nil}, {"b", 10, []string{"ds"}}, {"c", 10, []string{"ds"}}, {"d", 2, []string{"big"}}}
	t.Run("hit beats the strategy", func(t *testing.T) {
		f := scene(t, events.Spread, 0, ws...)
		occupy(f, "b", 1, at(0))
		f.ok(at(1), submitted("e1", 3, "ds"))
		f.ok(at(1), submitted("e2", 3, "ds"))
		f.ok(at(1), submitted("e3", 3, ""))
		d := f.round(at(2), Config{})
		// Holders b (9 free) and c (10 free): spread among holders.
		eqSlice(t, "placements", placements(d), []string{"e1>c", "e2>b", "e3>a"})
		eq(t, "e1 locality", placed(t, d, "e1").Locality, events.LocalityHit)
		eq(t, "e1 candidates", placed(t, d, "e1").Candidates, 3)
		eq(t, "e3 locality", placed(t, d, "e3").Locality, events.LocalityNone)
		eq(t, "hits", d.Stats.LocalityHits, 2)
	})
	t.Run("binpack among holders", func(t *testing.T) {
		f := scene(t, events.Binpack, 0, ws...)
		occupy(f, "c", 4, at(0))
		f.ok(at(1), submitted("e1", 3, "ds"))
		d := f.round(at(2), Config{})
		eqSlice(t, "placements", placements(d), []string{"e1>c"})
	})
	t.Run("no holder: miss at once", func(t *testing.T) {
		f := scene(t, events.Spread, time.Hour, ws...)
		f.ok(at(1), submitted("e1", 3, "nobody"))
		d := f.round(at(1), Config{})
		eqSlice(t, "placements", placements(d), []string{"e1>a"})
		eq(t, "locality", placed(t, d, "e1").Locality, events.LocalityMiss)
	})
	t.Run("holder too small to ever fit: miss at once", func(t *testing.T) {
		f := scene(t, events.Spread, time.Hour, ws...)
		f.ok(at(1), submitted("e1", 3, "big"))
		d := f.round(at(1), Config{})
		eqSlice(t, "placements", placements(d), []string{"e1>a"})
		eq(t, "locality", placed(t, d, "e1").Locality, events.LocalityMiss)
	})
	t.Run("expired replica is no holder", func(t *testing.T) {
		f := scene(t, events.Spread, time.Hour, wspec{"a", 10, nil})
		f.ok(at(0), events.WorkerRegisteredData{WorkerID: "h", Capacity: 10, Topic: topicOf("h"), Deadline: at(1000),
			Datasets: []string{"ds"}, ReplicaDeadline: at(5)})
		occupy(f, "h", 10, at(0))
		f.ok(at(1), submitted("e1", 3, "ds"))
		d := f.round(at(2), Config{})
		eq(t, "waits while the replica is live", d.Stats.LocalityWaits, 1)
		// Expiry is held back: the replica is past its deadline but not
		// expired; it no longer counts.
		d = f.round(at(6), Config{ExpireFrom: at(100)})
		eqSlice(t, "placements", placements(d), []string{"e1>a"})
		eq(t, "locality", placed(t, d, "e1").Locality, events.LocalityMiss)
	})
}

func TestLocalityWait(t *testing.T) {
	f := scene(t, events.Spread, 10*time.Second, wspec{"a", 10, nil}, wspec{"h", 10, []string{"ds"}})
	occupy(f, "h", 9, at(0))
	f.ok(at(1), submitted("e1", 3, "ds"))
	f.ok(at(1), submitted("e2", 1, "ds"))
	f.ok(at(1), submitted("e3", 3, ""))
	d := f.round(at(5), Config{})
	// e1 waits for h (full for it), e2 fits on h, e3 is not held up by e1.
	eqSlice(t, "placements", placements(d), []string{"e2>h", "e3>a"})
	eq(t, "waits", d.Stats.LocalityWaits, 1)
	d = f.round(at(10.999), Config{})
	eq(t, "still waiting", len(d.Events), 0)
	d = f.round(at(11), Config{})
	eqSlice(t, "placements", placements(d), []string{"e1>a"})
	a := placed(t, d, "e1")
	eq(t, "locality", a.Locality, events.LocalityMiss)
	eq(t, "waited", a.WaitedMs, events.Millis(10000))
}

func TestLocalityWaitBoundedByStarvationAge(t *testing.T) {
	f := scene(t, events.Spread, time.Hour, wspec{"a", 10, nil}, wspec{"h", 10, []string{"ds"}})
	occupy(f, "h", 9, at(0))
	f.ok(at(1), submitted("e1", 3, "ds"))
	eq(t, "waits", f.round(at(20), Config{}).Stats.LocalityWaits, 1)
	d := f.round(at(31), Config{})
	eqSlice(t, "placements", placements(d), []string{"e1>a"})
}

func TestNoHeadOfLineBlocking(t *testing.T) {
	f := scene(t, events.Binpack, 0, wspec{"a", 4, nil})
	f.ok(at(1), submitted("big", 10, ""))
	for i := range 1000 {
		f.ok(at(1), submitted("five"+time.Duration(i).String(), 5, ""))
	}
	f.ok(at(1), submitted("small", 2, ""))
	f.ok(at(1), submitted("small2", 2, ""))
	f.ok(at(1), submitted("small3", 1, ""))
	d := f.round(at(2), Config{})
	eqSlice(t, "placements", placements(d), []string{"small>a", "small2>a"})
	// Only the evals that fit were visited, not the 1001 that cannot.
	eq(t, "visited", d.Stats.Visited, 2)
	// Full: the next round visits nothing.
	d = f.round(at(3), Config{})
	eq(t, "visited", d.Stats.Visited, 0)
}

func TestStarvation(t *testing.T) {
	f := scene(t, events.Spread, 0, wspec{"a", 10, nil}, wspec{"b", 10, nil}, wspec{"c", 4, nil})
	ba := occupy(f, "a", 8, at(0)) // a: 2 free
	bb := occupy(f, "b", 6, at(0)) // b: 4 free
	f.ok(at(1), submitted("big", 8, ""))
	f.ok(at(2), submitted("s1", 1, ""))
	// Before StarvationAge: smaller evals may use any worker.
	d := f.round(at(10), Config{})
	eqSlice(t, "placements", placements(d), []string{"s1>b"})
	if d.Reservation != nil {
		t.Fatalf("reservation before the starvation age: %+v", d.Reservation)
	}
	f.ok(at(20), events.AllocCompletedData{AllocID: placed(t, d, "s1").AllocID, Status: events.Succeeded})
	for _, e := range []string{"s2", "s3", "s4", "s5", "s6"} {
		f.ok(at(30), submitted(e, 1, ""))
	}
	// big has waited 30s and fits nowhere: b (4 free, capacity 10 >= 8)
	// is the closest to fitting it and is reserved; c's capacity could
	// not fit it anyway.
	d = f.round(at(31), Config{})
	if d.Reservation == nil || d.Reservation.EvalID != "big" || d.Reservation.WorkerID != "b" {
		t.Fatalf("reservation = %+v, want big on b", d.Reservation)
	}
	eqSlice(t, "placements", placements(d), []string{"s2>c", "s3>c", "s4>a", "s5>c", "s6>a"})
	// b frees up: big fits at the start of the round and goes first.
	f.ok(at(32), events.AllocCompletedData{AllocID: bb, Status: events.Succeeded})
	f.ok(at(32), submitted("s7", 1, ""))
	d = f.round(at(33), Config{})
	// a is full, b has 2 left, c 1: spread puts s7 on b.
	eqSlice(t, "placements", placements(d), []string{"big>b", "s7>b"})
	if d.Reservation != nil {
		t.Fatalf("reservation once it fits: %+v", d.Reservation)
	}
	_ = ba
}

func TestStarvationTooBigForEveryWorker(t *testing.T) {
	f := scene(t, events.Spread, 0, wspec{"a", 4, nil})
	f.ok(at(0), submitted("huge", 100, ""))
	f.ok(at(0), submitted("s1", 1, ""))
	d := f.round(at(100), Config{})
	if d.Reservation != nil {
		t.Fatalf("reservation for an eval no worker can fit: %+v", d.Reservation)
	}
	eqSlice(t, "placements", placements(d), []string{"s1>a"})
}

func TestStarvationDisabled(t *testing.T) {
	f := scene(t, events.Spread, 0, wspec{"a", 10, nil})
	occupy(f, "a", 5, at(0))
	f.ok(at(0), submitted("big", 8, ""))
	f.ok(at(0), submitted("s1", 1, ""))
	d := f.round(at(100), Config{StarvationAge: -1})
	eqSlice(t, "placements", placements(d), []string{"s1>a"})
}

func TestExpiry(t *testing.T) {
	f := scene(t, events.Spread, 0)
	f.ok(at(0), events.WorkerRegisteredData{WorkerID: "a", Capacity: 10, Topic: topicOf("a"), Deadline: at(100),
		Datasets: []string{"d1", "d2"}, ReplicaDeadline: at(50)})
	f.ok(at(0), events.WorkerRegisteredData{WorkerID: "b", Capacity: 10, Topic: topicOf("b"), Deadline: at(30),
		Datasets: []string{"d1"}, ReplicaDeadline: at(20)})
	f.ok(at(0), submitted("e1", 1, ""))
	f.ok(at(0), submitted("e2", 1, ""))
	f.ok(at(0), submitted("e3", 1, ""))
	d := f.round(at(0), Config{AllocTTL: 10 * time.Second})
	eqSlice(t, "placements", placements(d), []string{"e1>a", "e2>b", "e3>a"})
	e1, e2, e3 := placed(t, d, "e1").AllocID, placed(t, d, "e2").AllocID, placed(t, d, "e3").AllocID
	// Heartbeats move deadlines forward: e1 and e2 stay alive to 40.
	f.ok(at(5), heartbeat("a", at(100), nil, e1))
	f.ok(at(5), events.WorkerHeartbeatData{WorkerID: "b", Deadline: at(30), ReplicaDeadline: at(20),
		Allocs: []string{e2}, AllocDeadline: at(40)})
	eq(t, "nothing due at 9", len(f.decide(at(9), Config{}).Events), 0)
	d = f.round(at(10), Config{})
	eqSlice(t, "types", types(d), []string{"alloc.expired"})
	eq(t, "expired", d.Events[0].(events.AllocExpiredData), events.AllocExpiredData{AllocID: e3, Reason: ReasonNotHeartbeated})
	// At 20, b's replica is due, and e3's retry decision; e3 is placed
	// in the next round only. At 30, b expires with its alloc e2 (whose
	// own deadline has not passed), and b's replica, reported again, is
	// not expired on its own.
	d = f.round(at(20), Config{})
	eqSlice(t, "types", types(d), []string{"eval.requeued", "replica.expired"})
	eq(t, "replica", d.Events[1].(events.ReplicaExpiredData), events.ReplicaExpiredData{WorkerID: "b", DatasetID: "d1", Deadline: at(20)})
	eqSlice(t, "placements", placements(f.round(at(21), Config{})), []string{"e3>a"})
	f.ok(at(25), heartbeat("b", at(30), []string{"d1"}))
	d = f.round(at(30), Config{})
	eqSlice(t, "types", types(d), []string{"alloc.expired", "worker.expired"})
	eq(t, "alloc", d.Events[0].(events.AllocExpiredData), events.AllocExpiredData{AllocID: e2, Reason: ReasonWorkerExpired})
	eq(t, "worker", d.Events[1].(events.WorkerExpiredData), events.WorkerExpiredData{WorkerID: "b", Deadline: at(30)})
	eqSlice(t, "topics", d.TopicsToDelete, []string{topicOf("b")})
	if f.p().Worker("b") != nil || f.p().NumHolders("d1") != 1 {
		t.Fatalf("worker b or its replica survived its expiry")
	}
}

func TestExpireFrom(t *testing.T) {
	f := scene(t, events.Spread, 0)
	f.ok(at(0), registered("a", 10, at(10), "d"))
	f.ok(at(0), registered("b", 10, at(100)))
	f.ok(at(0), submitted("e1", 1, ""))
	d := f.round(at(0), Config{AllocTTL: 5 * time.Second})
	eqSlice(t, "placements", placements(d), []string{"e1>a"})
	f.ok(at(1), submitted("e2", 1, ""))
	// a is past its deadline but expiry is held back until 60: no
	// expiry, and a takes no new alloc.
	d = f.round(at(20), Config{ExpireFrom: at(60)})
	eqSlice(t, "types", types(d), []string{"alloc.placed"})
	eqSlice(t, "placements", placements(d), []string{"e2>b"})
	d = f.round(at(60), Config{ExpireFrom: at(60)})
	eqSlice(t, "types", types(d), []string{"alloc.expired", "worker.expired"})
	eq(t, "reason", d.Events[0].(events.AllocExpiredData).Reason, ReasonNotHeartbeated)
}

func TestRetryAndDeadLetter(t *testing.T) {
	f := scene(t, events.Spread, 0, wspec{"a", 10, nil})
	f.ok(at(0), submitted("e1", 2, "ds"))
	cfg := Config{AllocTTL: 10 * time.Second, MaxRetry: 2}
	d := f.round(at(0), cfg)
	first := placed(t, d, "e1")
	eq(t, "attempt", first.Attempt, 1)
	d = f.round(at(10), cfg)
	eqSlice(t, "types", types(d), []string{"alloc.expired"})
	eq(t, "awaiting retry", f.p().NumAwaitingRetry(), 1)
	d = f.round(at(11), cfg)
	eqSlice(t, "types", types(d), []string{"eval.requeued"})
	rq := d.Events[0].(events.EvalRequeuedData)
	eq(t, "requeue", rq, events.EvalRequeuedData{EvalID: "e1", AllocID: first.AllocID, Attempt: 2, Reason: "alloc expired: not heartbeated"})
	d = f.round(at(12), cfg)
	second := placed(t, d, "e1")
	eq(t, "attempt", second.Attempt, 2)
	if second.AllocID == first.AllocID {
		t.Fatalf("the second attempt reuses alloc id %s", first.AllocID)
	}
	eq(t, "waited since requeue", second.WaitedMs, events.Millis(1000))
	f.round(at(22), cfg)
	d = f.round(at(23), cfg)
	eqSlice(t, "types", types(d), []string{"eval.dead_lettered"})
	dl := d.Events[0].(events.EvalDeadLetteredData)
	eq(t, "dead letter attempts", dl.Attempts, 2)
	eq(t, "dead letter alloc", dl.AllocID, second.AllocID)
	r := d.DeadLetters[0]
	eq(t, "record", r.EvalID+" "+r.DatasetID+" "+string(r.Payload)+" "+r.Reason, "e1 ds "+`{"e":"e1"}`+" "+dl.Reason)
	eq(t, "record size", r.Size, int64(2))
	eq(t, "record at", r.At, at(23))
	eq(t, "status", f.p().Eval("e1").Status(), state.EvalDeadLettered)
	eq(t, "nothing left", len(f.round(at(24), cfg).Events), 0)
}

func TestRetryDecisionSurvivesACompletionRace(t *testing.T) {
	// The alloc expires in one round; its completion lands before the
	// expiry is folded. The expiry does not apply, and no retry decision
	// follows: the eval completed.
	f := scene(t, events.Spread, 0, wspec{"a", 10, nil})
	f.ok(at(0), submitted("e1", 2, ""))
	d := f.round(at(0), Config{AllocTTL: 10 * time.Second})
	id := placed(t, d, "e1").AllocID
	d = f.decide(at(10), Config{})
	f.ok(at(10), events.AllocCompletedData{AllocID: id, Status: events.Succeeded})
	if err := f.apply(at(10), d.Events[0]); err == nil {
		t.Fatalf("expiry of a completed alloc applied")
	}
	eq(t, "events", len(f.round(at(11), Config{}).Events), 0)
	eq(t, "status", f.p().Eval("e1").Status(), state.EvalCompleted)
}

func TestDisband(t *testing.T) {
	f := scene(t, events.Spread, 0, wspec{"a", 4, nil}, wspec{"b", 4, nil})
	f.ok(at(0), submitted("run", 4, ""))
	f.ok(at(0), submitted("exp", 4, ""))
	d := f.round(at(0), Config{AllocTTL: 10 * time.Second})
	run := placed(t, d, "run").AllocID
	f.ok(at(5), events.WorkerHeartbeatData{WorkerID: "a", Deadline: at(1000), ReplicaDeadline: at(1000),
		Allocs: []string{run}, AllocDeadline: at(40)})
	f.ok(at(6), submitted("p1", 1, ""))
	f.ok(at(6), submitted("p2", 1, ""))
	// exp expires; its capacity is not free within the round.
	d = f.round(at(10), Config{})
	eqSlice(t, "types", types(d), []string{"alloc.expired"})
	f.ok(at(11), submitted("p3", 1, ""))
	f.ok(at(11), submitted("p4", 1, ""))
	f.ok(at(12), events.PoolDisbandedData{DeleteAt: at(100)})
	f.ok(at(12), submitted("late", 1, "")) // raced the disband
	d = f.round(at(13), Config{})
	eqSlice(t, "types", types(d), slices.Repeat([]string{"eval.rejected"}, 6))
	var rejected []string
	for _, e := range d.Events {
		r := e.(events.EvalRejectedData)
		eq(t, "reason", r.Reason, ReasonPoolDisbanded)
		rejected = append(rejected, r.EvalID)
	}
	eqSlice(t, "rejected", rejected, []string{"p1", "p2", "p3", "p4", "late", "exp"})
	// Expiry goes on in a disbanded pool; placements and retries do not.
	d = f.round(at(50), Config{})
	eqSlice(t, "types", types(d), []string{"alloc.expired"})
	d = f.round(at(51), Config{})
	eqSlice(t, "types", types(d), []string{"eval.rejected"})
	eq(t, "eval", d.Events[0].(events.EvalRejectedData).EvalID, "run")
	f.ok(at(60), heartbeat("b", at(2000), nil))
	d = f.round(at(99.999), Config{})
	eq(t, "events before DeleteAt", len(d.Events), 0)
	d = f.round(at(100), Config{})
	eqSlice(t, "types", types(d), []string{"pool.deleted"})
	eqSlice(t, "topics", d.TopicsToDelete, []string{topicOf("a"), topicOf("b")})
	eq(t, "status", f.p().Status, state.PoolDeleted)
	eq(t, "after delete", len(f.round(at(200), Config{}).Events), 0)
}

func TestDisbandDeletesWithPendingEvals(t *testing.T) {
	f := scene(t, events.Spread, 0, wspec{"a", 4, nil})
	f.ok(at(0), events.PoolDisbandedData{DeleteAt: at(10)})
	f.ok(at(0), submitted("e1", 1, ""))
	d := f.round(at(10), Config{})
	eqSlice(t, "types", types(d), []string{"eval.rejected", "pool.deleted"})
}

func TestMaxPlacements(t *testing.T) {
	f := scene(t, events.Spread, 0, wspec{"a", 100, nil})
	for _, e := range []string{"e1", "e2", "e3", "e4", "e5"} {
		f.ok(at(0), submitted(e, 1, ""))
	}
	eqSlice(t, "round 1", placements(f.round(at(1), Config{MaxPlacements: 3})), []string{"e1>a", "e2>a", "e3>a"})
	eqSlice(t, "round 2", placements(f.round(at(2), Config{MaxPlacements: 3})), []string{"e4>a", "e5>a"})
}

func TestNilAndUnknownPool(t *testing.T) {
	if d := Decide(nil, t0, Config{}); len(d.Events) != 0 {
		t.Fatalf("decisions for a nil pool")
	}
}

func TestAllocID(t *testing.T) {
	seen := map[string]bool{}
	for _, pool := range []string{"p1", "p2"} {
		for _, ev := range []string{"e1", "e2", "e1\x00"} {
			for attempt := 1; attempt <= 3; attempt++ {
				id := AllocID(pool, ev, attempt)
				if len(id) != 26 || strings.ToLower(id) != id {
					t.Fatalf("alloc id %q: want 26 lowercase characters", id)
				}
				if err := events.ValidateID(events.AllocID, id); err != nil {
					t.Fatal(err)
				}
				if seen[id] {
					t.Fatalf("alloc id %q repeats", id)
				}
				seen[id] = true
			}
		}
	}
	eq(t, "stable", AllocID("p1", "e1", 1), AllocID("p1", "e1", 1))
	// A golden value: changing the scheme renames every future alloc.
	eq(t, "golden", AllocID("p1", "e1", 1), goldenAllocID)
}

func TestDecideIsDeterministicAcrossFolds(t *testing.T) {
	// Two states built from the same log (one replayed) decide the same.
	f := scene(t, events.Binpack, 3*time.Second,
		wspec{"a", 7, []string{"x"}}, wspec{"b", 5, []string{"y"}}, wspec{"c", 9, []string{"x", "y"}}, wspec{"d", 3, nil})
	for i, sz := range []int64{1, 4, 2, 8, 3, 3, 1, 5} {
		ds := []string{"", "x", "y", "z"}[i%4]
		f.ok(at(float64(i)), submitted("e"+string(rune('a'+i)), sz, ds))
	}
	replayed := state.New()
	for _, l := range f.log {
		if err := replayed.Apply(l.e, l.pos); err != nil {
			t.Fatal(err)
		}
	}
	a := f.decide(at(20), Config{})
	b := Decide(replayed.Pool(testPool), at(20), Config{})
	if show(a) != show(b) {
		t.Fatalf("replayed state decides differently:\n%s\n%s", show(a), show(b))
	}
	if len(a.Events) == 0 || !slices.Equal(placements(a), placements(b)) {
		t.Fatalf("no placements")
	}
}

func TestDecideOnlyReads(t *testing.T) {
	// Rounds for one pool may run concurrently with other readers of the
	// state (run with -race): Decide must not write to it.
	f := scene(t, events.Spread, time.Second, wspec{"a", 5, []string{"x"}}, wspec{"b", 3, nil})
	occupy(f, "a", 5, at(0))
	for i := range 20 {
		f.ok(at(1), submitted("e"+time.Duration(i).String(), int64(i%4+1), []string{"", "x"}[i%2]))
	}
	want := show(Decide(f.p(), at(40), Config{}))
	done := make(chan string)
	for range 4 {
		go func() { done <- show(Decide(f.p(), at(40), Config{})) }()
	}
	for range 4 {
		if got := <-done; got != want {
			t.Fatalf("concurrent round differs:\n%s\n%s", got, want)
		}
	}
}

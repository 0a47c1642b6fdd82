package state

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/line-sched/line/events"
)

// TestFoldInvariants folds random event sequences, mostly sensible ones
// (the kind a scheduler writes, including races) and some arbitrary ones,
// and checks after every event that:
//   - a rejected event changed nothing;
//   - capacity is conserved: a worker's used capacity is the sum of its
//     running allocs and never exceeds its capacity;
//   - the queue holds exactly the pending evals, in the order they entered
//     it;
//   - the free index and the holder sets agree with the workers;
//   - every eval and alloc status is consistent with the other;
//   - State.Check finds nothing wrong.
//
// At the end the log is replayed into a new state, which must be the same.
func TestFoldInvariants(t *testing.T) {
	applied := map[events.Type]int{}
	rejected := map[events.Type]int{}
	seeds := 24
	if testing.Short() {
		seeds = 20
	}
	for seed := range seeds {
		g := &fxGen{r: rand.New(rand.NewPCG(uint64(seed), 42)), f: fxNew(t)}
		for step := range 250 {
			pool, d := g.next()
			before := fxSnapshot(g.f.s)
			err := g.f.apply(pool, fxAt(g.now), d)
			if err != nil {
				var r *Rejection
				if !errors.As(err, &r) {
					t.Fatalf("seed %d step %d: %s: error %v is not a *Rejection", seed, step, d.EventType(), err)
				}
				rejected[d.EventType()]++
				if after := fxSnapshot(g.f.s); after != before {
					t.Fatalf("seed %d step %d: rejected %s (%v) changed the state:\n%s", seed, step, d.EventType(), err, fxDiff(before, after))
				}
			} else {
				applied[d.EventType()]++
			}
			if msg := fxInvariants(g.f.s); msg != "" {
				t.Fatalf("seed %d step %d after %s %+v (err %v): %s\n%s", seed, step, d.EventType(), d, err, msg, fxSnapshot(g.f.s))
			}
			// State.Check verifies the indexes this file cannot see (TTL
			// index, size lists, evals awaiting retry).
			if err := g.f.s.Check(); err != nil {
				t.Fatalf("seed %d step %d after %s %+v (err %v): State.Check: %v", seed, step, d.EventType(), d, err, err)
			}
			if g.f.s.Applied != int64(step+1) {
				t.Fatalf("Applied = %d after %d events", g.f.s.Applied, step+1)
			}
		}
		replay := New()
		for _, l := range g.f.log {
			_ = replay.Apply(l.e, l.pos)
		}
		if a, b := fxSnapshot(g.f.s), fxSnapshot(replay); a != b {
			t.Fatalf("seed %d: replay differs:\n%s", seed, fxDiff(a, b))
		}
		if replay.Rejected != g.f.s.Rejected {
			t.Fatalf("seed %d: replay rejected %d, original %d", seed, replay.Rejected, g.f.s.Rejected)
		}
	}
	// The generator must reach every meaning and every kind of rejection,
	// or the invariants prove little.
	for _, typ := range events.Types {
		if applied[typ] == 0 || rejected[typ] == 0 {
			t.Errorf("%s applied %d times, rejected %d times: generator too narrow", typ, applied[typ], rejected[typ])
		}
	}
	t.Logf("applied %v", applied)
	t.Logf("rejected %v", rejected)
}

// fxInvariants returns a description of the first broken invariant, or "".
func fxInvariants(s *State) string {
	for _, p := range s.Pools() {
		if p.Status == PoolDeleted {
			if p.NumWorkers()+p.NumEvals()+len(p.Allocs())+p.Queue().Len()+p.Free().Len()+len(p.holders) != 0 {
				return "deleted pool " + p.ID + " is not empty"
			}
			continue
		}
		runningOf := map[string]int{}
		for _, w := range p.Workers() {
			if p.Worker(w.ID) != w {
				return "Worker(id) disagrees with Workers()"
			}
			var sum int64
			for _, a := range w.RunningAllocs() {
				if a.Status() != AllocRunning || a.WorkerID() != w.ID || p.Alloc(a.ID) != a || !w.Runs(a) {
					return fmt.Sprintf("worker %s lists alloc %s (%s on %s) as running", w.ID, a.ID, a.Status(), a.WorkerID())
				}
				sum += a.Size
			}
			if w.Used != sum {
				return fmt.Sprintf("worker %s used %d, running allocs sum to %d", w.ID, w.Used, sum)
			}
			if w.Used < 0 || w.Used > w.Capacity || w.Free() != w.Capacity-w.Used {
				return fmt.Sprintf("worker %s used %d of %d", w.ID, w.Used, w.Capacity)
			}
			for ds := range w.Replicas {
				if !slices.Contains(p.Holders(ds), w) {
					return fmt.Sprintf("worker %s holds %s but is not a holder", w.ID, ds)
				}
			}
		}
		for ds, m := range p.holders {
			if len(m) == 0 {
				return "empty holder set for " + ds
			}
			for id, w := range m {
				if p.Worker(id) != w {
					return fmt.Sprintf("holder %s of %s is not a registered worker", id, ds)
				}
				if _, ok := w.Replicas[ds]; !ok {
					return fmt.Sprintf("holder %s of %s has no replica of it", id, ds)
				}
			}
		}
		for _, a := range p.Allocs() {
			e := p.Eval(a.EvalID)
			if e == nil {
				return "alloc " + a.ID + " of unknown eval"
			}
			if a.Status() == AllocRunning {
				w := p.Worker(a.WorkerID())
				if w == nil || !w.Runs(a) {
					return "running alloc " + a.ID + " not on its worker"
				}
				runningOf[a.EvalID]++
				if e.Status() != EvalPlaced || e.AllocID != a.ID {
					return fmt.Sprintf("alloc %s runs but eval %s is %s with alloc %s", a.ID, e.ID, e.Status(), e.AllocID)
				}
			}
			if a.Status() == AllocCompleted && a.Completion() == nil {
				return "completed alloc " + a.ID + " without completion"
			}
		}
		queue := p.Queue().Slice()
		if len(queue) != p.Queue().Len() {
			return "queue Len disagrees with Slice"
		}
		pending := 0
		for i, e := range queue {
			if e.Status() != EvalPending || p.Eval(e.ID) != e {
				return fmt.Sprintf("queue holds eval %s that is %s", e.ID, e.Status())
			}
			if i > 0 && e.QueuedAt().Before(queue[i-1].QueuedAt()) {
				return fmt.Sprintf("queue order: %s queued at %v after %s queued at %v", e.ID, e.QueuedAt(), queue[i-1].ID, queue[i-1].QueuedAt())
			}
		}
		for _, e := range p.Evals() {
			if runningOf[e.ID] > 1 {
				return "eval " + e.ID + " has several running allocs"
			}
			switch e.Status() {
			case EvalPending:
				pending++
				if !slices.Contains(queue, e) {
					return "pending eval " + e.ID + " not in the queue"
				}
			case EvalPlaced:
				a := p.Alloc(e.AllocID)
				if a == nil || a.EvalID != e.ID || a.Status() == AllocCompleted || a.Attempt != e.Attempts {
					return "placed eval " + e.ID + " without its alloc"
				}
				if p.AwaitingRetry(e) != (a.Status() == AllocExpired) {
					return "AwaitingRetry wrong for " + e.ID
				}
			case EvalCompleted:
				if a := p.Alloc(e.AllocID); a == nil || a.Status() != AllocCompleted || a.Completion().Status != e.Result() {
					return "completed eval " + e.ID + " without a completed alloc"
				}
			}
			if e.Status() != EvalPlaced && p.AwaitingRetry(e) {
				return "AwaitingRetry true for " + string(e.Status()) + " eval " + e.ID
			}
		}
		if pending != len(queue) {
			return fmt.Sprintf("%d pending evals, %d queued", pending, len(queue))
		}
		var max int64
		var visited []*Worker
		prev := int64(math.MaxInt64)
		prevID := ""
		bad := ""
		p.Free().Descending(math.MinInt64, func(w *Worker) bool {
			if w.Free() > prev || (w.Free() == prev && w.ID > prevID) {
				bad = "free index out of order at " + w.ID
			}
			prev, prevID = w.Free(), w.ID
			visited = append(visited, w)
			return true
		})
		if bad != "" {
			return bad
		}
		for _, w := range p.Workers() {
			if !slices.Contains(visited, w) {
				return "worker " + w.ID + " missing from the free index"
			}
			if w.Free() > max {
				max = w.Free()
			}
		}
		if len(visited) != p.NumWorkers() || p.Free().Len() != p.NumWorkers() {
			return fmt.Sprintf("free index has %d (%d) workers, pool %d", len(visited), p.Free().Len(), p.NumWorkers())
		}
		if p.Free().MaxFree() != max {
			return fmt.Sprintf("MaxFree %d, want %d", p.Free().MaxFree(), max)
		}
	}
	return ""
}

// fxGen makes random events, mostly sensible ones.
type fxGen struct {
	r   *rand.Rand
	f   *fxFold
	now int
}

func (g *fxGen) pick(prefix string, n int) string { return fmt.Sprintf("%s%d", prefix, 1+g.r.IntN(n)) }
func (g *fxGen) chance(pct int) bool              { return g.r.IntN(100) < pct }
func (g *fxGen) when(lo, hi int) time.Time        { return fxAt(g.now + lo + g.r.IntN(hi-lo+1)) }

func (g *fxGen) datasets() []string {
	var out []string
	for _, ds := range []string{"d1", "d2", "d3"} {
		if g.chance(40) {
			out = append(out, ds)
		}
	}
	return out
}

// sensible reports whether to build an event from the state rather than
// from random ids.
func (g *fxGen) sensible() bool { return g.chance(80) }

func (g *fxGen) next() (string, events.Data) {
	g.now += g.r.IntN(4)
	pool := fxPool
	if g.chance(10) {
		pool = "p2"
	}
	p := g.f.s.Pool(pool)
	if p == nil || g.chance(2) {
		return pool, fxCreated([]events.Strategy{events.Spread, events.Binpack}[g.r.IntN(2)])
	}
	var workers, running, expired, pendingSlice []string
	var awaiting []*Eval
	for _, w := range p.Workers() {
		workers = append(workers, w.ID)
	}
	for _, a := range p.Allocs() {
		switch a.Status() {
		case AllocRunning:
			running = append(running, a.ID)
		case AllocExpired:
			expired = append(expired, a.ID)
		}
	}
	for _, e := range p.Evals() {
		if p.AwaitingRetry(e) {
			awaiting = append(awaiting, e)
		}
	}
	for _, e := range p.Queue().Slice() {
		pendingSlice = append(pendingSlice, e.ID)
	}
	from := func(ids []string, prefix string, n int) string {
		if len(ids) > 0 && g.sensible() {
			return ids[g.r.IntN(len(ids))]
		}
		return g.pick(prefix, n)
	}
	if g.r.IntN(1000) < 4 {
		return pool, events.PoolDisbandedData{DeleteAt: g.when(60, 120)}
	}
	if g.r.IntN(1000) < 4 || (p.Status == PoolDisbanded && g.chance(3)) {
		return pool, events.PoolDeletedData{}
	}
	switch k := 3 + g.r.IntN(97); {
	case k < 12:
		return pool, fxRegistered(g.pick("w", 5), int64(1+g.r.IntN(10)), g.when(-5, 60), g.datasets()...)
	case k < 27:
		w := from(workers, "w", 5)
		var allocs []string
		if ww := p.Worker(w); ww != nil {
			for _, a := range ww.RunningAllocs() {
				if g.chance(80) {
					allocs = append(allocs, a.ID)
				}
			}
		}
		if g.chance(20) {
			allocs = append(allocs, g.pick("a", 20))
		}
		return pool, fxHeartbeat(w, g.when(-20, 60), g.datasets(), allocs...)
	case k < 32:
		w := from(workers, "w", 5)
		if g.sensible() {
			for _, id := range workers {
				if p.Worker(id).NumRunning() == 0 {
					w = id
				}
			}
		}
		return pool, events.WorkerExpiredData{WorkerID: w, Deadline: fxAt(g.now)}
	case k < 37:
		w := from(workers, "w", 5)
		ds := g.pick("d", 3)
		if ww := p.Worker(w); ww != nil && len(ww.Replicas) > 0 && g.sensible() {
			ds = ww.Datasets()[g.r.IntN(len(ww.Replicas))]
		}
		return pool, events.ReplicaExpiredData{WorkerID: w, DatasetID: ds, Deadline: fxAt(g.now)}
	case k < 52:
		return pool, fxSubmitted(g.pick("e", 14), int64(1+g.r.IntN(6)), g.pick("d", 3))
	case k < 56:
		id := from(pendingSlice, "e", 14)
		if len(awaiting) > 0 && g.chance(30) {
			id = awaiting[g.r.IntN(len(awaiting))].ID
		}
		return pool, events.EvalRejectedData{EvalID: id, Reason: "pool disbanded"}
	case k < 62:
		if len(awaiting) > 0 && g.sensible() {
			e := awaiting[g.r.IntN(len(awaiting))]
			return pool, events.EvalRequeuedData{EvalID: e.ID, AllocID: e.AllocID, Attempt: e.Attempts + 1, Reason: "alloc expired"}
		}
		return pool, events.EvalRequeuedData{EvalID: g.pick("e", 14), AllocID: from(expired, "a", 20), Attempt: 1 + g.r.IntN(3), Reason: "r"}
	case k < 65:
		if len(awaiting) > 0 && g.sensible() {
			e := awaiting[g.r.IntN(len(awaiting))]
			alloc := e.AllocID
			if g.chance(30) {
				alloc = ""
			}
			return pool, events.EvalDeadLetteredData{EvalID: e.ID, AllocID: alloc, Attempts: e.Attempts, Reason: "max retries"}
		}
		return pool, events.EvalDeadLetteredData{EvalID: g.pick("e", 14), AllocID: from(expired, "a", 20), Reason: "r"}
	case k < 82:
		alloc := fmt.Sprintf("a%d", len(p.Allocs())+1)
		if g.chance(10) {
			alloc = g.pick("a", 20)
		}
		w := from(workers, "w", 5)
		if e := p.Eval(from(pendingSlice, "e", 14)); e != nil && g.sensible() {
			var fits []string
			for _, ww := range p.Workers() {
				if ww.Free() >= e.Size && ww.Deadline.After(fxAt(g.now)) {
					fits = append(fits, ww.ID)
				}
			}
			if len(fits) > 0 && g.chance(70) {
				w = fits[g.r.IntN(len(fits))]
			}
			return pool, fxPlaced(alloc, e.ID, w, e.Size, e.NextAttempt, g.when(10, 60))
		}
		return pool, fxPlaced(alloc, g.pick("e", 14), w, int64(1+g.r.IntN(6)), 1+g.r.IntN(2), g.when(10, 60))
	case k < 92:
		status := events.Succeeded
		if g.chance(30) {
			status = events.Failed
		}
		return pool, events.AllocCompletedData{AllocID: from(running, "a", 20), Status: status}
	default:
		return pool, fxExpired(from(running, "a", 20))
	}
}

// TestCountsByStatus: the unsorted counts agree with the sorted listings.
func TestCountsByStatus(t *testing.T) {
	s := bxFold(t, bxHistory(2_000, 40), events.Unmarshal)
	for _, p := range s.Pools() {
		evals := map[EvalStatus]int64{}
		for _, e := range p.Evals() {
			evals[e.Status()]++
		}
		allocs := map[AllocStatus]int64{}
		for _, a := range p.Allocs() {
			allocs[a.Status()]++
		}
		if got := p.EvalsByStatus(); !maps.Equal(got, evals) {
			t.Errorf("pool %s: EvalsByStatus %v, Evals gives %v", p.ID, got, evals)
		}
		if got := p.AllocsByStatus(); !maps.Equal(got, allocs) {
			t.Errorf("pool %s: AllocsByStatus %v, Allocs gives %v", p.ID, got, allocs)
		}
		if len(evals) == 0 || len(allocs) == 0 {
			t.Errorf("pool %s: nothing to count (%d evals, %d allocs)", p.ID, len(evals), len(allocs))
		}
	}
}

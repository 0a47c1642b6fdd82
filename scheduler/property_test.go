package scheduler

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/state"
)

// machine drives random sequences of foreign commands (what ingest appends)
// and clock steps; after each step every pool gets a round whose decisions
// are folded, either at once or, in delayed mode, after the next step's
// foreign events (as when ingest appends while a round commits).
type machine struct {
	f       *fixture
	now     time.Time
	cfg     Config
	delayed bool
	// pending holds each pool's decided but not yet folded round.
	pending map[string]*pendingRound
	seq     int
	rounds  int
}

type pendingRound struct {
	at time.Time
	d  Decision
}

var pools = []string{"p1", "p2"}

func TestDecideProperties(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		m := &machine{
			f:       newFixture(rt),
			now:     t0,
			delayed: rapid.Bool().Draw(rt, "delayed"),
			pending: map[string]*pendingRound{},
			cfg: Config{
				AllocTTL:      time.Duration(rapid.IntRange(3, 20).Draw(rt, "alloc_ttl_s")) * time.Second,
				MaxRetry:      rapid.IntRange(1, 3).Draw(rt, "max_retry"),
				ExpireFrom:    t0.Add(time.Duration(rapid.IntRange(0, 30).Draw(rt, "expire_from_s")) * time.Second),
				StarvationAge: rapid.SampledFrom([]time.Duration{-1, 5 * time.Second, 30 * time.Second}).Draw(rt, "starvation_age"),
			},
		}
		// Weighted actions; a step whose action does not apply (e.g. no
		// pool yet) only ticks the clock a little.
		actions := []func(*rapid.T) bool{
			m.createPool, m.createPool,
			m.register, m.register, m.register,
			m.heartbeat, m.heartbeat, m.heartbeat, m.heartbeat, m.heartbeat, m.heartbeat,
			m.submit, m.submit, m.submit, m.submit, m.submit, m.submit,
			m.complete, m.complete, m.complete,
			m.disband,
			m.tick, m.tick, m.tick, m.tick,
		}
		maxSteps := 200
		if raceEnabled {
			maxSteps = 60
		}
		steps := rapid.IntRange(30, maxSteps).Draw(rt, "steps")
		for range steps {
			if !rapid.SampledFrom(actions).Draw(rt, "action")(rt) {
				m.now = m.now.Add(time.Millisecond)
				m.rounds_(rt)
			}
			m.check(rt)
		}
		// Let everything run out: the clock moves past every deadline.
		for range 8 {
			m.now = m.now.Add(40 * time.Second)
			m.rounds_(rt)
			m.check(rt)
		}
		m.replay(rt)
		for _, l := range m.f.log {
			propStats[l.e.Type]++
		}
	})
	t.Logf("event types folded over all runs: %v", propStats)
	t.Logf("rounds: %+v; reservations %d; late rejections %d", propRounds, propReservations, propLate)
}

var (
	propStats        = map[events.Type]int{}
	propRounds       Stats
	propReservations int
	propLate         int
)

func (m *machine) pool(t *rapid.T, active bool) *state.Pool {
	var ps []*state.Pool
	for _, id := range pools {
		if p := m.f.s.Pool(id); p != nil && (!active || p.Status == state.PoolActive) {
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 {
		return nil
	}
	return rapid.SampledFrom(ps).Draw(t, "pool")
}

// foreign folds a foreign event and then runs the rounds.
func (m *machine) foreign(t *rapid.T, pool string, d events.Data) bool {
	// Ingest validates against its state: a foreign event may still not
	// apply (e.g. a completion racing an expiry); that is fine.
	_ = m.f.applyTo(pool, m.now, d)
	m.rounds_(t)
	return true
}

func (m *machine) createPool(t *rapid.T) bool {
	id := rapid.SampledFrom(pools).Draw(t, "id")
	if m.f.s.Pool(id) != nil {
		return false
	}
	wait := time.Duration(rapid.IntRange(0, 6).Draw(t, "locality_wait_s")) * time.Second
	return m.foreign(t, id, created(rapid.SampledFrom([]events.Strategy{events.Spread, events.Binpack}).Draw(t, "strategy"), wait))
}

func (m *machine) datasets(t *rapid.T) []string {
	var out []string
	for _, ds := range []string{"x", "y"} {
		if rapid.Bool().Draw(t, "has_"+ds) {
			out = append(out, ds)
		}
	}
	return out
}

func (m *machine) register(t *rapid.T) bool {
	p := m.pool(t, true)
	if p == nil {
		return false
	}
	m.seq++
	id := fmt.Sprintf("w%d", m.seq)
	ttl := time.Duration(rapid.IntRange(5, 30).Draw(t, "worker_ttl_s")) * time.Second
	return m.foreign(t, p.ID, events.WorkerRegisteredData{WorkerID: id, Capacity: int64(rapid.IntRange(1, 8).Draw(t, "capacity")),
		Topic: "line.allocs." + p.ID + "." + id, Deadline: m.now.Add(ttl), Datasets: m.datasets(t),
		ReplicaDeadline: m.now.Add(ttl / 2)})
}

func (m *machine) heartbeat(t *rapid.T) bool {
	p := m.pool(t, true)
	if p == nil {
		return false
	}
	ws := p.Workers()
	if len(ws) == 0 {
		return false
	}
	w := rapid.SampledFrom(ws).Draw(t, "worker")
	var allocs []string
	for _, a := range w.RunningAllocs() {
		if rapid.Bool().Draw(t, "report_alloc") {
			allocs = append(allocs, a.ID)
		}
	}
	ttl := time.Duration(rapid.IntRange(5, 30).Draw(t, "ttl_s")) * time.Second
	return m.foreign(t, p.ID, events.WorkerHeartbeatData{WorkerID: w.ID, Deadline: m.now.Add(ttl), Datasets: m.datasets(t),
		ReplicaDeadline: m.now.Add(ttl / 2), Allocs: allocs, AllocDeadline: m.now.Add(ttl)})
}

func (m *machine) submit(t *rapid.T) bool {
	p := m.pool(t, true)
	if p == nil {
		return false
	}
	m.seq++
	return m.foreign(t, p.ID, submitted(fmt.Sprintf("e%d", m.seq), int64(rapid.IntRange(1, 10).Draw(t, "size")),
		rapid.SampledFrom([]string{"", "", "x", "y", "z"}).Draw(t, "dataset")))
}

func (m *machine) complete(t *rapid.T) bool {
	p := m.pool(t, false)
	if p == nil {
		return false
	}
	var running []*state.Alloc
	for _, a := range p.Allocs() {
		if a.Status() == state.AllocRunning {
			running = append(running, a)
		}
	}
	if len(running) == 0 {
		return false
	}
	a := rapid.SampledFrom(running).Draw(t, "alloc")
	return m.foreign(t, p.ID, events.AllocCompletedData{AllocID: a.ID,
		Status: rapid.SampledFrom([]events.CompletionStatus{events.Succeeded, events.Failed}).Draw(t, "status")})
}

func (m *machine) disband(t *rapid.T) bool {
	p := m.pool(t, true)
	if p == nil {
		return false
	}
	return m.foreign(t, p.ID, events.PoolDisbandedData{DeleteAt: m.now.Add(time.Duration(rapid.IntRange(0, 60).Draw(t, "pool_ttl_s")) * time.Second)})
}

func (m *machine) tick(t *rapid.T) bool {
	m.now = m.now.Add(time.Duration(rapid.IntRange(0, 8000).Draw(t, "step_ms")) * time.Millisecond)
	m.rounds_(t)
	return true
}

// rounds_ folds the pending rounds (delayed mode) and runs a round for every
// pool.
func (m *machine) rounds_(t *rapid.T) {
	for _, id := range pools {
		if pr := m.pending[id]; pr != nil {
			delete(m.pending, id)
			m.fold(t, id, pr, true)
		}
		p := m.f.s.Pool(id)
		if p == nil {
			continue
		}
		m.rounds++
		m.f.pool = id
		d := m.f.decide(m.now, m.cfg)
		m.checkRound(t, p, d)
		propRounds.Placed += d.Stats.Placed
		propRounds.LocalityHits += d.Stats.LocalityHits
		propRounds.LocalityMisses += d.Stats.LocalityMisses
		propRounds.LocalityWaits += d.Stats.LocalityWaits
		propRounds.Requeued += d.Stats.Requeued
		propRounds.DeadLettered += d.Stats.DeadLettered
		if d.Reservation != nil {
			propReservations++
		}
		pr := &pendingRound{at: m.now, d: d}
		if m.delayed {
			m.pending[id] = pr
		} else {
			m.fold(t, id, pr, false)
		}
	}
}

// fold appends a round's events. Folded right after the state it was
// decided from, every event must apply; after foreign events, only the
// expiry of an alloc that completed meanwhile may not.
func (m *machine) fold(t *rapid.T, pool string, pr *pendingRound, late bool) {
	for _, data := range pr.d.Events {
		err := m.f.applyTo(pool, pr.at, data)
		if err == nil {
			continue
		}
		var rej *state.Rejection
		if !errors.As(err, &rej) {
			t.Fatalf("fold returned a non-rejection error: %v", err)
		}
		if exp, ok := data.(events.AllocExpiredData); late && ok {
			if a := m.f.s.Pool(pool).Alloc(exp.AllocID); a != nil && a.Status() == state.AllocCompleted {
				propLate++
				continue
			}
		}
		t.Fatalf("decision %s %+v did not apply (late=%v): %v", data.EventType(), data, late, err)
	}
}

// checkRound checks properties of a decision against the state it was
// decided from.
func (m *machine) checkRound(t *rapid.T, p *state.Pool, d Decision) {
	now := events.Truncate(m.now)
	if p.Status == state.PoolActive {
		checkChoices(t, p, now, d)
	}
	used := map[string]int64{}
	placedEvals := map[string]bool{}
	for _, data := range d.Events {
		a, ok := data.(events.AllocPlacedData)
		if !ok {
			continue
		}
		if p.Status != state.PoolActive {
			t.Fatalf("placement in a %s pool", p.Status)
		}
		if d.Reservation != nil && a.WorkerID == d.Reservation.WorkerID {
			t.Fatalf("placement %s on worker %s reserved for %s", a.EvalID, a.WorkerID, d.Reservation.EvalID)
		}
		used[a.WorkerID] += a.Size
		placedEvals[a.EvalID] = true
		w := p.Worker(a.WorkerID)
		if a.Locality == events.LocalityHit {
			if rd, ok := w.Replicas[a.DatasetID]; !ok || !rd.After(now) {
				t.Fatalf("locality hit on %s without a live replica of %s", w.ID, a.DatasetID)
			}
		}
	}
	if p.Status != state.PoolActive {
		return
	}
	if r := d.Reservation; r != nil {
		// The starving eval waited long enough and fits nowhere; the
		// reserved worker is the most free that could ever fit it.
		e, w := p.Eval(r.EvalID), p.Worker(r.WorkerID)
		if e == nil || e.Status() != state.EvalPending || now.Sub(e.QueuedAt()) < m.cfg.StarvationAge || m.cfg.StarvationAge < 0 {
			t.Fatalf("reservation %+v for an eval that is not starving", r)
		}
		if w == nil || !w.Deadline.After(now) || w.Capacity < e.Size {
			t.Fatalf("reservation %+v on a worker that cannot take it", r)
		}
		for _, o := range p.Workers() {
			if !o.Deadline.After(now) {
				continue
			}
			if o.Free() >= e.Size {
				t.Fatalf("reservation %+v while worker %s has room", r, o.ID)
			}
			if o.Capacity >= e.Size && (o.Free() > w.Free() || (o.Free() == w.Free() && o.ID < w.ID)) {
				t.Fatalf("reservation %+v: worker %s is closer to fitting it", r, o.ID)
			}
		}
	}
	// Work conservation: after the round, every pending eval left behind
	// is larger than the most free worker (live, not reserved), or waits
	// for a holder of its dataset.
	var maxFree int64
	for _, w := range p.Workers() {
		if !w.Deadline.After(now) || (d.Reservation != nil && w.ID == d.Reservation.WorkerID) {
			continue
		}
		maxFree = max(maxFree, w.Free()-used[w.ID])
	}
	wait := p.LocalityWait
	if m.cfg.StarvationAge > 0 {
		wait = min(wait, m.cfg.StarvationAge)
	}
	p.Queue().Each(func(e *state.Eval) bool {
		if placedEvals[e.ID] || e.Size > maxFree {
			return true
		}
		if e.DatasetID == "" || now.Sub(e.QueuedAt()) >= wait {
			t.Fatalf("eval %s (size %d) left pending with %d free:\n%s", e.ID, e.Size, maxFree, show(d))
		}
		holders := 0
		for _, w := range p.Holders(e.DatasetID) {
			if w.Replicas[e.DatasetID].After(now) && w.Deadline.After(now) && w.Capacity >= e.Size {
				holders++
			}
		}
		if holders == 0 {
			t.Fatalf("eval %s waits for locality without a live holder", e.ID)
		}
		return true
	})
}

// check verifies the state's invariants.
func (m *machine) check(t *rapid.T) {
	if err := m.f.s.Check(); err != nil {
		t.Fatalf("state invariants: %v", err)
	}
	for _, p := range m.f.s.Pools() {
		counts := map[state.EvalStatus]int{}
		for _, e := range p.Evals() {
			if !slices.Contains(state.EvalStatuses, e.Status()) {
				t.Fatalf("eval %s has status %q", e.ID, e.Status())
			}
			counts[e.Status()]++
		}
		total := 0
		for _, n := range counts {
			total += n
		}
		if total != p.NumEvals() || counts[state.EvalPending] != p.Queue().Len() {
			t.Fatalf("pool %s: statuses %v add up to %d of %d evals, queue %d", p.ID, counts, total, p.NumEvals(), p.Queue().Len())
		}
		for _, w := range p.Workers() {
			if w.Used > w.Capacity || w.Used < 0 {
				t.Fatalf("worker %s uses %d of %d", w.ID, w.Used, w.Capacity)
			}
		}
	}
}

// replay folds the whole log into a fresh state and compares the dumps.
func (m *machine) replay(t *rapid.T) {
	s := state.New()
	for _, l := range m.f.log {
		_ = s.Apply(l.e, l.pos)
	}
	if a, b := state.Dump(m.f.s), state.Dump(s); !bytes.Equal(a, b) {
		t.Fatalf("replay differs:\n%s\n%s", a, b)
	}
}

// checkChoices replays a round's placements, in order, on a plain model of
// the pool's workers searched linearly: each placement must go to the
// worker the package doc's rules pick (feasible holders first, then the
// strategy, then less free at the start of the round, then the lowest id),
// with the locality and the candidates count (feasible workers at the
// eval's turn) the rules give.
func checkChoices(t *rapid.T, p *state.Pool, now time.Time, d Decision) {
	type model struct {
		w           *state.Worker
		free, start int64
	}
	var ws []*model
	for _, w := range p.Workers() {
		if w.Deadline.After(now) && (d.Reservation == nil || w.ID != d.Reservation.WorkerID) {
			ws = append(ws, &model{w: w, free: w.Free(), start: w.Free()})
		}
	}
	strategy := p.Strategy
	if !strategy.Valid() {
		strategy = events.Spread
	}
	better := func(a, b *model) bool {
		if a.free != b.free {
			return (strategy == events.Binpack) == (a.free < b.free)
		}
		if a.start != b.start {
			return a.start < b.start
		}
		return a.w.ID < b.w.ID
	}
	for _, data := range d.Events {
		a, ok := data.(events.AllocPlacedData)
		if !ok {
			continue
		}
		e := p.Eval(a.EvalID)
		var best, bestHolder *model
		candidates := 0
		for _, w := range ws {
			if w.free < e.Size {
				continue
			}
			candidates++
			if best == nil || better(w, best) {
				best = w
			}
			if rd, ok := w.w.Replicas[e.DatasetID]; ok && e.DatasetID != "" && rd.After(now) && (bestHolder == nil || better(w, bestHolder)) {
				bestHolder = w
			}
		}
		want := events.LocalityNone
		switch {
		case bestHolder != nil:
			best, want = bestHolder, events.LocalityHit
		case e.DatasetID != "":
			want = events.LocalityMiss
		}
		if best == nil || a.WorkerID != best.w.ID || a.Candidates != candidates || a.Locality != want {
			wantID := "none"
			if best != nil {
				wantID = best.w.ID
			}
			t.Fatalf("%s placement of %s (size %d) on %s with %d candidates (%s); the model wants %s with %d (%s):\n%s",
				strategy, e.ID, e.Size, a.WorkerID, a.Candidates, a.Locality, wantID, candidates, want, show(d))
		}
		best.free -= e.Size
	}
}

package audit

import (
	"container/heap"
	"slices"
	"time"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/scheduler"
	"github.com/line-sched/line/state"
)

// WhatIfOptions tune a what-if run.
type WhatIfOptions struct {
	// Strategy, if set, replaces every pool's strategy.
	Strategy events.Strategy
	// LocalityWait, if not nil, replaces every pool's locality wait.
	LocalityWait *time.Duration
	// Config is the scheduler's configuration. A zero AllocTTL is taken
	// from the recorded placements (deadline minus time of the first one).
	Config scheduler.Config
	// Tick is how often rounds run while evals wait (default 250ms, the
	// scheduler loop's tick).
	Tick time.Duration
}

// Metrics describe a run, recorded or what-if, over the same log time.
type Metrics struct {
	Placements     int64 `json:"placements"`
	LocalityHits   int64 `json:"locality_hits"`
	LocalityMisses int64 `json:"locality_misses"`
	// LocalityHitRate is hits / (hits + misses), 0 without any.
	LocalityHitRate float64 `json:"locality_hit_rate"`
	// Utilization is the size-time of running allocs over the
	// capacity-time of registered workers.
	Utilization  float64 `json:"utilization"`
	Completed    int64   `json:"completed"`
	Expired      int64   `json:"expired"`
	DeadLettered int64   `json:"dead_lettered"`
	Rejected     int64   `json:"rejected"`
	// Pending counts evals still waiting at the end.
	Pending int64 `json:"pending_at_end"`
	// Waits of placements (time since the eval was queued).
	MeanWaitMs int64 `json:"mean_wait_ms"`
	P50WaitMs  int64 `json:"p50_wait_ms"`
	P95WaitMs  int64 `json:"p95_wait_ms"`
	MaxWaitMs  int64 `json:"max_wait_ms"`
}

// WhatIf re-runs scheduler.Decide over a recorded history: the recorded
// commands (pools, workers, heartbeats, submissions) arrive at their log
// times and rounds run at every arrival, every completion and every Tick
// while evals wait. Each attempt of an eval behaves as the same attempt did
// in the recorded run: it completes after as long as it ran, or its worker
// stops heartbeating it after as long as it was heartbeated (then it
// expires), or it runs as long as its worker lives. An attempt the recorded
// run never made behaves as the eval's completing attempt, else runs as
// long as its worker lives. Use Visit as Options.Visit of a Replay, then
// Run. It keeps the history in memory.
type WhatIf struct {
	opts WhatIfOptions
	log  []events.Envelope
	// badDecisions counts decisions of the what-if run that did not apply.
	badDecisions int
}

// NewWhatIf returns a what-if run with opts.
func NewWhatIf(opts WhatIfOptions) *WhatIf {
	if opts.Tick <= 0 {
		opts.Tick = 250 * time.Millisecond
	}
	return &WhatIf{opts: opts}
}

// Visit records one replayed event.
func (w *WhatIf) Visit(s Step) {
	if s.Poison == nil && s.Envelope.Data != nil {
		w.log = append(w.log, s.Envelope)
	}
}

// attemptKey names an attempt of an eval.
type attemptKey struct {
	pool, eval string
	attempt    int
}

// outcome is how a recorded attempt ended, relative to its placement.
type outcome struct {
	// completes: completed after dur; otherwise heartbeated for dur, then
	// left to expire. forever: neither (it ran until its worker died or the
	// history ended).
	dur       time.Duration
	completes bool
	forever   bool
}

// Run measures the recorded history and the what-if run.
func (w *WhatIf) Run() (recorded, whatIf Metrics) {
	cfg := w.opts.Config
	outcomes, completing, rec := w.record(&cfg)
	recorded = rec.finish()

	sim := newMeter()
	var end time.Time
	for _, e := range w.log {
		if e.At.After(end) {
			end = e.At
		}
	}
	var due dueHeap
	// stopAt is when the worker stops heartbeating an alloc of this run
	// (absent: never).
	stopAt := map[string]time.Time{}
	round := func(now time.Time) {
		for _, p := range sim.st.Pools() {
			if p.Status == state.PoolDeleted {
				continue
			}
			d := scheduler.Decide(p, now, cfg)
			for _, data := range d.Events {
				if sim.apply(events.New(p.ID, now, data)) != nil {
					w.badDecisions++ // cannot happen: Decide decides on the fold
					continue
				}
				pl, ok := data.(events.AllocPlacedData)
				if !ok {
					continue
				}
				o, ok := outcomes[attemptKey{p.ID, pl.EvalID, pl.Attempt}]
				if !ok {
					o, ok = completing[attemptKey{p.ID, pl.EvalID, 0}]
				}
				switch {
				case !ok || o.forever:
				case o.completes:
					at := events.Truncate(now.Add(o.dur))
					heap.Push(&due, dueAlloc{at: at, pool: p.ID, alloc: pl.AllocID})
					stopAt[p.ID+"\x00"+pl.AllocID] = at
				default:
					stopAt[p.ID+"\x00"+pl.AllocID] = now.Add(o.dur)
				}
			}
		}
	}
	var now time.Time
	// wake is when the next round is due without a command: a Tick later
	// while evals wait, or at the next deadline.
	wake := func() (time.Time, bool) {
		var at time.Time
		for _, p := range sim.st.Pools() {
			if p.Status == state.PoolDeleted {
				continue
			}
			if p.Queue().Len() > 0 || p.NumAwaitingRetry() > 0 || p.Status == state.PoolDisbanded {
				if t := now.Add(w.opts.Tick); at.IsZero() || t.Before(at) {
					at = t
				}
			}
			if t, ok := p.TTL().Next(); ok && t.After(now) && (at.IsZero() || t.Before(at)) {
				at = t
			}
		}
		return at, !at.IsZero()
	}
	// advance runs completions and rounds up to t.
	advance := func(t time.Time) {
		for {
			next := t
			if due.Len() > 0 && due[0].at.Before(next) {
				next = due[0].at
			}
			if at, ok := wake(); ok && !now.IsZero() && at.Before(next) {
				next = at
			}
			if !next.Before(t) {
				break
			}
			now = next
			w.complete(sim, &due, now)
			round(now)
		}
		now = t
		w.complete(sim, &due, now)
	}
	for _, e := range w.log {
		if e.At.After(now) {
			advance(e.At)
		}
		switch d := e.Data.(type) {
		case events.PoolCreatedData:
			if w.opts.Strategy != "" {
				d.Strategy = w.opts.Strategy
			}
			if w.opts.LocalityWait != nil {
				d.LocalityWaitMs = events.ToMillis(*w.opts.LocalityWait)
			}
			e.Data = d
		case events.WorkerHeartbeatData:
			// The worker heartbeats what it runs in this run.
			d.Allocs = nil
			if p := sim.st.Pool(e.Pool); p != nil {
				if wk := p.Worker(d.WorkerID); wk != nil {
					for _, a := range wk.RunningAllocs() {
						if stop, ok := stopAt[e.Pool+"\x00"+a.ID]; !ok || stop.After(e.At) {
							d.Allocs = append(d.Allocs, a.ID)
						}
					}
				}
			}
			e.Data = d
		case events.PoolDisbandedData, events.WorkerRegisteredData, events.EvalSubmittedData:
		default:
			continue // a decision: the what-if run makes its own
		}
		_ = sim.apply(e) // a command may not fit this run (a heartbeat of a worker it expired)
		round(e.At)
	}
	advance(end)
	whatIf = sim.finish()
	return recorded, whatIf
}

// record folds the recorded history, measuring it, and learns how each
// attempt ended (completing[{pool, eval, 0}] is the eval's completing
// attempt). A zero cfg.AllocTTL is taken from the first placement.
func (w *WhatIf) record(cfg *scheduler.Config) (outcomes, completing map[attemptKey]outcome, rec *meter) {
	rec = newMeter()
	outcomes, completing = map[attemptKey]outcome{}, map[attemptKey]outcome{}
	type alloc struct {
		key      attemptKey
		placedAt time.Time
		lastBeat time.Time
	}
	allocs := map[string]*alloc{} // pool NUL alloc id
	for _, e := range w.log {
		if rec.apply(e) != nil {
			continue
		}
		switch d := e.Data.(type) {
		case events.AllocPlacedData:
			k := attemptKey{e.Pool, d.EvalID, d.Attempt}
			allocs[e.Pool+"\x00"+d.AllocID] = &alloc{key: k, placedAt: e.At, lastBeat: e.At}
			outcomes[k] = outcome{forever: true}
			if cfg.AllocTTL <= 0 {
				cfg.AllocTTL = d.Deadline.Sub(e.At)
			}
		case events.WorkerHeartbeatData:
			for _, id := range d.Allocs {
				if a := allocs[e.Pool+"\x00"+id]; a != nil {
					a.lastBeat = e.At
				}
			}
		case events.AllocCompletedData:
			if a := allocs[e.Pool+"\x00"+d.AllocID]; a != nil {
				o := outcome{dur: e.At.Sub(a.placedAt), completes: true}
				outcomes[a.key] = o
				completing[attemptKey{a.key.pool, a.key.eval, 0}] = o
			}
		case events.AllocExpiredData:
			if a := allocs[e.Pool+"\x00"+d.AllocID]; a != nil && d.Reason != scheduler.ReasonWorkerExpired {
				outcomes[a.key] = outcome{dur: a.lastBeat.Sub(a.placedAt)}
			}
		}
	}
	return outcomes, completing, rec
}

// complete applies the completions due at or before now.
func (w *WhatIf) complete(sim *meter, due *dueHeap, now time.Time) {
	for due.Len() > 0 && !(*due)[0].at.After(now) {
		d := heap.Pop(due).(dueAlloc)
		if p := sim.st.Pool(d.pool); p != nil {
			if a := p.Alloc(d.alloc); a != nil && a.Status() == state.AllocRunning {
				_ = sim.apply(events.New(d.pool, d.at, events.AllocCompletedData{AllocID: d.alloc, Status: events.Succeeded}))
			}
		}
	}
}

type dueAlloc struct {
	at          time.Time
	pool, alloc string
}

type dueHeap []dueAlloc

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueAlloc)) }
func (h *dueHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// meter folds a run and integrates used and registered capacity over log
// time.
type meter struct {
	st             *state.State
	off            int64
	last           time.Time
	used, capacity int64
	// usedTime and capTime are size-milliseconds.
	usedTime, capTime float64
	m                 Metrics
	waits             []int64
	// rejected counts events that did not apply (a what-if run replays
	// commands that may not fit it, e.g. a heartbeat of a worker it expired).
	rejected int64
}

func newMeter() *meter { return &meter{st: state.New()} }

func (m *meter) apply(e events.Envelope) error {
	if !m.last.IsZero() && e.At.After(m.last) {
		dt := float64(e.At.Sub(m.last) / time.Millisecond)
		m.usedTime += float64(m.used) * dt
		m.capTime += float64(m.capacity) * dt
	}
	if e.At.After(m.last) {
		m.last = e.At
	}
	var gone int64
	if d, ok := e.Data.(events.WorkerExpiredData); ok {
		if p := m.st.Pool(e.Pool); p != nil {
			if w := p.Worker(d.WorkerID); w != nil {
				gone = w.Capacity
			}
		}
	}
	var deleted int64
	if _, ok := e.Data.(events.PoolDeletedData); ok {
		if p := m.st.Pool(e.Pool); p != nil {
			for _, w := range p.Workers() {
				deleted += w.Capacity
			}
		}
	}
	m.off++
	if err := m.st.Apply(e, events.Position{Offset: m.off}); err != nil {
		m.rejected++
		return err
	}
	p := m.st.Pool(e.Pool)
	switch d := e.Data.(type) {
	case events.WorkerRegisteredData:
		m.capacity += d.Capacity
	case events.WorkerExpiredData:
		m.capacity -= gone
	case events.PoolDeletedData:
		m.capacity -= deleted
	case events.AllocPlacedData:
		m.used += d.Size
		m.m.Placements++
		switch d.Locality {
		case events.LocalityHit:
			m.m.LocalityHits++
		case events.LocalityMiss:
			m.m.LocalityMisses++
		}
		m.waits = append(m.waits, int64(d.WaitedMs))
	case events.AllocCompletedData:
		m.used -= p.Alloc(d.AllocID).Size
		m.m.Completed++
	case events.AllocExpiredData:
		m.used -= p.Alloc(d.AllocID).Size
		m.m.Expired++
	case events.EvalDeadLetteredData:
		m.m.DeadLettered++
	case events.EvalRejectedData:
		m.m.Rejected++
	}
	return nil
}

func (m *meter) finish() Metrics {
	out := m.m
	if n := out.LocalityHits + out.LocalityMisses; n > 0 {
		out.LocalityHitRate = float64(out.LocalityHits) / float64(n)
	}
	if m.capTime > 0 {
		out.Utilization = m.usedTime / m.capTime
	}
	for _, p := range m.st.Pools() {
		out.Pending += int64(p.Queue().Len())
	}
	if len(m.waits) > 0 {
		w := slices.Clone(m.waits)
		slices.Sort(w)
		var sum int64
		for _, x := range w {
			sum += x
		}
		out.MeanWaitMs = sum / int64(len(w))
		out.P50WaitMs = w[len(w)/2]
		out.P95WaitMs = w[min(len(w)-1, len(w)*95/100)]
		out.MaxWaitMs = w[len(w)-1]
	}
	return out
}

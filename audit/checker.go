package audit

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/state"
)

// Checker verifies a history one event at a time. It folds every event into
// its own scratch state with the shared fold and reports what is wrong with
// it. It is pure: no I/O, no clock. Feed each partition's events in offset
// order; events of different partitions may interleave in any order.
//
// The zero value is not usable; call NewChecker.
type Checker struct {
	st     *state.State
	pools  map[string]*poolTrack
	floors []int64 // per partition, the largest basis seen
	// The pool of the last event checked, its track and its id: most
	// histories hold few pools, so most events find theirs here.
	lastPoolID string
	lastPool   *state.Pool
	lastTrack  *poolTrack
	sum        tallies
	// lastErr is the fold's answer to the last event checked.
	lastErr error
}

// tallies are the counters behind Summary.
type tallies struct {
	events, poison int64
	byType         map[events.Type]int64
	violations     map[Kind]int64
	unjudged       int64
	first, last    time.Time
	// evals and allocs of deleted pools, which the fold forgets.
	deletedEvals  map[state.EvalStatus]int64
	deletedAllocs map[state.AllocStatus]int64
}

// NewChecker returns a checker with an empty state.
func NewChecker() *Checker {
	return &Checker{st: state.New(), pools: make(map[string]*poolTrack),
		sum: tallies{byType: make(map[events.Type]int64), violations: make(map[Kind]int64),
			deletedEvals: make(map[state.EvalStatus]int64), deletedAllocs: make(map[state.AllocStatus]int64)}}
}

// State is the checker's fold of what it was fed. Callers must not change
// it.
func (c *Checker) State() *state.State { return c.st }

// Poison reports a record at pos that could not be decoded (err is the
// decode error; key is the record key, the pool id if the producer was
// line). The replay skips it, as every consumer does.
func (c *Checker) Poison(pos events.Position, key string, err error) []Violation {
	c.lastErr = nil
	c.sum.events++
	c.sum.poison++
	v := Violation{Position: pos, Pool: key, Kind: KindPoison, Message: fmt.Sprintf("undecodable record skipped: %v", err)}
	var de *events.DecodeError
	if errors.As(err, &de) {
		v.Type = de.Type
	}
	return c.count([]Violation{v})
}

// LastRejection is the fold's *state.Rejection of the last event Check was
// given, or nil if it applied.
func (c *Checker) LastRejection() error { return c.lastErr }

func (c *Checker) count(vs []Violation) []Violation {
	for _, v := range vs {
		c.sum.violations[v.Kind]++
	}
	return vs
}

// Check folds e, found at pos, and returns what is wrong with it (nil if
// nothing).
func (c *Checker) Check(e events.Envelope, pos events.Position) []Violation {
	c.sum.events++
	c.sum.byType[e.Type]++
	if c.sum.first.IsZero() || e.At.Before(c.sum.first) {
		c.sum.first = e.At
	}
	if e.At.After(c.sum.last) {
		c.sum.last = e.At
	}
	ck := &check{c: c, e: e, pos: pos}
	if e.Pool == c.lastPoolID && c.lastPool != nil {
		ck.p, ck.pt = c.lastPool, c.lastTrack
	} else if ck.p = c.st.Pool(e.Pool); ck.p != nil {
		ck.pt = c.pools[e.Pool]
		c.lastPoolID, c.lastPool, c.lastTrack = e.Pool, ck.p, ck.pt
	}
	if ck.pt != nil && ck.pt.partition != pos.Partition {
		ck.flag(KindPartition, false, "event of pool %s on partition %d, but the pool lives on partition %d", e.Pool, pos.Partition, ck.pt.partition)
	}
	ck.before()
	err := c.st.Apply(e, pos)
	c.lastErr = err
	if err != nil {
		ck.rejected(err)
	} else {
		ck.after()
	}
	return c.count(ck.vs)
}

// check is the checking of one event.
type check struct {
	c   *Checker
	e   events.Envelope
	pos events.Position
	p   *state.Pool // before the event; nil if unknown
	pt  *poolTrack
	vs  []Violation
	// covering lists the violations above that stand for the fold's
	// rejection, if it rejects.
	covering []int

	// What before() saw, for after().
	worker       *state.Worker // the worker whose capacity the event changes
	wasRunning   bool          // the alloc ended was running on worker
	oldDeadline  time.Time
	oldReplicas  map[string]time.Time // listed datasets: deadline before (zero: absent)
	evalsBefore  map[state.EvalStatus]int64
	allocsBefore map[state.AllocStatus]int64
}

func (k *check) flag(kind Kind, covers bool, format string, args ...any) {
	k.vs = append(k.vs, Violation{Position: k.pos, At: k.e.At, Pool: k.e.Pool, Type: k.e.Type, EventID: k.e.ID,
		Kind: kind, Message: fmt.Sprintf(format, args...)})
	if covers {
		k.covering = append(k.covering, len(k.vs)-1)
	}
}

// before checks the event against the state before it and remembers what
// after() needs.
func (k *check) before() {
	p := k.p
	if p == nil || p.Status == state.PoolDeleted {
		return // the fold rejects every event of an unknown or deleted pool
	}
	switch d := k.e.Data.(type) {
	case events.AllocPlacedData:
		k.placed(d)
	case events.AllocCompletedData:
		k.ending(d.AllocID, "completion")
	case events.AllocExpiredData:
		k.ending(d.AllocID, "expiry")
	case events.WorkerHeartbeatData:
		if w := p.Worker(d.WorkerID); w != nil {
			k.worker, k.oldDeadline = w, w.Deadline
			k.oldReplicas = make(map[string]time.Time, len(d.Datasets))
			for _, ds := range d.Datasets {
				k.oldReplicas[ds] = w.Replicas[ds]
			}
		}
	case events.WorkerExpiredData:
		k.worker = p.Worker(d.WorkerID)
	case events.ReplicaExpiredData:
		if w := p.Worker(d.WorkerID); w != nil {
			k.worker = w
			k.oldReplicas = map[string]time.Time{d.DatasetID: w.Replicas[d.DatasetID]}
		}
	case events.PoolDeletedData:
		k.evalsBefore = make(map[state.EvalStatus]int64)
		for _, ev := range p.Evals() {
			k.evalsBefore[ev.Status()]++
		}
		k.allocsBefore = make(map[state.AllocStatus]int64)
		for _, a := range p.Allocs() {
			k.allocsBefore[a.Status()]++
		}
	}
}

// ending checks a completion or expiry of alloc id.
func (k *check) ending(id, what string) {
	a := k.p.Alloc(id)
	switch {
	case a == nil:
		k.flag(KindUnknownAlloc, true, "%s of unknown alloc %s", what, id)
		return
	case a.Status() != state.AllocRunning:
		k.flag(KindAllocNotLive, true, "%s of alloc %s, which already %s at %s", what, id, a.Status(), events.FormatTime(a.EndedAt()))
		return
	}
	if w := k.p.Worker(a.WorkerID()); w != nil && w.Runs(a) {
		k.worker, k.wasRunning = w, true
	}
}

// placed checks an alloc.placed against the state before it.
func (k *check) placed(d events.AllocPlacedData) {
	p, at := k.p, k.e.At
	basis, judged := d.Basis, d.Basis > 0
	if d.Basis > k.pos.Offset {
		k.flag(KindBasis, false, "basis %d lies beyond the placement's own offset %d", d.Basis, k.pos.Offset)
		judged = false
	}
	if !judged {
		k.c.sum.unjudged++
	}
	if judged && k.pt != nil && p.Status == state.PoolDisbanded && k.pt.disbandOff >= 0 && k.pt.disbandOff < basis {
		k.flag(KindPoolDisbanded, false, "placed in pool disbanded at %d:%d, which the scheduler had folded (basis %d)",
			k.pos.Partition, k.pt.disbandOff, basis)
	}
	w := p.Worker(d.WorkerID)
	switch {
	case w == nil:
		k.flag(KindUnknownWorker, true, "placed alloc %s on unknown worker %s", d.AllocID, d.WorkerID)
		return
	case !w.Deadline.After(at):
		k.flag(KindWorkerExpired, true, "placed alloc %s on worker %s, whose deadline %s is not after the placement",
			d.AllocID, w.ID, events.FormatTime(w.Deadline))
		return
	case w.Used+d.Size > w.Capacity:
		k.flag(KindOvercommit, true, "placed alloc %s (size %d) on worker %s with %d of %d free",
			d.AllocID, d.Size, w.ID, w.Free(), w.Capacity)
		return
	}
	k.worker = w
	ev := p.Eval(d.EvalID)
	if ev == nil || ev.Status() != state.EvalPending || ev.Size != d.Size || ev.NextAttempt != d.Attempt || p.Alloc(d.AllocID) != nil {
		return // the fold rejects it; the rejection is the violation
	}
	ds := ev.DatasetID
	if d.DatasetID != ds {
		k.flag(KindLocality, false, "placement names dataset %q, eval %s names %q", d.DatasetID, ev.ID, ds)
	}
	if ds == "" {
		if d.Locality != events.LocalityNone {
			k.flag(KindLocality, false, "locality %q recorded for eval %s, which names no dataset", d.Locality, ev.ID)
		}
		return
	}
	if d.Locality == events.LocalityNone {
		k.flag(KindLocality, false, "locality none recorded for eval %s, which names dataset %s", ev.ID, ds)
	}
	onHolder := w.Replicas[ds].After(at)
	if d.Locality == events.LocalityHit && !onHolder {
		k.flag(KindLocality, false, "locality hit recorded, but worker %s holds no live replica of %s", w.ID, ds)
	}
	if onHolder || !judged || k.pt == nil {
		return
	}
	for _, h := range p.Holders(ds) {
		if h == w {
			continue
		}
		free, ok := k.visibleRoom(h, ds, basis, d.Size)
		if !ok || k.maybeReserved(h, ev, basis) {
			continue
		}
		k.flag(KindLocality, false,
			"eval %s (dataset %s, size %d) placed on %s, but holder %s had %d free and a live replica when the scheduler decided (basis %d)",
			ev.ID, ds, d.Size, w.ID, h.ID, free, basis)
		return
	}
}

// visibleRoom tells whether, for a scheduler that had folded every offset
// below basis and decided at the event's time, h was a live holder of ds
// with room for size, counting this round's earlier placements but not
// capacity released at or after basis. It returns that room.
func (k *check) visibleRoom(h *state.Worker, ds string, basis, size int64) (int64, bool) {
	at := k.e.At
	t := k.pt.workers[h]
	if t == nil || t.regOff >= basis {
		return 0, false
	}
	if dl, ok := valueAt(&t.deadline, basis, h.Deadline); !ok || !dl.After(at) {
		return 0, false
	}
	if rd, ok := valueAt(t.replicas[ds], basis, h.Replicas[ds]); !ok || !rd.After(at) {
		return 0, false
	}
	gained, ok := sumSince(&t.free, basis, true)
	if !ok {
		return 0, false
	}
	free := h.Free() - gained
	return free, free >= size
}

// maybeReserved tells whether the scheduler may have kept h free for a
// starving eval in the round (see the scheduler's starvation rule): some
// other pending eval fit no live worker at the start of the round but fits
// h's capacity, and h was the most free live worker that could ever take
// it. The starvation age is not on the log, so any wait counts. When in
// doubt, it says yes.
func (k *check) maybeReserved(h *state.Worker, ev *state.Eval, basis int64) bool {
	at := k.e.At
	type live struct {
		w    *state.Worker
		free int64
	}
	var ws []live
	var maxFree int64
	for _, w := range k.p.Workers() {
		t := k.pt.workers[w]
		if t == nil || t.regOff >= basis {
			continue
		}
		dl, ok := valueAt(&t.deadline, basis, w.Deadline)
		if !ok {
			return true
		}
		if !dl.After(at) {
			continue
		}
		delta, ok := sumSince(&t.free, basis, false)
		if !ok {
			return true
		}
		f := w.Free() - delta
		ws = append(ws, live{w, f})
		maxFree = max(maxFree, f)
	}
	reserved := false
	k.p.Queue().Sizes(maxFree+1, h.Capacity, func(size int64, n int, first *state.Eval) bool {
		if n == 1 && first == ev {
			return true
		}
		var best *live
		for i := range ws {
			c := &ws[i]
			if c.w.Capacity >= size && (best == nil || c.free > best.free || (c.free == best.free && c.w.ID < best.w.ID)) {
				best = c
			}
		}
		if best != nil && best.w == h {
			reserved = true
			return false
		}
		return true
	})
	return reserved
}

// rejected turns the fold's rejection into a violation unless one already
// stands for it.
func (k *check) rejected(err error) {
	var rej *state.Rejection
	reason := err.Error()
	if errors.As(err, &rej) {
		reason = rej.Reason
	}
	if len(k.covering) > 0 {
		for _, i := range k.covering {
			k.vs[i].Message += " (did not apply: " + reason + ")"
		}
		return
	}
	k.flag(KindRejected, true, "did not apply: %s", reason)
}

// after records, for an event that applied, what the checker tracks beyond
// the fold, and checks the capacity of the worker it changed.
func (k *check) after() {
	c, e, off := k.c, k.e, k.pos.Offset
	p := k.p // a pool, once created, stays the same *state.Pool
	if p == nil {
		p = c.st.Pool(e.Pool)
	}
	floor := c.floor(k.pos.Partition)
	switch d := e.Data.(type) {
	case events.PoolCreatedData:
		c.pools[e.Pool] = &poolTrack{partition: k.pos.Partition, disbandOff: -1, workers: make(map[*state.Worker]*workerTrack)}
		c.lastPoolID, c.lastPool, c.lastTrack = "", nil, nil
	case events.PoolDisbandedData:
		if k.pt != nil {
			k.pt.disbandOff = off
		}
	case events.PoolDeletedData:
		if k.pt != nil {
			k.pt.workers = make(map[*state.Worker]*workerTrack)
		}
		for s, n := range k.evalsBefore {
			c.sum.deletedEvals[s] += n
		}
		for s, n := range k.allocsBefore {
			c.sum.deletedAllocs[s] += n
		}
	case events.WorkerRegisteredData:
		if k.pt != nil {
			k.pt.workers[p.Worker(d.WorkerID)] = newWorkerTrack(off)
		}
	case events.WorkerExpiredData:
		if k.pt != nil {
			delete(k.pt.workers, k.worker)
		}
	case events.WorkerHeartbeatData, events.ReplicaExpiredData:
		t := k.track(k.worker)
		if t == nil {
			break
		}
		if w := k.worker; !w.Deadline.Equal(k.oldDeadline) && !k.oldDeadline.IsZero() {
			t.deadline.add(off, k.oldDeadline, floor)
		}
		for ds, old := range k.oldReplicas {
			if now := k.worker.Replicas[ds]; !now.Equal(old) {
				t.replica(ds).add(off, old, floor)
			}
		}
	case events.AllocPlacedData:
		c.setFloor(k.pos.Partition, max(floor, d.Basis))
		if t := k.track(k.worker); t != nil {
			t.free.add(off, -d.Size, floor)
		}
		k.capacity(p)
	case events.AllocCompletedData, events.AllocExpiredData:
		if !k.wasRunning {
			break
		}
		id := ""
		if dc, ok := d.(events.AllocCompletedData); ok {
			id = dc.AllocID
		} else {
			id = d.(events.AllocExpiredData).AllocID
		}
		if a := p.Alloc(id); a != nil {
			if t := k.track(k.worker); t != nil {
				t.free.add(off, a.Size, floor)
			}
		}
		k.capacity(p)
	}
}

func (k *check) track(w *state.Worker) *workerTrack {
	if w == nil || k.pt == nil {
		return nil
	}
	return k.pt.workers[w]
}

// floor is the largest basis seen on partition.
func (c *Checker) floor(partition int32) int64 {
	if int(partition) < len(c.floors) {
		return c.floors[partition]
	}
	return 0
}

// setFloor records basis as the largest basis seen on partition.
func (c *Checker) setFloor(partition int32, basis int64) {
	for int(partition) >= len(c.floors) {
		c.floors = append(c.floors, 0)
	}
	c.floors[partition] = basis
}

// capacity checks the worker the event changed: used within [0, capacity].
// (Placements and ends of allocs never register or remove a worker: the
// worker before the event is the pool's worker of that id after it.)
func (k *check) capacity(p *state.Pool) {
	if k.worker == nil || p == nil {
		return
	}
	if w := k.worker; w.Used > w.Capacity || w.Used < 0 {
		k.flag(KindOvercommit, false, "worker %s uses %d of capacity %d after the event", w.ID, w.Used, w.Capacity)
	}
}

// Finish checks the end of the history: every eval of every pool in exactly
// one known, consistent status, and every other invariant of the fold
// (state.Check). Call it once, after the last event.
func (c *Checker) Finish() []Violation {
	err := c.st.Check()
	if err == nil {
		return nil
	}
	var vs []Violation
	pool := ""
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "pool "); ok {
			pool, line, _ = strings.Cut(rest, ": ")
		}
		if line == "" {
			continue
		}
		kind := KindInvariant
		if strings.HasPrefix(line, "eval ") || strings.HasPrefix(line, "placed eval ") {
			kind = KindEvalStatus
		}
		vs = append(vs, Violation{AtEnd: true, Pool: pool, Kind: kind, Message: line})
	}
	return c.count(vs)
}

package state

import (
	"fmt"
	"time"

	"github.com/line-sched/line/events"
)

// Rejection reports an event that did not apply. The state is unchanged.
// Producers that validate their commands against the state never write one,
// except in a race that the rules below resolve; the audit reports each.
type Rejection struct {
	Type   events.Type
	Pool   string
	Reason string
}

func (r *Rejection) Error() string {
	return fmt.Sprintf("%s in pool %s did not apply: %s", r.Type, r.Pool, r.Reason)
}

func reject(e events.Envelope, format string, args ...any) error {
	return &Rejection{Type: e.Type, Pool: e.Pool, Reason: fmt.Sprintf(format, args...)}
}

// Apply folds one event at position pos into the state. It returns nil when
// the event applied and a *Rejection when it did not (then nothing changed).
//
// The meaning of each event, in one place:
//
//   - pool.created opens a pool, unless the id was ever used.
//   - pool.disbanded moves an active pool to disbanded. Evals already
//     pending stay pending until the scheduler rejects them; a placement
//     decided before the scheduler saw the disband still applies.
//   - pool.deleted ends a disbanded pool and forgets its workers, evals and
//     allocs; the id stays taken.
//   - worker.registered adds a worker to an active pool, with its replicas.
//   - worker.heartbeat moves the deadlines of the worker, of each listed
//     replica (added if new) and of each listed alloc running on it.
//     Deadlines only move forward.
//   - worker.expired removes a worker with no running allocs, and its
//     replicas. Expiries are decisions: they apply whatever heartbeat came
//     in after they were decided.
//   - replica.expired removes one replica.
//   - eval.submitted queues a new eval (ids are unique per pool: a second
//     submission of the same id does not apply).
//   - eval.rejected ends a pending eval, or a placed one whose alloc
//     expired.
//   - eval.requeued puts a placed eval whose alloc expired back at the end
//     of the queue.
//   - eval.dead_lettered ends a placed eval whose alloc expired.
//   - alloc.placed takes a pending eval off the queue and runs it on a live
//     worker, only if the worker has room: no offset ever overcommits.
//   - alloc.completed ends a running alloc and its eval; the capacity comes
//     back exactly once.
//   - alloc.expired ends a running alloc and returns its capacity; its eval
//     waits for the retry decision.
func (s *State) Apply(e events.Envelope, pos events.Position) error {
	s.Applied++
	err := s.apply(e, pos)
	if err != nil {
		s.Rejected++
	}
	return err
}

func (s *State) apply(e events.Envelope, pos events.Position) error {
	p := s.pools[e.Pool]
	if d, ok := e.Data.(events.PoolCreatedData); ok {
		if p != nil {
			return reject(e, "pool already exists")
		}
		s.pools[e.Pool] = newPool(e.Pool, e.At, d)
		return nil
	}
	if p == nil {
		return reject(e, "unknown pool")
	}
	if p.Status == PoolDeleted {
		return reject(e, "pool deleted")
	}
	switch d := e.Data.(type) {
	case events.PoolDisbandedData:
		if p.Status != PoolActive {
			return reject(e, "pool is %s", p.Status)
		}
		p.Status, p.DisbandedAt, p.DeleteAt = PoolDisbanded, e.At, d.DeleteAt
	case events.PoolDeletedData:
		if p.Status != PoolDisbanded {
			return reject(e, "pool is %s, not disbanded", p.Status)
		}
		p.Status, p.DeletedAt = PoolDeleted, e.At
		p.workers, p.evals, p.allocs = map[string]*Worker{}, map[string]*Eval{}, map[string]*Alloc{}
		p.holders, p.queue, p.free = map[string]map[string]*Worker{}, newQueue(), newFreeIndex()
		p.ttl, p.retry, p.datasets = newTTLIndex(), newEvalSet(), map[string]string{}
		p.evalOrder, p.allocOrder = idOrder[*Eval]{}, idOrder[*Alloc]{}
	case events.WorkerRegisteredData:
		if p.Status != PoolActive {
			return reject(e, "pool is %s", p.Status)
		}
		if p.workers[d.WorkerID] != nil {
			return reject(e, "worker %s already registered", d.WorkerID)
		}
		w := &Worker{ID: d.WorkerID, Capacity: d.Capacity, Deadline: d.Deadline, Topic: d.Topic,
			RegisteredAt: e.At, Replicas: make(map[string]time.Time)}
		p.workers[w.ID] = w
		p.ttl.put(workerTTL(w))
		for _, ds := range d.Datasets {
			p.putReplica(w, ds, d.ReplicaDeadline)
		}
		p.free.update(w)
	case events.WorkerHeartbeatData:
		w := p.workers[d.WorkerID]
		if w == nil {
			return reject(e, "unknown worker %s", d.WorkerID)
		}
		p.ttl.move(workerTTL(w), later(w.Deadline, d.Deadline))
		w.Deadline = later(w.Deadline, d.Deadline)
		for _, ds := range d.Datasets {
			p.putReplica(w, ds, d.ReplicaDeadline)
		}
		for _, id := range d.Allocs {
			if a := p.allocs[id]; a != nil && w.Runs(a) {
				nd := later(a.Deadline(), d.AllocDeadline)
				p.ttl.move(allocTTL(a), nd)
				a.deadline = toStamp(nd)
			}
		}
	case events.WorkerExpiredData:
		w := p.workers[d.WorkerID]
		if w == nil {
			return reject(e, "unknown worker %s", d.WorkerID)
		}
		if n := w.NumRunning(); n > 0 {
			return reject(e, "worker %s still has %d running allocs", w.ID, n)
		}
		for ds := range w.Replicas {
			p.dropReplica(w, ds)
		}
		p.free.remove(w)
		p.ttl.remove(workerTTL(w))
		delete(p.workers, w.ID)
		// Its allocs keep the worker for its id and topic: drop its (now
		// empty) map and list so that their memory does not stay with it.
		w.running, w.Replicas = nil, nil
	case events.ReplicaExpiredData:
		w := p.workers[d.WorkerID]
		if w == nil {
			return reject(e, "unknown worker %s", d.WorkerID)
		}
		if _, ok := w.Replicas[d.DatasetID]; !ok {
			return reject(e, "worker %s holds no replica of %s", w.ID, d.DatasetID)
		}
		p.dropReplica(w, d.DatasetID)
	case events.EvalSubmittedData:
		if p.evals[d.EvalID] != nil {
			return reject(e, "eval %s already submitted", d.EvalID)
		}
		at := toStamp(e.At)
		ev := &Eval{ID: d.EvalID, DatasetID: p.dataset(d.DatasetID), Size: d.Size,
			status: evalPendingCode, NextAttempt: 1, submittedAt: at, queuedAt: at, Position: pos}
		if d.Payload != nil {
			ev.more().payload = d.Payload
		}
		p.evals[ev.ID] = ev
		p.evalOrder.add(ev, ev.ID)
		if len(p.evals) == presizeAt {
			p.evals = presized(s, p.evals, 0)
			p.evalOrder.presize(s)
		}
		p.queue.push(ev)
	case events.EvalRejectedData:
		ev := p.evals[d.EvalID]
		if ev == nil {
			return reject(e, "unknown eval %s", d.EvalID)
		}
		if ev.status != evalPendingCode && !p.awaitingRetry(ev) {
			return reject(e, "eval %s is %s", ev.ID, ev.Status())
		}
		p.queue.remove(ev)
		p.retry.remove(ev)
		ev.end(evalRejectedCode, e.At)
		ev.setReason(d.Reason)
	case events.EvalRequeuedData:
		ev := p.evals[d.EvalID]
		if ev == nil {
			return reject(e, "unknown eval %s", d.EvalID)
		}
		if !p.awaitingRetry(ev) || ev.AllocID != d.AllocID {
			return reject(e, "eval %s has no expired alloc %s awaiting a retry decision", ev.ID, d.AllocID)
		}
		p.retry.remove(ev)
		ev.status, ev.NextAttempt, ev.queuedAt = evalPendingCode, d.Attempt, toStamp(e.At)
		ev.setReason(d.Reason)
		p.queue.push(ev)
	case events.EvalDeadLetteredData:
		ev := p.evals[d.EvalID]
		if ev == nil {
			return reject(e, "unknown eval %s", d.EvalID)
		}
		if !p.awaitingRetry(ev) || (d.AllocID != "" && ev.AllocID != d.AllocID) {
			return reject(e, "eval %s has no expired alloc awaiting a retry decision", ev.ID)
		}
		p.retry.remove(ev)
		ev.end(evalDeadLetteredCode, e.At)
		ev.setReason(d.Reason)
	case events.AllocPlacedData:
		if err := p.place(e, d); err != nil {
			return err
		}
		if len(p.allocs) == presizeAt {
			p.allocs = presized(s, p.allocs, 0)
			p.allocOrder.presize(s)
		}
	case events.AllocCompletedData:
		a := p.allocs[d.AllocID]
		if a == nil {
			return reject(e, "unknown alloc %s", d.AllocID)
		}
		if a.status != allocRunningCode {
			return reject(e, "alloc %s is %s", a.ID, a.Status())
		}
		p.endAlloc(a, allocCompletedCode, e.At)
		c := d
		a.extra.completion = &c
		if ev := p.evals[a.EvalID]; ev != nil {
			ev.end(evalCompletedCode, e.At)
			ev.extra.result = d.Status
		}
	case events.AllocExpiredData:
		a := p.allocs[d.AllocID]
		if a == nil {
			return reject(e, "unknown alloc %s", d.AllocID)
		}
		if a.status != allocRunningCode {
			return reject(e, "alloc %s is %s", a.ID, a.Status())
		}
		p.endAlloc(a, allocExpiredCode, e.At)
		a.extra.expiryReason = d.Reason
		if ev := p.evals[a.EvalID]; ev != nil && ev.status == evalPlacedCode && ev.AllocID == a.ID {
			p.retry.add(ev)
		}
	default:
		return reject(e, "no meaning defined for %T", e.Data)
	}
	return nil
}

// place applies an alloc.placed.
func (p *Pool) place(e events.Envelope, d events.AllocPlacedData) error {
	// The scheduler places in queue order: the eval is most often the
	// first pending one, found without a lookup among all the pool's evals.
	ev := p.queue.firstIf(d.EvalID)
	if ev == nil {
		ev = p.evals[d.EvalID]
	}
	switch {
	case ev == nil:
		return reject(e, "unknown eval %s", d.EvalID)
	case ev.status != evalPendingCode:
		return reject(e, "eval %s is %s", ev.ID, ev.Status())
	case p.allocs[d.AllocID] != nil:
		return reject(e, "alloc %s already exists", d.AllocID)
	case d.Size != ev.Size:
		return reject(e, "alloc size %d differs from eval size %d", d.Size, ev.Size)
	case d.Attempt != ev.NextAttempt:
		return reject(e, "attempt %d, expected %d", d.Attempt, ev.NextAttempt)
	}
	w := p.workers[d.WorkerID]
	switch {
	case w == nil:
		return reject(e, "unknown worker %s", d.WorkerID)
	case !w.Deadline.After(e.At):
		return reject(e, "worker %s expired at %s", w.ID, events.FormatTime(w.Deadline))
	case d.Size > w.Free():
		return reject(e, "worker %s has %d free, alloc needs %d: overcommit", w.ID, w.Free(), d.Size)
	}
	// The alloc shares the strings that the eval and worker hold already.
	dataset, topic := d.DatasetID, d.Topic
	if dataset == ev.DatasetID {
		dataset = ev.DatasetID
	} else {
		dataset = p.dataset(dataset)
	}
	a := &Alloc{ID: d.AllocID, EvalID: ev.ID, worker: w, DatasetID: dataset, Size: d.Size,
		Attempt: d.Attempt, deadline: toStamp(d.Deadline), status: allocRunningCode, placedAt: toStamp(e.At)}
	if topic != w.Topic {
		x := a.more()
		x.topic, x.hasTopic = topic, true
	}
	a.setPlacement(Placement{Deadline: d.Deadline, Strategy: d.Strategy, Locality: d.Locality,
		Candidates: d.Candidates, WaitedMs: d.WaitedMs, Basis: d.Basis})
	p.allocs[a.ID] = a
	p.allocOrder.add(a, a.ID)
	p.ttl.put(allocTTL(a))
	w.addRunning(a)
	w.Used += a.Size
	p.free.update(w)
	p.queue.remove(ev)
	ev.status, ev.Attempts, ev.AllocID = evalPlacedCode, d.Attempt, a.ID
	ev.setReason("")
	return nil
}

// endAlloc ends a running alloc and returns its capacity to its worker.
func (p *Pool) endAlloc(a *Alloc, status allocCode, at time.Time) {
	p.ttl.remove(allocTTL(a))
	a.status = status
	a.more().endedAt = toStamp(at)
	if w := p.workers[a.WorkerID()]; w != nil && w.Runs(a) {
		w.dropRunning(a)
		w.Used -= a.Size
		p.free.update(w)
	}
}

// AwaitingRetry reports whether ev is placed but its alloc expired, so that a
// requeue, dead letter or rejection decision is due.
func (p *Pool) AwaitingRetry(ev *Eval) bool { return p.awaitingRetry(ev) }

func (p *Pool) awaitingRetry(ev *Eval) bool {
	if ev.status != evalPlacedCode {
		return false
	}
	return awaitsRetry(p.allocs[ev.AllocID])
}

// awaitsRetry tells whether a placed eval whose current alloc is a (nil if
// unknown) awaits a retry decision.
func awaitsRetry(a *Alloc) bool { return a != nil && a.status == allocExpiredCode }

func (p *Pool) putReplica(w *Worker, dataset string, deadline time.Time) {
	if in, ok := p.datasets[dataset]; ok {
		dataset = in
	} else {
		p.datasets[dataset] = dataset
	}
	old, ok := w.Replicas[dataset]
	nd := later(old, deadline)
	if ok {
		p.ttl.move(replicaTTL(w, dataset, old), nd)
	} else {
		p.ttl.put(replicaTTL(w, dataset, nd))
	}
	w.Replicas[dataset] = nd
	m := p.holders[dataset]
	if m == nil {
		m = make(map[string]*Worker)
		p.holders[dataset] = m
	}
	m[w.ID] = w
}

func (p *Pool) dropReplica(w *Worker, dataset string) {
	if old, ok := w.Replicas[dataset]; ok {
		p.ttl.remove(replicaTTL(w, dataset, old))
	}
	delete(w.Replicas, dataset)
	if m := p.holders[dataset]; m != nil {
		delete(m, w.ID)
		if len(m) == 0 {
			delete(p.holders, dataset)
		}
	}
}

// dataset returns the pool's interned copy of a dataset id that workers
// reported, or id itself.
func (p *Pool) dataset(id string) string {
	if in, ok := p.datasets[id]; ok {
		return in
	}
	return id
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

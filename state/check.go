package state

import (
	"errors"
	"fmt"
)

// Check verifies the invariants of s: capacity accounting (no worker over its
// capacity, Used equal to the sizes of its running allocs), that every eval
// is in exactly one consistent status, and that every index the fold keeps
// (queue and its size lists, free capacity, holders, deadlines, evals
// awaiting retry) matches the data it indexes. It returns every violation
// found, joined, or nil. It costs a scan of the whole state: for tests,
// audits and debugging, not for hot paths.
func (s *State) Check() error {
	var errs []error
	for _, p := range s.Pools() {
		if err := p.check(); err != nil {
			errs = append(errs, fmt.Errorf("pool %s: %w", p.ID, err))
		}
	}
	return errors.Join(errs...)
}

func (p *Pool) check() error {
	p.free.sync()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	// Workers, capacity, running allocs.
	replicas := 0
	for id, w := range p.workers {
		if w.ID != id {
			bad("worker %s indexed as %s", w.ID, id)
		}
		var used int64
		for aid, a := range w.Running {
			if a.ID != aid || a.Status() != AllocRunning || a.WorkerID() != w.ID || p.allocs[aid] != a {
				bad("worker %s: running alloc %s inconsistent", w.ID, aid)
			}
			used += a.Size
		}
		if used != w.Used {
			bad("worker %s: used %d, running allocs sum to %d", w.ID, w.Used, used)
		}
		if w.Used < 0 || w.Used > w.Capacity {
			bad("worker %s: used %d outside [0, capacity %d]", w.ID, w.Used, w.Capacity)
		}
		if w.free.dirty || !w.free.indexed || w.free.at != w.Free() {
			bad("worker %s: free index has %d (indexed %v, dirty %v), free is %d", w.ID, w.free.at, w.free.indexed, w.free.dirty, w.Free())
		}
		for ds := range w.Replicas {
			replicas++
			if p.holders[ds][w.ID] != w {
				bad("worker %s: replica %s missing from holders", w.ID, ds)
			}
		}
	}
	if p.free.tree.Len() != len(p.workers) || len(p.free.dirty) != 0 {
		bad("free index has %d workers (%d to move), pool has %d", p.free.tree.Len(), len(p.free.dirty), len(p.workers))
	}
	holders := 0
	for ds, m := range p.holders {
		if len(m) == 0 {
			bad("holders of %s: empty set kept", ds)
		}
		for id, w := range m {
			holders++
			if p.workers[id] != w {
				bad("holders of %s: unknown worker %s", ds, id)
			} else if _, ok := w.Replicas[ds]; !ok {
				bad("holders of %s: worker %s holds no replica", ds, id)
			}
		}
	}
	if holders != replicas {
		bad("holders index has %d entries, workers hold %d replicas", holders, replicas)
	}

	// Allocs.
	running := 0
	for id, a := range p.allocs {
		if a.ID != id {
			bad("alloc %s indexed as %s", a.ID, id)
		}
		switch a.Status() {
		case AllocRunning:
			running++
			w := p.workers[a.WorkerID()]
			if w == nil || w.Running[a.ID] != a {
				bad("running alloc %s not running on worker %s", a.ID, a.WorkerID())
			}
			if ev := p.evals[a.EvalID]; ev == nil || ev.Status() != EvalPlaced || ev.AllocID != a.ID {
				bad("running alloc %s: eval %s is not placed with it", a.ID, a.EvalID)
			}
		case AllocCompleted, AllocExpired:
		default:
			bad("alloc %s: unknown status %q", a.ID, a.Status())
		}
	}

	// Evals and the queue.
	pending, awaiting := 0, 0
	for id, ev := range p.evals {
		if ev.ID != id {
			bad("eval %s indexed as %s", ev.ID, id)
		}
		queued := ev.qnode != nil && ev.qnode.eval == ev
		if queued != (ev.Status() == EvalPending) {
			bad("eval %s is %s but queued=%v", ev.ID, ev.Status(), queued)
		}
		switch ev.Status() {
		case EvalPending:
			pending++
		case EvalPlaced:
			a := p.allocs[ev.AllocID]
			if a == nil || a.EvalID != ev.ID || a.Status() == AllocCompleted {
				bad("placed eval %s: alloc %s missing, foreign or completed", ev.ID, ev.AllocID)
			}
			if p.awaitingRetry(ev) {
				awaiting++
				if p.retry.nodes[ev] == nil {
					bad("eval %s awaits retry but is not in the retry set", ev.ID)
				}
			}
		case EvalCompleted, EvalRejected, EvalDeadLettered:
		default:
			bad("eval %s: unknown status %q", ev.ID, ev.Status())
		}
		if ev.Status() != EvalPlaced && p.retry.nodes[ev] != nil {
			bad("eval %s is %s but in the retry set", ev.ID, ev.Status())
		}
	}
	if awaiting != p.retry.len() {
		bad("retry set has %d evals, %d await retry", p.retry.len(), awaiting)
	}
	if pending != p.queue.Len() {
		bad("queue has %d evals, %d are pending", p.queue.Len(), pending)
	}
	n, last := 0, uint64(0)
	for q := p.queue.head; q != nil; q = q.next {
		n++
		if q.seq <= last {
			bad("queue order broken at eval %s", q.eval.ID)
		}
		last = q.seq
	}
	if n != p.queue.Len() {
		bad("queue list has %d evals, index %d", n, p.queue.Len())
	}
	sized := 0
	if p.queue.sizes.Len() != len(p.queue.bySize) {
		bad("queue sizes set has %d sizes, lists %d", p.queue.sizes.Len(), len(p.queue.bySize))
	}
	for size, l := range p.queue.bySize {
		if !p.queue.sizes.Has(size) {
			bad("queue size %d missing from the sizes set", size)
		}
		k, last := 0, uint64(0)
		for q := l.head; q != nil; q = q.snext {
			k++
			if q.eval.Size != size || q.seq <= last || q.eval.qnode != q {
				bad("queue list of size %d broken at eval %s", size, q.eval.ID)
			}
			last = q.seq
		}
		if k != l.n || k == 0 {
			bad("queue list of size %d has %d evals, counts %d", size, k, l.n)
		}
		sized += k
	}
	if sized != p.queue.Len() {
		bad("queue size lists hold %d evals, queue %d", sized, p.queue.Len())
	}

	// Deadlines.
	if want := len(p.workers) + replicas + running; p.ttl.Len() != want {
		bad("TTL index has %d entries, want %d (workers, replicas, running allocs)", p.ttl.Len(), want)
	}
	p.ttl.tree.Ascend(func(it ttlItem) bool {
		e := it.entry()
		// The indexed instant must be the owner's deadline.
		moved := e.Deadline.Unix() != it.sec || int32(e.Deadline.Nanosecond()) != it.nsec
		switch e.Kind {
		case TTLAlloc:
			if p.allocs[e.Alloc.ID] != e.Alloc || e.Alloc.Status() != AllocRunning || moved {
				bad("TTL entry of alloc %s stale", e.Alloc.ID)
			}
		case TTLWorker:
			if p.workers[e.Worker.ID] != e.Worker || moved {
				bad("TTL entry of worker %s stale", e.Worker.ID)
			}
		case TTLReplica:
			at, ok := e.Worker.Replicas[e.Dataset]
			if p.workers[e.Worker.ID] != e.Worker || !ok || moved || !at.Equal(e.Deadline) {
				bad("TTL entry of replica %s:%s stale", e.Dataset, e.Worker.ID)
			}
		default:
			bad("TTL entry of unknown kind %d", e.Kind)
		}
		return true
	})
	return errors.Join(errs...)
}

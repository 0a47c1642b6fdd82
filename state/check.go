package state

import (
	"errors"
	"fmt"
	"sync"
)

// Check verifies the invariants of s: capacity accounting (no worker over its
// capacity, Used equal to the sizes of its running allocs), that every eval
// is in exactly one consistent status, and that every index the fold keeps
// (queue and its size lists, free capacity, holders, deadlines, evals
// awaiting retry) matches the data it indexes. It returns every violation
// found, joined, or nil. It costs a scan of the whole state (of a large
// pool, on several goroutines): for tests, audits and debugging, not for
// hot paths.
func (s *State) Check() error {
	var errs []error
	for _, p := range s.Pools() {
		if err := p.check(); err != nil {
			errs = append(errs, fmt.Errorf("pool %s: %w", p.ID, err))
		}
	}
	return errors.Join(errs...)
}

// checkConcurrentMin is the smallest pool (evals plus allocs) whose check
// runs its parts on several goroutines. The parts only read the pool.
var checkConcurrentMin = 50_000

// poolCheck is the check of one pool, in parts that read the pool and
// write only their own fields, so that they can run at the same time.
type poolCheck struct {
	p *Pool

	workerErrs, holderErrs, allocErrs, evalErrs, queueErrs, ttlErrs []error
	// replicas counts the replicas the workers hold; runningEntries the
	// allocs listed as running by the workers; holders the entries of the
	// holders index; running the running allocs; placed and pending the
	// evals in those statuses; evalsMisindexed the evals indexed under
	// another id.
	replicas, runningEntries, holders, running, placed, pending, evalsMisindexed int
}

func bad(errs *[]error, format string, args ...any) {
	*errs = append(*errs, fmt.Errorf(format, args...))
}

func (p *Pool) check() error {
	p.free.sync()
	c := &poolCheck{p: p}
	parts := []func(){c.checkWorkers, c.checkHolders, c.checkAllocs, c.checkEvals, c.checkQueue, c.checkTTL}
	if len(p.evals)+len(p.allocs) >= checkConcurrentMin {
		var wg sync.WaitGroup
		for _, part := range parts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				part()
			}()
		}
		wg.Wait()
	} else {
		for _, part := range parts {
			part()
		}
	}
	// A running alloc listed by a worker must be the pool's alloc of that
	// id. checkAllocs found each running alloc of the pool listed by its
	// worker; those listings are distinct (one per alloc id), so if the
	// workers list no more than that, every listing is one of them.
	// Otherwise look each listing up.
	if len(c.allocErrs) > 0 || c.runningEntries != c.running {
		c.checkRunningListed()
	}
	// A placed eval must be placed with an alloc of the pool that names it
	// and is not completed. checkAllocs found, for each running alloc, its
	// eval placed with it; those evals are distinct (one per alloc id), so
	// if there are no more placed evals than that, every placed eval is one
	// of them, placed with a running alloc: none awaits retry. Otherwise
	// look each one's alloc up.
	awaiting := 0
	if len(c.allocErrs) > 0 || c.evalsMisindexed > 0 || c.placed != c.running {
		awaiting = c.checkPlacedEvals()
	}
	if awaiting != p.retry.len() {
		bad(&c.evalErrs, "retry set has %d evals, %d await retry", p.retry.len(), awaiting)
	}
	if c.pending != p.queue.Len() {
		bad(&c.evalErrs, "queue has %d evals, %d are pending", p.queue.Len(), c.pending)
	}

	errs := c.workerErrs
	errs = append(errs, c.holderErrs...)
	if c.holders != c.replicas {
		bad(&errs, "holders index has %d entries, workers hold %d replicas", c.holders, c.replicas)
	}
	errs = append(errs, c.allocErrs...)
	errs = append(errs, c.evalErrs...)
	errs = append(errs, c.queueErrs...)
	// The insertion-order lists (what Evals and Allocs list) hold as many
	// entries as the tables: an insertion that missed one or was made
	// twice shows. (Looking each one up would double the check's cost at
	// a million allocs; the listings are tested against the tables.)
	if n, m := len(p.evalOrder.items), len(p.evals); n != m {
		bad(&errs, "the insertion order lists %d evals, the table holds %d", n, m)
	}
	if n, m := len(p.allocOrder.items), len(p.allocs); n != m {
		bad(&errs, "the insertion order lists %d allocs, the table holds %d", n, m)
	}
	if want := len(p.workers) + c.replicas + c.running; p.ttl.Len() != want {
		bad(&errs, "TTL index has %d entries, want %d (workers, replicas, running allocs)", p.ttl.Len(), want)
	}
	errs = append(errs, c.ttlErrs...)
	return errors.Join(errs...)
}

// checkWorkers checks the workers, their capacity, their running allocs
// (but for being the pool's: see checkRunningListed), their free index and
// their replicas.
func (c *poolCheck) checkWorkers() {
	p, errs := c.p, &c.workerErrs
	for id, w := range p.workers {
		if w.ID != id {
			bad(errs, "worker %s indexed as %s", w.ID, id)
		}
		var used int64
		for i, a := range w.running {
			c.runningEntries++
			if a == nil {
				bad(errs, "worker %s: running slot %d empty", w.ID, i)
				continue
			}
			// An alloc listed twice has one slot: the other listing fails.
			if int(a.slot) != i || a.Status() != AllocRunning || a.worker != w {
				bad(errs, "worker %s: running alloc %s inconsistent", w.ID, a.ID)
			}
			used += a.Size
		}
		if used != w.Used {
			bad(errs, "worker %s: used %d, running allocs sum to %d", w.ID, w.Used, used)
		}
		if w.Used < 0 || w.Used > w.Capacity {
			bad(errs, "worker %s: used %d outside [0, capacity %d]", w.ID, w.Used, w.Capacity)
		}
		if w.free.dirty || !w.free.indexed || w.free.at != w.Free() {
			bad(errs, "worker %s: free index has %d (indexed %v, dirty %v), free is %d", w.ID, w.free.at, w.free.indexed, w.free.dirty, w.Free())
		}
		for ds := range w.Replicas {
			c.replicas++
			if p.holders[ds][w.ID] != w {
				bad(errs, "worker %s: replica %s missing from holders", w.ID, ds)
			}
		}
	}
	if p.free.tree.Len() != len(p.workers) || len(p.free.dirty) != 0 {
		bad(errs, "free index has %d workers (%d to move), pool has %d", p.free.tree.Len(), len(p.free.dirty), len(p.workers))
	}
}

// checkRunningListed checks that every alloc a worker lists as running is
// the pool's alloc of that id (those checkWorkers found inconsistent
// already are left out).
func (c *poolCheck) checkRunningListed() {
	p := c.p
	for _, w := range p.workers {
		for i, a := range w.running {
			if a != nil && int(a.slot) == i && a.Status() == AllocRunning && a.worker == w && p.allocs[a.ID] != a {
				bad(&c.workerErrs, "worker %s: running alloc %s inconsistent", w.ID, a.ID)
			}
		}
	}
}

// checkHolders checks the holders index against the workers' replicas.
func (c *poolCheck) checkHolders() {
	p, errs := c.p, &c.holderErrs
	for ds, m := range p.holders {
		if len(m) == 0 {
			bad(errs, "holders of %s: empty set kept", ds)
		}
		for id, w := range m {
			c.holders++
			if p.workers[id] != w {
				bad(errs, "holders of %s: unknown worker %s", ds, id)
			} else if _, ok := w.Replicas[ds]; !ok {
				bad(errs, "holders of %s: worker %s holds no replica", ds, id)
			}
		}
	}
}

// checkAllocs checks every alloc: a running one runs on its worker for a
// placed eval.
func (c *poolCheck) checkAllocs() {
	p, errs := c.p, &c.allocErrs
	for id, a := range p.allocs {
		if a.ID != id {
			bad(errs, "alloc %s indexed as %s", a.ID, id)
		}
		switch a.Status() {
		case AllocRunning:
			c.running++
			w := p.workers[a.WorkerID()]
			if w == nil || !w.Runs(a) {
				bad(errs, "running alloc %s not running on worker %s", a.ID, a.WorkerID())
			}
			if ev := p.evals[a.EvalID]; ev == nil || ev.Status() != EvalPlaced || ev.AllocID != a.ID {
				bad(errs, "running alloc %s: eval %s is not placed with it", a.ID, a.EvalID)
			}
		case AllocCompleted, AllocExpired:
		default:
			bad(errs, "alloc %s: unknown status %q", a.ID, a.Status())
		}
	}
}

// checkEvals checks that every eval is in exactly one consistent status
// (but for the alloc of a placed one: see checkPlacedEvals), and counts
// them.
func (c *poolCheck) checkEvals() {
	p, errs := c.p, &c.evalErrs
	for id, ev := range p.evals {
		if ev.ID != id {
			c.evalsMisindexed++
			bad(errs, "eval %s indexed as %s", ev.ID, id)
		}
		queued := ev.qnode != nil && ev.qnode.eval == ev
		if queued != (ev.Status() == EvalPending) {
			bad(errs, "eval %s is %s but queued=%v", ev.ID, ev.Status(), queued)
		}
		switch ev.Status() {
		case EvalPending:
			c.pending++
		case EvalPlaced:
			c.placed++
		case EvalCompleted, EvalRejected, EvalDeadLettered:
		default:
			bad(errs, "eval %s: unknown status %q", ev.ID, ev.Status())
		}
		if ev.Status() != EvalPlaced && p.retry.nodes[ev] != nil {
			bad(errs, "eval %s is %s but in the retry set", ev.ID, ev.Status())
		}
	}
}

// checkPlacedEvals checks the alloc of every placed eval, and returns how
// many await a retry decision.
func (c *poolCheck) checkPlacedEvals() (awaiting int) {
	p, errs := c.p, &c.evalErrs
	for _, ev := range p.evals {
		if ev.Status() != EvalPlaced {
			continue
		}
		a := p.allocs[ev.AllocID]
		if a == nil || a.EvalID != ev.ID || a.Status() == AllocCompleted {
			bad(errs, "placed eval %s: alloc %s missing, foreign or completed", ev.ID, ev.AllocID)
		}
		if awaitsRetry(a) {
			awaiting++
			if p.retry.nodes[ev] == nil {
				bad(errs, "eval %s awaits retry but is not in the retry set", ev.ID)
			}
		}
	}
	return awaiting
}

// checkQueue checks the queue's order and its lists by size.
func (c *poolCheck) checkQueue() {
	p, errs := c.p, &c.queueErrs
	n, last := 0, uint64(0)
	for q := p.queue.head; q != nil; q = q.next {
		n++
		if q.seq <= last {
			bad(errs, "queue order broken at eval %s", q.eval.ID)
		}
		last = q.seq
	}
	if n != p.queue.Len() {
		bad(errs, "queue list has %d evals, index %d", n, p.queue.Len())
	}
	sized := 0
	if p.queue.sizes.Len() != len(p.queue.bySize) {
		bad(errs, "queue sizes set has %d sizes, lists %d", p.queue.sizes.Len(), len(p.queue.bySize))
	}
	for size, l := range p.queue.bySize {
		if !p.queue.sizes.Has(size) {
			bad(errs, "queue size %d missing from the sizes set", size)
		}
		k, last := 0, uint64(0)
		for q := l.head; q != nil; q = q.snext {
			k++
			if q.eval.Size != size || q.seq <= last || q.eval.qnode != q {
				bad(errs, "queue list of size %d broken at eval %s", size, q.eval.ID)
			}
			last = q.seq
		}
		if k != l.n || k == 0 {
			bad(errs, "queue list of size %d has %d evals, counts %d", size, k, l.n)
		}
		sized += k
	}
	if sized != p.queue.Len() {
		bad(errs, "queue size lists hold %d evals, queue %d", sized, p.queue.Len())
	}
}

// checkTTL checks every entry of the deadline index against its owner (its
// size is checked against the counts of the other parts).
func (c *poolCheck) checkTTL() {
	p, errs := c.p, &c.ttlErrs
	p.ttl.tree.Ascend(func(it ttlItem) bool {
		e := it.entry()
		// The indexed instant must be the owner's deadline.
		moved := e.Deadline.Unix() != it.sec || int32(e.Deadline.Nanosecond()) != it.nsec
		// So must the id prefix be its id's.
		moved = moved || it.idPrefix != itemOf(e).idPrefix
		switch e.Kind {
		case TTLAlloc:
			if p.allocs[e.Alloc.ID] != e.Alloc || e.Alloc.Status() != AllocRunning || moved {
				bad(errs, "TTL entry of alloc %s stale", e.Alloc.ID)
			}
		case TTLWorker:
			if p.workers[e.Worker.ID] != e.Worker || moved {
				bad(errs, "TTL entry of worker %s stale", e.Worker.ID)
			}
		case TTLReplica:
			at, ok := e.Worker.Replicas[e.Dataset]
			if p.workers[e.Worker.ID] != e.Worker || !ok || moved || !at.Equal(e.Deadline) {
				bad(errs, "TTL entry of replica %s:%s stale", e.Dataset, e.Worker.ID)
			}
		default:
			bad(errs, "TTL entry of unknown kind %d", e.Kind)
		}
		return true
	})
	n := 0
	p.ttl.allocs.Ascend(func(b *allocBucket) bool {
		if len(b.allocs) == 0 {
			bad(errs, "TTL bucket at %d.%09d empty", b.sec, b.nsec)
		}
		for i, a := range b.allocs {
			n++
			// An alloc listed twice has one slot: the other listing fails.
			d := a.Deadline()
			if int(a.ttlSlot) != i || d.Unix() != b.sec || int32(d.Nanosecond()) != b.nsec ||
				p.allocs[a.ID] != a || a.Status() != AllocRunning {
				bad(errs, "TTL entry of alloc %s stale", a.ID)
			}
		}
		return true
	})
	if n != p.ttl.nallocs {
		bad(errs, "TTL buckets hold %d allocs, counted %d", n, p.ttl.nallocs)
	}
}

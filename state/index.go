package state

import (
	"cmp"
	"sync"

	"github.com/google/btree"
)

// Queue is a pool's pending evals in queue order: submission order, with a
// requeued eval going to the back. Removal is O(1); iteration follows the
// order.
//
// Beside the global order, the queue keeps one list per eval size (in queue
// order too) and the ordered set of sizes, so that the scheduler can visit
// only the evals that fit the capacity it has left, in queue order, without
// walking past the ones that do not.
type Queue struct {
	head, tail *queueNode
	// n counts the pending evals; each links to its node (Eval.qnode).
	n   int
	seq uint64
	// bySize holds one list per size of pending evals.
	bySize map[int64]*sizeList
	// sizes is the ordered set of the keys of bySize.
	sizes *btree.BTreeG[int64]
}

type queueNode struct {
	eval *Eval
	// seq is the eval's place in queue order (Eval.QueueSeq).
	seq        uint64
	prev, next *queueNode
	// sprev and snext link the nodes of the same size.
	sprev, snext *queueNode
}

type sizeList struct {
	head, tail *queueNode
	n          int
}

func newQueue() *Queue {
	return &Queue{bySize: make(map[int64]*sizeList),
		sizes: btree.NewOrderedG[int64](16)}
}

// Len is the number of pending evals.
func (q *Queue) Len() int { return q.n }

func (q *Queue) push(e *Eval) {
	if e.qnode != nil {
		return
	}
	q.seq++
	n := &queueNode{eval: e, seq: q.seq, prev: q.tail}
	if q.tail != nil {
		q.tail.next = n
	} else {
		q.head = n
	}
	q.tail = n
	e.qnode = n
	q.n++
	l := q.bySize[e.Size]
	if l == nil {
		l = &sizeList{}
		q.bySize[e.Size] = l
		q.sizes.ReplaceOrInsert(e.Size)
	}
	n.sprev = l.tail
	if l.tail != nil {
		l.tail.snext = n
	} else {
		l.head = n
	}
	l.tail = n
	l.n++
}

func (q *Queue) remove(e *Eval) {
	n := e.qnode
	if n == nil {
		return
	}
	e.qnode = nil
	q.n--
	if n.prev != nil {
		n.prev.next = n.next
	} else {
		q.head = n.next
	}
	if n.next != nil {
		n.next.prev = n.prev
	} else {
		q.tail = n.prev
	}
	l := q.bySize[e.Size]
	if n.sprev != nil {
		n.sprev.snext = n.snext
	} else {
		l.head = n.snext
	}
	if n.snext != nil {
		n.snext.sprev = n.sprev
	} else {
		l.tail = n.sprev
	}
	l.n--
	if l.n == 0 {
		delete(q.bySize, e.Size)
		q.sizes.Delete(e.Size)
	}
}

// firstIf returns the first pending eval if its id is id, else nil. (A
// pending eval is the pool's eval of its id: the pool's evals are looked up
// by id only when it is not first.)
func (q *Queue) firstIf(id string) *Eval {
	if q.head != nil && q.head.eval.ID == id {
		return q.head.eval
	}
	return nil
}

// QueueSeq is a pending eval's place in queue order: it grows with every
// push, so of two pending evals the one with the smaller QueueSeq is ahead.
// It is 0 for an eval that is not pending. (The sequence lives in the queue
// node, so that an eval record carries nothing for the queue once it left
// it.)
func (e *Eval) QueueSeq() uint64 {
	if e.qnode == nil {
		return 0
	}
	return e.qnode.seq
}

// MinSize is the smallest size of a pending eval; ok is false if the queue
// is empty.
func (q *Queue) MinSize() (size int64, ok bool) { return q.sizes.Min() }

// MaxSize is the largest size of a pending eval; ok is false if the queue
// is empty.
func (q *Queue) MaxSize() (size int64, ok bool) { return q.sizes.Max() }

// Sizes calls fn, in ascending order of size, for each size in [lo, hi] that
// some pending eval has, with the number of such evals and the first of them
// in queue order, until fn returns false. fn must not change the state.
func (q *Queue) Sizes(lo, hi int64, fn func(size int64, n int, first *Eval) bool) {
	if lo > hi {
		return
	}
	q.sizes.AscendGreaterOrEqual(lo, func(size int64) bool {
		if size > hi {
			return false
		}
		l := q.bySize[size]
		return fn(size, l.n, l.head.eval)
	})
}

// NextOfSize returns the pending eval after e in queue order that has e's
// size, or nil if there is none or e is not pending.
func (q *Queue) NextOfSize(e *Eval) *Eval {
	n := e.qnode
	if n == nil || n.snext == nil {
		return nil
	}
	return n.snext.eval
}

// Each calls fn for each pending eval in queue order until fn returns false.
// fn must not change the state.
func (q *Queue) Each(fn func(*Eval) bool) {
	for n := q.head; n != nil; n = n.next {
		if !fn(n.eval) {
			return
		}
	}
}

// Slice returns the pending evals in queue order.
func (q *Queue) Slice() []*Eval {
	out := make([]*Eval, 0, q.Len())
	q.Each(func(e *Eval) bool { out = append(out, e); return true })
	return out
}

// FreeIndex orders a pool's workers by free capacity, then id, so that the
// scheduler finds the most or the least free worker that fits without
// scanning every worker.
//
// The fold only marks a worker whose free capacity changed; the index puts
// it in its place when it is read next. A replay that places a million
// allocs on a few thousand workers thus moves each worker once, not once per
// placement. Readers may call it concurrently (under a shared lock on the
// state): the first one brings the index up to date.
type FreeIndex struct {
	tree *btree.BTreeG[freeItem]
	// mu guards dirty and the index's fields of the workers against
	// concurrent readers bringing the index up to date.
	mu sync.Mutex
	// dirty holds the workers to put in their place, each once.
	dirty []*Worker
}

type freeItem struct {
	free int64
	w    *Worker
}

// freeSlot is the FreeIndex's bookkeeping in a worker.
type freeSlot struct {
	// at is the free capacity under which the worker is indexed.
	at int64
	// indexed tells whether the worker is in the tree; dirty whether it is
	// in FreeIndex.dirty.
	indexed, dirty bool
}

func lessFree(a, b freeItem) bool {
	if a.free != b.free {
		return a.free < b.free
	}
	return cmp.Less(a.w.ID, b.w.ID)
}

func newFreeIndex() *FreeIndex {
	return &FreeIndex{tree: btree.NewG(32, lessFree)}
}

// Len is the number of indexed workers.
func (f *FreeIndex) Len() int {
	f.sync()
	return f.tree.Len()
}

// update marks w, registered or with a changed free capacity.
func (f *FreeIndex) update(w *Worker) {
	if !w.free.dirty {
		w.free.dirty = true
		f.dirty = append(f.dirty, w)
	}
}

// remove takes w, a worker that leaves the pool, out of the index.
func (f *FreeIndex) remove(w *Worker) {
	if w.free.indexed {
		f.tree.Delete(freeItem{free: w.free.at, w: w})
	}
	w.free = freeSlot{}
}

// sync puts every marked worker in its place.
func (f *FreeIndex) sync() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, w := range f.dirty {
		if !w.free.dirty {
			continue // removed since
		}
		w.free.dirty = false
		if w.free.indexed {
			if w.free.at == w.Free() {
				continue
			}
			f.tree.Delete(freeItem{free: w.free.at, w: w})
		}
		w.free.at, w.free.indexed = w.Free(), true
		f.tree.ReplaceOrInsert(freeItem{free: w.free.at, w: w})
	}
	clear(f.dirty)
	f.dirty = f.dirty[:0]
}

// MaxFree is the largest free capacity of any worker, or 0 if none.
func (f *FreeIndex) MaxFree() int64 {
	f.sync()
	it, ok := f.tree.Max()
	if !ok {
		return 0
	}
	return it.free
}

// Descending calls fn for workers with at least min free, from the most free
// down, ordered by (free desc, id desc), until fn returns false.
func (f *FreeIndex) Descending(min int64, fn func(*Worker) bool) {
	f.sync()
	f.tree.Descend(func(it freeItem) bool {
		if it.free < min {
			return false
		}
		return fn(it.w)
	})
}

// Ascending calls fn for workers with at least min free, from the least free
// up, ordered by (free asc, id asc), until fn returns false.
func (f *FreeIndex) Ascending(min int64, fn func(*Worker) bool) {
	f.sync()
	f.tree.AscendGreaterOrEqual(freeItem{free: min, w: &Worker{}}, func(it freeItem) bool {
		return fn(it.w)
	})
}

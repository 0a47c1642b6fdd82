package state

import (
	"cmp"

	"github.com/google/btree"
)

// Queue is a pool's pending evals in queue order: submission order, with a
// requeued eval going to the back. Removal is O(1); iteration follows the
// order.
type Queue struct {
	head, tail *queueNode
	byEval     map[*Eval]*queueNode
	seq        uint64
}

type queueNode struct {
	eval       *Eval
	prev, next *queueNode
}

func newQueue() *Queue { return &Queue{byEval: make(map[*Eval]*queueNode)} }

// Len is the number of pending evals.
func (q *Queue) Len() int { return len(q.byEval) }

func (q *Queue) push(e *Eval) {
	if _, ok := q.byEval[e]; ok {
		return
	}
	q.seq++
	e.queueSeq = q.seq
	n := &queueNode{eval: e, prev: q.tail}
	if q.tail != nil {
		q.tail.next = n
	} else {
		q.head = n
	}
	q.tail = n
	q.byEval[e] = n
}

func (q *Queue) remove(e *Eval) {
	n, ok := q.byEval[e]
	if !ok {
		return
	}
	delete(q.byEval, e)
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
type FreeIndex struct {
	tree *btree.BTreeG[freeItem]
	// at remembers each worker's indexed free capacity.
	at map[*Worker]int64
}

type freeItem struct {
	free int64
	w    *Worker
}

func lessFree(a, b freeItem) bool {
	if a.free != b.free {
		return a.free < b.free
	}
	return cmp.Less(a.w.ID, b.w.ID)
}

func newFreeIndex() *FreeIndex {
	return &FreeIndex{tree: btree.NewG(32, lessFree), at: make(map[*Worker]int64)}
}

// Len is the number of indexed workers.
func (f *FreeIndex) Len() int { return f.tree.Len() }

func (f *FreeIndex) update(w *Worker) {
	if old, ok := f.at[w]; ok {
		if old == w.Free() {
			return
		}
		f.tree.Delete(freeItem{free: old, w: w})
	}
	f.at[w] = w.Free()
	f.tree.ReplaceOrInsert(freeItem{free: w.Free(), w: w})
}

func (f *FreeIndex) remove(w *Worker) {
	if old, ok := f.at[w]; ok {
		f.tree.Delete(freeItem{free: old, w: w})
		delete(f.at, w)
	}
}

// MaxFree is the largest free capacity of any worker, or 0 if none.
func (f *FreeIndex) MaxFree() int64 {
	it, ok := f.tree.Max()
	if !ok {
		return 0
	}
	return it.free
}

// Descending calls fn for workers with at least min free, from the most free
// down, ordered by (free desc, id desc), until fn returns false.
func (f *FreeIndex) Descending(min int64, fn func(*Worker) bool) {
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
	f.tree.AscendGreaterOrEqual(freeItem{free: min, w: &Worker{}}, func(it freeItem) bool {
		return fn(it.w)
	})
}

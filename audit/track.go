package audit

import (
	"time"

	"github.com/line-sched/line/state"
)

// maxChanges bounds each change log. Older changes are dropped; a question
// about an offset before the newest dropped change gets "unknown", which the
// checks treat as "the scheduler could not see it": never a false alarm.
const maxChanges = 1024

// change is one change of a tracked value at an offset: for deadlines, v is
// the value before the change; for free capacity, v is the delta.
type change[T any] struct {
	off int64
	v   T
}

// changeLog keeps the recent changes of one value of one worker, so that the
// checker can tell what the value was when a scheduler decided (at its
// basis), although the fold only holds the value now.
type changeLog[T any] struct {
	entries []change[T]
	// lost is the offset of the newest dropped change, -1 if none.
	lost int64
}

func newChangeLog[T any]() *changeLog[T] { return &changeLog[T]{lost: -1} }

// add records a change at off. Changes older than floor no longer matter
// (no decision is judged at a basis before floor) and are dropped.
func (l *changeLog[T]) add(off int64, v T, floor int64) {
	drop := 0
	for drop < len(l.entries) && (l.entries[drop].off < floor || len(l.entries)-drop >= maxChanges) {
		l.lost = max(l.lost, l.entries[drop].off)
		drop++
	}
	if drop > 0 {
		l.entries = append(l.entries[:0], l.entries[drop:]...)
	}
	l.entries = append(l.entries, change[T]{off: off, v: v})
}

// known reports whether every change at an offset >= basis is still kept.
func (l *changeLog[T]) known(basis int64) bool { return l == nil || l.lost < basis }

// valueAt returns the value as of basis (after folding every offset below
// basis), given the current value: the value before the first change at an
// offset >= basis, or the current value if there is none. ok is false if
// that change was dropped.
func valueAt(l *changeLog[time.Time], basis int64, current time.Time) (v time.Time, ok bool) {
	if l == nil {
		return current, true
	}
	if !l.known(basis) {
		return time.Time{}, false
	}
	for _, c := range l.entries {
		if c.off >= basis {
			return c.v, true
		}
	}
	return current, true
}

// sumSince sums the deltas at offsets >= basis, only the positive ones if
// gainsOnly. ok is false if some were dropped.
func sumSince(l *changeLog[int64], basis int64, gainsOnly bool) (sum int64, ok bool) {
	if l == nil {
		return 0, true
	}
	if !l.known(basis) {
		return 0, false
	}
	for i := len(l.entries) - 1; i >= 0 && l.entries[i].off >= basis; i-- {
		if d := l.entries[i].v; d > 0 || !gainsOnly {
			sum += d
		}
	}
	return sum, true
}

// poolTrack is what the checker remembers of a pool beyond the fold.
type poolTrack struct {
	partition int32
	// disbandOff is the offset of the pool.disbanded event, -1 if none.
	disbandOff int64
	// workers are the tracks of the pool's registered workers (keyed by
	// the fold's worker: looked up for every placement, a pointer hashes
	// cheaper than an id).
	workers map[*state.Worker]*workerTrack
}

// workerTrack is what the checker remembers of a worker beyond the fold:
// the offset of its registration and the recent changes of its deadline,
// free capacity and replicas.
type workerTrack struct {
	regOff   int64
	deadline changeLog[time.Time]
	free     changeLog[int64]
	replicas map[string]*changeLog[time.Time]
}

func newWorkerTrack(off int64) *workerTrack {
	return &workerTrack{regOff: off, deadline: changeLog[time.Time]{lost: -1}, free: changeLog[int64]{lost: -1},
		replicas: make(map[string]*changeLog[time.Time])}
}

func (w *workerTrack) replica(ds string) *changeLog[time.Time] {
	l := w.replicas[ds]
	if l == nil {
		l = newChangeLog[time.Time]()
		w.replicas[ds] = l
	}
	return l
}

package state

import (
	"cmp"
	"math"
	"time"

	"github.com/google/btree"
)

// TTLKind names what a deadline belongs to.
type TTLKind uint8

// Kinds of deadlines, in the order in which entries with the same deadline
// are visited.
const (
	// TTLAlloc is the deadline of a running alloc.
	TTLAlloc TTLKind = iota + 1
	// TTLWorker is the deadline of a registered worker.
	TTLWorker
	// TTLReplica is the deadline of a replica.
	TTLReplica
)

// String names the kind.
func (k TTLKind) String() string {
	switch k {
	case TTLAlloc:
		return "alloc"
	case TTLWorker:
		return "worker"
	case TTLReplica:
		return "replica"
	}
	return "unknown"
}

// TTLEntry is one deadline in a pool's TTL index.
type TTLEntry struct {
	Kind     TTLKind
	Deadline time.Time
	// Alloc is set for TTLAlloc.
	Alloc *Alloc
	// Worker is set for TTLWorker and TTLReplica (the replica's holder).
	Worker *Worker
	// Dataset is set for TTLReplica.
	Dataset string
}

// TTLIndex orders the deadlines of a pool's running allocs, registered
// workers and replicas, so that finding what is due costs the number of due
// entries, not the size of the pool. The fold keeps it exact: every event
// that sets, moves or removes a deadline updates it.
//
// Order: deadline, then kind (alloc, worker, replica), then alloc id, or
// worker id and dataset id.
//
// Running allocs, most of the entries, are held apart from the others:
// one bucket per deadline, each listing its allocs in no order (a round
// of placements shares one deadline, so a placement appends to the bucket
// of the one before), sorted by id only when listed. Putting and removing
// an alloc's deadline costs no comparison of ids and moves no entries but
// one, and the buckets hold pointers only to the allocs.
type TTLIndex struct {
	// tree holds the deadlines of workers and replicas.
	tree *btree.BTreeG[ttlItem]
	// allocs holds the buckets of running allocs' deadlines.
	allocs *btree.BTreeG[*allocBucket]
	// last is the bucket of the last alloc put or removed, if it is
	// still indexed.
	last *allocBucket
	// probe is the key of bucket lookups.
	probe allocBucket
	// nallocs is the number of allocs in the buckets.
	nallocs int
}

// allocBucket is the running allocs with one deadline (an instant), in no
// order: each one's ttlSlot is its index in allocs.
type allocBucket struct {
	sec    int64
	nsec   int32
	allocs []*Alloc
}

func lessBucket(a, b *allocBucket) bool {
	return a.sec < b.sec || (a.sec == b.sec && a.nsec < b.nsec)
}

// holds reports whether a is in the bucket.
func (b *allocBucket) holds(a *Alloc) bool {
	i := int(a.ttlSlot)
	return i < len(b.allocs) && b.allocs[i] == a
}

// bound is the item before every item of the bucket's deadline (kind 0).
func (b *allocBucket) bound() ttlItem { return ttlItem{sec: b.sec, nsec: b.nsec} }

// ttlItem is a TTLEntry as the index holds it: the deadline as an instant
// (seconds and nanoseconds since the Unix epoch), which compares fast and
// takes less room; TTLEntry's Deadline is the owner's own time value.
//
// The tree holds the items of workers and replicas (allocs are in
// buckets; an alloc's item serves comparisons). An item takes 48 bytes:
// the dataset of a replica is behind a pointer so that the id prefix fits
// in those 48 bytes (at 56, a node of the tree takes a larger size class).
type ttlItem struct {
	sec  int64
	nsec int32
	kind TTLKind
	// idPrefix is idPrefixOf the alloc id (TTLAlloc) or of the worker id
	// (the other kinds). Entries with the same deadline and kind (a round
	// of placements shares one deadline) mostly differ in it, so that
	// lessTTL orders them without reading the ids behind the pointers.
	idPrefix uint64
	alloc    *Alloc
	worker   *Worker
	// dataset is the dataset id of a TTLReplica (nil for the other kinds).
	dataset *string
}

func itemOf(e TTLEntry) ttlItem {
	it := ttlItem{sec: e.Deadline.Unix(), nsec: int32(e.Deadline.Nanosecond()), kind: e.Kind,
		alloc: e.Alloc, worker: e.Worker}
	switch e.Kind {
	case TTLAlloc:
		it.idPrefix = idPrefixOf(e.Alloc.ID)
	case TTLReplica:
		ds := e.Dataset
		it.dataset = &ds
		fallthrough
	default:
		it.idPrefix = idPrefixOf(e.Worker.ID)
	}
	return it
}

// datasetID is the dataset id of a TTLReplica item, "" for the other kinds.
func (it ttlItem) datasetID() string {
	if it.dataset == nil {
		return ""
	}
	return *it.dataset
}

// idPrefixOf packs the first 8 bytes of id big-endian into a uint64, padded
// with zero bytes if id is shorter (read in one load when id has them). Of
// two ids, the one with the smaller prefix is the smaller string; equal
// prefixes tell nothing (the ids may still differ after 8 bytes, or in
// trailing NUL bytes against padding).
func idPrefixOf(id string) uint64 {
	if len(id) >= 8 {
		return uint64(id[7]) | uint64(id[6])<<8 | uint64(id[5])<<16 | uint64(id[4])<<24 |
			uint64(id[3])<<32 | uint64(id[2])<<40 | uint64(id[1])<<48 | uint64(id[0])<<56
	}
	k := uint64(0)
	for i := range len(id) {
		k |= uint64(id[i]) << (56 - 8*i)
	}
	return k
}

// entry returns the TTLEntry of it, with the deadline its owner holds (equal
// to the indexed one: the fold keeps the index exact).
func (it ttlItem) entry() TTLEntry {
	e := TTLEntry{Kind: it.kind, Alloc: it.alloc, Worker: it.worker, Dataset: it.datasetID()}
	switch it.kind {
	case TTLAlloc:
		e.Deadline = it.alloc.Deadline()
	case TTLWorker:
		e.Deadline = it.worker.Deadline
	case TTLReplica:
		e.Deadline = it.worker.Replicas[e.Dataset]
	}
	return e
}

// after reports whether it's deadline is after t.
func (it ttlItem) after(t time.Time) bool {
	sec := t.Unix()
	return it.sec > sec || (it.sec == sec && it.nsec > int32(t.Nanosecond()))
}

func newTTLIndex() *TTLIndex {
	return &TTLIndex{tree: btree.NewG(32, lessTTL), allocs: btree.NewG(32, lessBucket)}
}

// lessTTL is the index order (see TTLIndex). The id prefixes decide before
// the ids only as a shortcut: they order ids as the strings do.
func lessTTL(a, b ttlItem) bool {
	if a.sec != b.sec {
		return a.sec < b.sec
	}
	if a.nsec != b.nsec {
		return a.nsec < b.nsec
	}
	if a.kind != b.kind {
		return a.kind < b.kind
	}
	if a.idPrefix != b.idPrefix {
		return a.idPrefix < b.idPrefix
	}
	if a.kind == TTLAlloc {
		return a.alloc.ID < b.alloc.ID
	}
	if c := cmp.Compare(a.worker.ID, b.worker.ID); c != 0 {
		return c < 0
	}
	return a.datasetID() < b.datasetID()
}

// Len is the number of indexed deadlines.
func (t *TTLIndex) Len() int { return t.tree.Len() + t.nallocs }

// Next returns the earliest deadline, if any: nothing expires before it.
func (t *TTLIndex) Next() (time.Time, bool) {
	var next time.Time
	found := false
	if b, ok := t.allocs.Min(); ok {
		next, found = b.allocs[0].Deadline(), true
	}
	if it, ok := t.tree.Min(); ok {
		if d := it.entry().Deadline; !found || d.Before(next) {
			next, found = d, true
		}
	}
	return next, found
}

// Due calls fn for each entry whose deadline is at or before now, in index
// order, until fn returns false. fn must not change the state.
func (t *TTLIndex) Due(now time.Time, fn func(TTLEntry) bool) {
	t.ascend(true, now, fn)
}

// Each calls fn for every entry in index order until fn returns false.
func (t *TTLIndex) Each(fn func(TTLEntry) bool) { t.ascend(false, time.Time{}, fn) }

// ascend calls fn for the entries in index order (if due, those with a
// deadline at or before now) until fn returns false. It merges the
// buckets of allocs, each sorted by id on a copy, into the tree's items:
// at a deadline, allocs come first. It changes nothing.
func (t *TTLIndex) ascend(due bool, now time.Time, fn func(TTLEntry) bool) {
	from := ttlItem{sec: math.MinInt64, nsec: math.MinInt32}
	more := true
	items := func(it ttlItem) bool {
		if due && it.after(now) {
			more = false
		} else {
			more = fn(it.entry())
		}
		return more
	}
	t.allocs.Ascend(func(b *allocBucket) bool {
		bound := b.bound()
		t.tree.AscendRange(from, bound, items)
		if more && due && bound.after(now) {
			more = false
		}
		if !more {
			return false
		}
		for _, a := range sortedByID(b.allocs, (*Alloc).id) {
			if !fn(TTLEntry{Kind: TTLAlloc, Deadline: a.Deadline(), Alloc: a}) {
				more = false
				return false
			}
		}
		from = bound
		return true
	})
	if more {
		t.tree.AscendGreaterOrEqual(from, items)
	}
}

func (t *TTLIndex) put(e TTLEntry) {
	if e.Kind == TTLAlloc {
		t.putAlloc(e.Alloc, e.Deadline)
		return
	}
	t.tree.ReplaceOrInsert(itemOf(e))
}

func (t *TTLIndex) remove(e TTLEntry) {
	if e.Kind == TTLAlloc {
		t.removeAlloc(e.Alloc, e.Deadline)
		return
	}
	t.tree.Delete(itemOf(e))
}

// move replaces old by moved, which differs only in its deadline.
func (t *TTLIndex) move(old TTLEntry, deadline time.Time) {
	if old.Deadline.Equal(deadline) {
		return
	}
	t.remove(old)
	old.Deadline = deadline
	t.put(old)
}

// putAlloc indexes a's deadline (once: an alloc has one entry at most).
func (t *TTLIndex) putAlloc(a *Alloc, deadline time.Time) {
	b := t.bucket(deadline)
	if b == nil {
		b = &allocBucket{sec: t.probe.sec, nsec: t.probe.nsec}
		t.allocs.ReplaceOrInsert(b)
		t.last = b
	}
	if b.holds(a) {
		return
	}
	a.ttlSlot = int32(len(b.allocs))
	b.allocs = append(b.allocs, a)
	t.nallocs++
}

// removeAlloc takes a's entry at deadline out of the index, if it is there:
// the bucket's last alloc takes its slot.
func (t *TTLIndex) removeAlloc(a *Alloc, deadline time.Time) {
	b := t.bucket(deadline)
	if b == nil || !b.holds(a) {
		return
	}
	last := len(b.allocs) - 1
	moved := b.allocs[last]
	b.allocs[a.ttlSlot], moved.ttlSlot = moved, a.ttlSlot
	b.allocs[last] = nil
	b.allocs = b.allocs[:last]
	t.nallocs--
	if last == 0 {
		t.allocs.Delete(b)
		if t.last == b {
			t.last = nil
		}
	}
}

// bucket returns the bucket of deadline, or nil (the probe then holds the
// deadline's instant).
func (t *TTLIndex) bucket(deadline time.Time) *allocBucket {
	t.probe.sec, t.probe.nsec = deadline.Unix(), int32(deadline.Nanosecond())
	if b := t.last; b != nil && b.sec == t.probe.sec && b.nsec == t.probe.nsec {
		return b
	}
	b, ok := t.allocs.Get(&t.probe)
	if !ok {
		return nil
	}
	t.last = b
	return b
}

func allocTTL(a *Alloc) TTLEntry { return TTLEntry{Kind: TTLAlloc, Deadline: a.Deadline(), Alloc: a} }
func workerTTL(w *Worker) TTLEntry {
	return TTLEntry{Kind: TTLWorker, Deadline: w.Deadline, Worker: w}
}
func replicaTTL(w *Worker, ds string, deadline time.Time) TTLEntry {
	return TTLEntry{Kind: TTLReplica, Deadline: deadline, Worker: w, Dataset: ds}
}

// evalSet is an insertion-ordered set of evals.
type evalSet struct {
	head, tail *evalSetNode
	nodes      map[*Eval]*evalSetNode
}

type evalSetNode struct {
	eval       *Eval
	prev, next *evalSetNode
}

func newEvalSet() *evalSet { return &evalSet{nodes: make(map[*Eval]*evalSetNode)} }

func (s *evalSet) len() int { return len(s.nodes) }

func (s *evalSet) add(e *Eval) {
	if s.nodes[e] != nil {
		return
	}
	n := &evalSetNode{eval: e, prev: s.tail}
	if s.tail != nil {
		s.tail.next = n
	} else {
		s.head = n
	}
	s.tail = n
	s.nodes[e] = n
}

func (s *evalSet) remove(e *Eval) {
	n := s.nodes[e]
	if n == nil {
		return
	}
	delete(s.nodes, e)
	if n.prev != nil {
		n.prev.next = n.next
	} else {
		s.head = n.next
	}
	if n.next != nil {
		n.next.prev = n.prev
	} else {
		s.tail = n.prev
	}
}

func (s *evalSet) each(fn func(*Eval) bool) {
	for n := s.head; n != nil; n = n.next {
		if !fn(n.eval) {
			return
		}
	}
}

// NumAwaitingRetry is the number of evals awaiting a retry decision (placed,
// with an expired alloc).
func (p *Pool) NumAwaitingRetry() int { return p.retry.len() }

// EachAwaitingRetry calls fn for each eval awaiting a retry decision, in the
// order in which their allocs expired, until fn returns false. It costs the
// number of such evals, not the number of evals. fn must not change the
// state.
func (p *Pool) EachAwaitingRetry(fn func(*Eval) bool) { p.retry.each(fn) }

// AwaitingRetryEvals returns the evals awaiting a retry decision, in the
// order in which their allocs expired.
func (p *Pool) AwaitingRetryEvals() []*Eval {
	out := make([]*Eval, 0, p.retry.len())
	p.retry.each(func(e *Eval) bool { out = append(out, e); return true })
	return out
}

// TTL returns the pool's index of deadlines.
func (p *Pool) TTL() *TTLIndex { return p.ttl }

// NumHolders is the number of workers holding a replica of dataset
// (including replicas past their deadline but not yet expired).
func (p *Pool) NumHolders(dataset string) int { return len(p.holders[dataset]) }

// EachHolder calls fn for each worker holding a replica of dataset, in no
// particular order, until fn returns false. Unlike Holders it allocates
// nothing; a caller that needs a deterministic result must not depend on the
// order (e.g. pick the best by a total order, or visit all). fn must not
// change the state.
func (p *Pool) EachHolder(dataset string, fn func(*Worker) bool) {
	for _, w := range p.holders[dataset] {
		if !fn(w) {
			return
		}
	}
}

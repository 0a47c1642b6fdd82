package projections

import (
	"bytes"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/state"
)

// fold is the projector's memory: the shared fold (state.State, the only
// definition of what an event means) and, per pool, counters of the events
// that reached it. It never reads a clock and holds nothing but what the
// log implies.
type fold struct {
	st   *state.State
	meta map[string]*poolMeta
	// lastPool and lastMeta are the pool the previous event reached and
	// its counters: runs of events of one pool update them in place.
	lastPool string
	lastMeta *poolMeta
}

func newFold() *fold { return &fold{st: state.New(), meta: make(map[string]*poolMeta)} }

// metaOf returns the counters of pool id, created if it has none.
func (f *fold) metaOf(id string) *poolMeta {
	if f.lastMeta != nil && f.lastPool == id {
		return f.lastMeta
	}
	m := f.meta[id]
	if m == nil {
		m = &poolMeta{}
		f.meta[id] = m
	}
	f.lastPool, f.lastMeta = id, m
	return m
}

// metaCopy returns the counters of pool id (zero if it has none).
func (f *fold) metaCopy(id string) poolMeta {
	if m := f.meta[id]; m != nil {
		return *m
	}
	return poolMeta{}
}

type poolKeyID struct{ pool, id string }

type replicaID struct{ pool, dataset, worker string }

// before is what the view holds of a row before a batch: whether the row
// exists and its index entries. The view is the fold of the log up to the
// checkpoint, so this is known from the state before the batch's first
// event touching the row, without reading the row back.
type before struct {
	exists bool
	index  []string
}

// touched names the rows that the events of a batch may have changed, each
// with what the view held of it before the batch. The rows are rewritten
// from the state after the batch: a row whose entity is gone is deleted.
type touched struct {
	pools    map[string]struct{}
	workers  map[poolKeyID]before
	evals    map[poolKeyID]before
	allocs   map[poolKeyID]before
	replicas map[replicaID]before
}

func newTouched() *touched {
	return &touched{pools: map[string]struct{}{}, workers: map[poolKeyID]before{},
		evals: map[poolKeyID]before{}, allocs: map[poolKeyID]before{}, replicas: map[replicaID]before{}}
}

// clear forgets every row, keeping the maps' memory.
func (t *touched) clear() {
	clear(t.pools)
	clear(t.workers)
	clear(t.evals)
	clear(t.allocs)
	clear(t.replicas)
}

func (t *touched) empty() bool {
	return len(t.pools)+len(t.workers)+len(t.evals)+len(t.allocs)+len(t.replicas) == 0
}

// worker, eval, alloc and replica name a row of pool p (nil: no such
// pool), as the state is before the event that touches it; only the first
// touch of a row in a batch records its old index entries.
func (t *touched) worker(p *state.Pool, pool, id string) {
	k := poolKeyID{pool, id}
	if _, ok := t.workers[k]; ok {
		return
	}
	var b before
	if p != nil {
		if w := p.Worker(id); w != nil {
			b = before{exists: true, index: workerIndex(pool, w.ID, w.Free(), w.Deadline)}
		}
	}
	t.workers[k] = b
}

func (t *touched) eval(p *state.Pool, pool, id string) {
	k := poolKeyID{pool, id}
	if _, ok := t.evals[k]; ok {
		return
	}
	var b before
	if p != nil {
		if e := p.Eval(id); e != nil {
			b = before{exists: true, index: evalIndex(pool, e.ID, string(e.Status()))}
		}
	}
	t.evals[k] = b
}

func (t *touched) alloc(p *state.Pool, pool, id string) {
	k := poolKeyID{pool, id}
	if _, ok := t.allocs[k]; ok {
		return
	}
	var b before
	if p != nil {
		if a := p.Alloc(id); a != nil {
			b = before{exists: true, index: allocIndex(pool, a.ID, a.WorkerID(), string(a.Status()), a.Deadline())}
		}
	}
	t.allocs[k] = b
}

func (t *touched) replica(p *state.Pool, pool, dataset, worker string) {
	k := replicaID{pool, dataset, worker}
	if _, ok := t.replicas[k]; ok {
		return
	}
	var b before
	if p != nil {
		if w := p.Worker(worker); w != nil {
			if deadline, ok := w.Replicas[dataset]; ok {
				b = before{exists: true, index: replicaIndex(pool, dataset, w.ID, deadline)}
			}
		}
	}
	t.replicas[k] = b
}

// apply folds one event. If t is not nil, it records there every row the
// event may change. Rows are named from the event's data and, for the
// entities an event removes or reaches through another (the alloc's eval
// and worker, an expiring worker's replicas, everything of a deleted pool),
// from the state before the event.
func (f *fold) apply(e events.Envelope, pos events.Position, t *touched) error {
	if t != nil {
		f.touch(e, t)
	}
	err := f.st.Apply(e, pos)
	if f.st.Pool(e.Pool) != nil {
		m := f.metaOf(e.Pool)
		m.events++
		if err != nil {
			m.rejected++
		}
		m.last = pos
	}
	return err
}

func (f *fold) touch(e events.Envelope, t *touched) {
	pool := e.Pool
	t.pools[pool] = struct{}{}
	p := f.st.Pool(pool)
	switch d := e.Data.(type) {
	case events.PoolDeletedData:
		if p == nil {
			return
		}
		for _, w := range p.Workers() {
			t.worker(p, pool, w.ID)
			for ds := range w.Replicas {
				t.replica(p, pool, ds, w.ID)
			}
		}
		for _, ev := range p.Evals() {
			t.eval(p, pool, ev.ID)
		}
		for _, a := range p.Allocs() {
			t.alloc(p, pool, a.ID)
		}
	case events.WorkerRegisteredData:
		t.worker(p, pool, d.WorkerID)
		for _, ds := range d.Datasets {
			t.replica(p, pool, ds, d.WorkerID)
		}
	case events.WorkerHeartbeatData:
		t.worker(p, pool, d.WorkerID)
		for _, ds := range d.Datasets {
			t.replica(p, pool, ds, d.WorkerID)
		}
		for _, id := range d.Allocs {
			t.alloc(p, pool, id)
		}
	case events.WorkerExpiredData:
		t.worker(p, pool, d.WorkerID)
		if p != nil {
			if w := p.Worker(d.WorkerID); w != nil {
				for ds := range w.Replicas {
					t.replica(p, pool, ds, w.ID)
				}
			}
		}
	case events.ReplicaExpiredData:
		t.worker(p, pool, d.WorkerID)
		t.replica(p, pool, d.DatasetID, d.WorkerID)
	case events.EvalSubmittedData:
		t.eval(p, pool, d.EvalID)
	case events.EvalRejectedData:
		t.eval(p, pool, d.EvalID)
	case events.EvalRequeuedData:
		t.eval(p, pool, d.EvalID)
	case events.EvalDeadLetteredData:
		t.eval(p, pool, d.EvalID)
	case events.AllocPlacedData:
		t.alloc(p, pool, d.AllocID)
		t.eval(p, pool, d.EvalID)
		t.worker(p, pool, d.WorkerID)
	case events.AllocCompletedData:
		f.touchAlloc(p, pool, d.AllocID, t)
	case events.AllocExpiredData:
		f.touchAlloc(p, pool, d.AllocID, t)
	}
}

// touchAlloc names an alloc, its eval and its worker.
func (f *fold) touchAlloc(p *state.Pool, pool, id string, t *touched) {
	t.alloc(p, pool, id)
	if p == nil {
		return
	}
	if a := p.Alloc(id); a != nil {
		t.eval(p, pool, a.EvalID)
		t.worker(p, pool, a.WorkerID())
	}
}

// row is one row to write: its key, its JSON value (nil: the entity does
// not exist, delete the row) and its secondary index entries.
type row struct {
	key   []byte
	value []byte
	index []string
	// old is what the view holds of the row before the batch.
	old before
}

// eachRow calls emit with each row named in t as the state now has it, in
// no particular order (each key appears once: the order does not change
// what a batch writes). A row's key and value are valid only during the
// call: they are encoded in memory reused by the next row.
func (f *fold) eachRow(t *touched, emit func(row) error) error {
	var key, value []byte
	// put emits the row of key: encoded is the value encoded in value's
	// memory (or in new memory, kept for the next rows), nil if the entity
	// does not exist.
	put := func(old before, encoded []byte, index []string, err error) error {
		if err != nil {
			return err
		}
		if encoded != nil && cap(encoded) > cap(value) {
			value = encoded
		}
		return emit(row{key: key, value: encoded, index: index, old: old})
	}
	for id := range t.pools {
		key = appendKey(key[:0], prefixPool, id)
		var v []byte
		var err error
		if p := f.st.Pool(id); p != nil {
			v, err = appendRow(value[:0], poolView(p, f.metaCopy(id)))
		}
		if err := put(before{exists: true}, v, nil, err); err != nil {
			return err
		}
	}
	for k, old := range t.workers {
		key = appendKey(key[:0], prefixWorker, k.pool, k.id)
		var v []byte
		var index []string
		var err error
		if w := f.worker(k.pool, k.id); w != nil {
			r := workerRowOf(k.pool, w)
			v, err = marshalWorker(value[:0], &r)
			index = workerIndex(k.pool, w.ID, w.Free(), w.Deadline)
		}
		if err := put(old, v, index, err); err != nil {
			return err
		}
	}
	var known rowMemo
	for k, old := range t.evals {
		key = appendKey(key[:0], prefixEval, k.pool, k.id)
		var v []byte
		var index []string
		var err error
		if e := f.eval(k.pool, k.id); e != nil {
			v, err = appendEvalRow(value[:0], k.pool, e, &known)
			index = evalIndex(k.pool, e.ID, string(e.Status()))
		}
		if err := put(old, v, index, err); err != nil {
			return err
		}
	}
	for k, old := range t.allocs {
		key = appendKey(key[:0], prefixAlloc, k.pool, k.id)
		var v []byte
		var index []string
		var err error
		if a := f.alloc(k.pool, k.id); a != nil {
			v, err = appendAllocRow(value[:0], k.pool, a, &known)
			index = allocIndex(k.pool, a.ID, a.WorkerID(), string(a.Status()), a.Deadline())
		}
		if err := put(old, v, index, err); err != nil {
			return err
		}
	}
	for k, old := range t.replicas {
		key = appendKey(key[:0], prefixReplica, k.pool, k.dataset, k.worker)
		var v []byte
		var index []string
		var err error
		if w := f.worker(k.pool, k.worker); w != nil {
			if deadline, ok := w.Replicas[k.dataset]; ok {
				r := replicaView(k.pool, k.dataset, w, deadline)
				v, err = appendRow(value[:0], r)
				index = replicaIndex(k.pool, k.dataset, w.ID, deadline)
			}
		}
		if err := put(old, v, index, err); err != nil {
			return err
		}
	}
	return nil
}

// rows returns the rows eachRow emits, each in its own memory.
func (f *fold) rows(t *touched) ([]row, error) {
	var out []row
	err := f.eachRow(t, func(r row) error {
		r.key = bytes.Clone(r.key)
		if r.value != nil {
			r.value = bytes.Clone(r.value)
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

func (f *fold) eval(pool, id string) *state.Eval {
	if p := f.st.Pool(pool); p != nil {
		return p.Eval(id)
	}
	return nil
}

func (f *fold) alloc(pool, id string) *state.Alloc {
	if p := f.st.Pool(pool); p != nil {
		return p.Alloc(id)
	}
	return nil
}

func (f *fold) worker(pool, id string) *state.Worker {
	if p := f.st.Pool(pool); p != nil {
		return p.Worker(id)
	}
	return nil
}

// all names every row of every pool: a full materialization.
func (f *fold) all() *touched {
	t := newTouched()
	for _, p := range f.st.Pools() {
		t.pools[p.ID] = struct{}{}
		for _, w := range p.Workers() {
			t.worker(p, p.ID, w.ID)
			for ds := range w.Replicas {
				t.replica(p, p.ID, ds, w.ID)
			}
		}
		for _, e := range p.Evals() {
			t.eval(p, p.ID, e.ID)
		}
		for _, a := range p.Allocs() {
			t.alloc(p, p.ID, a.ID)
		}
	}
	return t
}

package projections

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// Page sizes of lists.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// QueryError is a query the views cannot answer: a bad parameter (Status
// 400) or an unknown pool, worker, eval or alloc (404).
type QueryError struct {
	Status  int
	Code    string
	Message string
}

func (e *QueryError) Error() string { return e.Code + ": " + e.Message }

func notFound(code, format string, args ...any) *QueryError {
	return &QueryError{Status: http.StatusNotFound, Code: code, Message: fmt.Sprintf(format, args...)}
}

func badQuery(code, format string, args ...any) *QueryError {
	return &QueryError{Status: http.StatusBadRequest, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Page asks for one page of a list: the items after Cursor (the
// next_cursor of the previous page, or "" for the first page), at most
// Limit of them (0 means DefaultLimit).
type Page struct {
	Cursor string
	Limit  int
}

// Snapshot is a consistent, read-only view of the views: every query made
// through one snapshot sees the same committed batch, and Applied tells
// which prefix of the log that batch reflects. Close it when done.
type Snapshot struct {
	s    *pebble.Snapshot
	once sync.Once
	done func()
}

// Snapshot opens a snapshot of the views; ErrStopped once the projector
// is closed (Close waits for open snapshots).
func (p *Projector) Snapshot() (*Snapshot, error) {
	p.rmu.RLock()
	defer p.rmu.RUnlock()
	if p.closing {
		return nil, ErrStopped
	}
	p.readers.Add(1)
	return &Snapshot{s: p.db.NewSnapshot(), done: p.readers.Done}, nil
}

// Close releases the snapshot.
func (s *Snapshot) Close() error {
	var err error
	s.once.Do(func() {
		err = s.s.Close()
		s.done()
	})
	return err
}

// Applied returns the checkpoint the snapshot reflects: per partition, the
// next offset to apply.
func (s *Snapshot) Applied() (map[int32]int64, error) { return readOffsets(s.s) }

func (s *Snapshot) row(key string, v any) (bool, error) {
	b, err := getCopy(s.s, []byte(key))
	if err != nil || b == nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("projections: decode row %q: %w", key, err)
	}
	return true, nil
}

// mustRow reads a row that another row of the same snapshot refers to.
func (s *Snapshot) mustRow(key string, v any) error {
	ok, err := s.row(key, v)
	if err == nil && !ok {
		err = fmt.Errorf("projections: row %q is referred to but missing", key)
	}
	return err
}

// Pool returns a pool.
func (s *Snapshot) Pool(id string) (PoolView, error) {
	var v PoolView
	ok, err := s.row(poolKey(id), &v)
	if err == nil && !ok {
		err = notFound("pool_not_found", "pool %s does not exist", id)
	}
	return v, err
}

// Pools lists the pools by id.
func (s *Snapshot) Pools(pg Page) ([]PoolView, string, error) {
	out := []PoolView{}
	next, err := s.scan(prefixPool, pg, func(_ string, value []byte) error {
		var v PoolView
		if err := json.Unmarshal(value, &v); err != nil {
			return err
		}
		out = append(out, v)
		return nil
	})
	return out, next, err
}

// runningAllocs reads workers' running allocs from the index of running
// allocs by worker (idx/workeralloc) of one pool.
type runningAllocs struct {
	prefix string
	it     *pebble.Iterator
}

func (s *Snapshot) runningAllocs(pool string) (*runningAllocs, error) {
	prefix := workerAllocsPrefix(pool)
	it, err := s.s.NewIter(&pebble.IterOptions{LowerBound: []byte(prefix), UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("projections: read the running allocs of pool %s: %w", pool, err)
	}
	return &runningAllocs{prefix: prefix, it: it}, nil
}

func (r *runningAllocs) close() error { return r.it.Close() }

// of returns the ids of a worker's running allocs, sorted (never nil).
func (r *runningAllocs) of(worker string) ([]string, error) {
	wp := []byte(r.prefix + esc(worker) + "/")
	out := []string{}
	for ok := r.it.SeekGE(wp); ok && bytes.HasPrefix(r.it.Key(), wp); ok = r.it.Next() {
		out = append(out, unesc(string(r.it.Key()[len(wp):])))
	}
	if err := r.it.Error(); err != nil {
		return nil, fmt.Errorf("projections: read the running allocs of worker %s: %w", worker, err)
	}
	// Keys sort by escaped id, which is the id for every valid id.
	slices.Sort(out)
	return out, nil
}

// worker decodes a worker's row and adds its running allocs.
func (r *runningAllocs) worker(value []byte) (WorkerView, error) {
	var row workerRow
	if err := json.Unmarshal(value, &row); err != nil {
		return WorkerView{}, fmt.Errorf("projections: decode a worker row: %w", err)
	}
	running, err := r.of(row.WorkerID)
	if err != nil {
		return WorkerView{}, err
	}
	return row.view(running), nil
}

// Worker returns a registered worker with its running allocs and replicas.
func (s *Snapshot) Worker(pool, id string) (WorkerDetail, error) {
	var d WorkerDetail
	if _, err := s.Pool(pool); err != nil {
		return d, err
	}
	var row workerRow
	ok, err := s.row(workerKey(pool, id), &row)
	if err != nil {
		return d, err
	}
	if !ok {
		return d, notFound("worker_not_found", "worker %s is not registered in pool %s", id, pool)
	}
	ra, err := s.runningAllocs(pool)
	if err != nil {
		return d, err
	}
	running, err := ra.of(row.WorkerID)
	if cerr := ra.close(); err == nil {
		err = cerr
	}
	if err != nil {
		return d, err
	}
	d.WorkerView = row.view(running)
	d.Allocs, d.Replicas = []AllocView{}, []ReplicaView{}
	for _, a := range d.RunningAllocs {
		var v AllocView
		if err := s.mustRow(allocKey(pool, a), &v); err != nil {
			return d, err
		}
		d.Allocs = append(d.Allocs, v)
	}
	for _, ds := range d.Datasets {
		var v ReplicaView
		if err := s.mustRow(replicaKey(pool, ds, id), &v); err != nil {
			return d, err
		}
		d.Replicas = append(d.Replicas, v)
	}
	return d, nil
}

// Workers lists a pool's workers by id; with minFree >= 0, only those with
// at least that much free capacity (read from the free-capacity index).
func (s *Snapshot) Workers(pool string, minFree int64, pg Page) ([]WorkerView, string, error) {
	if _, err := s.Pool(pool); err != nil {
		return nil, "", err
	}
	ra, err := s.runningAllocs(pool)
	if err != nil {
		return nil, "", err
	}
	defer ra.close()
	out := []WorkerView{}
	decode := func(_ string, value []byte) error {
		v, err := ra.worker(value)
		if err != nil {
			return err
		}
		out = append(out, v)
		return nil
	}
	if minFree < 0 {
		next, err := s.scan(workersPrefix(pool), pg, decode)
		return out, next, err
	}
	// The free index orders by free capacity: collect the ids that
	// qualify, then page through them by id.
	limit, after, err := pageBounds(pg)
	if err != nil {
		return nil, "", err
	}
	fp := freePrefix(pool)
	it, err := s.s.NewIter(&pebble.IterOptions{LowerBound: []byte(fp + freeSeg(minFree)), UpperBound: prefixEnd(fp)})
	if err != nil {
		return nil, "", err
	}
	var ids []string
	for ok := it.First(); ok; ok = it.Next() {
		k := string(it.Key())
		if id := k[strings.LastIndexByte(k, '/')+1:]; id > after {
			ids = append(ids, id)
		}
	}
	if err := it.Close(); err != nil {
		return nil, "", err
	}
	slices.Sort(ids)
	next := ""
	if len(ids) > limit {
		ids = ids[:limit]
		next = encodeCursor(ids[limit-1])
	}
	wp := workersPrefix(pool)
	for _, id := range ids {
		value, err := getCopy(s.s, []byte(wp+id))
		if err == nil && value == nil {
			err = fmt.Errorf("projections: row %q is referred to but missing", wp+id)
		}
		if err != nil {
			return nil, "", err
		}
		if err := decode("", value); err != nil {
			return nil, "", err
		}
	}
	return out, next, nil
}

// Eval returns an eval with its current (or last) alloc.
func (s *Snapshot) Eval(pool, id string) (EvalDetail, error) {
	var d EvalDetail
	if _, err := s.Pool(pool); err != nil {
		return d, err
	}
	ok, err := s.row(evalKey(pool, id), &d.EvalView)
	if err != nil {
		return d, err
	}
	if !ok {
		return d, notFound("eval_not_found", "eval %s does not exist in pool %s", id, pool)
	}
	if d.AllocID != "" {
		d.Alloc = &AllocView{}
		if err := s.mustRow(allocKey(pool, d.AllocID), d.Alloc); err != nil {
			return d, err
		}
	}
	return d, nil
}

// Evals lists a pool's evals by id, only those in status unless it is "".
func (s *Snapshot) Evals(pool, status string, pg Page) ([]EvalView, string, error) {
	if _, err := s.Pool(pool); err != nil {
		return nil, "", err
	}
	out := []EvalView{}
	if status == "" {
		next, err := s.scan(evalsPrefix(pool), pg, func(_ string, value []byte) error {
			var v EvalView
			if err := json.Unmarshal(value, &v); err != nil {
				return err
			}
			out = append(out, v)
			return nil
		})
		return out, next, err
	}
	ep := evalsPrefix(pool)
	next, err := s.scan(evalStatusPrefix(pool, status), pg, func(suffix string, _ []byte) error {
		var v EvalView
		if err := s.mustRow(ep+suffix, &v); err != nil {
			return err
		}
		out = append(out, v)
		return nil
	})
	return out, next, err
}

// Alloc returns an alloc.
func (s *Snapshot) Alloc(pool, id string) (AllocView, error) {
	var v AllocView
	if _, err := s.Pool(pool); err != nil {
		return v, err
	}
	ok, err := s.row(allocKey(pool, id), &v)
	if err == nil && !ok {
		err = notFound("alloc_not_found", "alloc %s does not exist in pool %s", id, pool)
	}
	return v, err
}

// Replicas lists the replicas of a dataset in a pool by worker id.
func (s *Snapshot) Replicas(pool, dataset string, pg Page) ([]ReplicaView, string, error) {
	if _, err := s.Pool(pool); err != nil {
		return nil, "", err
	}
	out := []ReplicaView{}
	next, err := s.scan(replicasPrefix(pool, dataset), pg, func(_ string, value []byte) error {
		var v ReplicaView
		if err := json.Unmarshal(value, &v); err != nil {
			return err
		}
		out = append(out, v)
		return nil
	})
	return out, next, err
}

// DeadLetters lists the dead-lettered evals by pool and id, of one pool
// unless pool is "".
func (s *Snapshot) DeadLetters(pool string, pg Page) ([]EvalView, string, error) {
	prefix := prefixDeadLetter
	evalPrefix := prefixEval
	if pool != "" {
		prefix = join(prefixDeadLetter, pool) + "/"
		evalPrefix = evalsPrefix(pool)
	}
	out := []EvalView{}
	next, err := s.scan(prefix, pg, func(suffix string, _ []byte) error {
		var v EvalView
		if err := s.mustRow(evalPrefix+suffix, &v); err != nil {
			return err
		}
		out = append(out, v)
		return nil
	})
	return out, next, err
}

func pageBounds(pg Page) (limit int, after string, err error) {
	limit = pg.Limit
	switch {
	case limit == 0:
		limit = DefaultLimit
	case limit < 0 || limit > MaxLimit:
		return 0, "", badQuery("invalid_limit", "limit %d is not between 1 and %d", limit, MaxLimit)
	}
	if pg.Cursor != "" {
		if after, err = decodeCursor(pg.Cursor); err != nil {
			return 0, "", err
		}
	}
	return limit, after, nil
}

// scan calls fn for the rows under prefix after the page's cursor, in key
// order, at most the page's limit of them, and returns the cursor of the
// next page ("" when there is none).
func (s *Snapshot) scan(prefix string, pg Page, fn func(suffix string, value []byte) error) (string, error) {
	limit, after, err := pageBounds(pg)
	if err != nil {
		return "", err
	}
	lower := []byte(prefix)
	if pg.Cursor != "" {
		lower = append([]byte(prefix+after), 0)
	}
	it, err := s.s.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return "", err
	}
	defer it.Close()
	n, last := 0, ""
	for ok := it.First(); ok; ok = it.Next() {
		if n == limit {
			return encodeCursor(last), nil
		}
		suffix := string(it.Key()[len(prefix):])
		if err := fn(suffix, bytes.Clone(it.Value())); err != nil {
			return "", err
		}
		last = suffix
		n++
	}
	return "", it.Error()
}

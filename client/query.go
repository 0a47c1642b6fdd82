package client

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/line-sched/line/api"
	"github.com/line-sched/line/events"
)

// IndexHeader is the header of every query answer that tells how far the
// answering view has applied the log.
const IndexHeader = "X-Line-Index"

// Index is how far a view has applied the log: per partition, the offset
// of the last record applied (the X-Line-Index header). A partition with
// nothing applied is absent.
type Index map[int32]int64

// ParseIndex parses an X-Line-Index value ("0:12,1:7"); malformed parts
// are left out.
func ParseIndex(s string) Index {
	idx := Index{}
	for part := range strings.SplitSeq(s, ",") {
		if p, err := events.ParsePosition(strings.TrimSpace(part)); err == nil {
			idx[p.Partition] = p.Offset
		}
	}
	return idx
}

// String formats idx as X-Line-Index does.
func (idx Index) String() string {
	parts := make([]int32, 0, len(idx))
	for p := range idx {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(events.Position{Partition: p, Offset: idx[p]}.String())
	}
	return b.String()
}

// Next is the position of the next record of partition after what idx has
// applied: a query with it as Index waits until the view moves on there.
func (idx Index) Next(partition int32) string {
	next := int64(0)
	if o, ok := idx[partition]; ok {
		next = o + 1
	}
	return events.Position{Partition: partition, Offset: next}.String()
}

// Q are the blocking-query parameters every query takes.
type Q struct {
	// Index, if set, is a position ("partition:offset", e.g. a write's
	// position): the answer comes from a view that has applied it.
	Index string
	// Wait bounds how long the server waits for Index (server default 5s,
	// at most 60s). A view that does not get there in time answers 504
	// index_timeout.
	Wait time.Duration
}

func (q Q) params() (*api.IndexQuery, *api.WaitQuery) {
	var idx *api.IndexQuery
	var wait *api.WaitQuery
	if q.Index != "" {
		s := q.Index
		idx = &s
	}
	if q.Wait > 0 {
		s := q.Wait.Round(time.Millisecond).String()
		wait = &s
	}
	return idx, wait
}

// Page selects a page of a list: Cursor is the NextCursor of the previous
// page ("" for the first), Limit the items per page (0: server default,
// 100; at most 1000).
type Page struct {
	Cursor string
	Limit  int
}

func (p Page) params() (*api.CursorQuery, *api.LimitQuery) {
	var c *api.CursorQuery
	var l *api.LimitQuery
	if p.Cursor != "" {
		s := p.Cursor
		c = &s
	}
	if p.Limit > 0 {
		n := p.Limit
		l = &n
	}
	return c, l
}

func indexOf(resp *http.Response) Index {
	if resp == nil {
		return Index{}
	}
	return ParseIndex(resp.Header.Get(IndexHeader))
}

// query finishes a query: the value and the index on success, the decoded
// *Error otherwise.
func query[T any](v *T, method, path string, resp *http.Response, body []byte) (*T, Index, error) {
	out, err := result(v, method, path, resp, body)
	return out, indexOf(resp), err
}

// ListPools returns a page of pools, sorted by id.
func (c *Client) ListPools(ctx context.Context, page Page, q Q) (*api.PoolList, Index, error) {
	const m, p = http.MethodGet, "/v1/pools"
	prm := &api.ListPoolsParams{}
	prm.Cursor, prm.Limit = page.params()
	prm.Index, prm.Wait = q.params()
	r, err := c.api.ListPoolsWithResponse(ctx, prm)
	if err != nil {
		return nil, nil, c.connErr(m, p, err)
	}
	return query(r.JSON200, m, p, r.HTTPResponse, r.Body)
}

// GetPool returns a pool (404 pool_not_found if the view does not know it).
func (c *Client) GetPool(ctx context.Context, pool string, q Q) (*api.Pool, Index, error) {
	m, p := http.MethodGet, "/v1/pools/"+esc(pool)
	prm := &api.GetPoolParams{}
	prm.Index, prm.Wait = q.params()
	r, err := c.api.GetPoolWithResponse(ctx, pool, prm)
	if err != nil {
		return nil, nil, c.connErr(m, p, err)
	}
	return query(r.JSON200, m, p, r.HTTPResponse, r.Body)
}

// ListWorkers returns a page of a pool's workers, sorted by id; minFree > 0
// keeps those with at least that much free capacity.
func (c *Client) ListWorkers(ctx context.Context, pool string, minFree int64, page Page, q Q) (*api.WorkerList, Index, error) {
	m, p := http.MethodGet, "/v1/pools/"+esc(pool)+"/workers"
	prm := &api.ListWorkersParams{}
	if minFree > 0 {
		prm.MinFree = &minFree
	}
	prm.Cursor, prm.Limit = page.params()
	prm.Index, prm.Wait = q.params()
	r, err := c.api.ListWorkersWithResponse(ctx, pool, prm)
	if err != nil {
		return nil, nil, c.connErr(m, p, err)
	}
	return query(r.JSON200, m, p, r.HTTPResponse, r.Body)
}

// GetWorker returns a registered worker with its running allocs and
// replicas.
func (c *Client) GetWorker(ctx context.Context, pool, worker string, q Q) (*api.WorkerDetail, Index, error) {
	m, p := http.MethodGet, "/v1/pools/"+esc(pool)+"/workers/"+esc(worker)
	prm := &api.GetWorkerParams{}
	prm.Index, prm.Wait = q.params()
	r, err := c.api.GetWorkerWithResponse(ctx, pool, worker, prm)
	if err != nil {
		return nil, nil, c.connErr(m, p, err)
	}
	return query(r.JSON200, m, p, r.HTTPResponse, r.Body)
}

// ListEvals returns a page of a pool's evals, sorted by id; a non-empty
// status keeps those in it.
func (c *Client) ListEvals(ctx context.Context, pool string, status api.EvalStatus, page Page, q Q) (*api.EvalList, Index, error) {
	m, p := http.MethodGet, "/v1/pools/"+esc(pool)+"/evals"
	prm := &api.ListEvalsParams{}
	if status != "" {
		prm.Status = &status
	}
	prm.Cursor, prm.Limit = page.params()
	prm.Index, prm.Wait = q.params()
	r, err := c.api.ListEvalsWithResponse(ctx, pool, prm)
	if err != nil {
		return nil, nil, c.connErr(m, p, err)
	}
	return query(r.JSON200, m, p, r.HTTPResponse, r.Body)
}

// GetEval returns an eval with its current (or last) alloc.
func (c *Client) GetEval(ctx context.Context, pool, eval string, q Q) (*api.EvalDetail, Index, error) {
	m, p := http.MethodGet, "/v1/pools/"+esc(pool)+"/evals/"+esc(eval)
	prm := &api.GetEvalParams{}
	prm.Index, prm.Wait = q.params()
	r, err := c.api.GetEvalWithResponse(ctx, pool, eval, prm)
	if err != nil {
		return nil, nil, c.connErr(m, p, err)
	}
	return query(r.JSON200, m, p, r.HTTPResponse, r.Body)
}

// GetAlloc returns an alloc with its placement and, once ended, its
// completion or expiry.
func (c *Client) GetAlloc(ctx context.Context, pool, alloc string, q Q) (*api.Alloc, Index, error) {
	m, p := http.MethodGet, "/v1/pools/"+esc(pool)+"/allocs/"+esc(alloc)
	prm := &api.GetAllocParams{}
	prm.Index, prm.Wait = q.params()
	r, err := c.api.GetAllocWithResponse(ctx, pool, alloc, prm)
	if err != nil {
		return nil, nil, c.connErr(m, p, err)
	}
	return query(r.JSON200, m, p, r.HTTPResponse, r.Body)
}

// ListReplicas returns a page of the workers of pool holding dataset.
func (c *Client) ListReplicas(ctx context.Context, pool, dataset string, page Page, q Q) (*api.ReplicaList, Index, error) {
	m, p := http.MethodGet, "/v1/pools/"+esc(pool)+"/datasets/"+esc(dataset)+"/replicas"
	prm := &api.ListReplicasParams{}
	prm.Cursor, prm.Limit = page.params()
	prm.Index, prm.Wait = q.params()
	r, err := c.api.ListReplicasWithResponse(ctx, pool, dataset, prm)
	if err != nil {
		return nil, nil, c.connErr(m, p, err)
	}
	return query(r.JSON200, m, p, r.HTTPResponse, r.Body)
}

// ListDeadLetters returns a page of dead-lettered evals, of one pool if
// pool is not empty.
func (c *Client) ListDeadLetters(ctx context.Context, pool string, page Page, q Q) (*api.EvalList, Index, error) {
	const m, p = http.MethodGet, "/v1/dead-letters"
	prm := &api.ListDeadLettersParams{}
	if pool != "" {
		prm.Pool = &pool
	}
	prm.Cursor, prm.Limit = page.params()
	prm.Index, prm.Wait = q.params()
	r, err := c.api.ListDeadLettersWithResponse(ctx, prm)
	if err != nil {
		return nil, nil, c.connErr(m, p, err)
	}
	return query(r.JSON200, m, p, r.HTTPResponse, r.Body)
}

// All calls list for every page, from the first, and returns every item.
// list gets the page to fetch and returns that page's items and its
// next cursor.
func All[T any](ctx context.Context, limit int, list func(ctx context.Context, page Page) ([]T, *string, error)) ([]T, error) {
	var out []T
	page := Page{Limit: limit}
	for {
		items, next, err := list(ctx, page)
		if err != nil {
			return out, err
		}
		out = append(out, items...)
		if next == nil || *next == "" {
			return out, nil
		}
		page.Cursor = *next
	}
}

// DefaultBlockWait is the wait of each query of Block.
const DefaultBlockWait = 30 * time.Second

// Block runs a blocking query until done accepts its answer, and returns
// that answer. The first query waits for since (a write's position,
// "partition:offset"): it reads its own write. Every next one waits, up to
// wait (0: DefaultBlockWait), for the view to apply the next record of
// since's partition, the partition that holds the pool's events, so Block
// re-reads only when something may have changed there. A 504
// index_timeout (nothing happened within wait) is asked again; other
// errors end Block. Bound the whole wait with ctx.
//
//	ev, err := client.Block(ctx, res.Position, 0,
//		func(ctx context.Context, q client.Q) (*api.EvalDetail, client.Index, error) {
//			return c.GetEval(ctx, pool, id, q)
//		},
//		func(e *api.EvalDetail) bool { return e.Status != api.EvalStatusPending })
func Block[T any](ctx context.Context, since string, wait time.Duration, query func(context.Context, Q) (T, Index, error), done func(T) bool) (T, error) {
	var zero T
	pos, err := events.ParsePosition(since)
	if err != nil {
		return zero, err
	}
	if wait <= 0 {
		wait = DefaultBlockWait
	}
	q := Q{Index: since, Wait: wait}
	for {
		v, idx, err := query(ctx, q)
		switch {
		case err == nil:
			if done(v) {
				return v, nil
			}
			next := int64(0)
			if o, ok := idx[pos.Partition]; ok {
				next = o + 1
			}
			if cur := offsetOf(q.Index); next > cur {
				q.Index = events.Position{Partition: pos.Partition, Offset: next}.String()
			} else {
				// The answer did not say how far the view is: do
				// not spin on a position it already passed.
				select {
				case <-ctx.Done():
				case <-time.After(250 * time.Millisecond):
				}
			}
		case CodeOf(err) == "index_timeout" || StatusOf(err) == http.StatusGatewayTimeout:
			// Nothing new within wait: ask again.
		default:
			return zero, err
		}
		if err := ctx.Err(); err != nil {
			return zero, err
		}
	}
}

// offsetOf returns the offset of a position, -1 if it is malformed.
func offsetOf(pos string) int64 {
	_, o, ok := strings.Cut(pos, ":")
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(o, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

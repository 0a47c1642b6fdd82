package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/line-sched/line/api"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/projections"
)

// The queries (tag queries in api/openapi.yaml) are answered from the
// projector's views, each from one Pebble snapshot, never from a fold in
// memory.

const (
	// IndexHeader carries, on every query answer, the positions the view
	// has applied (projections.FormatIndex).
	IndexHeader = "X-Line-Index"
	// DefaultWait is how long a query with index waits when wait is not
	// given; MaxWait is the longest wait accepted.
	DefaultWait = 5 * time.Second
	MaxWait     = 60 * time.Second
)

// queriesOnly answers every command with 404 on a server without ingest
// (cmd/projector): all commands are POST or DELETE, all queries GET.
func queriesOnly(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if m := c.Request().Method; m != http.MethodGet && m != http.MethodHead {
			return apiError(http.StatusNotFound, "no_such_route", fmt.Sprintf(
				"%s %s: this server (the projector) answers queries only; send commands to ingest", m, c.Request().URL.Path))
		}
		return next(c)
	}
}

// viewsHealth answers GET /healthz on a server without ingest: ready once
// Kafka answers and the views caught up with the log as it was at start;
// applied is the offset of the last record the views reflect.
func (h *handlers) viewsHealth(c echo.Context) error {
	out := api.Health{Status: api.HealthStatusOk, Kafka: "ok", Applied: map[string]string{}}
	if h.views == nil {
		return apiError(http.StatusNotFound, "no_such_route", "this server serves neither commands nor queries")
	}
	for p, next := range h.views.Applied() {
		if next > 0 {
			out.Applied[strconv.Itoa(int(p))] = strconv.FormatInt(next-1, 10)
		}
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	var detail string
	if err := h.views.Ping(ctx); err != nil {
		out.Kafka, detail = "unreachable", err.Error()
	} else if !h.views.CaughtUp() {
		detail = "the views are catching up with the log"
	}
	if detail != "" {
		out.Status, out.Detail = api.HealthStatusStarting, &detail
		c.Response().Header().Set("Retry-After", "1")
		return c.JSON(http.StatusServiceUnavailable, out)
	}
	return c.JSON(http.StatusOK, out)
}

// snapshot prepares a query: it waits until the view applied index (if
// given, at most wait), opens a snapshot and sets the X-Line-Index header
// to the positions that snapshot reflects.
func (h *handlers) snapshot(c echo.Context, index, wait *string) (*projections.Snapshot, error) {
	if h.views == nil {
		return nil, apiError(http.StatusNotFound, "no_such_route",
			fmt.Sprintf("GET %s: this server does not answer queries; ask the projector", c.Request().URL.Path))
	}
	if err := h.waitIndex(c, index, wait); err != nil {
		return nil, err
	}
	snap, err := h.views.Snapshot()
	if err != nil {
		return nil, &httpError{status: http.StatusServiceUnavailable, retryAfter: 1,
			body: api.Error{Error: api.ErrorDetail{Code: "views_unavailable", Message: "the projector stopped; retry later"}}}
	}
	applied, err := snap.Applied()
	if err != nil {
		_ = snap.Close()
		return nil, err
	}
	c.Response().Header().Set(IndexHeader, projections.FormatIndex(applied))
	return snap, nil
}

func (h *handlers) waitIndex(c echo.Context, index, wait *string) error {
	d := DefaultWait
	if wait != nil {
		w, err := time.ParseDuration(*wait)
		if err != nil || w < 0 {
			return apiError(http.StatusBadRequest, "invalid_wait", fmt.Sprintf("wait %q is not a duration such as 500ms or 5s", *wait))
		}
		if w > MaxWait {
			return apiError(http.StatusBadRequest, "invalid_wait", fmt.Sprintf("wait %s is longer than the maximum, %s", w, MaxWait))
		}
		d = w
	}
	if index == nil {
		return nil
	}
	pos, err := events.ParsePosition(*index)
	if err != nil {
		return apiError(http.StatusBadRequest, "invalid_index", fmt.Sprintf("index %q is not a position (partition:offset) returned by a write", *index))
	}
	if n := h.views.Partitions(); pos.Partition >= n {
		return apiError(http.StatusBadRequest, "invalid_index", fmt.Sprintf("index %s names partition %d; the events topic has %d partitions", *index, pos.Partition, n))
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), d)
	defer cancel()
	err = h.views.WaitApplied(ctx, pos)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, projections.ErrStopped):
		return &httpError{status: http.StatusServiceUnavailable, retryAfter: 1,
			body: api.Error{Error: api.ErrorDetail{Code: "views_unavailable", Message: "the projector stopped; retry later"}}}
	case c.Request().Context().Err() != nil:
		return c.Request().Context().Err()
	}
	c.Response().Header().Set(IndexHeader, projections.FormatIndex(h.views.Applied()))
	return &httpError{status: http.StatusGatewayTimeout, retryAfter: 1,
		body: api.Error{Error: api.ErrorDetail{Code: "index_timeout", Message: fmt.Sprintf(
			"the view did not apply position %s within %s; retry, or wait longer (wait, at most %s)", pos, d, MaxWait)}}}
}

// queryError renders an error of the views.
func queryError(err error) error {
	var qe *projections.QueryError
	if errors.As(err, &qe) {
		return apiError(qe.Status, qe.Code, qe.Message)
	}
	return err
}

func page(cursor *string, limit *int) projections.Page {
	pg := projections.Page{Cursor: deref(cursor), Limit: deref(limit)}
	if limit != nil && *limit == 0 {
		pg.Limit = -1 // explicit 0: invalid, not the default
	}
	return pg
}

// listPage is the body of every list answer.
type listPage[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

func list[T any](c echo.Context, items []T, next string, err error) error {
	if err != nil {
		return queryError(err)
	}
	return c.JSON(http.StatusOK, listPage[T]{Items: items, NextCursor: next})
}

func one[T any](c echo.Context, v T, err error) error {
	if err != nil {
		return queryError(err)
	}
	return c.JSON(http.StatusOK, v)
}

// ListPools handles GET /v1/pools.
func (h *handlers) ListPools(c echo.Context, params api.ListPoolsParams) error {
	snap, err := h.snapshot(c, params.Index, params.Wait)
	if err != nil {
		return err
	}
	defer snap.Close()
	items, next, err := snap.Pools(page(params.Cursor, params.Limit))
	return list(c, items, next, err)
}

// GetPool handles GET /v1/pools/{pool}.
func (h *handlers) GetPool(c echo.Context, pool api.PoolPath, params api.GetPoolParams) error {
	snap, err := h.snapshot(c, params.Index, params.Wait)
	if err != nil {
		return err
	}
	defer snap.Close()
	v, err := snap.Pool(pool)
	return one(c, v, err)
}

// ListWorkers handles GET /v1/pools/{pool}/workers.
func (h *handlers) ListWorkers(c echo.Context, pool api.PoolPath, params api.ListWorkersParams) error {
	snap, err := h.snapshot(c, params.Index, params.Wait)
	if err != nil {
		return err
	}
	defer snap.Close()
	minFree := int64(-1)
	if params.MinFree != nil {
		if *params.MinFree < 0 {
			return apiError(http.StatusBadRequest, "invalid_min_free", "min_free must not be negative")
		}
		minFree = *params.MinFree
	}
	items, next, err := snap.Workers(pool, minFree, page(params.Cursor, params.Limit))
	return list(c, items, next, err)
}

// GetWorker handles GET /v1/pools/{pool}/workers/{worker}.
func (h *handlers) GetWorker(c echo.Context, pool api.PoolPath, worker api.WorkerPath, params api.GetWorkerParams) error {
	snap, err := h.snapshot(c, params.Index, params.Wait)
	if err != nil {
		return err
	}
	defer snap.Close()
	v, err := snap.Worker(pool, worker)
	return one(c, v, err)
}

// ListEvals handles GET /v1/pools/{pool}/evals.
func (h *handlers) ListEvals(c echo.Context, pool api.PoolPath, params api.ListEvalsParams) error {
	snap, err := h.snapshot(c, params.Index, params.Wait)
	if err != nil {
		return err
	}
	defer snap.Close()
	status := ""
	if params.Status != nil {
		if !params.Status.Valid() {
			return apiError(http.StatusBadRequest, "invalid_status", fmt.Sprintf("status %q is not an eval status", *params.Status))
		}
		status = string(*params.Status)
	}
	items, next, err := snap.Evals(pool, status, page(params.Cursor, params.Limit))
	return list(c, items, next, err)
}

// GetEval handles GET /v1/pools/{pool}/evals/{eval}.
func (h *handlers) GetEval(c echo.Context, pool api.PoolPath, eval api.EvalPath, params api.GetEvalParams) error {
	snap, err := h.snapshot(c, params.Index, params.Wait)
	if err != nil {
		return err
	}
	defer snap.Close()
	v, err := snap.Eval(pool, eval)
	return one(c, v, err)
}

// GetAlloc handles GET /v1/pools/{pool}/allocs/{alloc}.
func (h *handlers) GetAlloc(c echo.Context, pool api.PoolPath, alloc api.AllocPath, params api.GetAllocParams) error {
	snap, err := h.snapshot(c, params.Index, params.Wait)
	if err != nil {
		return err
	}
	defer snap.Close()
	v, err := snap.Alloc(pool, alloc)
	return one(c, v, err)
}

// ListReplicas handles GET /v1/pools/{pool}/datasets/{dataset}/replicas.
func (h *handlers) ListReplicas(c echo.Context, pool api.PoolPath, dataset api.DatasetPath, params api.ListReplicasParams) error {
	snap, err := h.snapshot(c, params.Index, params.Wait)
	if err != nil {
		return err
	}
	defer snap.Close()
	items, next, err := snap.Replicas(pool, dataset, page(params.Cursor, params.Limit))
	return list(c, items, next, err)
}

// ListDeadLetters handles GET /v1/dead-letters.
func (h *handlers) ListDeadLetters(c echo.Context, params api.ListDeadLettersParams) error {
	snap, err := h.snapshot(c, params.Index, params.Wait)
	if err != nil {
		return err
	}
	defer snap.Close()
	items, next, err := snap.DeadLetters(deref(params.Pool), page(params.Cursor, params.Limit))
	return list(c, items, next, err)
}

// StreamPoolEvents handles GET /v1/pools/{pool}/events: Server-Sent
// Events, one per event of the pool, until the client goes away or the
// projector stops.
func (h *handlers) StreamPoolEvents(c echo.Context, pool api.PoolPath, params api.StreamPoolEventsParams) error {
	snap, err := h.snapshot(c, params.Index, params.Wait)
	if err != nil {
		return err
	}
	_, err = snap.Pool(pool)
	_ = snap.Close()
	if err != nil {
		return queryError(err)
	}
	var from int64
	switch {
	case params.From != nil:
		if from = *params.From; from < 0 {
			return apiError(http.StatusBadRequest, "invalid_from", "from must not be negative")
		}
	case params.LastEventID != nil:
		pos, err := events.ParsePosition(*params.LastEventID)
		if err != nil || pos.Partition != events.PartitionFor(pool, h.views.Partitions()) {
			return apiError(http.StatusBadRequest, "invalid_last_event_id",
				fmt.Sprintf("Last-Event-ID %q is not the position of an event of pool %s", *params.LastEventID, pool))
		}
		from = pos.Offset + 1
	}
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	w.Flush()
	// The stream ends when the client goes away (a write fails) or the
	// projector stops; either way the answer is over.
	_ = h.views.Stream(c.Request().Context(), pool, from,
		func(ev projections.StreamEvent) error {
			if _, err := fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", ev.Position, ev.Envelope.Type, ev.JSON); err != nil {
				return err
			}
			w.Flush()
			return nil
		},
		func() error {
			if _, err := io.WriteString(w, ": keepalive\n\n"); err != nil {
				return err
			}
			w.Flush()
			return nil
		})
	return nil
}

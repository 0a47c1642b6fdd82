package httpapi

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/line-sched/line/api"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/ingest"
	"github.com/line-sched/line/projections"
)

// handlers implements api.ServerInterface: the commands on top of ingest,
// the queries (queries.go) on top of the projector's views.
type handlers struct {
	svc *ingest.Service
	// views answers the queries; nil when this server does not serve them.
	views *projections.Projector
}

var _ api.ServerInterface = (*handlers)(nil)

// bind decodes the (already validated) JSON body into v. An empty body
// leaves v as it is.
func bind(c echo.Context, v any) error {
	req := c.Request()
	if req.ContentLength == 0 {
		return nil
	}
	dec := json.NewDecoder(req.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apiError(http.StatusBadRequest, "invalid_json", "the request body is not valid JSON for this route: "+err.Error())
	}
	// One JSON value, nothing after it: the validator checks the first
	// value only, and a second one would be silently dropped.
	if _, err := dec.Token(); err != io.EOF {
		return apiError(http.StatusBadRequest, "invalid_json", "the request body holds data after its JSON value; send exactly one JSON object")
	}
	return nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func derefSlice[T any](p *[]T) []T {
	if p == nil {
		return nil
	}
	return *p
}

// GetHealth answers 200 when the broker answers, 503 otherwise.
func (h *handlers) GetHealth(c echo.Context) error {
	if h.svc == nil {
		return h.viewsHealth(c)
	}
	hs := h.svc.Health(c.Request().Context())
	out := api.Health{Status: api.HealthStatusOk, Kafka: "ok", Applied: map[string]string{}}
	// The spec's applied is the offset of the last event applied (a
	// position is applied once applied >= its offset); the view counts
	// the next offset to apply.
	for _, p := range ingest.SortedPartitions(hs.Applied) {
		if next := hs.Applied[p]; next > 0 {
			out.Applied[strconv.Itoa(int(p))] = strconv.FormatInt(next-1, 10)
		}
	}
	if !hs.Ready {
		out.Status, out.Kafka = api.HealthStatusStarting, "unreachable"
		detail := hs.Kafka.Error()
		out.Detail = &detail
		c.Response().Header().Set("Retry-After", "1")
		return c.JSON(http.StatusServiceUnavailable, out)
	}
	return c.JSON(http.StatusOK, out)
}

// CreatePool handles POST /v1/pools.
func (h *handlers) CreatePool(c echo.Context) error {
	var req api.CreatePoolRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	var wait time.Duration
	if req.LocalityWait != nil {
		d, err := time.ParseDuration(*req.LocalityWait)
		if err != nil || d < 0 {
			return apiError(http.StatusBadRequest, "invalid_locality_wait", "locality_wait must be a duration such as 500ms or 5s")
		}
		wait = d
	}
	res, err := h.svc.CreatePool(c.Request().Context(), ingest.CreatePool{
		ID: deref(req.PoolId), Strategy: events.Strategy(deref(req.Strategy)), LocalityWait: wait,
		Delivery: events.Delivery(deref(req.Delivery))})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, api.PoolCreated{PoolId: res.ID, Strategy: api.Strategy(res.Strategy),
		LocalityWait: res.LocalityWait.String(), Delivery: api.Delivery(res.Delivery), Position: res.Position.String()})
}

// DisbandPool handles DELETE /v1/pools/{pool}.
func (h *handlers) DisbandPool(c echo.Context, pool api.PoolPath) error {
	res, err := h.svc.DisbandPool(c.Request().Context(), pool)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, api.PoolDisbanded{PoolId: res.ID, Status: api.PoolDisbandedStatusDisbanded,
		DeleteAt: res.DeleteAt, Position: res.Position.String()})
}

// RegisterWorker handles POST /v1/pools/{pool}/workers.
func (h *handlers) RegisterWorker(c echo.Context, pool api.PoolPath) error {
	var req api.RegisterWorkerRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	res, err := h.svc.RegisterWorker(c.Request().Context(), pool, ingest.RegisterWorker{
		ID: deref(req.WorkerId), Capacity: req.Capacity, Datasets: derefSlice(req.Datasets)})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, api.WorkerRegistered{PoolId: res.Pool, WorkerId: res.ID, Capacity: res.Capacity,
		Topic: res.Topic, Partition: res.Partition, StartOffset: res.StartOffset, Deadline: res.Deadline,
		Position: res.Position.String()})
}

// Heartbeat handles POST /v1/pools/{pool}/workers/{worker}/heartbeat.
func (h *handlers) Heartbeat(c echo.Context, pool api.PoolPath, worker api.WorkerPath) error {
	var req api.HeartbeatRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	res, err := h.svc.Heartbeat(c.Request().Context(), pool, worker, ingest.Heartbeat{
		Allocs: derefSlice(req.Allocs), Datasets: derefSlice(req.Datasets)})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, api.HeartbeatAccepted{PoolId: res.Pool, WorkerId: res.Worker,
		Deadline: res.Deadline, Position: res.Position.String()})
}

func evalCommand(r api.EvalRequest) ingest.SubmitEval {
	payload := r.Payload
	if string(payload) == "null" {
		payload = nil
	}
	return ingest.SubmitEval{ID: deref(r.EvalId), DatasetID: deref(r.DatasetId), Size: deref(r.Size), Payload: payload}
}

func evalAccepted(a ingest.EvalAccepted) api.EvalAccepted {
	return api.EvalAccepted{PoolId: a.Pool, EvalId: a.ID, Position: a.Position.String(), Duplicate: a.Duplicate}
}

// SubmitEval handles POST /v1/pools/{pool}/evals: 202 when queued, 200 for
// a duplicate eval_id.
func (h *handlers) SubmitEval(c echo.Context, pool api.PoolPath) error {
	var req api.EvalRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	return h.submitEval(c, pool, req)
}

// submitEval submits a validated and decoded request.
func (h *handlers) submitEval(c echo.Context, pool string, req api.EvalRequest) error {
	res, err := h.svc.SubmitEval(c.Request().Context(), pool, evalCommand(req))
	if err != nil {
		return err
	}
	status := http.StatusAccepted
	if res.Duplicate {
		status = http.StatusOK
	}
	return writeEvalAccepted(c, status, evalAccepted(res))
}

// SubmitEvalBatch handles POST /v1/pools/{pool}/evals/batch.
func (h *handlers) SubmitEvalBatch(c echo.Context, pool api.PoolPath) error {
	var req api.EvalBatchRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	return h.submitEvalBatch(c, pool, req.Evals)
}

// submitEvalBatch submits a checked batch (validated, or proven valid by
// the fast path).
func (h *handlers) submitEvalBatch(c echo.Context, pool string, evals []api.EvalRequest) error {
	cmds := make([]ingest.SubmitEval, len(evals))
	for i, r := range evals {
		cmds[i] = evalCommand(r)
	}
	res, err := h.svc.SubmitEvals(c.Request().Context(), pool, cmds)
	if err != nil {
		return err
	}
	out := api.EvalBatchAccepted{PoolId: pool, Count: len(res), Evals: make([]api.EvalAccepted, len(res))}
	for i, a := range res {
		out.Evals[i] = evalAccepted(a)
	}
	return c.JSON(http.StatusAccepted, out)
}

// CompleteAlloc handles POST /v1/pools/{pool}/allocs/{alloc}/complete.
func (h *handlers) CompleteAlloc(c echo.Context, pool api.PoolPath, alloc api.AllocPath) error {
	var req api.CompleteAllocRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	res, err := h.svc.CompleteAlloc(c.Request().Context(), pool, alloc, ingest.CompleteAlloc{
		Status: events.CompletionStatus(req.Status), ExitCode: req.ExitCode, Message: deref(req.Message)})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, api.AllocCompleted{PoolId: res.Pool, AllocId: res.ID,
		Status: api.AllocStatus(res.Status), Position: res.Position.String()})
}

// LegacyCreatePool handles the original system's POST /CreatePool.
func (h *handlers) LegacyCreatePool(c echo.Context) error {
	res, err := h.svc.CreatePool(c.Request().Context(), ingest.CreatePool{})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.LegacyPool{PoolId: res.ID, Position: res.Position.String()})
}

// LegacyRegisterWorker handles POST /RegisterWorker; queue_url carries the
// worker's alloc topic.
func (h *handlers) LegacyRegisterWorker(c echo.Context) error {
	var req api.LegacyRegisterWorkerRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	res, err := h.svc.RegisterWorker(c.Request().Context(), req.PoolId, ingest.RegisterWorker{Capacity: req.Capacity})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.LegacyWorker{PoolId: res.Pool, WorkerId: res.ID, QueueUrl: res.Topic,
		Capacity: res.Capacity, Position: res.Position.String()})
}

// LegacyDisbandPool handles POST /DisbandPool.
func (h *handlers) LegacyDisbandPool(c echo.Context) error {
	var req api.LegacyDisbandPoolRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	res, err := h.svc.DisbandPool(c.Request().Context(), req.PoolId)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.LegacyAck{PoolId: res.ID, Position: res.Position.String()})
}

// LegacySendHeartbeat handles POST /SendHeartbeat.
func (h *handlers) LegacySendHeartbeat(c echo.Context) error {
	var req api.LegacySendHeartbeatRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	res, err := h.svc.Heartbeat(c.Request().Context(), req.PoolId, req.WorkerId, ingest.Heartbeat{
		Allocs: derefSlice(req.Allocs), Datasets: derefSlice(req.Datasets)})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.LegacyAck{PoolId: res.Pool, Position: res.Position.String()})
}

// LegacyScheduleEval handles POST /ScheduleEval.
func (h *handlers) LegacyScheduleEval(c echo.Context) error {
	var req api.LegacyScheduleEvalRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	res, err := h.svc.SubmitEval(c.Request().Context(), req.PoolId, ingest.SubmitEval{
		DatasetID: deref(req.DatasetId), Size: deref(req.Size)})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.LegacyEval{PoolId: res.Pool, EvalId: res.ID, Position: res.Position.String()})
}

// LegacyCompleteAlloc handles POST /CompleteAlloc (status succeeded).
func (h *handlers) LegacyCompleteAlloc(c echo.Context) error {
	var req api.LegacyCompleteAllocRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	res, err := h.svc.CompleteAlloc(c.Request().Context(), req.PoolId, req.AllocId, ingest.CompleteAlloc{Status: events.Succeeded})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.LegacyAck{PoolId: res.Pool, Position: res.Position.String()})
}

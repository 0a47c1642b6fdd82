package projections

import (
	"encoding/json"
	"time"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/state"
)

// The views: one JSON row per entity, derived from the fold's objects by
// one function per kind. Their JSON is also the body of the queries (the
// schemas Pool, Worker, Eval, Alloc and Replica of api/openapi.yaml). Every
// field is a plain value and every list is sorted, so that the same state
// always gives the same bytes. Times are RFC 3339 in UTC with nanoseconds;
// optional times are left out when zero.

// PoolView is a pool's row.
type PoolView struct {
	PoolID        string          `json:"pool_id"`
	Strategy      events.Strategy `json:"strategy"`
	LocalityWait  string          `json:"locality_wait"`
	Delivery      events.Delivery `json:"delivery"`
	Status        string          `json:"status"`
	CreatedAt     string          `json:"created_at"`
	DisbandedAt   string          `json:"disbanded_at,omitempty"`
	DeleteAt      string          `json:"delete_at,omitempty"`
	DeletedAt     string          `json:"deleted_at,omitempty"`
	Workers       int64           `json:"workers"`
	Evals         int64           `json:"evals"`
	Pending       int64           `json:"pending"`
	AwaitingRetry int64           `json:"awaiting_retry"`
	MaxFree       int64           `json:"max_free"`
	NextDeadline  string          `json:"next_deadline,omitempty"`
	// Events counts the pool's events applied to the view, Rejected those
	// of them that did not apply; LastPosition is the last one's position.
	Events       int64  `json:"events"`
	Rejected     int64  `json:"rejected"`
	LastPosition string `json:"last_position"`
}

// WorkerView is a registered worker as queries return it: its row
// (workerRow) and the ids of its running allocs, which queries read from
// the index of running allocs by worker (idx/workeralloc), maintained with
// the alloc rows. Keeping the list out of the row keeps the row small: it
// is rewritten whenever the worker's free capacity changes.
type WorkerView struct {
	PoolID        string   `json:"pool_id"`
	WorkerID      string   `json:"worker_id"`
	Capacity      int64    `json:"capacity"`
	Used          int64    `json:"used"`
	Free          int64    `json:"free"`
	Deadline      string   `json:"deadline"`
	Topic         string   `json:"topic"`
	RegisteredAt  string   `json:"registered_at"`
	Datasets      []string `json:"datasets"`
	RunningAllocs []string `json:"running_allocs"`
}

// workerRow is a worker's stored row: WorkerView without its running
// allocs.
type workerRow struct {
	PoolID       string   `json:"pool_id"`
	WorkerID     string   `json:"worker_id"`
	Capacity     int64    `json:"capacity"`
	Used         int64    `json:"used"`
	Free         int64    `json:"free"`
	Deadline     string   `json:"deadline"`
	Topic        string   `json:"topic"`
	RegisteredAt string   `json:"registered_at"`
	Datasets     []string `json:"datasets"`
}

// view is the worker as queries return it, with its running allocs.
func (r workerRow) view(running []string) WorkerView {
	return WorkerView{PoolID: r.PoolID, WorkerID: r.WorkerID, Capacity: r.Capacity, Used: r.Used, Free: r.Free,
		Deadline: r.Deadline, Topic: r.Topic, RegisteredAt: r.RegisteredAt, Datasets: r.Datasets, RunningAllocs: running}
}

// EvalView is an eval's row.
type EvalView struct {
	PoolID      string          `json:"pool_id"`
	EvalID      string          `json:"eval_id"`
	DatasetID   string          `json:"dataset_id,omitempty"`
	Size        int64           `json:"size"`
	Status      string          `json:"status"`
	Attempts    int             `json:"attempts"`
	NextAttempt int             `json:"next_attempt"`
	AllocID     string          `json:"alloc_id,omitempty"`
	SubmittedAt string          `json:"submitted_at"`
	QueuedAt    string          `json:"queued_at"`
	EndedAt     string          `json:"ended_at,omitempty"`
	Reason      string          `json:"reason,omitempty"`
	Result      string          `json:"result,omitempty"`
	Position    string          `json:"position"`
	Payload     json.RawMessage `json:"payload,omitempty"`
}

// AllocView is an alloc's row.
type AllocView struct {
	PoolID       string          `json:"pool_id"`
	AllocID      string          `json:"alloc_id"`
	EvalID       string          `json:"eval_id"`
	WorkerID     string          `json:"worker_id"`
	DatasetID    string          `json:"dataset_id,omitempty"`
	Size         int64           `json:"size"`
	Attempt      int             `json:"attempt"`
	Deadline     string          `json:"deadline"`
	Status       string          `json:"status"`
	PlacedAt     string          `json:"placed_at"`
	EndedAt      string          `json:"ended_at,omitempty"`
	Topic        string          `json:"topic"`
	Placement    PlacementView   `json:"placement"`
	Completion   *CompletionView `json:"completion,omitempty"`
	ExpiryReason string          `json:"expiry_reason,omitempty"`
}

// PlacementView is the decision record of an alloc (its alloc.placed).
type PlacementView struct {
	Strategy   events.Strategy `json:"strategy"`
	Locality   events.Locality `json:"locality"`
	Candidates int             `json:"candidates"`
	WaitedMs   int64           `json:"waited_ms"`
	Basis      int64           `json:"basis"`
}

// CompletionView is how the worker said an alloc ended.
type CompletionView struct {
	Status   events.CompletionStatus `json:"status"`
	ExitCode *int32                  `json:"exit_code,omitempty"`
	Message  string                  `json:"message,omitempty"`
}

// ReplicaView is a replica's row: dataset DatasetID on worker WorkerID.
type ReplicaView struct {
	PoolID    string `json:"pool_id"`
	DatasetID string `json:"dataset_id"`
	WorkerID  string `json:"worker_id"`
	Deadline  string `json:"deadline"`
}

// WorkerDetail is a worker with its running allocs and its replicas.
type WorkerDetail struct {
	WorkerView
	Allocs   []AllocView   `json:"allocs"`
	Replicas []ReplicaView `json:"replicas"`
}

// EvalDetail is an eval with its current (or last) alloc.
type EvalDetail struct {
	EvalView
	Alloc *AllocView `json:"alloc,omitempty"`
}

// ts formats t as the rows hold times: RFC 3339 in UTC with nanoseconds,
// "" for the zero time.
func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	var b [40]byte
	return string(appendRFC3339(b[:0], t))
}

// poolMeta is what the projector counts of a pool's events beside the fold.
type poolMeta struct {
	events, rejected int64
	last             events.Position
}

func poolView(p *state.Pool, m poolMeta) PoolView {
	v := PoolView{
		PoolID: p.ID, Strategy: p.Strategy, LocalityWait: p.LocalityWait.String(), Delivery: p.Delivery,
		Status:    string(p.Status),
		CreatedAt: ts(p.CreatedAt), DisbandedAt: ts(p.DisbandedAt), DeleteAt: ts(p.DeleteAt), DeletedAt: ts(p.DeletedAt),
		Workers: int64(p.NumWorkers()), Evals: int64(p.NumEvals()), Pending: int64(p.Queue().Len()),
		AwaitingRetry: int64(p.NumAwaitingRetry()), MaxFree: p.Free().MaxFree(),
		Events: m.events, Rejected: m.rejected, LastPosition: m.last.String(),
	}
	if next, ok := p.TTL().Next(); ok {
		v.NextDeadline = ts(next)
	}
	return v
}

func workerRowOf(pool string, w *state.Worker) workerRow {
	return workerRow{PoolID: pool, WorkerID: w.ID, Capacity: w.Capacity, Used: w.Used, Free: w.Free(),
		Deadline: ts(w.Deadline), Topic: w.Topic, RegisteredAt: ts(w.RegisteredAt), Datasets: w.Datasets()}
}

// workerView is the worker as queries return it, from the fold (tests
// compare it with what queries assemble from the views).
func workerView(pool string, w *state.Worker) WorkerView {
	running := make([]string, 0, w.NumRunning())
	for _, a := range w.RunningAllocs() {
		running = append(running, a.ID)
	}
	return workerRowOf(pool, w).view(running)
}

func evalView(pool string, e *state.Eval) EvalView {
	return EvalView{PoolID: pool, EvalID: e.ID, DatasetID: e.DatasetID, Size: e.Size, Status: string(e.Status()),
		Attempts: e.Attempts, NextAttempt: e.NextAttempt, AllocID: e.AllocID, SubmittedAt: ts(e.SubmittedAt()),
		QueuedAt: ts(e.QueuedAt()), EndedAt: ts(e.EndedAt()), Reason: e.Reason(), Result: string(e.Result()),
		Position: e.Position.String(), Payload: e.Payload()}
}

func allocView(pool string, a *state.Alloc) AllocView {
	pl := a.Placement()
	v := AllocView{PoolID: pool, AllocID: a.ID, EvalID: a.EvalID, WorkerID: a.WorkerID(), DatasetID: a.DatasetID,
		Size: a.Size, Attempt: a.Attempt, Deadline: ts(a.Deadline()), Status: string(a.Status()), PlacedAt: ts(a.PlacedAt()),
		EndedAt: ts(a.EndedAt()), Topic: a.Topic(), ExpiryReason: a.ExpiryReason(),
		Placement: PlacementView{Strategy: pl.Strategy, Locality: pl.Locality, Candidates: pl.Candidates,
			WaitedMs: int64(pl.WaitedMs), Basis: pl.Basis}}
	if c := a.Completion(); c != nil {
		v.Completion = &CompletionView{Status: c.Status, ExitCode: c.ExitCode, Message: c.Message}
	}
	return v
}

func replicaView(pool, dataset string, w *state.Worker, deadline time.Time) ReplicaView {
	return ReplicaView{PoolID: pool, DatasetID: dataset, WorkerID: w.ID, Deadline: ts(deadline)}
}

// Secondary index entries of each row. A row's entries are a function of
// the row alone, so that the old entries of a row can be found (and
// deleted) from the old row.

func parseTS(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

func (v workerRow) indexKeys() []string {
	return workerIndex(v.PoolID, v.WorkerID, v.Free, parseTS(v.Deadline))
}

func (v EvalView) indexKeys() []string { return evalIndex(v.PoolID, v.EvalID, v.Status) }

func (v AllocView) indexKeys() []string {
	return allocIndex(v.PoolID, v.AllocID, v.WorkerID, v.Status, parseTS(v.Deadline))
}

func (v ReplicaView) indexKeys() []string {
	return replicaIndex(v.PoolID, v.DatasetID, v.WorkerID, parseTS(v.Deadline))
}

// The index entries of each kind of row, from the fields they depend on:
// the views' indexKeys and the fold (which knows a row's entries before a
// batch without reading the row back) both use these.

func workerIndex(pool, worker string, free int64, deadline time.Time) []string {
	return []string{freeKey(pool, free, worker), ttlKey(pool, deadline, ttlKindWorker, worker)}
}

func evalIndex(pool, eval, status string) []string {
	keys := []string{evalStatusKey(pool, status, eval)}
	if deadLettered(status) {
		keys = append(keys, deadLetterKey(pool, eval))
	}
	return keys
}

// allocIndex: a running alloc has a deadline and is one of its worker's
// running allocs (a worker's running allocs are exactly the running allocs
// placed on it: state.Pool.Check).
// deadLettered reports whether an eval in status is in the dead-letter
// index.
func deadLettered(status string) bool { return status == string(state.EvalDeadLettered) }

func allocIndex(pool, alloc, worker, status string, deadline time.Time) []string {
	if status != string(state.AllocRunning) {
		return nil
	}
	return []string{ttlKey(pool, deadline, ttlKindAlloc, alloc), workerAllocKey(pool, worker, alloc)}
}

func replicaIndex(pool, dataset, worker string, deadline time.Time) []string {
	return []string{ttlKey(pool, deadline, ttlKindReplica, worker, dataset)}
}

func (PoolView) indexKeys() []string { return nil }

var time0 time.Time

// marshal encodes a row. encoding/json writes struct fields in order and
// the views hold no maps, so equal views give equal bytes.
// The hot rows are encoded by hand, to the same bytes (see encode.go):
// workers here, evals and allocs from the fold (appendEvalRow,
// appendAllocRow).
func marshal(v any) ([]byte, error) { return appendRow(make([]byte, 0, 512), v) }

// appendRow encodes a row like marshal, into dst's memory if it is large
// enough (the result may be dst, overwritten, or a new slice).
func appendRow(dst []byte, v any) ([]byte, error) {
	if v, ok := v.(workerRow); ok {
		return marshalWorker(dst, &v)
	}
	return json.Marshal(v)
}

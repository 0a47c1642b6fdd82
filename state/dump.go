package state

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/line-sched/line/events"
)

// Dump serializes s deterministically: the same fold gives the same bytes,
// whatever map iteration order, time zone or process produced it. Two states
// are equal when their dumps are. The output is JSON: the event counters,
// then every pool sorted by id with its workers, evals and allocs sorted by
// id, its queue in queue order and the evals awaiting a retry decision in
// expiry order. Times are RFC 3339 in UTC with nanoseconds; a zero time is
// "". Indexes that the fold derives from the rest (free capacity, holders,
// deadlines) are not dumped; Check verifies them.
func Dump(s *State) []byte {
	d := dumpState{Applied: s.Applied, Rejected: s.Rejected, Pools: []dumpPool{}}
	for _, p := range s.Pools() {
		d.Pools = append(d.Pools, dumpPoolOf(p))
	}
	b, err := json.Marshal(d)
	if err != nil {
		// Every field is a plain value; marshalling cannot fail.
		panic("state: dump: " + err.Error())
	}
	return b
}

// DumpPool serializes one pool the way Dump does.
func DumpPool(p *Pool) []byte {
	b, err := json.Marshal(dumpPoolOf(p))
	if err != nil {
		panic("state: dump: " + err.Error())
	}
	return b
}

type dumpState struct {
	Applied  int64      `json:"applied"`
	Rejected int64      `json:"rejected"`
	Pools    []dumpPool `json:"pools"`
}

type dumpPool struct {
	ID             string          `json:"id"`
	Strategy       events.Strategy `json:"strategy"`
	LocalityWaitMs int64           `json:"locality_wait_ms"`
	Delivery       events.Delivery `json:"delivery"`
	Status         PoolStatus      `json:"status"`
	CreatedAt      string          `json:"created_at"`
	DisbandedAt    string          `json:"disbanded_at"`
	DeleteAt       string          `json:"delete_at"`
	DeletedAt      string          `json:"deleted_at"`
	Workers        []dumpWorker    `json:"workers"`
	Evals          []dumpEval      `json:"evals"`
	Allocs         []dumpAlloc     `json:"allocs"`
	Queue          []string        `json:"queue"`
	AwaitingRetry  []string        `json:"awaiting_retry"`
}

type dumpWorker struct {
	ID           string            `json:"id"`
	Capacity     int64             `json:"capacity"`
	Used         int64             `json:"used"`
	Deadline     string            `json:"deadline"`
	Topic        string            `json:"topic"`
	RegisteredAt string            `json:"registered_at"`
	Replicas     map[string]string `json:"replicas"`
	Running      []string          `json:"running"`
}

type dumpEval struct {
	ID          string                  `json:"id"`
	DatasetID   string                  `json:"dataset_id"`
	Size        int64                   `json:"size"`
	Payload     string                  `json:"payload"`
	Status      EvalStatus              `json:"status"`
	Attempts    int                     `json:"attempts"`
	NextAttempt int                     `json:"next_attempt"`
	AllocID     string                  `json:"alloc_id"`
	SubmittedAt string                  `json:"submitted_at"`
	QueuedAt    string                  `json:"queued_at"`
	EndedAt     string                  `json:"ended_at"`
	Reason      string                  `json:"reason"`
	Result      events.CompletionStatus `json:"result"`
	Position    string                  `json:"position"`
}

type dumpAlloc struct {
	ID           string              `json:"id"`
	EvalID       string              `json:"eval_id"`
	WorkerID     string              `json:"worker_id"`
	DatasetID    string              `json:"dataset_id"`
	Size         int64               `json:"size"`
	Attempt      int                 `json:"attempt"`
	Deadline     string              `json:"deadline"`
	Status       AllocStatus         `json:"status"`
	PlacedAt     string              `json:"placed_at"`
	EndedAt      string              `json:"ended_at"`
	Topic        string              `json:"topic"`
	Strategy     events.Strategy     `json:"strategy"`
	Locality     events.Locality     `json:"locality"`
	Candidates   int                 `json:"candidates"`
	WaitedMs     int64               `json:"waited_ms"`
	Completion   *dumpCompletion     `json:"completion"`
	ExpiryReason string              `json:"expiry_reason"`
	Placement    dumpPlacementExtras `json:"placement"`
}

// dumpPlacementExtras holds the fields of the placement record that the
// alloc does not repeat.
type dumpPlacementExtras struct {
	AllocID   string `json:"alloc_id"`
	EvalID    string `json:"eval_id"`
	WorkerID  string `json:"worker_id"`
	DatasetID string `json:"dataset_id"`
	Size      int64  `json:"size"`
	Attempt   int    `json:"attempt"`
	Deadline  string `json:"deadline"`
	Topic     string `json:"topic"`
}

type dumpCompletion struct {
	Status   events.CompletionStatus `json:"status"`
	ExitCode *int32                  `json:"exit_code"`
	Message  string                  `json:"message"`
}

func dumpTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func dumpPoolOf(p *Pool) dumpPool {
	d := dumpPool{
		ID: p.ID, Strategy: p.Strategy, LocalityWaitMs: int64(p.LocalityWait / time.Millisecond), Delivery: p.Delivery,
		Status: p.Status, CreatedAt: dumpTime(p.CreatedAt), DisbandedAt: dumpTime(p.DisbandedAt),
		DeleteAt: dumpTime(p.DeleteAt), DeletedAt: dumpTime(p.DeletedAt),
		Workers: []dumpWorker{}, Evals: []dumpEval{}, Allocs: []dumpAlloc{},
		Queue: []string{}, AwaitingRetry: []string{},
	}
	for _, w := range p.Workers() {
		dw := dumpWorker{ID: w.ID, Capacity: w.Capacity, Used: w.Used, Deadline: dumpTime(w.Deadline),
			Topic: w.Topic, RegisteredAt: dumpTime(w.RegisteredAt), Replicas: map[string]string{}, Running: []string{}}
		for ds, at := range w.Replicas {
			dw.Replicas[ds] = dumpTime(at)
		}
		for _, a := range w.running {
			dw.Running = append(dw.Running, a.ID)
		}
		slices.Sort(dw.Running)
		d.Workers = append(d.Workers, dw)
	}
	for _, e := range p.Evals() {
		d.Evals = append(d.Evals, dumpEval{ID: e.ID, DatasetID: e.DatasetID, Size: e.Size, Payload: string(e.Payload()),
			Status: e.Status(), Attempts: e.Attempts, NextAttempt: e.NextAttempt, AllocID: e.AllocID,
			SubmittedAt: dumpTime(e.SubmittedAt()), QueuedAt: dumpTime(e.QueuedAt()), EndedAt: dumpTime(e.EndedAt()),
			Reason: e.Reason(), Result: e.Result(), Position: e.Position.String()})
	}
	for _, a := range p.Allocs() {
		pl := a.PlacedData()
		da := dumpAlloc{ID: a.ID, EvalID: a.EvalID, WorkerID: a.WorkerID(), DatasetID: a.DatasetID, Size: a.Size,
			Attempt: a.Attempt, Deadline: dumpTime(a.Deadline()), Status: a.Status(), PlacedAt: dumpTime(a.PlacedAt()),
			EndedAt: dumpTime(a.EndedAt()), Topic: a.Topic(), Strategy: pl.Strategy, Locality: pl.Locality,
			Candidates: pl.Candidates, WaitedMs: int64(pl.WaitedMs), ExpiryReason: a.ExpiryReason(),
			Placement: dumpPlacementExtras{AllocID: pl.AllocID, EvalID: pl.EvalID, WorkerID: pl.WorkerID,
				DatasetID: pl.DatasetID, Size: pl.Size, Attempt: pl.Attempt, Deadline: dumpTime(pl.Deadline), Topic: pl.Topic}}
		if c := a.Completion(); c != nil {
			da.Completion = &dumpCompletion{Status: c.Status, ExitCode: c.ExitCode, Message: c.Message}
		}
		d.Allocs = append(d.Allocs, da)
	}
	p.queue.Each(func(e *Eval) bool { d.Queue = append(d.Queue, e.ID); return true })
	p.retry.each(func(e *Eval) bool { d.AwaitingRetry = append(d.AwaitingRetry, e.ID); return true })
	return d
}

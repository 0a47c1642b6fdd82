package audit

import (
	"time"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/state"
)

// PoolView is a pool's state at a cut, for people and machines.
type PoolView struct {
	Pool           string           `json:"pool"`
	Status         state.PoolStatus `json:"status"`
	Strategy       events.Strategy  `json:"strategy"`
	LocalityWaitMs int64            `json:"locality_wait_ms"`
	CreatedAt      time.Time        `json:"created_at"`
	DisbandedAt    *time.Time       `json:"disbanded_at,omitempty"`
	DeleteAt       *time.Time       `json:"delete_at,omitempty"`
	At             time.Time        `json:"at"`
	Workers        []WorkerView     `json:"workers"`
	Queue          []QueuedEval     `json:"queue"`
	Running        []AllocView      `json:"running"`
	AwaitingRetry  []string         `json:"awaiting_retry"`
	Evals          map[string]int64 `json:"evals"`
	Allocs         map[string]int64 `json:"allocs"`
}

// WorkerView is a worker at the cut.
type WorkerView struct {
	ID       string        `json:"id"`
	Capacity int64         `json:"capacity"`
	Used     int64         `json:"used"`
	Free     int64         `json:"free"`
	Deadline time.Time     `json:"deadline"`
	Live     bool          `json:"live"`
	Datasets []ReplicaView `json:"datasets"`
	Running  []string      `json:"running"`
}

// ReplicaView is a replica at the cut.
type ReplicaView struct {
	Dataset  string    `json:"dataset"`
	Deadline time.Time `json:"deadline"`
	Live     bool      `json:"live"`
}

// QueuedEval is a pending eval at the cut, in queue order.
type QueuedEval struct {
	ID       string    `json:"id"`
	Size     int64     `json:"size"`
	Dataset  string    `json:"dataset,omitempty"`
	Attempt  int       `json:"attempt"`
	QueuedAt time.Time `json:"queued_at"`
	// WaitingMs is how long it had waited at the cut.
	WaitingMs int64 `json:"waiting_ms"`
}

// AllocView is a running alloc at the cut.
type AllocView struct {
	ID       string          `json:"id"`
	Eval     string          `json:"eval"`
	Worker   string          `json:"worker"`
	Size     int64           `json:"size"`
	Attempt  int             `json:"attempt"`
	Locality events.Locality `json:"locality"`
	PlacedAt time.Time       `json:"placed_at"`
	Deadline time.Time       `json:"deadline"`
}

// ViewPool describes p with liveness judged at time at.
func ViewPool(p *state.Pool, at time.Time) PoolView {
	v := PoolView{Pool: p.ID, Status: p.Status, Strategy: p.Strategy, LocalityWaitMs: int64(p.LocalityWait / time.Millisecond),
		CreatedAt: p.CreatedAt, At: at, Workers: []WorkerView{}, Queue: []QueuedEval{}, Running: []AllocView{},
		AwaitingRetry: []string{}, Evals: map[string]int64{}, Allocs: map[string]int64{}}
	if !p.DisbandedAt.IsZero() {
		d, del := p.DisbandedAt, p.DeleteAt
		v.DisbandedAt, v.DeleteAt = &d, &del
	}
	for _, w := range p.Workers() {
		wv := WorkerView{ID: w.ID, Capacity: w.Capacity, Used: w.Used, Free: w.Free(), Deadline: w.Deadline,
			Live: w.Deadline.After(at), Datasets: []ReplicaView{}, Running: []string{}}
		for _, ds := range w.Datasets() {
			dl := w.Replicas[ds]
			wv.Datasets = append(wv.Datasets, ReplicaView{Dataset: ds, Deadline: dl, Live: dl.After(at)})
		}
		for _, a := range w.RunningAllocs() {
			wv.Running = append(wv.Running, a.ID)
		}
		v.Workers = append(v.Workers, wv)
	}
	p.Queue().Each(func(e *state.Eval) bool {
		v.Queue = append(v.Queue, QueuedEval{ID: e.ID, Size: e.Size, Dataset: e.DatasetID, Attempt: e.NextAttempt,
			QueuedAt: e.QueuedAt(), WaitingMs: max(int64(at.Sub(e.QueuedAt())/time.Millisecond), 0)})
		return true
	})
	for _, s := range state.EvalStatuses {
		v.Evals[string(s)] = 0
	}
	for _, e := range p.Evals() {
		v.Evals[string(e.Status())]++
	}
	for _, s := range []state.AllocStatus{state.AllocRunning, state.AllocCompleted, state.AllocExpired} {
		v.Allocs[string(s)] = 0
	}
	for _, a := range p.Allocs() {
		v.Allocs[string(a.Status())]++
		if a.Status() == state.AllocRunning {
			v.Running = append(v.Running, AllocView{ID: a.ID, Eval: a.EvalID, Worker: a.WorkerID(), Size: a.Size,
				Attempt: a.Attempt, Locality: a.Placement().Locality, PlacedAt: a.PlacedAt(), Deadline: a.Deadline()})
		}
	}
	for _, e := range p.AwaitingRetryEvals() {
		v.AwaitingRetry = append(v.AwaitingRetry, e.ID)
	}
	return v
}

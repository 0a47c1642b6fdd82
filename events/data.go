package events

import (
	"encoding/json"
	"fmt"
	"time"
)

// Data is the payload of one event type. Each type has exactly one Data
// struct; Validate checks the fields that JSON decoding cannot.
type Data interface {
	// EventType is the type this data belongs to.
	EventType() Type
	// Validate reports a missing or invalid required field.
	Validate() error
}

// PoolCreatedData opens a pool for workers and evals.
type PoolCreatedData struct {
	// Strategy ranks feasible workers: spread or binpack.
	Strategy Strategy `json:"strategy"`
	// LocalityWaitMs is how long an eval whose dataset holders are all full
	// waits for one of them before being placed elsewhere.
	LocalityWaitMs Millis `json:"locality_wait_ms"`
	// Delivery is how allocs reach the pool's workers. It is left out for
	// PerWorker, so a record without it (every record written before the
	// field existed) means PerWorker.
	Delivery Delivery `json:"delivery,omitempty"`
}

// PoolDisbandedData stops scheduling on a pool. Pending evals are rejected by
// the scheduler; running allocs may complete but are not retried.
type PoolDisbandedData struct {
	// DeleteAt is when the pool and its topics are deleted.
	DeleteAt time.Time `json:"delete_at"`
}

// PoolDeletedData removes a disbanded pool whose DeleteAt passed.
type PoolDeletedData struct{}

// WorkerRegisteredData adds a worker with a capacity to a pool.
type WorkerRegisteredData struct {
	WorkerID string `json:"worker_id"`
	// Capacity is the total size of allocs the worker runs at once.
	Capacity int64 `json:"capacity"`
	// Topic is the worker's alloc topic, created before this event.
	Topic string `json:"topic"`
	// Deadline is when the worker expires unless a heartbeat pushes it.
	Deadline time.Time `json:"deadline"`
	// Datasets are the replicas the worker holds at registration.
	Datasets []string `json:"datasets,omitempty"`
	// ReplicaDeadline is when those replicas expire unless reported again.
	ReplicaDeadline time.Time `json:"replica_deadline"`
}

// WorkerHeartbeatData keeps a worker, its replicas and its running allocs
// alive.
type WorkerHeartbeatData struct {
	WorkerID string `json:"worker_id"`
	// Deadline is the worker's new deadline.
	Deadline time.Time `json:"deadline"`
	// Datasets are upserted as replicas with ReplicaDeadline.
	Datasets []string `json:"datasets,omitempty"`
	// ReplicaDeadline is the new deadline of each listed dataset.
	ReplicaDeadline time.Time `json:"replica_deadline"`
	// Allocs are the running allocs whose deadline moves to AllocDeadline.
	Allocs []string `json:"allocs,omitempty"`
	// AllocDeadline is the new deadline of each listed alloc.
	AllocDeadline time.Time `json:"alloc_deadline"`
}

// WorkerExpiredData removes a worker whose deadline passed, with its
// replicas. The scheduler expires its live allocs first.
type WorkerExpiredData struct {
	WorkerID string `json:"worker_id"`
	// Deadline is the deadline that passed.
	Deadline time.Time `json:"deadline"`
}

// ReplicaExpiredData removes one replica whose deadline passed.
type ReplicaExpiredData struct {
	WorkerID  string    `json:"worker_id"`
	DatasetID string    `json:"dataset_id"`
	Deadline  time.Time `json:"deadline"`
}

// EvalSubmittedData queues an eval in its pool.
type EvalSubmittedData struct {
	EvalID    string `json:"eval_id"`
	DatasetID string `json:"dataset_id,omitempty"`
	// Size is the capacity the eval needs; always >= 1 on the log.
	Size int64 `json:"size"`
	// Payload is opaque JSON handed to the worker, at most 64 KiB.
	Payload json.RawMessage `json:"payload,omitempty"`
}

// EvalRejectedData ends a pending eval without placing it.
type EvalRejectedData struct {
	EvalID string `json:"eval_id"`
	Reason string `json:"reason"`
}

// EvalRequeuedData puts an eval whose alloc expired back in the queue.
type EvalRequeuedData struct {
	EvalID string `json:"eval_id"`
	// AllocID is the alloc that expired.
	AllocID string `json:"alloc_id"`
	// Attempt is the attempt number the next placement will carry.
	Attempt int    `json:"attempt"`
	Reason  string `json:"reason"`
}

// EvalDeadLetteredData ends an eval that ran out of attempts.
type EvalDeadLetteredData struct {
	EvalID   string `json:"eval_id"`
	AllocID  string `json:"alloc_id,omitempty"`
	Attempts int    `json:"attempts"`
	Reason   string `json:"reason"`
}

// AllocPlacedData records a placement decision and why it was made.
type AllocPlacedData struct {
	AllocID   string `json:"alloc_id"`
	EvalID    string `json:"eval_id"`
	WorkerID  string `json:"worker_id"`
	DatasetID string `json:"dataset_id,omitempty"`
	Size      int64  `json:"size"`
	// Attempt counts placements of this eval, starting at 1.
	Attempt int `json:"attempt"`
	// Deadline is when the alloc expires unless heartbeated.
	Deadline time.Time `json:"deadline"`
	// Topic is where the alloc record was delivered.
	Topic string `json:"topic"`
	// Strategy is the pool strategy that ranked the candidates.
	Strategy Strategy `json:"strategy"`
	// Locality tells whether a replica holder was chosen.
	Locality Locality `json:"locality"`
	// Candidates is how many feasible workers were considered.
	Candidates int `json:"candidates"`
	// WaitedMs is how long the eval waited in the queue.
	WaitedMs Millis `json:"waited_ms"`
	// Basis is the offset up to which the deciding scheduler had folded the
	// partition (the next offset it would apply): the audit judges the
	// decision against what the scheduler could see.
	Basis int64 `json:"basis"`
}

// AllocCompletedData ends a running alloc and returns its capacity.
type AllocCompletedData struct {
	AllocID  string           `json:"alloc_id"`
	Status   CompletionStatus `json:"status"`
	ExitCode *int32           `json:"exit_code,omitempty"`
	Message  string           `json:"message,omitempty"`
}

// AllocExpiredData ends a running alloc that stopped being heartbeated (or
// whose worker expired) and returns its capacity.
type AllocExpiredData struct {
	AllocID string `json:"alloc_id"`
	Reason  string `json:"reason"`
}

// EventType implements Data.
func (PoolCreatedData) EventType() Type { return PoolCreated }

// EventType implements Data.
func (PoolDisbandedData) EventType() Type { return PoolDisbanded }

// EventType implements Data.
func (PoolDeletedData) EventType() Type { return PoolDeleted }

// EventType implements Data.
func (WorkerRegisteredData) EventType() Type { return WorkerRegistered }

// EventType implements Data.
func (WorkerHeartbeatData) EventType() Type { return WorkerHeartbeat }

// EventType implements Data.
func (WorkerExpiredData) EventType() Type { return WorkerExpired }

// EventType implements Data.
func (ReplicaExpiredData) EventType() Type { return ReplicaExpired }

// EventType implements Data.
func (EvalSubmittedData) EventType() Type { return EvalSubmitted }

// EventType implements Data.
func (EvalRejectedData) EventType() Type { return EvalRejected }

// EventType implements Data.
func (EvalRequeuedData) EventType() Type { return EvalRequeued }

// EventType implements Data.
func (EvalDeadLetteredData) EventType() Type { return EvalDeadLettered }

// EventType implements Data.
func (AllocPlacedData) EventType() Type { return AllocPlaced }

// EventType implements Data.
func (AllocCompletedData) EventType() Type { return AllocCompleted }

// EventType implements Data.
func (AllocExpiredData) EventType() Type { return AllocExpired }

// newData returns a pointer to a zero Data of type t, or nil if t is unknown.
func newData(t Type) Data {
	switch t {
	case PoolCreated:
		return &PoolCreatedData{}
	case PoolDisbanded:
		return &PoolDisbandedData{}
	case PoolDeleted:
		return &PoolDeletedData{}
	case WorkerRegistered:
		return &WorkerRegisteredData{}
	case WorkerHeartbeat:
		return &WorkerHeartbeatData{}
	case WorkerExpired:
		return &WorkerExpiredData{}
	case ReplicaExpired:
		return &ReplicaExpiredData{}
	case EvalSubmitted:
		return &EvalSubmittedData{}
	case EvalRejected:
		return &EvalRejectedData{}
	case EvalRequeued:
		return &EvalRequeuedData{}
	case EvalDeadLettered:
		return &EvalDeadLetteredData{}
	case AllocPlaced:
		return &AllocPlacedData{}
	case AllocCompleted:
		return &AllocCompletedData{}
	case AllocExpired:
		return &AllocExpiredData{}
	}
	return nil
}

// require returns a *MissingFieldError naming the first empty field.
func require(t Type, fields ...any) error {
	for i := 0; i+1 < len(fields); i += 2 {
		name := fields[i].(string)
		empty := false
		switch v := fields[i+1].(type) {
		case string:
			empty = v == ""
		case time.Time:
			empty = v.IsZero()
		case int64:
			empty = v <= 0
		case int:
			empty = v <= 0
		}
		if empty {
			return &MissingFieldError{Type: t, Field: name}
		}
	}
	return nil
}

// Validate implements Data.
func (d PoolCreatedData) Validate() error {
	if !d.Strategy.Valid() {
		return &InvalidFieldError{Type: PoolCreated, Field: "strategy", Reason: fmt.Sprintf("unknown strategy %q", d.Strategy)}
	}
	if d.LocalityWaitMs < 0 {
		return &InvalidFieldError{Type: PoolCreated, Field: "locality_wait_ms", Reason: "negative"}
	}
	if !d.Delivery.Valid() {
		return &InvalidFieldError{Type: PoolCreated, Field: "delivery", Reason: fmt.Sprintf("unknown delivery %q", d.Delivery)}
	}
	return nil
}

// Validate implements Data.
func (d PoolDisbandedData) Validate() error {
	return require(PoolDisbanded, "delete_at", d.DeleteAt)
}

// Validate implements Data.
func (PoolDeletedData) Validate() error { return nil }

// Validate implements Data.
func (d WorkerRegisteredData) Validate() error {
	return require(WorkerRegistered, "worker_id", d.WorkerID, "capacity", d.Capacity,
		"topic", d.Topic, "deadline", d.Deadline, "replica_deadline", d.ReplicaDeadline)
}

// Validate implements Data.
func (d WorkerHeartbeatData) Validate() error {
	return require(WorkerHeartbeat, "worker_id", d.WorkerID, "deadline", d.Deadline,
		"replica_deadline", d.ReplicaDeadline, "alloc_deadline", d.AllocDeadline)
}

// Validate implements Data.
func (d WorkerExpiredData) Validate() error {
	return require(WorkerExpired, "worker_id", d.WorkerID, "deadline", d.Deadline)
}

// Validate implements Data.
func (d ReplicaExpiredData) Validate() error {
	return require(ReplicaExpired, "worker_id", d.WorkerID, "dataset_id", d.DatasetID, "deadline", d.Deadline)
}

// Validate implements Data.
func (d EvalSubmittedData) Validate() error {
	if err := require(EvalSubmitted, "eval_id", d.EvalID, "size", d.Size); err != nil {
		return err
	}
	if len(d.Payload) > MaxPayloadBytes {
		return &InvalidFieldError{Type: EvalSubmitted, Field: "payload", Reason: "larger than 64 KiB"}
	}
	return nil
}

// Validate implements Data.
func (d EvalRejectedData) Validate() error {
	return require(EvalRejected, "eval_id", d.EvalID, "reason", d.Reason)
}

// Validate implements Data.
func (d EvalRequeuedData) Validate() error {
	return require(EvalRequeued, "eval_id", d.EvalID, "alloc_id", d.AllocID, "attempt", d.Attempt)
}

// Validate implements Data.
func (d EvalDeadLetteredData) Validate() error {
	return require(EvalDeadLettered, "eval_id", d.EvalID, "reason", d.Reason)
}

// Validate implements Data.
func (d AllocPlacedData) Validate() error {
	if err := require(AllocPlaced, "alloc_id", d.AllocID, "eval_id", d.EvalID, "worker_id", d.WorkerID,
		"size", d.Size, "attempt", d.Attempt, "deadline", d.Deadline); err != nil {
		return err
	}
	if !d.Strategy.Valid() {
		return &InvalidFieldError{Type: AllocPlaced, Field: "strategy", Reason: fmt.Sprintf("unknown strategy %q", d.Strategy)}
	}
	switch d.Locality {
	case LocalityNone, LocalityHit, LocalityMiss:
	default:
		return &InvalidFieldError{Type: AllocPlaced, Field: "locality", Reason: fmt.Sprintf("unknown locality %q", d.Locality)}
	}
	return nil
}

// Validate implements Data.
func (d AllocCompletedData) Validate() error {
	if err := require(AllocCompleted, "alloc_id", d.AllocID); err != nil {
		return err
	}
	if !d.Status.Valid() {
		return &InvalidFieldError{Type: AllocCompleted, Field: "status", Reason: fmt.Sprintf("unknown status %q", d.Status)}
	}
	return nil
}

// Validate implements Data.
func (d AllocExpiredData) Validate() error {
	return require(AllocExpired, "alloc_id", d.AllocID)
}

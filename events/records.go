package events

import (
	"encoding/json"
	"time"
)

// AllocRecord is the value of a record on a worker's alloc topic (key =
// worker id): everything the worker needs to run the alloc.
type AllocRecord struct {
	AllocID   string          `json:"alloc_id"`
	EvalID    string          `json:"eval_id"`
	PoolID    string          `json:"pool_id"`
	WorkerID  string          `json:"worker_id"`
	DatasetID string          `json:"dataset_id,omitempty"`
	Size      int64           `json:"size"`
	Attempt   int             `json:"attempt"`
	Payload   json.RawMessage `json:"payload,omitempty"`
	Deadline  time.Time       `json:"deadline"`
}

// DeadLetterRecord is the value of a record on the dead-evals topic (key =
// pool id).
type DeadLetterRecord struct {
	PoolID    string          `json:"pool_id"`
	EvalID    string          `json:"eval_id"`
	DatasetID string          `json:"dataset_id,omitempty"`
	Size      int64           `json:"size"`
	Attempts  int             `json:"attempts"`
	Reason    string          `json:"reason"`
	Payload   json.RawMessage `json:"payload,omitempty"`
	At        time.Time       `json:"at"`
}

// Package events is line's event vocabulary: the envelope every record on the
// events topic carries, the data of each event type, strict decoding, and the
// names of the topics. It is the contract for anyone who reads the log,
// documented for other clients in docs/events.md.
//
// An event only says what happened. What it means for the state of a pool is
// defined once, in package state, which every service and the audit share.
package events

import (
	"time"
)

// Type names an event type. The set is closed: decoding an unknown type is an
// error.
type Type string

// The event types. Deadlines (TTLs) are absolute timestamps inside the events
// that set them; expiry is an explicit event.
const (
	PoolCreated       Type = "pool.created"
	PoolDisbanded     Type = "pool.disbanded"
	PoolDeleted       Type = "pool.deleted"
	WorkerRegistered  Type = "worker.registered"
	WorkerHeartbeat   Type = "worker.heartbeat"
	WorkerExpired     Type = "worker.expired"
	ReplicaExpired    Type = "replica.expired"
	EvalSubmitted     Type = "eval.submitted"
	EvalRejected      Type = "eval.rejected"
	EvalRequeued      Type = "eval.requeued"
	EvalDeadLettered  Type = "eval.dead_lettered"
	AllocPlaced       Type = "alloc.placed"
	AllocCompleted    Type = "alloc.completed"
	AllocExpired      Type = "alloc.expired"
	currentSchemaV         = 1
	timeLayoutMillis       = "2006-01-02T15:04:05.000Z07:00"
	headerType             = "type"
	headerVersion          = "v"
	maxPayloadBytes        = 64 << 10
	maxDatasetsPerMsg      = 1000
)

// SchemaVersion is the version of every event's data schema that this code
// writes and reads.
const SchemaVersion = currentSchemaV

// MaxPayloadBytes is the largest eval payload, in bytes of JSON, that line
// accepts.
const MaxPayloadBytes = maxPayloadBytes

// Types lists every event type, in documentation order.
var Types = []Type{
	PoolCreated, PoolDisbanded, PoolDeleted,
	WorkerRegistered, WorkerHeartbeat, WorkerExpired, ReplicaExpired,
	EvalSubmitted, EvalRejected, EvalRequeued, EvalDeadLettered,
	AllocPlaced, AllocCompleted, AllocExpired,
}

// Strategy is a pool's placement strategy.
type Strategy string

// Placement strategies.
const (
	// Spread places on the feasible worker with the most free capacity
	// (the original system's rule).
	Spread Strategy = "spread"
	// Binpack places on the feasible worker with the least free capacity
	// that still fits.
	Binpack Strategy = "binpack"
)

// Valid reports whether s is a known strategy.
func (s Strategy) Valid() bool { return s == Spread || s == Binpack }

// Locality says whether a placement honoured the eval's dataset.
type Locality string

// Locality outcomes of a placement.
const (
	// LocalityNone means the eval named no dataset.
	LocalityNone Locality = "none"
	// LocalityHit means the chosen worker holds a live replica.
	LocalityHit Locality = "hit"
	// LocalityMiss means no holder had room and another worker was chosen.
	LocalityMiss Locality = "miss"
)

// CompletionStatus is how a worker says an alloc ended.
type CompletionStatus string

// Completion statuses.
const (
	Succeeded CompletionStatus = "succeeded"
	Failed    CompletionStatus = "failed"
)

// Valid reports whether s is a known completion status.
func (s CompletionStatus) Valid() bool { return s == Succeeded || s == Failed }

// Millis is a duration carried in events as whole milliseconds.
type Millis int64

// Duration converts m to a time.Duration.
func (m Millis) Duration() time.Duration { return time.Duration(m) * time.Millisecond }

// ToMillis converts d to Millis, truncating below a millisecond.
func ToMillis(d time.Duration) Millis { return Millis(d / time.Millisecond) }

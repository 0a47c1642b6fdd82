package audit

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/line-sched/line/events"
)

// Kind classifies a violation.
type Kind string

// Kinds of violations.
const (
	// KindPoison is a record that does not decode into a valid event.
	KindPoison Kind = "poison"
	// KindRejected is an event the fold did not apply (a *state.Rejection)
	// for which no more specific kind below applies.
	KindRejected Kind = "rejected"
	// KindOvercommit is a placement onto a worker without room for it, or
	// a worker whose used capacity exceeds its capacity.
	KindOvercommit Kind = "overcommit"
	// KindUnknownWorker is a placement onto a worker the pool does not
	// have.
	KindUnknownWorker Kind = "unknown_worker"
	// KindWorkerExpired is a placement onto a worker whose deadline is not
	// after the placement's time.
	KindWorkerExpired Kind = "worker_expired"
	// KindPoolDisbanded is a placement decided by a scheduler that had
	// already folded the pool's disband.
	KindPoolDisbanded Kind = "pool_disbanded"
	// KindLocality is a placement that did not honour locality: a replica
	// holder had room when the scheduler decided, or the recorded locality
	// contradicts the fold.
	KindLocality Kind = "locality"
	// KindBasis is a placement whose basis lies beyond its own offset.
	KindBasis Kind = "basis"
	// KindPartition is an event on another partition than its pool's
	// pool.created: pools never span partitions.
	KindPartition Kind = "partition"
	// KindUnknownAlloc is a completion or expiry of an alloc the pool never
	// had.
	KindUnknownAlloc Kind = "unknown_alloc"
	// KindAllocNotLive is a completion or expiry of an alloc that already
	// ended.
	KindAllocNotLive Kind = "alloc_not_live"
	// KindEvalStatus is an eval that does not end the replay in exactly one
	// known status.
	KindEvalStatus Kind = "eval_status"
	// KindInvariant is a broken invariant of the fold (state.Check).
	KindInvariant Kind = "invariant"
)

// Kinds lists every kind, in documentation order.
var Kinds = []Kind{KindPoison, KindRejected, KindOvercommit, KindUnknownWorker, KindWorkerExpired,
	KindPoolDisbanded, KindLocality, KindBasis, KindPartition, KindUnknownAlloc, KindAllocNotLive, KindEvalStatus, KindInvariant}

// Violation is one thing wrong with the history.
type Violation struct {
	// Position is where the offending record sits; meaningless when AtEnd.
	Position events.Position
	// AtEnd marks a violation found when the replay ended (eval statuses,
	// invariants) rather than at one record.
	AtEnd bool
	// At is the event's time (zero for an undecodable record or AtEnd).
	At time.Time
	// Pool is the event's pool, if known.
	Pool string
	// Type is the event's type, if known.
	Type events.Type
	// EventID is the event's id, if known.
	EventID string
	Kind    Kind
	// Message says what is wrong, in one line.
	Message string
}

// Where is the violation's position as text: "partition:offset", or "end".
func (v Violation) Where() string {
	if v.AtEnd {
		return "end"
	}
	return v.Position.String()
}

func (v Violation) String() string {
	s := v.Where() + " " + string(v.Kind)
	if v.Type != "" {
		s += " " + string(v.Type)
	}
	if v.Pool != "" {
		s += " pool " + v.Pool
	}
	return s + ": " + v.Message
}

type violationJSON struct {
	Position *string     `json:"position"`
	At       *string     `json:"at"`
	Pool     string      `json:"pool,omitempty"`
	Type     events.Type `json:"type,omitempty"`
	EventID  string      `json:"event_id,omitempty"`
	Kind     Kind        `json:"kind"`
	Message  string      `json:"message"`
}

// MarshalJSON encodes v with its position as "partition:offset" (null at the
// end) and its time as the log formats it (null if unknown).
func (v Violation) MarshalJSON() ([]byte, error) {
	j := violationJSON{Pool: v.Pool, Type: v.Type, EventID: v.EventID, Kind: v.Kind, Message: v.Message}
	if !v.AtEnd {
		p := v.Position.String()
		j.Position = &p
	}
	if !v.At.IsZero() {
		a := events.FormatTime(v.At)
		j.At = &a
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (v *Violation) UnmarshalJSON(b []byte) error {
	var j violationJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*v = Violation{Pool: j.Pool, Type: j.Type, EventID: j.EventID, Kind: j.Kind, Message: j.Message, AtEnd: j.Position == nil}
	if j.Position != nil {
		p, err := events.ParsePosition(*j.Position)
		if err != nil {
			return err
		}
		v.Position = p
	}
	if j.At != nil {
		t, err := time.Parse(time.RFC3339Nano, *j.At)
		if err != nil {
			return fmt.Errorf("violation at: %w", err)
		}
		v.At = t.UTC()
	}
	return nil
}

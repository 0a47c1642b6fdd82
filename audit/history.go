package audit

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/state"
)

// EntityKind names what a History follows.
type EntityKind string

// Kinds of entities.
const (
	EntityEval   EntityKind = "eval"
	EntityAlloc  EntityKind = "alloc"
	EntityWorker EntityKind = "worker"
)

// Entity names an eval, alloc or worker; Pool, if set, restricts the search
// to one pool (ids are unique per pool only).
type Entity struct {
	Kind EntityKind `json:"kind"`
	ID   string     `json:"id"`
	Pool string     `json:"pool,omitempty"`
}

func (e Entity) String() string {
	s := string(e.Kind) + " " + e.ID
	if e.Pool != "" {
		s += " in pool " + e.Pool
	}
	return s
}

// Entry is one event of an entity's history.
type Entry struct {
	Position events.Position `json:"-"`
	Pos      string          `json:"position"`
	At       time.Time       `json:"at"`
	Pool     string          `json:"pool"`
	Type     events.Type     `json:"type"`
	// Description says what the event did to the entity, in one line.
	Description string `json:"description"`
	// Rejected is the fold's reason when the event did not apply.
	Rejected string `json:"rejected,omitempty"`
	// Violations found at this event.
	Violations []Violation `json:"violations,omitempty"`
}

// History collects the events touching one entity during a replay: pass
// its Visit as Options.Visit.
type History struct {
	ent Entity
	// allocs are, per pool, the allocs of the eval or worker followed.
	allocs  map[string]map[string]bool
	entries []Entry
}

// NewHistory follows ent.
func NewHistory(ent Entity) *History {
	return &History{ent: ent, allocs: make(map[string]map[string]bool)}
}

// Entries returns the history, in replay order.
func (h *History) Entries() []Entry { return h.entries }

// Pools returns the pools in which the entity was found, sorted.
func (h *History) Pools() []string {
	var out []string
	for _, e := range h.entries {
		if !slices.Contains(out, e.Pool) {
			out = append(out, e.Pool)
		}
	}
	slices.Sort(out)
	return out
}

func (h *History) own(pool, alloc string) {
	m := h.allocs[pool]
	if m == nil {
		m = make(map[string]bool)
		h.allocs[pool] = m
	}
	m[alloc] = true
}

// Visit looks at one replayed record.
func (h *History) Visit(s Step) {
	e := s.Envelope
	if s.Poison != nil || e.Data == nil || (h.ent.Pool != "" && e.Pool != h.ent.Pool) {
		return
	}
	if !h.touches(e) {
		return
	}
	var p *state.Pool
	if s.State != nil {
		p = s.State.Pool(e.Pool)
	}
	en := Entry{Position: s.Position, Pos: s.Position.String(), At: e.At, Pool: e.Pool, Type: e.Type,
		Description: Describe(e, p), Violations: s.Violations}
	if s.Rejected != nil {
		en.Rejected = rejectionReason(s.Rejected)
	}
	h.entries = append(h.entries, en)
}

func (h *History) touches(e events.Envelope) bool {
	id := h.ent.ID
	mine := func(alloc string) bool { return h.allocs[e.Pool][alloc] }
	switch h.ent.Kind {
	case EntityEval:
		switch d := e.Data.(type) {
		case events.EvalSubmittedData:
			return d.EvalID == id
		case events.EvalRejectedData:
			return d.EvalID == id
		case events.EvalRequeuedData:
			return d.EvalID == id
		case events.EvalDeadLetteredData:
			return d.EvalID == id
		case events.AllocPlacedData:
			if d.EvalID == id {
				h.own(e.Pool, d.AllocID)
				return true
			}
		case events.AllocCompletedData:
			return mine(d.AllocID)
		case events.AllocExpiredData:
			return mine(d.AllocID)
		}
	case EntityAlloc:
		switch d := e.Data.(type) {
		case events.AllocPlacedData:
			return d.AllocID == id
		case events.AllocCompletedData:
			return d.AllocID == id
		case events.AllocExpiredData:
			return d.AllocID == id
		case events.EvalRequeuedData:
			return d.AllocID == id
		case events.EvalDeadLetteredData:
			return d.AllocID == id
		case events.WorkerHeartbeatData:
			return slices.Contains(d.Allocs, id)
		}
	case EntityWorker:
		switch d := e.Data.(type) {
		case events.WorkerRegisteredData:
			return d.WorkerID == id
		case events.WorkerHeartbeatData:
			return d.WorkerID == id
		case events.WorkerExpiredData:
			return d.WorkerID == id
		case events.ReplicaExpiredData:
			return d.WorkerID == id
		case events.AllocPlacedData:
			if d.WorkerID == id {
				h.own(e.Pool, d.AllocID)
				return true
			}
		case events.AllocCompletedData:
			return mine(d.AllocID)
		case events.AllocExpiredData:
			return mine(d.AllocID)
		}
	}
	return false
}

func rejectionReason(err error) string {
	if r, ok := err.(*state.Rejection); ok {
		return r.Reason
	}
	return err.Error()
}

// Describe says in one line what event e did. p, the event's pool after it
// (or nil), names the eval and worker of an alloc that ended.
func Describe(e events.Envelope, p *state.Pool) string {
	switch d := e.Data.(type) {
	case events.PoolCreatedData:
		return fmt.Sprintf("pool created (%s, locality wait %s)", d.Strategy, d.LocalityWaitMs.Duration())
	case events.PoolDisbandedData:
		return "pool disbanded, to be deleted at " + events.FormatTime(d.DeleteAt)
	case events.PoolDeletedData:
		return "pool deleted"
	case events.WorkerRegisteredData:
		s := fmt.Sprintf("worker %s registered with capacity %d", d.WorkerID, d.Capacity)
		if len(d.Datasets) > 0 {
			s += "," + datasets(d.Datasets)
		}
		return s + ", deadline " + events.FormatTime(d.Deadline)
	case events.WorkerHeartbeatData:
		s := fmt.Sprintf("heartbeat of %s: deadline %s", d.WorkerID, events.FormatTime(d.Deadline))
		if len(d.Datasets) > 0 {
			s += "," + datasets(d.Datasets)
		}
		if len(d.Allocs) > 0 {
			s += fmt.Sprintf(", allocs %s to %s", strings.Join(d.Allocs, " "), events.FormatTime(d.AllocDeadline))
		}
		return s
	case events.WorkerExpiredData:
		return fmt.Sprintf("worker %s expired (deadline %s passed)", d.WorkerID, events.FormatTime(d.Deadline))
	case events.ReplicaExpiredData:
		return fmt.Sprintf("replica of %s on %s expired (deadline %s passed)", d.DatasetID, d.WorkerID, events.FormatTime(d.Deadline))
	case events.EvalSubmittedData:
		s := fmt.Sprintf("eval %s submitted (size %d", d.EvalID, d.Size)
		if d.DatasetID != "" {
			s += ", dataset " + d.DatasetID
		}
		return s + ")"
	case events.EvalRejectedData:
		return fmt.Sprintf("eval %s rejected: %s", d.EvalID, d.Reason)
	case events.EvalRequeuedData:
		return fmt.Sprintf("eval %s requeued for attempt %d: %s", d.EvalID, d.Attempt, d.Reason)
	case events.EvalDeadLetteredData:
		return fmt.Sprintf("eval %s dead-lettered after %d attempts: %s", d.EvalID, d.Attempts, d.Reason)
	case events.AllocPlacedData:
		loc := "locality " + string(d.Locality)
		if d.Locality == events.LocalityNone {
			loc = "no dataset"
		}
		return fmt.Sprintf("eval %s placed on %s as alloc %s, attempt %d (%s, %s, %d candidates, waited %s)",
			d.EvalID, d.WorkerID, d.AllocID, d.Attempt, d.Strategy, loc, d.Candidates, d.WaitedMs.Duration())
	case events.AllocCompletedData:
		s := fmt.Sprintf("alloc %s%s completed: %s", d.AllocID, allocOf(p, d.AllocID), d.Status)
		if d.ExitCode != nil {
			s += fmt.Sprintf(" (exit %d)", *d.ExitCode)
		}
		if d.Message != "" {
			s += ": " + d.Message
		}
		return s
	case events.AllocExpiredData:
		return fmt.Sprintf("alloc %s%s expired: %s", d.AllocID, allocOf(p, d.AllocID), d.Reason)
	}
	return string(e.Type)
}

func datasets(ds []string) string {
	if len(ds) == 0 {
		return ""
	}
	return " datasets " + strings.Join(ds, " ")
}

func allocOf(p *state.Pool, id string) string {
	if p == nil {
		return ""
	}
	if a := p.Alloc(id); a != nil {
		return fmt.Sprintf(" (eval %s on %s)", a.EvalID, a.WorkerID())
	}
	return ""
}

package audit

import (
	"time"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/state"
)

// Summary counts what a replay saw.
type Summary struct {
	// Events counts the records replayed, decodable or not.
	Events int64 `json:"events"`
	// Poison counts the records that did not decode.
	Poison int64 `json:"poison"`
	// Rejected counts the events the fold did not apply.
	Rejected int64 `json:"rejected"`
	// ByType counts the decoded events by type.
	ByType map[events.Type]int64 `json:"by_type"`
	// Pools counts pools by status (deleted pools included).
	Pools map[state.PoolStatus]int64 `json:"pools"`
	// Workers counts the workers registered at the end.
	Workers int64 `json:"workers"`
	// Evals counts evals by status, those of deleted pools included (as
	// they stood when the pool was deleted).
	Evals map[state.EvalStatus]int64 `json:"evals"`
	// Allocs counts allocs by status, those of deleted pools included.
	Allocs map[state.AllocStatus]int64 `json:"allocs"`
	// Unjudged counts placements whose basis was missing or invalid, so
	// that locality and the disband rule could not be judged.
	Unjudged int64 `json:"unjudged_placements"`
	// Violations counts the violations found; ByKind splits them.
	Violations int64          `json:"violations"`
	ByKind     map[Kind]int64 `json:"violations_by_kind"`
	// First and Last are the earliest and latest event times.
	First *time.Time `json:"first_at"`
	Last  *time.Time `json:"last_at"`
}

// Summary counts what the checker was fed so far.
func (c *Checker) Summary() Summary {
	s := Summary{Events: c.sum.events, Poison: c.sum.poison, Rejected: c.st.Rejected, Unjudged: c.sum.unjudged,
		ByType: make(map[events.Type]int64), Pools: make(map[state.PoolStatus]int64),
		Evals: make(map[state.EvalStatus]int64), Allocs: make(map[state.AllocStatus]int64), ByKind: make(map[Kind]int64)}
	for t, n := range c.sum.byType {
		s.ByType[t] = n
	}
	for _, st := range state.EvalStatuses {
		s.Evals[st] = c.sum.deletedEvals[st]
	}
	for _, st := range []state.AllocStatus{state.AllocRunning, state.AllocCompleted, state.AllocExpired} {
		s.Allocs[st] = c.sum.deletedAllocs[st]
	}
	for _, st := range []state.PoolStatus{state.PoolActive, state.PoolDisbanded, state.PoolDeleted} {
		s.Pools[st] = 0
	}
	for _, p := range c.st.Pools() {
		s.Pools[p.Status]++
		s.Workers += int64(p.NumWorkers())
		for st, n := range p.EvalsByStatus() {
			s.Evals[st] += n
		}
		for st, n := range p.AllocsByStatus() {
			s.Allocs[st] += n
		}
	}
	for k, n := range c.sum.violations {
		s.ByKind[k] = n
		s.Violations += n
	}
	if !c.sum.first.IsZero() {
		f, l := c.sum.first, c.sum.last
		s.First, s.Last = &f, &l
	}
	return s
}

// EvalsTotal is the number of evals counted in s.
func (s Summary) EvalsTotal() int64 {
	var n int64
	for _, v := range s.Evals {
		n += v
	}
	return n
}

// AllocsTotal is the number of allocs counted in s.
func (s Summary) AllocsTotal() int64 {
	var n int64
	for _, v := range s.Allocs {
		n += v
	}
	return n
}

// PoolsTotal is the number of pools counted in s.
func (s Summary) PoolsTotal() int64 {
	var n int64
	for _, v := range s.Pools {
		n += v
	}
	return n
}

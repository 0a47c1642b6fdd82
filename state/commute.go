package state

import "github.com/line-sched/line/events"

// CommutesWithPlacements tells whether folding event e of a pool after
// placements of that pool that lie further on the log (their alloc ids in
// allocs) gives the state that folding e before them gives. It is a
// property of Apply, stated here next to it: the scheduler relies on it to
// apply its own committed placements ahead of the events ingest appended
// before them. It says yes only for the events ingest writes that cannot
// interact with a placement (a new eval, worker or pool, a disband, which
// a placement still applies after) and for heartbeats and completions that
// do not name one of those allocs; anything else counts as a conflict.
func CommutesWithPlacements(e events.Envelope, allocs map[string]struct{}) bool {
	switch d := e.Data.(type) {
	case events.EvalSubmittedData, events.WorkerRegisteredData, events.PoolCreatedData, events.PoolDisbandedData:
		return true
	case events.WorkerHeartbeatData:
		for _, id := range d.Allocs {
			if _, ok := allocs[id]; ok {
				return false
			}
		}
		return true
	case events.AllocCompletedData:
		_, ok := allocs[d.AllocID]
		return !ok
	}
	return false
}

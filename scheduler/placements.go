package scheduler

import (
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/state"
)

// placement is a placement decided in this round, in compact form (no
// strings) until the round's outputs are built.
type placement struct {
	e *state.Eval
	w *state.Worker
	// candidates is the placement's candidates count.
	candidates int32
	// locality is the placement's locality (see localities).
	locality uint8
}

// localities maps placement.locality to the event's value.
var localities = [...]events.Locality{events.LocalityNone, events.LocalityHit, events.LocalityMiss}

const (
	localityNone uint8 = iota
	localityHit
	localityMiss
)

// maxChunk is the size of the placement list's chunks after the first one.
const maxChunk = 4096

// placementList is the round's list of placements, in order: a list of chunks,
// so that a long round never copies what it already decided (a growing
// slice would copy it again at every growth, five times over in total).
type placementList struct {
	chunks [][]placement
	n      int
}

// add appends p; first is the capacity of the first chunk.
func (l *placementList) add(p placement, first int) {
	if len(l.chunks) == 0 || len(l.chunks[len(l.chunks)-1]) == cap(l.chunks[len(l.chunks)-1]) {
		size := maxChunk
		if len(l.chunks) == 0 {
			size = max(first, 1)
		}
		l.chunks = append(l.chunks, make([]placement, 0, size))
	}
	c := &l.chunks[len(l.chunks)-1]
	*c = append(*c, p)
	l.n++
}

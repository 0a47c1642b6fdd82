package livestate

import (
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/state"
)

// slimmer trims decoded events before the fold keeps parts of them: ingest
// validates commands by ids, statuses and capacities, never by payloads or
// completion messages, and the strings that repeat across millions of
// events (worker ids, topics, datasets, strategies) are kept once.
//
// It only drops or shares what the fold stores without deciding on it:
// the fold (state.State.Apply) accepts or rejects a slimmed event exactly as
// the original, so every status, capacity and id stays the log's.
type slimmer struct {
	strs map[string]string
}

// maxInterned bounds the interned strings; past it the table starts over
// (interning saves memory, it never changes a value).
const maxInterned = 200_000

func (s *slimmer) intern(v string) string {
	if v == "" {
		return v
	}
	if w, ok := s.strs[v]; ok {
		return w
	}
	if s.strs == nil || len(s.strs) >= maxInterned {
		s.strs = make(map[string]string, 1024)
	}
	s.strs[v] = v
	return v
}

func (s *slimmer) internAll(vs []string) {
	for i, v := range vs {
		vs[i] = s.intern(v)
	}
}

// slim trims e in place.
func (s *slimmer) slim(e *events.Envelope) {
	switch d := e.Data.(type) {
	case events.EvalSubmittedData:
		d.Payload = nil
		d.DatasetID = s.intern(d.DatasetID)
		e.Data = d
	case events.AllocPlacedData:
		d.WorkerID, d.Topic, d.DatasetID = s.intern(d.WorkerID), s.intern(d.Topic), s.intern(d.DatasetID)
		d.Strategy = events.Strategy(s.intern(string(d.Strategy)))
		d.Locality = events.Locality(s.intern(string(d.Locality)))
		e.Data = d
	case events.AllocCompletedData:
		d.Message = ""
		d.Status = events.CompletionStatus(s.intern(string(d.Status)))
		e.Data = d
	case events.WorkerRegisteredData:
		d.WorkerID, d.Topic = s.intern(d.WorkerID), s.intern(d.Topic)
		s.internAll(d.Datasets)
		e.Data = d
	case events.WorkerHeartbeatData:
		d.WorkerID = s.intern(d.WorkerID)
		s.internAll(d.Datasets)
		e.Data = d
	}
}

// share points the ids of a placement at the strings the state already
// holds for its eval and worker, so that the alloc's copy of the decision
// adds no second copy of them. Called under the write lock.
func share(st *state.State, e *events.Envelope) {
	d, ok := e.Data.(events.AllocPlacedData)
	if !ok {
		return
	}
	p := st.Pool(e.Pool)
	if p == nil {
		return
	}
	if ev := p.Eval(d.EvalID); ev != nil {
		d.EvalID = ev.ID
	}
	if w := p.Worker(d.WorkerID); w != nil {
		d.WorkerID = w.ID
	}
	e.Data = d
}

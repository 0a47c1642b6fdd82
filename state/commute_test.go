package state

import (
	"bytes"
	"testing"
	"time"

	"github.com/line-sched/line/events"
)

// TestCommutesWithPlacementsAgreesWithApply: every event
// CommutesWithPlacements calls commuting gives the same state folded
// before a placement that follows it on the log as folded after it (each
// at its own position), and both orders apply both events.
func TestCommutesWithPlacementsAgreesWithApply(t *testing.T) {
	var hist []events.Envelope
	for _, b := range bxHistory(300, 10) {
		e, err := events.Unmarshal(b)
		if err != nil {
			t.Fatal(err)
		}
		hist = append(hist, e)
	}
	// The last placement P, and an earlier alloc on P's worker that is
	// still running before P.
	k := len(hist) - 1
	for ; k >= 0; k-- {
		if _, ok := hist[k].Data.(events.AllocPlacedData); ok {
			break
		}
	}
	p := hist[k]
	pd := p.Data.(events.AllocPlacedData)
	foldTo := func(n int) *State {
		s := New()
		for i, e := range hist[:n] {
			_ = s.Apply(e, events.Position{Offset: int64(i)})
		}
		return s
	}
	other := ""
	for _, a := range foldTo(k).Pool(p.Pool).Worker(pd.WorkerID).RunningAllocs() {
		if a.ID != pd.AllocID && a.Status() == AllocRunning {
			other = a.ID
			break
		}
	}
	if other == "" {
		t.Fatal("fixture: no other running alloc on the placement's worker")
	}
	at, later := p.At, p.At.Add(time.Hour)
	xs := map[string]events.Data{
		"eval.submitted":    events.EvalSubmittedData{EvalID: "commute-e", Size: 1},
		"worker.registered": events.WorkerRegisteredData{WorkerID: "commute-w", Capacity: 4, Topic: "t", Deadline: later},
		"worker.heartbeat": events.WorkerHeartbeatData{WorkerID: pd.WorkerID, Deadline: later, ReplicaDeadline: later,
			Allocs: []string{other}, AllocDeadline: later},
		"alloc.completed": events.AllocCompletedData{AllocID: other, Status: events.Succeeded},
	}
	ahead := map[string]struct{}{pd.AllocID: {}}
	for name, d := range xs {
		x := events.New(p.Pool, at, d)
		if !CommutesWithPlacements(x, ahead) {
			t.Errorf("%s: said not to commute", name)
			continue
		}
		xPos, pPos := events.Position{Offset: int64(k)}, events.Position{Offset: int64(k) + 1}
		inOrder, reordered := foldTo(k), foldTo(k)
		for _, step := range []struct {
			s   *State
			e   events.Envelope
			pos events.Position
		}{{inOrder, x, xPos}, {inOrder, p, pPos}, {reordered, p, pPos}, {reordered, x, xPos}} {
			if err := step.s.Apply(step.e, step.pos); err != nil {
				t.Errorf("%s: %s did not apply: %v", name, step.e.Type, err)
			}
		}
		if a, b := Dump(inOrder), Dump(reordered); !bytes.Equal(a, b) {
			t.Errorf("%s folded after the placement differs from folded before it", name)
		}
	}
	hb := events.New(p.Pool, at, events.WorkerHeartbeatData{WorkerID: pd.WorkerID, Deadline: later, Allocs: []string{pd.AllocID}})
	if CommutesWithPlacements(hb, ahead) {
		t.Error("a heartbeat naming an alloc applied ahead was said to commute")
	}
}

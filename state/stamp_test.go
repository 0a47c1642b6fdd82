package state

import (
	"testing"
	"time"

	"github.com/line-sched/line/events"
)

func TestStampRoundTrips(t *testing.T) {
	for _, at := range []time.Time{
		{},
		time.Unix(0, 0).UTC(),
		time.Date(2026, 11, 26, 19, 38, 45, 123e6, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 1e6, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 1e6, time.UTC),
		time.Date(2026, 11, 26, 19, 38, 45, 123456789, time.UTC),
		time.Date(1960, 1, 1, 0, 0, 0, 7, time.UTC),
	} {
		got := toStamp(at).time()
		if !got.Equal(at) || got != at {
			t.Errorf("stamp of %v comes back as %v", at, got)
		}
	}
}

// TestAllocKeepsRareValues checks the values an alloc keeps out of line:
// a topic other than its worker's, a strategy and locality without a code
// and a candidate count beyond int32.
func TestAllocKeepsRareValues(t *testing.T) {
	w := &Worker{ID: "w1", Topic: "line.allocs.p.w1"}
	a := &Alloc{ID: "a1", worker: w}
	pl := Placement{Deadline: time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC), Strategy: "odd", Locality: "far",
		Candidates: 1 << 40, WaitedMs: 12, Basis: 99}
	a.setPlacement(pl)
	if got := a.Placement(); got != pl {
		t.Errorf("placement %+v comes back as %+v", pl, got)
	}
	if a.Topic() != w.Topic {
		t.Errorf("topic %q, want the worker's %q", a.Topic(), w.Topic)
	}
	x := a.more()
	x.topic, x.hasTopic = "line.allocs", true
	if a.Topic() != "line.allocs" {
		t.Errorf("topic %q, want the placement's", a.Topic())
	}
	if !a.EndedAt().IsZero() {
		t.Errorf("running alloc with its rare part set ended at %v", a.EndedAt())
	}
	if ev := (&Eval{}); ev.more() != nil && !ev.EndedAt().IsZero() {
		t.Errorf("eval with its rare part set ended at %v", ev.EndedAt())
	}
	b := &Alloc{ID: "a2", worker: w}
	pl2 := Placement{Strategy: events.Binpack, Locality: events.LocalityMiss, Candidates: candidatesElsewhere}
	b.setPlacement(pl2)
	if got := b.Placement(); got != pl2 {
		t.Errorf("placement %+v comes back as %+v", pl2, got)
	}
	c := &Alloc{ID: "a3", worker: w}
	c.setPlacement(Placement{Strategy: events.Spread, Locality: events.LocalityHit, Candidates: 3})
	if c.extra != nil {
		t.Errorf("an ordinary placement allocated its rare part")
	}
}

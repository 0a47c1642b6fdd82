package audit

import (
	"testing"

	"github.com/line-sched/line/audit/audittest"
	"github.com/line-sched/line/events"
)

func whatIfOf(t *testing.T, seed uint64, opts WhatIfOptions) (*WhatIf, []audittest.Event) {
	t.Helper()
	hist, err := audittest.Simulate(audittest.Options{Seed: seed, Steps: 200, Pools: []string{"p1", "p2"}})
	if err != nil {
		t.Fatal(err)
	}
	w := NewWhatIf(opts)
	c := NewChecker()
	for _, e := range hist {
		vs := c.Check(e.Envelope, e.Position)
		w.Visit(Step{Envelope: e.Envelope, Position: e.Position, Violations: vs, State: c.State()})
	}
	return w, hist
}

func TestWhatIf(t *testing.T) {
	w, hist := whatIfOf(t, 5, WhatIfOptions{Strategy: events.Binpack})
	rec, alt := w.Run()
	var placed, hits, misses, completed int64
	for _, e := range hist {
		switch d := e.Data.(type) {
		case events.AllocPlacedData:
			placed++
			if d.Locality == events.LocalityHit {
				hits++
			} else if d.Locality == events.LocalityMiss {
				misses++
			}
		case events.AllocCompletedData:
			completed++
		}
	}
	if rec.Placements != placed || rec.LocalityHits != hits || rec.LocalityMisses != misses || rec.Completed != completed {
		t.Errorf("recorded %+v; history: %d placed, %d hits, %d misses, %d completed", rec, placed, hits, misses, completed)
	}
	if rec.Utilization <= 0 || rec.Utilization > 1 || alt.Utilization <= 0 || alt.Utilization > 1 {
		t.Errorf("utilization %v %v", rec.Utilization, alt.Utilization)
	}
	if alt.Placements == 0 || alt.LocalityHits+alt.LocalityMisses == 0 {
		t.Errorf("what-if %+v", alt)
	}
	if w.badDecisions != 0 {
		t.Errorf("%d what-if decisions did not apply", w.badDecisions)
	}
	t.Logf("recorded %+v", rec)
	t.Logf("what-if  %+v", alt)

	// The what-if fold is sound, and every placement in it is spread or
	// binpack as asked.
	w2, _ := whatIfOf(t, 5, WhatIfOptions{Strategy: events.Binpack})
	_, again := w2.Run()
	if again != alt {
		t.Errorf("what-if is not deterministic: %+v vs %+v", again, alt)
	}
}

// Re-deciding with the recorded settings reproduces the recorded run's
// placements closely (not exactly: the recording interleaved commands and
// decisions on its own clock).
func TestWhatIfSameStrategy(t *testing.T) {
	w, _ := whatIfOf(t, 9, WhatIfOptions{})
	rec, alt := w.Run()
	if alt.Placements < rec.Placements/2 || alt.Placements > rec.Placements*2 {
		t.Errorf("recorded %+v\nwhat-if %+v", rec, alt)
	}
}

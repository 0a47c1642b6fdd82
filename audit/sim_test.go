package audit_test

import (
	"testing"

	"github.com/line-sched/line/audit"
	"github.com/line-sched/line/audit/audittest"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/state"
)

// Histories written the way line writes them, scheduler.Decide deciding
// every round, pass the audit without a single violation.
func TestCleanHistoriesPass(t *testing.T) {
	types := map[events.Type]int64{}
	locality := map[events.Locality]int{}
	var evals, placements, judged int64
	for seed := range uint64(60) {
		opts := audittest.Options{Seed: seed, Delayed: seed%2 == 1, Partitions: int32(1 + seed%3), Disband: seed%4 == 3, Steps: 150}
		hist, err := audittest.Simulate(opts)
		if err != nil {
			t.Fatal(err)
		}
		c := audit.NewChecker()
		for _, e := range hist {
			for _, v := range c.Check(e.Envelope, e.Position) {
				t.Errorf("seed %d (%+v): %s", seed, opts, v)
			}
			if d, ok := e.Data.(events.AllocPlacedData); ok {
				locality[d.Locality]++
			}
		}
		for _, v := range c.Finish() {
			t.Errorf("seed %d: at the end: %s", seed, v)
		}
		s := c.Summary()
		if s.Events != int64(len(hist)) || s.Violations != 0 || s.Rejected != 0 {
			t.Errorf("seed %d: summary %+v", seed, s)
		}
		for typ, n := range s.ByType {
			types[typ] += n
		}
		evals += s.EvalsTotal()
		placements += s.ByType[events.AllocPlaced]
		judged += s.ByType[events.AllocPlaced] - s.Unjudged
		if t.Failed() {
			return
		}
	}
	t.Logf("event types: %v; locality: %v; evals %d", types, locality, evals)
	// The histories exercise what the audit checks.
	for _, typ := range events.Types {
		if types[typ] == 0 {
			t.Errorf("no %s in any simulated history", typ)
		}
	}
	if locality[events.LocalityHit] < 50 || locality[events.LocalityMiss] < 50 || judged != placements {
		t.Errorf("locality %v, %d of %d placements judged", locality, judged, placements)
	}
}

// Breaking a clean history is noticed where it breaks.
func TestBrokenHistoryFails(t *testing.T) {
	hist, err := audittest.Simulate(audittest.Options{Seed: 7, Steps: 150})
	if err != nil {
		t.Fatal(err)
	}
	// Complete, a second time, the first alloc that completed.
	var dup audittest.Event
	at := -1
	for i, e := range hist {
		if e.Type == events.AllocCompleted {
			dup, at = e, i
			break
		}
	}
	if at < 0 {
		t.Fatal("no completion in the history")
	}
	c := audit.NewChecker()
	var got []audit.Violation
	for i, e := range hist {
		got = append(got, c.Check(e.Envelope, e.Position)...)
		if i == at {
			again := events.New(dup.Pool, dup.At, dup.Data)
			pos := events.Position{Partition: dup.Position.Partition, Offset: 1 << 40}
			got = append(got, c.Check(again, pos)...)
		}
	}
	if len(got) != 1 || got[0].Kind != audit.KindAllocNotLive || got[0].Position.Offset != 1<<40 {
		t.Fatalf("violations %v", got)
	}
	if s := c.Summary(); s.Evals[state.EvalCompleted] == 0 || s.Violations != 1 {
		t.Errorf("summary %+v", s)
	}
}

// Moving a locality hit of a clean history onto a worker that holds no
// replica, while the holder had room, is flagged at that placement.
func TestMovedLocalityHitFails(t *testing.T) {
	flagged, tried := 0, 0
	for seed := range uint64(20) {
		hist, err := audittest.Simulate(audittest.Options{Seed: seed, Steps: 150, Delayed: seed%2 == 1})
		if err != nil {
			t.Fatal(err)
		}
		c := audit.NewChecker()
		moved := false
		for _, e := range hist {
			d, ok := e.Data.(events.AllocPlacedData)
			if !moved && ok && d.Locality == events.LocalityHit {
				// Another live worker with room and no replica of the dataset.
				p := c.State().Pool(e.Pool)
				for _, w := range p.Workers() {
					if _, holds := w.Replicas[d.DatasetID]; !holds && w.Deadline.After(e.At) && w.Free() >= d.Size {
						d.WorkerID, d.Locality, moved = w.ID, events.LocalityMiss, true
						e.Data = d
						break
					}
				}
				if moved {
					tried++
					vs := c.Check(e.Envelope, e.Position)
					if len(vs) == 1 && vs[0].Kind == audit.KindLocality && vs[0].Position == e.Position {
						flagged++
					} else {
						t.Errorf("seed %d: moved placement at %s: %v", seed, e.Position, vs)
					}
					break
				}
			}
			c.Check(e.Envelope, e.Position)
		}
	}
	if tried < 10 {
		t.Errorf("only %d placements moved", tried)
	}
	t.Logf("%d of %d moved placements flagged", flagged, tried)
}

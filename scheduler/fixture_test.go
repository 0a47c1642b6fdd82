package scheduler

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/state"
)

var t0 = time.Date(2026, 11, 26, 19, 0, 0, 0, time.UTC)

// at is t0 plus n seconds.
func at(n float64) time.Time { return t0.Add(time.Duration(n * float64(time.Second))) }

const testPool = "p1"

// tb is what the helpers need of *testing.T and *rapid.T.
type tb interface {
	Helper()
	Fatalf(format string, args ...any)
}

// fixture folds events into a state the way a consumer does (through
// Marshal and Unmarshal), keeps the log, and runs rounds.
type fixture struct {
	t    tb
	s    *state.State
	pool string
	off  int64
	log  []logged
}

type logged struct {
	e   events.Envelope
	pos events.Position
}

func newFixture(t tb) *fixture { return &fixture{t: t, s: state.New(), pool: testPool} }

// apply folds one event of the fixture's pool at time at.
func (f *fixture) apply(at time.Time, d events.Data) error {
	f.t.Helper()
	return f.applyTo(f.pool, at, d)
}

func (f *fixture) applyTo(pool string, at time.Time, d events.Data) error {
	f.t.Helper()
	e := events.New(pool, at, d)
	b, err := events.Marshal(e)
	if err != nil {
		f.t.Fatalf("%s does not marshal: %v", d.EventType(), err)
	}
	e, err = events.Unmarshal(b)
	if err != nil {
		f.t.Fatalf("%s does not decode: %v\n%s", d.EventType(), err, b)
	}
	pos := events.Position{Partition: 0, Offset: f.off}
	f.off++
	f.log = append(f.log, logged{e, pos})
	return f.s.Apply(e, pos)
}

// ok folds an event that must apply.
func (f *fixture) ok(at time.Time, d events.Data) {
	f.t.Helper()
	if err := f.apply(at, d); err != nil {
		f.t.Fatalf("%s %+v: %v", d.EventType(), d, err)
	}
}

func (f *fixture) p() *state.Pool { return f.s.Pool(f.pool) }

// decide runs a round, checks that it is deterministic and leaves the state
// unchanged, and returns it without committing it.
func (f *fixture) decide(now time.Time, cfg Config) Decision {
	f.t.Helper()
	before := state.DumpPool(f.p())
	d := Decide(f.p(), now, cfg)
	if again := Decide(f.p(), now, cfg); !reflect.DeepEqual(d, again) {
		f.t.Fatalf("Decide is not deterministic:\n%s\n%s", show(d), show(again))
	}
	if after := state.DumpPool(f.p()); !bytes.Equal(before, after) {
		f.t.Fatalf("Decide changed the state")
	}
	checkDecision(f.t, f.pool, d)
	return d
}

// commit folds a round's events, each of which must apply.
func (f *fixture) commit(now time.Time, d Decision) {
	f.t.Helper()
	for i, data := range d.Events {
		if err := f.apply(now, data); err != nil {
			f.t.Fatalf("decision %d (%s %+v) did not apply: %v", i, data.EventType(), data, err)
		}
	}
	if err := f.s.Check(); err != nil {
		f.t.Fatalf("state invariants broken after a round: %v", err)
	}
}

// round decides and commits.
func (f *fixture) round(now time.Time, cfg Config) Decision {
	f.t.Helper()
	d := f.decide(now, cfg)
	f.commit(now, d)
	return d
}

// checkDecision checks the shape of a decision: deliveries match
// placements, dead letters match dead-letter events, every event validates.
func checkDecision(t tb, pool string, d Decision) {
	t.Helper()
	var placed []events.AllocPlacedData
	dead := 0
	for _, data := range d.Events {
		if err := data.Validate(); err != nil {
			t.Fatalf("decision %s does not validate: %v", data.EventType(), err)
		}
		switch v := data.(type) {
		case events.AllocPlacedData:
			placed = append(placed, v)
		case events.EvalDeadLetteredData:
			dead++
		}
	}
	if len(placed) != len(d.Deliveries) || len(placed) != d.Stats.Placed {
		t.Fatalf("%d placements, %d deliveries, stats %d", len(placed), len(d.Deliveries), d.Stats.Placed)
	}
	for i, a := range placed {
		r := d.Deliveries[i]
		if r.AllocID != a.AllocID || r.EvalID != a.EvalID || r.WorkerID != a.WorkerID || r.PoolID != pool ||
			r.Size != a.Size || r.Attempt != a.Attempt || !r.Deadline.Equal(a.Deadline) || r.DatasetID != a.DatasetID {
			t.Fatalf("delivery %d %+v does not match placement %+v", i, r, a)
		}
		if a.AllocID != AllocID(pool, a.EvalID, a.Attempt) {
			t.Fatalf("placement %+v: alloc id is not AllocID(pool, eval, attempt)", a)
		}
	}
	if dead != len(d.DeadLetters) {
		t.Fatalf("%d dead-letter events, %d records", dead, len(d.DeadLetters))
	}
}

// Builders of event data.

func created(s events.Strategy, wait time.Duration) events.PoolCreatedData {
	return events.PoolCreatedData{Strategy: s, LocalityWaitMs: events.ToMillis(wait)}
}

func topicOf(w string) string { return "line.allocs." + testPool + "." + w }

func registered(id string, capacity int64, deadline time.Time, datasets ...string) events.WorkerRegisteredData {
	return events.WorkerRegisteredData{WorkerID: id, Capacity: capacity, Topic: topicOf(id), Deadline: deadline,
		Datasets: datasets, ReplicaDeadline: deadline}
}

func heartbeat(id string, deadline time.Time, datasets []string, allocs ...string) events.WorkerHeartbeatData {
	return events.WorkerHeartbeatData{WorkerID: id, Deadline: deadline, Datasets: datasets, ReplicaDeadline: deadline,
		Allocs: allocs, AllocDeadline: deadline}
}

func submitted(id string, size int64, dataset string) events.EvalSubmittedData {
	return events.EvalSubmittedData{EvalID: id, Size: size, DatasetID: dataset, Payload: json.RawMessage(`{"e":"` + id + `"}`)}
}

// Views of a decision.

func show(d Decision) string {
	var b strings.Builder
	for _, e := range d.Events {
		fmt.Fprintf(&b, "%s %+v\n", e.EventType(), e)
	}
	fmt.Fprintf(&b, "topics %v reservation %+v stats %+v", d.TopicsToDelete, d.Reservation, d.Stats)
	return b.String()
}

// placements returns "eval>worker" for each placement, in order.
func placements(d Decision) []string {
	var out []string
	for _, e := range d.Events {
		if a, ok := e.(events.AllocPlacedData); ok {
			out = append(out, a.EvalID+">"+a.WorkerID)
		}
	}
	return out
}

// types returns the event types of a decision, in order.
func types(d Decision) []string {
	var out []string
	for _, e := range d.Events {
		out = append(out, string(e.EventType()))
	}
	return out
}

func placed(t tb, d Decision, eval string) events.AllocPlacedData {
	t.Helper()
	for _, e := range d.Events {
		if a, ok := e.(events.AllocPlacedData); ok && a.EvalID == eval {
			return a
		}
	}
	t.Fatalf("eval %s not placed:\n%s", eval, show(d))
	return events.AllocPlacedData{}
}

func eq[T comparable](t tb, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func eqSlice(t tb, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

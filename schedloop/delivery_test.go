package schedloop_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/state"
	"github.com/line-sched/line/testkit"
)

// TestDeliveryToWorkerTopics: evals submitted over HTTP are placed by the
// scheduler and delivered on the right worker topics, once each, with
// their payload; evals naming a dataset go to its holder while it has
// room; no worker ever holds more than its capacity at any offset.
func TestDeliveryToWorkerTopics(t *testing.T) {
	e := newEnv(t, nil, longTTLs)
	const pool = "p1"
	e.createPool(pool, events.Spread, 0)
	topics := map[string]string{ // worker -> topic
		"wa": e.registerWorker(pool, "wa", 3, "d"),
		"wb": e.registerWorker(pool, "wb", 3),
		"wc": e.registerWorker(pool, "wc", 3),
	}
	loop, _ := startLoop(t, e.cfg, e.brokers, "one")

	payloads := map[string]string{} // eval id -> payload as sent
	var evs []evalReq
	mk := func(id, dataset string, size int64, payload string) evalReq {
		payloads[id] = payload
		ev := evalReq{ID: id, Dataset: dataset, Size: size, Payload: payload}
		evs = append(evs, ev)
		return ev
	}
	placed := func(n int) func(*state.State) bool {
		return func(st *state.State) bool {
			p := st.Pool(pool)
			if p == nil {
				return false
			}
			k := 0
			for _, ev := range p.Evals() {
				if ev.Status() == state.EvalPlaced || ev.Status() == state.EvalCompleted {
					k++
				}
			}
			return k >= n
		}
	}

	// 1. Three evals naming d fit on its holder: all go there.
	if err := e.submitBatch(pool, []evalReq{
		mk("d-1", "d", 1, `{"n":1,"s":"caf\u00e9 ☃","nested":{"a":[1,2.5,true,null]}}`),
		mk("d-2", "d", 1, `"just a string"`),
		mk("d-3", "d", 1, `[1,2,3]`),
	}); err != nil {
		t.Fatal(err)
	}
	e.waitView(20*time.Second, "3 evals placed", placed(3))
	e.view(func(st *state.State) {
		for _, id := range []string{"d-1", "d-2", "d-3"} {
			ev := st.Pool(pool).Eval(id)
			a := st.Pool(pool).Alloc(ev.AllocID)
			if a == nil || a.WorkerID() != "wa" || a.Placement().Locality != events.LocalityHit {
				t.Errorf("eval %s: alloc %+v, want it on wa with locality hit", id, a)
			}
		}
	})

	// 2. The holder is full: the next eval naming d goes elsewhere (the
	// pool's locality wait is 0).
	e.submit(pool, mk("d-4", "d", 1, `{"n":4}`))
	// 3. Evals without a dataset, one of size 2, fill the rest: 9 units.
	e.submit(pool, mk("n-1", "", 1, `{"html":"<b>&amp;</b>","n":5}`))
	e.submit(pool, mk("n-2", "", 2, `12345`))
	e.submit(pool, mk("n-3", "", 1, ""))
	e.submit(pool, mk("n-4", "", 1, `{"html":"<b>&amp;</b>",  "spaced" : [ 1 , 2 ]}`))
	e.waitView(20*time.Second, "8 evals placed", placed(8))

	// 4. Nothing fits any more: these wait.
	e.submit(pool, mk("d-5", "d", 1, `{"n":9}`))
	e.submit(pool, mk("n-5", "", 1, `{"n":10}`))
	time.Sleep(1500 * time.Millisecond) // several rounds
	counts := e.countEvals(pool)
	if counts[state.EvalPlaced] != 8 || counts[state.EvalPending] != 2 {
		t.Fatalf("evals by status %v, want 8 placed and 2 pending (9 units of capacity, 9 placed)", counts)
	}

	// 5. A completion on the holder frees a unit: the first pending eval,
	// which names d, takes it there.
	var allocD1 string
	e.view(func(st *state.State) { allocD1 = evalOf(st, pool, "d-1").AllocID })
	e.do("POST", "/v1/pools/"+pool+"/allocs/"+allocD1+"/complete", map[string]any{"status": "succeeded"}, 202)
	e.waitView(20*time.Second, "d-5 placed", func(st *state.State) bool {
		return evalOf(st, pool, "d-5").Status() == state.EvalPlaced
	})
	time.Sleep(500 * time.Millisecond)
	if c := e.countEvals(pool); c[state.EvalPending] != 1 || c[state.EvalPlaced] != 8 || c[state.EvalCompleted] != 1 {
		t.Errorf("evals by status %v, want 8 placed, 1 completed, 1 pending", c)
	}

	// The log, folded event by event: nothing rejected, no worker over
	// capacity at any offset, and every placement of an eval naming d
	// honours locality.
	log := testkit.ReadEvents(t, e.brokers, e.cfg.Topics.Events()).OfPool(pool)
	f := fold(t, log, func(st *state.State, ev testkit.Event) {
		d, ok := ev.Data.(events.AllocPlacedData)
		if !ok {
			return
		}
		p := st.Pool(pool)
		if d.DatasetID == "" {
			if d.Locality != events.LocalityNone {
				t.Errorf("%s: eval %s without dataset placed with locality %s", ev.Position, d.EvalID, d.Locality)
			}
			return
		}
		holder := p.Worker("wa")
		room := holder != nil && holder.Free() >= d.Size && holder.Deadline.After(ev.At)
		switch {
		case room && (d.WorkerID != "wa" || d.Locality != events.LocalityHit):
			t.Errorf("%s: eval %s naming d placed on %s (%s) while holder wa had %d free", ev.Position, d.EvalID, d.WorkerID, d.Locality, holder.Free())
		case !room && (d.WorkerID == "wa" || d.Locality != events.LocalityMiss):
			t.Errorf("%s: eval %s naming d placed on %s (%s) while holder wa was full", ev.Position, d.EvalID, d.WorkerID, d.Locality)
		}
	})
	if len(f.rejected) > 0 {
		t.Errorf("the fold rejected %d events: %v", len(f.rejected), f.rejected)
	}
	placements := log.OfType(events.AllocPlaced)
	if len(placements) != 9 {
		t.Errorf("%d alloc.placed on the log, want 9", len(placements))
	}
	byAlloc := map[string]events.AllocPlacedData{}
	for _, ev := range placements {
		d := ev.Data.(events.AllocPlacedData)
		if _, dup := byAlloc[d.AllocID]; dup {
			t.Errorf("alloc %s placed twice", d.AllocID)
		}
		byAlloc[d.AllocID] = d
		if d.Topic != topics[d.WorkerID] {
			t.Errorf("alloc %s: topic %q, want %q", d.AllocID, d.Topic, topics[d.WorkerID])
		}
		if len(f.placedOK[d.EvalID]) != 1 {
			t.Errorf("eval %s placed %d times", d.EvalID, len(f.placedOK[d.EvalID]))
		}
	}

	// Every worker topic, read_committed: each record is an alloc.placed
	// of this worker, delivered once, with the submitted payload.
	delivered := map[string]bool{}
	for worker, topic := range topics {
		recs, raw := allocRecords(t, e.brokers, topic)
		for i, r := range recs {
			if string(raw[i].Key) != worker {
				t.Errorf("%s offset %d: key %q, want the worker id %q", topic, raw[i].Offset, raw[i].Key, worker)
			}
			d, ok := byAlloc[r.AllocID]
			if !ok {
				t.Errorf("%s: record of alloc %s that no alloc.placed names: %+v", topic, r.AllocID, r)
				continue
			}
			if delivered[r.AllocID] {
				t.Errorf("alloc %s delivered twice", r.AllocID)
			}
			delivered[r.AllocID] = true
			want := events.AllocRecord{AllocID: d.AllocID, EvalID: d.EvalID, PoolID: pool, WorkerID: d.WorkerID,
				DatasetID: d.DatasetID, Size: d.Size, Attempt: d.Attempt, Deadline: d.Deadline}
			got := r
			got.Payload = nil
			if r.WorkerID != worker || !reflect.DeepEqual(got, want) {
				t.Errorf("%s: record %+v does not match alloc.placed %+v", topic, r, want)
			}
			// The payload arrives as sent: byte for byte when sent
			// compact, else compacted (encoding/json drops the
			// insignificant whitespace of a raw JSON value); never
			// re-escaped.
			sent := payloads[r.EvalID]
			if wantPayload := compact(t, sent); !bytes.Equal(r.Payload, wantPayload) {
				t.Errorf("eval %s: payload %q, want %q (sent as %q)", r.EvalID, r.Payload, wantPayload, sent)
			}
		}
	}
	for id := range byAlloc {
		if !delivered[id] {
			t.Errorf("alloc %s (eval %s on %s) was never delivered", id, byAlloc[id].EvalID, byAlloc[id].WorkerID)
		}
	}
	if s := loop.Stats(); s.Rejected != 0 || s.Poison != 0 {
		t.Errorf("loop stats %+v: want nothing rejected or poison", s)
	}
}

// compact is s without insignificant whitespace.
func compact(t *testing.T, s string) []byte {
	if s == "" {
		return nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatalf("payload %q: %v", s, err)
	}
	return b.Bytes()
}

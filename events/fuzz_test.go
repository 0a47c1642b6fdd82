package events_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/line-sched/line/events"
)

// FuzzUnmarshal checks that the fast path and the reference decoder agree,
// that decoding never panics, that every failure is a
// *DecodeError, and that whatever decodes is a valid envelope that encodes
// and decodes again to an equal envelope (and to the same bytes from then
// on).
func FuzzUnmarshal(f *testing.F) {
	for _, e := range exampleEnvelopes(f) {
		f.Add(mustMarshal(f, e))
	}
	minimal := []events.Data{
		events.PoolCreatedData{Strategy: events.Spread},
		events.WorkerRegisteredData{WorkerID: "w", Capacity: 1, Topic: "t", Deadline: exampleAt, ReplicaDeadline: exampleAt},
		events.WorkerHeartbeatData{WorkerID: "w", Deadline: exampleAt, ReplicaDeadline: exampleAt, AllocDeadline: exampleAt},
		events.EvalSubmittedData{EvalID: "e", Size: 1},
		events.EvalDeadLetteredData{EvalID: "e", Reason: "r"},
		events.AllocPlacedData{AllocID: "a", EvalID: "e", WorkerID: "w", Size: 1, Attempt: 1, Deadline: exampleAt,
			Strategy: events.Spread, Locality: events.LocalityNone},
		events.AllocCompletedData{AllocID: "a", Status: events.Succeeded},
	}
	for _, d := range minimal {
		f.Add(mustMarshal(f, events.New("p", exampleAt, d)))
	}
	f.Add([]byte(envJSON("eval.submitted", `{"eval_id":"e","size":1,"payload":{ "a" : [1, 2.50, "<&>"] },"dataset_id":""}`)))
	f.Add([]byte(envJSON("worker.heartbeat", `{"worker_id":"w","deadline":"2026-11-26T20:38:45.5+01:00","replica_deadline":"2026-11-26T19:38:45Z","alloc_deadline":"2026-11-26T19:38:45Z","datasets":[],"allocs":null}`)))
	f.Add([]byte(envJSON("pool.deleted", "{}")))
	f.Add([]byte(`{"id":"x","type":"pool.deleted","v":1,"pool":"p","at":"2026-11-26T19:38:45.123+05:00","data":{}}`))
	// Data before type: the fast path cannot decode it in place.
	f.Add([]byte(`{"data":{"alloc_id":"a","eval_id":"e","worker_id":"w","size":1,"attempt":1,"deadline":"2026-11-26T19:38:45.1Z","topic":"t","strategy":"spread","locality":"none","candidates":0,"waited_ms":0,"basis":0},"id":"x","type":"alloc.placed","v":1,"pool":"p","at":"2026-11-26T19:38:45.123Z"}`))
	f.Add([]byte(`{"id":"x","type":"eval.submitted","v":1,"pool":"p","at":"2026-11-26T19:38:45Z","data":{"eval_id":"e","size":1} }`))
	f.Add([]byte(`{}`))
	f.Add([]byte(``))

	f.Fuzz(func(t *testing.T, b []byte) {
		// The fast path decodes exactly like the reference, or leaves b to it.
		checkSameDecode(t, b)
		e1, err := events.Unmarshal(b)
		if err != nil {
			var de *events.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error is %T, not a *DecodeError: %v", err, err)
			}
			if e1.Data != nil {
				t.Fatalf("failed decode returned data %#v", e1.Data)
			}
			return
		}
		switch {
		case e1.Data == nil || e1.Data.EventType() != e1.Type:
			t.Fatalf("decoded %s with data %#v", e1.Type, e1.Data)
		case e1.ID == "" || e1.Pool == "" || e1.V != events.SchemaVersion:
			t.Fatalf("decoded envelope lacks id, pool or version: %+v", e1)
		case e1.At.Location() != time.UTC || e1.At.Nanosecond()%int(time.Millisecond) != 0:
			t.Fatalf("decoded at %v is not UTC milliseconds", e1.At)
		case reflect.TypeOf(e1.Data).Kind() == reflect.Pointer:
			t.Fatalf("decoded data is a pointer %T", e1.Data)
		}
		if err := e1.Data.Validate(); err != nil {
			t.Fatalf("decoded data does not validate: %v", err)
		}
		if y := e1.At.Year(); y < 0 || y > 9999 {
		}

		b2, err := events.Marshal(e1)
		if err != nil {
			t.Fatalf("decoded envelope does not marshal: %v", err)
		}
		e2, err := events.Unmarshal(b2)
		if err != nil {
			var inv *events.InvalidFieldError
			if errors.As(err, &inv) && inv.Field == "payload" {
			}
			t.Fatalf("re-marshalled envelope does not decode: %v\n%s", err, b2)
		}
		if !reflect.DeepEqual(canonical(t, e1), canonical(t, e2)) {
			t.Fatalf("round trip differs:\n  in %#v\n out %#v", e1, e2)
		}
		b3, err := events.Marshal(e2)
		if err != nil || !bytes.Equal(b2, b3) {
			t.Fatalf("encoding is not stable (err %v):\n%s\n%s", err, b2, b3)
		}
		r, err := events.Record("t", e1)
		if err != nil {
			t.Fatal(err)
		}
		e4, err := events.FromRecord(r)
		if err != nil || !reflect.DeepEqual(e4, e2) {
			t.Fatalf("record round trip (err %v):\n%#v\n%#v", err, e4, e2)
		}
	})
}

// canonical returns e with the differences that JSON cannot carry removed:
// times in UTC, empty lists as nil, payloads compacted and escaped.
func canonical(t *testing.T, e events.Envelope) events.Envelope {
	v := reflect.New(reflect.TypeOf(e.Data)).Elem()
	v.Set(reflect.ValueOf(e.Data))
	for i := range v.NumField() {
		fv := v.Field(i)
		switch x := fv.Interface().(type) {
		case time.Time:
			fv.Set(reflect.ValueOf(x.UTC()))
		case []string:
			if len(x) == 0 {
				fv.Set(reflect.Zero(fv.Type()))
			}
		case json.RawMessage:
			if x == nil {
				break
			}
			var c, esc bytes.Buffer
			if err := json.Compact(&c, x); err != nil {
				t.Fatalf("payload %q is not JSON: %v", x, err)
			}
			json.HTMLEscape(&esc, c.Bytes())
			fv.Set(reflect.ValueOf(json.RawMessage(esc.Bytes())))
		}
	}
	e.Data = v.Interface().(events.Data)
	return e
}

// TestCanonicalSeesDifferences makes sure the fuzz comparison is not blind.
func TestCanonicalSeesDifferences(t *testing.T) {
	a := events.New("p", exampleAt, events.EvalSubmittedData{EvalID: "e", Size: 1, Payload: json.RawMessage(`{"a": 1}`)})
	b := a
	b.Data = events.EvalSubmittedData{EvalID: "e", Size: 1, Payload: json.RawMessage(`{"a":1}`)}
	if !reflect.DeepEqual(canonical(t, a), canonical(t, b)) {
		t.Error("payloads differing in spaces only compare unequal")
	}
	for _, d := range []events.Data{
		events.EvalSubmittedData{EvalID: "e", Size: 1, Payload: json.RawMessage(`{"a":2}`)},
		events.EvalSubmittedData{EvalID: "e", Size: 2, Payload: json.RawMessage(`{"a":1}`)},
		events.EvalSubmittedData{EvalID: "f", Size: 1, Payload: json.RawMessage(`{"a":1}`)},
	} {
		c := a
		c.Data = d
		if reflect.DeepEqual(canonical(t, a), canonical(t, c)) {
			t.Errorf("%#v and %#v compare equal", a.Data, d)
		}
	}
	h := events.New("p", exampleAt, events.WorkerHeartbeatData{WorkerID: "w", Deadline: exampleAt.In(time.FixedZone("x", 7200)), Datasets: []string{}})
	k := h
	k.Data = events.WorkerHeartbeatData{WorkerID: "w", Deadline: exampleAt}
	if !reflect.DeepEqual(canonical(t, h), canonical(t, k)) {
		t.Error("equal instants in other zones or empty vs nil lists compare unequal")
	}
	k.Data = events.WorkerHeartbeatData{WorkerID: "w", Deadline: exampleAt, Datasets: []string{"d"}}
	if reflect.DeepEqual(canonical(t, h), canonical(t, k)) {
		t.Error("different dataset lists compare equal")
	}
	if strings.Contains(string(mustMarshal(t, a)), "\n") {
		t.Error("Marshal output spans lines")
	}
}

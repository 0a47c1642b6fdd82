package events_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/line-sched/line/events"
)

const validID = "01jdx0k7q4vyb6m9w2c3e5f8gh"

// envJSON is an envelope of type typ with the given data, otherwise valid.
func envJSON(typ, data string) string {
	return `{"id":"` + validID + `","type":"` + typ + `","v":1,"pool":"p1","at":"2026-11-26T19:38:45.123Z","data":` + data + `}`
}

// dataJSON is the JSON of the example data of typ with edit applied.
func dataJSON(t *testing.T, typ events.Type, edit func(m map[string]any)) string {
	t.Helper()
	b, err := json.Marshal(exampleData()[typ])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func set(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
func del(k string) func(map[string]any)        { return func(m map[string]any) { delete(m, k) } }

type decodeCase struct {
	name    string
	in      string
	is      error  // errors.Is target, if any
	missing string // field of the expected *MissingFieldError
	invalid string // field of the expected *InvalidFieldError
	typ     events.Type
}

// requiredData lists, per type, the data fields whose absence (or zero
// value) makes the event invalid as a *MissingFieldError.
var requiredData = map[events.Type][]string{
	events.PoolDisbanded:    {"delete_at"},
	events.WorkerRegistered: {"worker_id", "capacity", "topic", "deadline", "replica_deadline"},
	events.WorkerHeartbeat:  {"worker_id", "deadline", "replica_deadline", "alloc_deadline"},
	events.WorkerExpired:    {"worker_id", "deadline"},
	events.ReplicaExpired:   {"worker_id", "dataset_id", "deadline"},
	events.EvalSubmitted:    {"eval_id", "size"},
	events.EvalRejected:     {"eval_id", "reason"},
	events.EvalRequeued:     {"eval_id", "alloc_id", "attempt"},
	events.EvalDeadLettered: {"eval_id", "reason"},
	events.AllocPlaced:      {"alloc_id", "eval_id", "worker_id", "size", "attempt", "deadline"},
	events.AllocCompleted:   {"alloc_id"},
	events.AllocExpired:     {"alloc_id"},
}

func decodeCases(t *testing.T) []decodeCase {
	valid := envJSON("pool.deleted", "{}")
	cases := []decodeCase{
		{name: "empty input", in: ""},
		{name: "truncated", in: valid[:len(valid)-1]},
		{name: "not an object", in: `["pool.deleted"]`},
		{name: "string", in: `"pool.deleted"`},
		{name: "number", in: `1`},
		{name: "json null", in: `null`, missing: "id"},
		{name: "unknown envelope field", in: strings.Replace(valid, `"v":1`, `"v":1,"extra":true`, 1)},
		{name: "unknown data field", in: envJSON("pool.created", `{"strategy":"spread","locality_wait_ms":0,"bogus":1}`), typ: events.PoolCreated},
		{name: "unknown data field on empty data", in: envJSON("pool.deleted", `{"x":1}`), typ: events.PoolDeleted},
		{name: "unknown type", in: envJSON("pool.exploded", "{}"), is: events.ErrUnknownType, typ: "pool.exploded"},
		{name: "type of other case", in: envJSON("Pool.Deleted", "{}"), is: events.ErrUnknownType},
		{name: "unknown version 2", in: strings.Replace(valid, `"v":1`, `"v":2`, 1), is: events.ErrUnknownVersion, typ: events.PoolDeleted},
		{name: "version 0", in: strings.Replace(valid, `"v":1`, `"v":0`, 1), is: events.ErrUnknownVersion},
		{name: "version missing", in: strings.Replace(valid, `"v":1,`, ``, 1), is: events.ErrUnknownVersion},
		{name: "version as string", in: strings.Replace(valid, `"v":1`, `"v":"1"`, 1)},
		{name: "version fractional", in: strings.Replace(valid, `"v":1`, `"v":1.5`, 1)},
		{name: "missing id", in: strings.Replace(valid, `"id":"`+validID+`",`, ``, 1), missing: "id"},
		{name: "empty id", in: strings.Replace(valid, validID, ``, 1), missing: "id"},
		{name: "missing type", in: strings.Replace(valid, `"type":"pool.deleted",`, ``, 1), missing: "type"},
		{name: "missing pool", in: strings.Replace(valid, `"pool":"p1",`, ``, 1), missing: "pool"},
		{name: "empty pool", in: strings.Replace(valid, `"pool":"p1"`, `"pool":""`, 1), missing: "pool"},
		{name: "missing at", in: strings.Replace(valid, `"at":"2026-11-26T19:38:45.123Z",`, ``, 1), missing: "at"},
		{name: "missing data", in: strings.Replace(valid, `,"data":{}`, ``, 1), missing: "data"},
		{name: "null data", in: envJSON("pool.deleted", "null"), missing: "data"},
		{name: "data not an object", in: envJSON("pool.deleted", `[]`)},
		{name: "data a string", in: envJSON("pool.deleted", `"x"`)},
		{name: "bad at", in: strings.Replace(valid, `2026-11-26T19:38:45.123Z`, `yesterday`, 1), typ: events.PoolDeleted},
		{name: "at without zone", in: strings.Replace(valid, `2026-11-26T19:38:45.123Z`, `2026-11-26T19:38:45.123`, 1)},
		{name: "at as number", in: strings.Replace(valid, `"2026-11-26T19:38:45.123Z"`, `1795722000000`, 1)},
		{name: "wrong field type in data", in: envJSON("worker.registered", `{"worker_id":"w","capacity":"8","topic":"t","deadline":"2026-11-26T19:39:15.123Z","replica_deadline":"2026-11-26T19:39:15.123Z"}`)},
		{name: "bad time in data", in: envJSON("pool.disbanded", `{"delete_at":"soon"}`)},
		{name: "trailing garbage", in: valid + " x"},
		{name: "trailing second object", in: valid + "{}"},
		{name: "trailing second envelope", in: valid + "\n" + valid},
		{name: "trailing brace", in: valid + "}"},
		{name: "trailing bracket", in: valid + "]"},
		{name: "field name in other case", in: strings.Replace(valid, `"pool":`, `"Pool":`, 1)},
		{name: "duplicate field", in: strings.Replace(valid, `"pool":"p1"`, `"pool":"p1","pool":"p2"`, 1)},
		{name: "at whose UTC year is 10000", in: strings.Replace(valid, `2026-11-26T19:38:45.123Z`, `9999-12-31T23:59:59.999-23:59`, 1)},

		// Validation of data values.
		{name: "pool.created missing strategy", in: envJSON("pool.created", `{"locality_wait_ms":0}`), invalid: "strategy", typ: events.PoolCreated},
		{name: "pool.created unknown strategy", in: envJSON("pool.created", `{"strategy":"random","locality_wait_ms":0}`), invalid: "strategy", typ: events.PoolCreated},
		{name: "pool.created negative wait", in: envJSON("pool.created", `{"strategy":"spread","locality_wait_ms":-1}`), invalid: "locality_wait_ms", typ: events.PoolCreated},
		{name: "alloc.placed unknown strategy", in: envJSON("alloc.placed", dataJSON(t, events.AllocPlaced, set("strategy", "first"))), invalid: "strategy", typ: events.AllocPlaced},
		{name: "alloc.placed unknown locality", in: envJSON("alloc.placed", dataJSON(t, events.AllocPlaced, set("locality", "near"))), invalid: "locality", typ: events.AllocPlaced},
		{name: "alloc.placed empty locality", in: envJSON("alloc.placed", dataJSON(t, events.AllocPlaced, del("locality"))), invalid: "locality", typ: events.AllocPlaced},
		{name: "alloc.completed unknown status", in: envJSON("alloc.completed", `{"alloc_id":"a","status":"done"}`), invalid: "status", typ: events.AllocCompleted},
		{name: "alloc.completed missing status", in: envJSON("alloc.completed", `{"alloc_id":"a"}`), invalid: "status", typ: events.AllocCompleted},
		{name: "payload over 64 KiB", in: envJSON("eval.submitted", `{"eval_id":"e","size":1,"payload":"`+strings.Repeat("x", events.MaxPayloadBytes-1)+`"}`), invalid: "payload", typ: events.EvalSubmitted},
		{name: "negative size", in: envJSON("eval.submitted", `{"eval_id":"e","size":-1}`), missing: "size", typ: events.EvalSubmitted},
		{name: "zero capacity", in: envJSON("worker.registered", dataJSON(t, events.WorkerRegistered, set("capacity", 0))), missing: "capacity", typ: events.WorkerRegistered},
		{name: "zero time deadline", in: envJSON("worker.expired", `{"worker_id":"w","deadline":"0001-01-01T00:00:00Z"}`), missing: "deadline", typ: events.WorkerExpired},
	}
	for _, typ := range events.Types {
		for _, field := range requiredData[typ] {
			cases = append(cases,
				decodeCase{name: fmt.Sprintf("%s without %s", typ, field), in: envJSON(string(typ), dataJSON(t, typ, del(field))), missing: field, typ: typ},
				decodeCase{name: fmt.Sprintf("%s with empty %s", typ, field), in: envJSON(string(typ), dataJSON(t, typ, set(field, zeroLike(exampleField(t, typ, field))))), missing: field, typ: typ},
			)
		}
	}
	return cases
}

// exampleField is the JSON value of field in the example data of typ.
func exampleField(t *testing.T, typ events.Type, field string) any {
	var v any
	dataJSON(t, typ, func(m map[string]any) { v = m[field] })
	if v == nil {
		t.Fatalf("example of %s has no field %s", typ, field)
	}
	return v
}

// zeroLike is the JSON zero value a producer would write for a field like v.
func zeroLike(v any) any {
	switch x := v.(type) {
	case float64:
		return 0
	case string:
		if strings.HasSuffix(x, "Z") && strings.Contains(x, "T") {
			return "0001-01-01T00:00:00Z"
		}
		return ""
	}
	return nil
}

func TestUnmarshalStrict(t *testing.T) {
	for _, c := range decodeCases(t) {
		t.Run(c.name, func(t *testing.T) {
			var (
				e   events.Envelope
				err error
			)
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("Unmarshal panicked: %v", p)
					}
				}()
				e, err = events.Unmarshal([]byte(c.in))
			}()
			checkDecodeError(t, c, e, err)
			checkSameDecode(t, []byte(c.in))

			// The same bytes on a record fail the same way.
			_, rerr := events.FromRecord(&kgo.Record{Key: []byte("p1"), Value: []byte(c.in)})
			checkDecodeError(t, c, events.Envelope{}, rerr)
		})
	}
}

func checkDecodeError(t *testing.T, c decodeCase, e events.Envelope, err error) {
	t.Helper()
	var de *events.DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v (%T), want a *DecodeError\ninput: %.300s\ndecoded: %+v", err, err, c.in, e)
	}
	if de.Error() == "" || de.Reason == "" || de.Err == nil {
		t.Errorf("DecodeError %#v lacks a reason or cause", de)
	}
	if e.Data != nil {
		t.Errorf("failed decode returned data %#v", e.Data)
	}
	if c.is != nil && !errors.Is(err, c.is) {
		t.Errorf("err = %v, want errors.Is %v", err, c.is)
	}
	for _, s := range []error{events.ErrUnknownType, events.ErrUnknownVersion, events.ErrKeyMismatch} {
		if s != c.is && errors.Is(err, s) {
			t.Errorf("err = %v is unexpectedly %v", err, s)
		}
	}
	var mf *events.MissingFieldError
	if got := errors.As(err, &mf); got != (c.missing != "") {
		t.Errorf("err = %v: MissingFieldError = %v, want field %q", err, got, c.missing)
	} else if got && mf.Field != c.missing {
		t.Errorf("missing field = %q, want %q (%v)", mf.Field, c.missing, err)
	} else if got && c.typ != "" && mf.Type != c.typ {
		t.Errorf("missing field type = %q, want %q", mf.Type, c.typ)
	}
	var inv *events.InvalidFieldError
	if got := errors.As(err, &inv); got != (c.invalid != "") {
		t.Errorf("err = %v: InvalidFieldError = %v, want field %q", err, got, c.invalid)
	} else if got && (inv.Field != c.invalid || inv.Type != c.typ || inv.Reason == "") {
		t.Errorf("invalid field = %+v, want field %q of %s with a reason", inv, c.invalid, c.typ)
	}
	if c.typ != "" && de.Type != c.typ {
		t.Errorf("DecodeError.Type = %q, want %q", de.Type, c.typ)
	}
}

func TestPayloadLimit(t *testing.T) {
	// A JSON string of exactly 64 KiB including its quotes is accepted.
	at := `"` + strings.Repeat("x", events.MaxPayloadBytes-2) + `"`
	e, err := events.Unmarshal([]byte(envJSON("eval.submitted", `{"eval_id":"e","size":1,"payload":`+at+`}`)))
	if err != nil {
		t.Fatalf("payload of exactly %d bytes rejected: %v", events.MaxPayloadBytes, err)
	}
	if got := len(e.Data.(events.EvalSubmittedData).Payload); got != events.MaxPayloadBytes {
		t.Errorf("payload length = %d", got)
	}
	if events.MaxPayloadBytes != 64<<10 {
		t.Errorf("MaxPayloadBytes = %d, want 64 KiB", events.MaxPayloadBytes)
	}
	d := events.EvalSubmittedData{EvalID: "e", Size: 1, Payload: json.RawMessage(`"` + strings.Repeat("x", events.MaxPayloadBytes-1) + `"`)}
	var inv *events.InvalidFieldError
	if err := d.Validate(); !errors.As(err, &inv) || inv.Field != "payload" {
		t.Errorf("Validate of a %d byte payload = %v, want invalid payload", len(d.Payload), err)
	}
}

// TestMarshalKeepsValidPayloadDecodable: whatever passes Validate must
// survive Marshal and Unmarshal, or line writes records it cannot read.
func TestMarshalKeepsValidPayloadDecodable(t *testing.T) {
	d := events.EvalSubmittedData{EvalID: "e", Size: 1, Payload: json.RawMessage(`"` + strings.Repeat("<", 20000) + `"`)}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	b := mustMarshal(t, events.New(examplePool, exampleAt, d))
	if _, err := events.Unmarshal(b); err != nil {
		t.Errorf("line wrote an event it cannot read (%d bytes): %v", len(b), err)
	}
}

func TestUnmarshalNormalizesAt(t *testing.T) {
	for in, want := range map[string]string{
		"2026-11-26T19:38:45.123Z":            exampleAtText,
		"2026-11-26T19:38:45.123456789Z":      exampleAtText,
		"2026-11-26T20:38:45.123999+01:00":    exampleAtText,
		"2026-11-26T19:38:45Z":                "2026-11-26T19:38:45.000Z",
		"2026-11-26T19:38:45.1Z":              "2026-11-26T19:38:45.100Z",
		"2026-11-27T00:08:45.123000001+04:30": exampleAtText,
	} {
		e, err := events.Unmarshal([]byte(strings.Replace(envJSON("pool.deleted", "{}"), exampleAtText, in, 1)))
		if err != nil {
			t.Errorf("at %q: %v", in, err)
			continue
		}
		if e.At.Location() != time.UTC {
			t.Errorf("at %q decoded in %v, want UTC", in, e.At.Location())
		}
		if got := events.FormatTime(e.At); got != want {
			t.Errorf("at %q decoded as %q, want %q", in, got, want)
		}
	}
}

func TestFromRecordKey(t *testing.T) {
	e := events.New("p1", exampleAt, events.PoolDeletedData{})
	r, err := events.Record("line.events", e)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"p2", "", "P1", "p1 "} {
		bad := *r
		bad.Key = []byte(key)
		got, err := events.FromRecord(&bad)
		var de *events.DecodeError
		if !errors.As(err, &de) || !errors.Is(err, events.ErrKeyMismatch) {
			t.Errorf("key %q: err = %v, want a *DecodeError with ErrKeyMismatch", key, err)
			continue
		}
		if de.Type != events.PoolDeleted || got.Pool != "p1" {
			t.Errorf("key %q: DecodeError.Type = %q, envelope pool = %q", key, de.Type, got.Pool)
		}
	}
	r.Key = nil
	if _, err := events.FromRecord(r); !errors.Is(err, events.ErrKeyMismatch) {
		t.Errorf("nil key: err = %v, want ErrKeyMismatch", err)
	}
}

func TestErrorMessages(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&events.MissingFieldError{Field: "type"}, `missing required field "type"`},
		{&events.MissingFieldError{Type: events.EvalSubmitted, Field: "size"}, `eval.submitted: missing required field "size"`},
		{&events.InvalidFieldError{Type: events.AllocPlaced, Field: "locality", Reason: "bad"}, `alloc.placed: invalid field "locality": bad`},
		{&events.DecodeError{Reason: "malformed envelope", Err: errors.New("x")}, `decode event: malformed envelope: x`},
		{&events.DecodeError{Type: events.PoolCreated, Reason: "unknown version 2", Err: events.ErrUnknownVersion}, `decode pool.created event: unknown version 2: unknown event schema version`},
	} {
		if got := c.err.Error(); got != c.want {
			t.Errorf("Error() = %q, want %q", got, c.want)
		}
	}
}

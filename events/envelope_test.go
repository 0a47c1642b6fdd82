package events_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/line-sched/line/events"
)

func TestTypesAreClosedAndDistinct(t *testing.T) {
	if got := len(events.Types); got != 14 {
		t.Errorf("len(Types) = %d, want 14 (update tests and docs/events.md when adding a type)", got)
	}
	seen := map[events.Type]bool{}
	for _, typ := range events.Types {
		if seen[typ] {
			t.Errorf("type %s listed twice", typ)
		}
		seen[typ] = true
	}
	data := exampleData()
	for typ, d := range data {
		if !seen[typ] {
			t.Errorf("example type %s is not in events.Types", typ)
		}
		if d.EventType() != typ {
			t.Errorf("example data for %s says EventType %s", typ, d.EventType())
		}
		if err := d.Validate(); err != nil {
			t.Errorf("example data for %s does not validate: %v", typ, err)
		}
	}
}

func TestNewEnvelope(t *testing.T) {
	zone := time.FixedZone("CET", 3600)
	local := exampleAt.In(zone)
	e := events.New(examplePool, local, events.PoolDeletedData{})
	if e.Type != events.PoolDeleted || e.V != events.SchemaVersion || e.Pool != examplePool {
		t.Errorf("New = %+v", e)
	}
	if e.At.Location() != time.UTC || !e.At.Equal(exampleAt.Truncate(time.Millisecond)) || e.At.Nanosecond()%int(time.Millisecond) != 0 {
		t.Errorf("New At = %v, want %v in UTC truncated to ms", e.At, exampleAt.Truncate(time.Millisecond))
	}
	if err := events.ValidateID(events.EvalID, e.ID); err != nil || len(e.ID) != 26 {
		t.Errorf("New ID %q is not a ULID: %v", e.ID, err)
	}
	if got := events.FormatTime(local); got != exampleAtText {
		t.Errorf("FormatTime(%v) = %q, want %q", local, got, exampleAtText)
	}
	if got := events.FormatTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)); got != "2026-01-02T03:04:05.000Z" {
		t.Errorf("FormatTime of a whole second = %q, want three zero digits", got)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	for _, e := range exampleEnvelopes(t) {
		t.Run(string(e.Type), func(t *testing.T) {
			b := mustMarshal(t, e)

			// The wire shape: exactly the six envelope fields.
			var wire map[string]json.RawMessage
			if err := json.Unmarshal(b, &wire); err != nil {
				t.Fatalf("Marshal output is not a JSON object: %v\n%s", err, b)
			}
			keys := make([]string, 0, len(wire))
			for k := range wire {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if want := []string{"at", "data", "id", "pool", "type", "v"}; !slices.Equal(keys, want) {
				t.Errorf("envelope keys = %v, want %v", keys, want)
			}
			wantField := map[string]string{
				"id": strconv.Quote(e.ID), "type": strconv.Quote(string(e.Type)), "v": "1",
				"pool": strconv.Quote(examplePool), "at": strconv.Quote(exampleAtText),
			}
			for k, want := range wantField {
				if got := string(wire[k]); got != want {
					t.Errorf("%s = %s, want %s", k, got, want)
				}
			}
			if !bytes.HasPrefix(wire["data"], []byte("{")) {
				t.Errorf("data = %s, want an object", wire["data"])
			}

			got, err := events.Unmarshal(b)
			if err != nil {
				t.Fatalf("Unmarshal(Marshal(e)): %v\n%s", err, b)
			}
			if !reflect.DeepEqual(got, e) {
				t.Errorf("round trip differs:\n got %#v\nwant %#v", got, e)
			}
			// Decoding yields the value form that producers build, never a
			// pointer, so that one type switch sees every event.
			if reflect.TypeOf(got.Data) != reflect.TypeOf(e.Data) {
				t.Errorf("decoded data is %T, want %T", got.Data, e.Data)
			}
			if again := mustMarshal(t, got); !bytes.Equal(again, b) {
				t.Errorf("re-marshal differs:\n got %s\nwant %s", again, b)
			}
		})
	}
}

func TestMarshalOmitsEmptyOptionalFields(t *testing.T) {
	cases := []struct {
		data   events.Data
		absent []string
	}{
		{events.WorkerRegisteredData{WorkerID: "w", Capacity: 1, Topic: "t", Deadline: exampleAt, ReplicaDeadline: exampleAt}, []string{"datasets"}},
		{events.WorkerHeartbeatData{WorkerID: "w", Deadline: exampleAt, ReplicaDeadline: exampleAt, AllocDeadline: exampleAt}, []string{"datasets", "allocs"}},
		{events.EvalSubmittedData{EvalID: "e", Size: 1}, []string{"dataset_id", "payload"}},
		{events.EvalDeadLetteredData{EvalID: "e", Reason: "r"}, []string{"alloc_id"}},
		{events.AllocCompletedData{AllocID: "a", Status: events.Succeeded}, []string{"exit_code", "message"}},
	}
	for _, c := range cases {
		b := mustMarshal(t, events.New(examplePool, exampleAt, c.data))
		var wire struct{ Data map[string]json.RawMessage }
		if err := json.Unmarshal(b, &wire); err != nil {
			t.Fatal(err)
		}
		for _, k := range c.absent {
			if _, ok := wire.Data[k]; ok {
				t.Errorf("%s: empty optional field %q written: %s", c.data.EventType(), k, b)
			}
		}
		got, err := events.Unmarshal(b)
		if err != nil {
			t.Fatalf("%s: %v", c.data.EventType(), err)
		}
		if !reflect.DeepEqual(got.Data, c.data) {
			t.Errorf("%s: got %#v, want %#v", c.data.EventType(), got.Data, c.data)
		}
	}
	// An exit code of zero is not the same as no exit code.
	zero := events.AllocCompletedData{AllocID: "a", Status: events.Succeeded, ExitCode: int32p(0)}
	got, err := events.Unmarshal(mustMarshal(t, events.New(examplePool, exampleAt, zero)))
	if err != nil {
		t.Fatal(err)
	}
	if c := got.Data.(events.AllocCompletedData); c.ExitCode == nil || *c.ExitCode != 0 {
		t.Errorf("exit_code 0 lost in round trip: %#v", c)
	}
}

func TestMarshalErrors(t *testing.T) {
	e := events.New(examplePool, exampleAt, events.PoolDeletedData{})
	noData := e
	noData.Data = nil
	if _, err := events.Marshal(noData); err == nil {
		t.Error("Marshal without data succeeded")
	}
	mismatch := e
	mismatch.Type = events.PoolCreated
	if _, err := events.Marshal(mismatch); err == nil {
		t.Error("Marshal with type pool.created and data of pool.deleted succeeded")
	}
	if _, err := events.Record("t", mismatch); err == nil {
		t.Error("Record with mismatched type succeeded")
	}
	bad := events.New(examplePool, exampleAt, events.EvalSubmittedData{EvalID: "e", Size: 1, Payload: json.RawMessage(`{not json`)})
	if _, err := events.Marshal(bad); err == nil {
		t.Error("Marshal with an invalid JSON payload succeeded")
	}
}

func TestRecordRoundTrip(t *testing.T) {
	topics, err := events.NewTopics("line")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range exampleEnvelopes(t) {
		t.Run(string(e.Type), func(t *testing.T) {
			r, err := events.Record(topics.Events(), e)
			if err != nil {
				t.Fatal(err)
			}
			if r.Topic != "line.events" {
				t.Errorf("topic = %q", r.Topic)
			}
			if string(r.Key) != examplePool {
				t.Errorf("key = %q, want pool id %q", r.Key, examplePool)
			}
			if want := mustMarshal(t, e); !bytes.Equal(r.Value, want) {
				t.Errorf("value = %s, want Marshal output %s", r.Value, want)
			}
			want := []kgo.RecordHeader{{Key: "type", Value: []byte(e.Type)}, {Key: "v", Value: []byte("1")}}
			if !reflect.DeepEqual(r.Headers, want) {
				t.Errorf("headers = %v, want %v", r.Headers, want)
			}
			got, err := events.FromRecord(r)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, e) {
				t.Errorf("FromRecord differs:\n got %#v\nwant %#v", got, e)
			}
		})
	}
}

func TestMillis(t *testing.T) {
	if got := events.Millis(1500).Duration(); got != 1500*time.Millisecond {
		t.Errorf("Millis(1500).Duration() = %v", got)
	}
	if got := events.ToMillis(2*time.Second + 999*time.Microsecond); got != 2000 {
		t.Errorf("ToMillis truncation = %d, want 2000", got)
	}
}

func TestValidStrategyAndStatus(t *testing.T) {
	for s, want := range map[events.Strategy]bool{events.Spread: true, events.Binpack: true, "": false, "Spread": false, "random": false} {
		if got := s.Valid(); got != want {
			t.Errorf("Strategy(%q).Valid() = %v", s, got)
		}
	}
	for s, want := range map[events.CompletionStatus]bool{events.Succeeded: true, events.Failed: true, "": false, "ok": false} {
		if got := s.Valid(); got != want {
			t.Errorf("CompletionStatus(%q).Valid() = %v", s, got)
		}
	}
}

package events_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/line-sched/line/events"
)

func jsonKeys(t *testing.T, v any) []string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestAllocRecordJSON(t *testing.T) {
	full := events.AllocRecord{
		AllocID: "a-1", EvalID: "e-1", PoolID: "p", WorkerID: "w", DatasetID: "ds", Size: 2, Attempt: 1,
		Payload: json.RawMessage(`{"x":1}`), Deadline: time.Date(2026, 11, 26, 19, 39, 45, 123000000, time.UTC),
	}
	if got, want := jsonKeys(t, full), []string{"alloc_id", "attempt", "dataset_id", "deadline", "eval_id", "payload", "pool_id", "size", "worker_id"}; !slices.Equal(got, want) {
		t.Errorf("AllocRecord keys = %v, want %v", got, want)
	}
	if got, want := jsonKeys(t, events.AllocRecord{}), []string{"alloc_id", "attempt", "deadline", "eval_id", "pool_id", "size", "worker_id"}; !slices.Equal(got, want) {
		t.Errorf("empty AllocRecord keys = %v, want %v", got, want)
	}
	b, _ := json.Marshal(full)
	var back events.AllocRecord
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, full) {
		t.Errorf("AllocRecord round trip = %#v, %v", back, err)
	}
}

func TestDeadLetterRecordJSON(t *testing.T) {
	full := events.DeadLetterRecord{
		PoolID: "p", EvalID: "e-1", DatasetID: "ds", Size: 2, Attempts: 3, Reason: "max retries",
		Payload: json.RawMessage(`[1,2]`), At: time.Date(2026, 11, 26, 19, 39, 45, 123000000, time.UTC),
	}
	if got, want := jsonKeys(t, full), []string{"at", "attempts", "dataset_id", "eval_id", "payload", "pool_id", "reason", "size"}; !slices.Equal(got, want) {
		t.Errorf("DeadLetterRecord keys = %v, want %v", got, want)
	}
	if got, want := jsonKeys(t, events.DeadLetterRecord{}), []string{"at", "attempts", "eval_id", "pool_id", "reason", "size"}; !slices.Equal(got, want) {
		t.Errorf("empty DeadLetterRecord keys = %v, want %v", got, want)
	}
	b, _ := json.Marshal(full)
	var back events.DeadLetterRecord
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, full) {
		t.Errorf("DeadLetterRecord round trip = %#v, %v", back, err)
	}
	// As written on the topic: the payload's bytes as on the log, <, >
	// and & unescaped, no trailing newline.
	full.Payload = json.RawMessage(`"<a&b>"`)
	w, err := events.MarshalDeadLetterRecord(full)
	if err != nil || !bytes.Contains(w, []byte(`"payload":"<a&b>"`)) || bytes.HasSuffix(w, []byte("\n")) {
		t.Errorf("MarshalDeadLetterRecord = %s, %v", w, err)
	}
}

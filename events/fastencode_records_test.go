package events_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/line-sched/line/events"
)

// allocRecordCorpus are alloc records of every shape: optional members on
// and off, payloads compact and not, strings that need escaping, deadlines
// in other zones and out of MarshalJSON's range.
func allocRecordCorpus() []events.AllocRecord {
	deadline := time.Date(2026, 11, 27, 1, 3, 33, 456_000_000, time.UTC)
	base := events.AllocRecord{AllocID: "01JDX5R0S7N3W7K8Q9ZB2C4D6E", EvalID: "job-42:shard-7", PoolID: "pool-1",
		WorkerID: "w-0007", Size: 2, Attempt: 1, Deadline: deadline}
	with := func(f func(r *events.AllocRecord)) events.AllocRecord {
		r := base
		f(&r)
		return r
	}
	return []events.AllocRecord{
		base,
		with(func(r *events.AllocRecord) { r.DatasetID = "ds.2024" }),
		with(func(r *events.AllocRecord) { r.Payload = json.RawMessage(`{"k":[1,2],"s":"a b <&> \u2028 é"}`) }),
		with(func(r *events.AllocRecord) { r.Payload = json.RawMessage(`{"k": [1, 2]}`) }),
		with(func(r *events.AllocRecord) { r.Payload = json.RawMessage(`null`) }),
		with(func(r *events.AllocRecord) { r.Payload = json.RawMessage(`"a\"\\ b"`) }),
		with(func(r *events.AllocRecord) { r.Payload = json.RawMessage{} }),
		with(func(r *events.AllocRecord) { r.Payload = json.RawMessage(`{"bad":`) }),
		with(func(r *events.AllocRecord) { r.Payload = json.RawMessage(`1 2`) }),
		with(func(r *events.AllocRecord) { r.Payload = json.RawMessage("\"\u2028\"") }),
		with(func(r *events.AllocRecord) { r.Size, r.Attempt = -1<<63, -7 }),
		with(func(r *events.AllocRecord) { r.Deadline = time.Time{} }),
		with(func(r *events.AllocRecord) { r.Deadline = deadline.Add(7) }),
		with(func(r *events.AllocRecord) { r.Deadline = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }),
		with(func(r *events.AllocRecord) { r.Deadline = deadline.In(time.FixedZone("x", -5400)) }),
		with(func(r *events.AllocRecord) { r.Deadline = deadline.In(time.FixedZone("far", 24*3600)) }),
		with(func(r *events.AllocRecord) { r.WorkerID = "w\"1"; r.PoolID = "p<&>" }),
		with(func(r *events.AllocRecord) { r.EvalID = "é\t" }),
		{},
	}
}

// TestAppendAllocRecordMatchesReference pins that AppendAllocRecord writes
// exactly the bytes of encoding/json, through the fast path or not.
func TestAppendAllocRecordMatchesReference(t *testing.T) {
	fast := 0
	for _, r := range allocRecordCorpus() {
		checkAllocRecord(t, r)
		if _, ok := events.AppendAllocRecordFast(nil, r); ok {
			fast++
		}
	}
	if fast < 8 {
		t.Errorf("the fast path took %d records of the corpus, want at least 8", fast)
	}
}

func checkAllocRecord(t *testing.T, r events.AllocRecord) {
	t.Helper()
	want, werr := events.MarshalAllocRecordReference(r)
	if got, ok := events.AppendAllocRecordFast([]byte("x"), r); ok {
		if werr != nil {
			t.Errorf("fast path encoded %q, the reference refuses it: %v", got, werr)
		} else if !bytes.Equal(got, append([]byte("x"), want...)) {
			t.Errorf("fast path wrote\n%s\nreference\n%s", got[1:], want)
		}
	}
	got, err := events.AppendAllocRecord([]byte("x"), r)
	switch {
	case (err != nil) != (werr != nil):
		t.Errorf("AppendAllocRecord error %v, reference error %v", err, werr)
	case err != nil:
		if string(got) != "x" {
			t.Errorf("AppendAllocRecord failed and left %q, want the prefix alone", got)
		}
	case !bytes.Equal(got, append([]byte("x"), want...)):
		t.Errorf("AppendAllocRecord wrote\n%s\nreference\n%s", got[1:], want)
	}
}

// FuzzAppendAllocRecord checks AppendAllocRecord against encoding/json on
// arbitrary ids, numbers, payloads and deadlines.
func FuzzAppendAllocRecord(f *testing.F) {
	f.Add("a1", "e1", "pool-1", "w1", "", int64(1), 1, []byte(nil), int64(1_700_000_000_123), int64(0), 0)
	f.Add("a", "e", "p", "w", "ds", int64(-1), 2, []byte(`{"a":[1,"x"],"b":null}`), int64(-62135596800000), int64(5), 0)
	f.Add("a<", "é", "p\"", "w\\", "d\n", int64(0), 0, []byte(`{"a": 1}`), int64(253402300800000), int64(0), 3600)
	f.Fuzz(func(t *testing.T, alloc, eval, pool, worker, dataset string, size int64, attempt int, payload []byte,
		deadlineMs, deadlineNs int64, zoneSec int) {
		deadline := time.UnixMilli(deadlineMs).Add(time.Duration(deadlineNs % 1e6)).UTC()
		if zoneSec != 0 {
			deadline = deadline.In(time.FixedZone("z", zoneSec))
		}
		checkAllocRecord(t, events.AllocRecord{AllocID: alloc, EvalID: eval, PoolID: pool, WorkerID: worker,
			DatasetID: dataset, Size: size, Attempt: attempt, Payload: payload, Deadline: deadline})
	})
}

func BenchmarkAppendAllocRecord(b *testing.B) {
	now := events.Truncate(time.Now())
	r := events.AllocRecord{AllocID: events.NewULID(now), EvalID: events.NewULID(now), PoolID: "pool-1",
		WorkerID: "w-0007", Size: 1, Attempt: 1, Payload: json.RawMessage(`{"cmd":["run","x"],"n":3}`), Deadline: now.Add(time.Minute)}
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			var err error
			if buf, err = events.AppendAllocRecord(buf[:0], r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reference", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := events.MarshalAllocRecordReference(r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

package events_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/line-sched/line/events"
)

// submittedCorpus are eval.submitted envelopes of every shape: optional
// members on and off, payloads with spaces, strings that need escaping,
// times far from now.
func submittedCorpus() []events.Envelope {
	at := time.Date(2026, 11, 27, 1, 2, 3, 456_000_000, time.UTC)
	mk := func(pool string, at time.Time, d events.EvalSubmittedData) events.Envelope {
		e := events.New(pool, at, d)
		return e
	}
	out := []events.Envelope{
		mk("p", at, events.EvalSubmittedData{EvalID: "e1", Size: 1}),
		mk("pool-1_x", at, events.EvalSubmittedData{EvalID: "job-42:shard-7", DatasetID: "ds.2024", Size: 2147483647}),
		mk("p", at, events.EvalSubmittedData{EvalID: "e", Size: 3, Payload: json.RawMessage(`{"k": [1, 2], "s": "a b"}`)}),
		mk("p", at, events.EvalSubmittedData{EvalID: "e", Size: 1, Payload: json.RawMessage(` null `)}),
		mk("p", at, events.EvalSubmittedData{EvalID: "e", Size: 1, Payload: json.RawMessage(`"<html>&\u2028"`)}),
		mk("p", at, events.EvalSubmittedData{EvalID: "e", Size: 1, Payload: json.RawMessage(`{"bad":`)}),
		mk("p", at, events.EvalSubmittedData{EvalID: "a\"b", Size: 1}),
		mk("p", at, events.EvalSubmittedData{EvalID: "é", Size: 1}),
		mk("p<&>", at, events.EvalSubmittedData{EvalID: "e<&>", DatasetID: "d\n", Size: 1}),
		mk("p", time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), events.EvalSubmittedData{EvalID: "e", Size: 0}),
		mk("p", time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("x", 3600)), events.EvalSubmittedData{EvalID: "e", Size: -5}),
		mk("p", at, events.EvalSubmittedData{EvalID: "", Size: 1}),
	}
	odd := mk("p", at, events.EvalSubmittedData{EvalID: "e", Size: 1})
	odd.V = 7
	out = append(out, odd)
	return out
}

// TestMarshalFastMatchesReference pins that Marshal's fast path writes
// exactly the bytes of the reference encoder, or leaves the envelope to it.
func TestMarshalFastMatchesReference(t *testing.T) {
	fast := 0
	for _, e := range submittedCorpus() {
		checkMarshalFast(t, e)
		if _, ok := events.MarshalFast(e); ok {
			fast++
		}
	}
	if fast < 6 {
		t.Errorf("the fast path took %d envelopes of the corpus, want at least 6", fast)
	}
	// Other types always go the reference way.
	e := events.New("p", time.Now(), events.PoolCreatedData{Strategy: events.Spread})
	if _, ok := events.MarshalFast(e); ok {
		t.Errorf("the fast path took a %s", e.Type)
	}
}

func checkMarshalFast(t *testing.T, e events.Envelope) {
	t.Helper()
	want, werr := events.MarshalReference(e)
	got, ok := events.MarshalFast(e)
	if !ok {
		return
	}
	if werr != nil {
		t.Errorf("fast path encoded %q, the reference refuses it: %v", got, werr)
		return
	}
	if !bytes.Equal(got, want) {
		t.Errorf("fast path wrote\n%s\nreference\n%s", got, want)
	}
}

// FuzzMarshalSubmitted checks the fast path against the reference encoder
// on arbitrary ids, sizes and payloads.
func FuzzMarshalSubmitted(f *testing.F) {
	f.Add("p", "e1", "", int64(1), []byte(nil), int64(0))
	f.Add("pool", "job:1", "ds.x", int64(7), []byte(`{"a": [1, "x"]}`), int64(1_700_000_000_123))
	f.Add("p", "e", "", int64(-1), []byte(`"\u003c"`), int64(-62135596800000))
	f.Fuzz(func(t *testing.T, pool, id, dataset string, size int64, payload []byte, ms int64) {
		e := events.New(pool, time.UnixMilli(ms), events.EvalSubmittedData{EvalID: id, DatasetID: dataset, Size: size, Payload: payload})
		checkMarshalFast(t, e)
	})
}

func BenchmarkMarshalSubmitted(b *testing.B) {
	e := events.New("pool", time.Now(), events.EvalSubmittedData{EvalID: events.NewULID(time.Now()), Size: 1})
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := events.Marshal(e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reference", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := events.MarshalReference(e); err != nil {
				b.Fatal(err)
			}
		}
	})
}

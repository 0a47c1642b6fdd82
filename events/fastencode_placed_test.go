package events_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/line-sched/line/events"
)

// placedCorpus are alloc.placed envelopes of every shape: the optional
// dataset on and off, extreme numbers, strings that need escaping,
// deadlines in other zones and out of MarshalJSON's range.
func placedCorpus() []events.Envelope {
	at := time.Date(2026, 11, 27, 1, 2, 3, 456_000_000, time.UTC)
	deadline := at.Add(90 * time.Second)
	base := events.AllocPlacedData{AllocID: "01JDX5R0S7N3W7K8Q9ZB2C4D6E", EvalID: "job-42:shard-7", WorkerID: "w-0007",
		Size: 2, Attempt: 1, Deadline: deadline, Topic: "line.allocs.pool-1.w-0007", Strategy: events.Spread,
		Locality: events.LocalityNone, Candidates: 17, WaitedMs: 1234, Basis: 987654}
	with := func(f func(d *events.AllocPlacedData)) events.AllocPlacedData {
		d := base
		f(&d)
		return d
	}
	mk := func(pool string, at time.Time, d events.AllocPlacedData) events.Envelope {
		return events.New(pool, at, d)
	}
	out := []events.Envelope{
		mk("pool-1", at, base),
		mk("p", at, with(func(d *events.AllocPlacedData) { d.DatasetID = "ds.2024"; d.Locality = events.LocalityHit })),
		mk("p", at, with(func(d *events.AllocPlacedData) { d.Strategy = events.Binpack; d.Locality = events.LocalityMiss })),
		mk("p", at, with(func(d *events.AllocPlacedData) {
			d.Size, d.Attempt, d.Candidates, d.WaitedMs, d.Basis = -1<<63, -1, 0, -5, 1<<63-1
		})),
		mk("p", at, with(func(d *events.AllocPlacedData) { d.Deadline = deadline.Add(123456789) })), // nanoseconds
		mk("p", at, with(func(d *events.AllocPlacedData) { d.Deadline = time.Time{} })),
		mk("p", at, with(func(d *events.AllocPlacedData) { d.Deadline = time.Date(9999, 12, 31, 23, 59, 59, 999, time.UTC) })),
		mk("p", at, with(func(d *events.AllocPlacedData) { d.Deadline = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) })),
		mk("p", at, with(func(d *events.AllocPlacedData) { d.Deadline = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) })),
		mk("p", at, with(func(d *events.AllocPlacedData) { d.Deadline = deadline.In(time.FixedZone("x", 3600)) })),
		mk("p", at, with(func(d *events.AllocPlacedData) { d.Deadline = deadline.In(time.FixedZone("far", 25*3600)) })),
		mk("p", at, with(func(d *events.AllocPlacedData) { d.Deadline = deadline.In(time.FixedZone("Z0", 0)) })),
		mk("p", at, with(func(d *events.AllocPlacedData) { d.AllocID = "a\"b" })),
		mk("p", at, with(func(d *events.AllocPlacedData) { d.WorkerID = "wé" })),
		mk("p<&>", at, with(func(d *events.AllocPlacedData) { d.Topic = "t<&>"; d.DatasetID = "d\n" })),
		mk("p", at, with(func(d *events.AllocPlacedData) { d.Strategy = "odd\\"; d.Locality = "\u2028" })),
		mk("p", time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), with(func(d *events.AllocPlacedData) { d.EvalID = "" })),
		mk("p", time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("x", 3600)), base),
	}
	odd := mk("p", at, base)
	odd.V = 7
	out = append(out, odd)
	return out
}

// TestMarshalPlacedFastMatchesReference pins that Marshal's fast path
// writes exactly the bytes of the reference encoder for alloc.placed, or
// leaves the envelope to it, and that AppendMarshal appends what Marshal
// returns.
func TestMarshalPlacedFastMatchesReference(t *testing.T) {
	fast := 0
	for _, e := range placedCorpus() {
		checkMarshalFast(t, e)
		if _, ok := events.MarshalFast(e); ok {
			fast++
		}
		checkAppendMarshal(t, e)
	}
	if fast < 8 {
		t.Errorf("the fast path took %d envelopes of the corpus, want at least 8", fast)
	}
	for _, e := range submittedCorpus() {
		checkAppendMarshal(t, e)
	}
	// A type without a fast path, and an envelope Marshal refuses.
	checkAppendMarshal(t, events.New("p", time.Now(), events.PoolCreatedData{Strategy: events.Spread}))
	bad := events.New("p", time.Now(), events.AllocExpiredData{AllocID: "a"})
	bad.Type = events.AllocPlaced
	checkAppendMarshal(t, bad)
}

// checkAppendMarshal checks that AppendMarshal appends Marshal's bytes
// after what dst holds, or fails as Marshal does leaving dst as it was.
func checkAppendMarshal(t *testing.T, e events.Envelope) {
	t.Helper()
	want, werr := events.Marshal(e)
	prefix := []byte("prefix")
	got, err := events.AppendMarshal(prefix, e)
	switch {
	case (err != nil) != (werr != nil):
		t.Errorf("AppendMarshal error %v, Marshal error %v", err, werr)
	case err != nil:
		if string(got) != "prefix" {
			t.Errorf("AppendMarshal failed and left %q, want the prefix alone", got)
		}
	case !bytes.Equal(got, append([]byte("prefix"), want...)):
		t.Errorf("AppendMarshal wrote\n%s\nMarshal\n%s", got, want)
	}
}

// FuzzMarshalPlaced checks the fast path against the reference encoder on
// arbitrary ids, numbers and deadlines.
func FuzzMarshalPlaced(f *testing.F) {
	f.Add("pool-1", "a1", "e1", "w1", "", "line.allocs.pool-1.w1", "spread", "none", int64(1), 1, int64(1_700_000_000_123), int64(0), 0, int64(0), 5, int64(12), int64(3))
	f.Add("p", "a", "e", "w", "ds", "t", "binpack", "hit", int64(-1), -1, int64(-62135596800000), int64(999), 3600, int64(1), 0, int64(-1), int64(1<<62))
	f.Add("p\"", "a<", "é", "w\\", "d\n", "t", "x", "\u2028", int64(0), 0, int64(253402300800000), int64(1), -3600, int64(0), 1, int64(0), int64(0))
	f.Fuzz(func(t *testing.T, pool, alloc, eval, worker, dataset, topic, strategy, locality string,
		size int64, attempt int, deadlineMs, deadlineNs int64, zoneSec int, atMs int64, candidates int, waited, basis int64) {
		deadline := time.UnixMilli(deadlineMs).Add(time.Duration(deadlineNs % 1e6)).UTC()
		if zoneSec != 0 {
			deadline = deadline.In(time.FixedZone("z", zoneSec))
		}
		e := events.New(pool, time.UnixMilli(atMs), events.AllocPlacedData{AllocID: alloc, EvalID: eval, WorkerID: worker,
			DatasetID: dataset, Size: size, Attempt: attempt, Deadline: deadline, Topic: topic,
			Strategy: events.Strategy(strategy), Locality: events.Locality(locality), Candidates: candidates,
			WaitedMs: events.Millis(waited), Basis: basis})
		checkMarshalFast(t, e)
		checkAppendMarshal(t, e)
	})
}

func BenchmarkMarshalPlaced(b *testing.B) {
	now := events.Truncate(time.Now())
	e := events.New("pool-1", now, events.AllocPlacedData{AllocID: events.NewULID(now), EvalID: events.NewULID(now),
		WorkerID: "w-0007", Size: 1, Attempt: 1, Deadline: now.Add(time.Minute), Topic: "line.allocs.pool-1.w-0007",
		Strategy: events.Spread, Locality: events.LocalityNone, Candidates: 100, WaitedMs: 1234, Basis: 987654})
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := events.Marshal(e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			var err error
			if buf, err = events.AppendMarshal(buf[:0], e); err != nil {
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

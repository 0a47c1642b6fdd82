package events

import (
	"testing"
	"time"
)

// BenchmarkUnmarshalPlaced measures strict decoding of one alloc.placed
// envelope, the most common decision on the log.
func BenchmarkUnmarshalPlaced(b *testing.B) {
	e := New("pool-1", time.Now(), AllocPlacedData{AllocID: "a1", EvalID: "e1", WorkerID: "w1", Size: 1, Attempt: 1,
		Deadline: time.Now(), Topic: "line.allocs.pool-1.w1", Strategy: Spread, Locality: LocalityNone, Candidates: 5})
	buf, _ := Marshal(e)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Unmarshal(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnmarshalSubmitted measures strict decoding of one eval.submitted
// envelope, the other half of a busy log.
func BenchmarkUnmarshalSubmitted(b *testing.B) {
	e := New("pool-1", time.Now(), EvalSubmittedData{EvalID: NewULID(time.Now()), DatasetID: "ds-17", Size: 2})
	buf, _ := Marshal(e)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Unmarshal(buf); err != nil {
			b.Fatal(err)
		}
	}
}

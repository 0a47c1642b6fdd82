package state

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/line-sched/line/events"
)

// TestFoldSameWithReferenceDecoder folds the same records decoded by
// events.Unmarshal (its fast path) and by events.UnmarshalReference and
// requires byte-identical dumps: a c1m-like history, and the random
// histories of TestFoldInvariants (every event type, rejections included).
func TestFoldSameWithReferenceDecoder(t *testing.T) {
	check := func(name string, recs [][]byte) {
		t.Helper()
		fold := func(decode func([]byte) (events.Envelope, error)) *State {
			s := New()
			for i, b := range recs {
				e, err := decode(b)
				if err != nil {
					t.Fatalf("%s: record %d does not decode: %v\n%s", name, i, err, b)
				}
				_ = s.Apply(e, events.Position{Offset: int64(i)})
			}
			return s
		}
		fast, ref := fold(events.Unmarshal), fold(events.UnmarshalReference)
		if a, b := Dump(fast), Dump(ref); !bytes.Equal(a, b) {
			t.Fatalf("%s: dumps differ:\n%s", name, fxDiff(string(a), string(b)))
		}
		if err := fast.Check(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	check("c1m-like", bxHistory(3_000, 50))

	for seed := range 8 {
		g := &fxGen{r: rand.New(rand.NewPCG(uint64(seed), 43)), f: fxNew(t)}
		for range 300 {
			pool, d := g.next()
			_ = g.f.apply(pool, fxAt(g.now), d)
		}
		var recs [][]byte
		for i, l := range g.f.log {
			b, err := events.Marshal(l.e)
			if err != nil {
				t.Fatal(err)
			}
			if i%3 == 0 {
				// Spaces keep a record on the fast path, an escape sends it
				// to the reference decoder.
				b = bytes.ReplaceAll(b, []byte(`,"`), []byte(`, "`))
			} else if i%3 == 1 {
				b = bytes.Replace(b, []byte(`"id":"`), []byte(`"id":"\u0065`), 1)
			}
			recs = append(recs, b)
		}
		check("random", recs)
	}
}

package state

import (
	"bytes"
	"testing"

	"github.com/line-sched/line/events"
)

// TestExpectChangesNoResult folds a history long enough for the tables to
// be sized for what Expect announced, with a right, a short and a far too
// long announcement, and without any: every fold dumps the same and
// passes Check.
func TestExpectChangesNoResult(t *testing.T) {
	h := bxHistory(presizeAt+5_000, 50)
	fold := func(expect int64) *State {
		s := New()
		if expect >= 0 {
			s.Expect(expect)
		}
		for i, b := range h {
			e, err := events.Unmarshal(b)
			if err != nil {
				t.Fatalf("event %d does not decode: %v", i, err)
			}
			if err := s.Apply(e, events.Position{Offset: int64(i)}); err != nil {
				t.Fatalf("event %d does not apply: %v", i, err)
			}
		}
		if err := s.Check(); err != nil {
			t.Fatalf("fold with Expect(%d): %v", expect, err)
		}
		return s
	}
	want := Dump(fold(-1))
	for _, n := range []int64{int64(len(h)), 1_000, 100 * int64(len(h))} {
		s := fold(n)
		if got := Dump(s); !bytes.Equal(got, want) {
			t.Fatalf("fold with Expect(%d) dumps differently from the fold without", n)
		}
	}
}

func TestPresizedKeepsEveryEntry(t *testing.T) {
	s := New()
	s.Expect(1_000_000)
	m := map[string]int{}
	for i := range 1_000 {
		m[string(rune('a'+i%26))+string(rune(i))] = i
		s.Applied++
	}
	got := presized(s, m, 0)
	if len(got) != len(m) {
		t.Fatalf("presized table holds %d entries, want %d", len(got), len(m))
	}
	for k, v := range m {
		if got[k] != v {
			t.Fatalf("presized table maps %q to %d, want %d", k, got[k], v)
		}
	}
}

package projections

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/line-sched/line/audit/audittest"
	"github.com/line-sched/line/events"
)

// TestEncodeRowsLikeEncodingJSON checks that the hand-written row encoders
// give json.Marshal's bytes: for every row of simulated histories, and for
// views filled with random and awkward values.
func TestEncodeRowsLikeEncodingJSON(t *testing.T) {
	check := func(v any) {
		t.Helper()
		got, err := marshal(v)
		if err != nil {
			t.Fatalf("marshal %#v: %v", v, err)
		}
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("row encoded as\n  %s\nencoding/json gives\n  %s", got, want)
		}
	}
	n := 0
	for seed := uint64(1); seed <= 3; seed++ {
		hist, err := audittest.Simulate(audittest.Options{Seed: seed, Steps: 400, Delayed: true, Disband: seed == 3})
		if err != nil {
			t.Fatal(err)
		}
		f := newFold()
		for _, e := range hist {
			_ = f.apply(e.Envelope, e.Position, nil)
		}
		rows, err := f.rows(f.all())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.st.Pools() {
			for _, w := range p.Workers() {
				check(workerRowOf(p.ID, w))
			}
			for _, e := range p.Evals() {
				check(evalView(p.ID, e))
			}
			for _, a := range p.Allocs() {
				check(allocView(p.ID, a))
			}
		}
		n += len(rows)
	}
	if n < 100 {
		t.Fatalf("only %d rows in the simulated histories", n)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	awkward := []string{"", "a", "w-1", "é", "a\"b", `a\b`, "<x>", "a&b", "tab\there", "\u2028", "\x00", "\xff", "/%", "ok_id.2"}
	s := func() string { return awkward[rng.IntN(len(awkward))] }
	var ss func() []string
	ss = func() []string {
		switch rng.IntN(3) {
		case 0:
			return nil
		case 1:
			return []string{}
		}
		return []string{s(), s()}
	}
	for i := range 3000 {
		check(EvalView{PoolID: s(), EvalID: s(), DatasetID: s(), Size: int64(i) - 5, Status: s(), Attempts: i % 4, NextAttempt: i % 3,
			AllocID: s(), SubmittedAt: s(), QueuedAt: s(), EndedAt: s(), Reason: s(), Result: s(), Position: s()})
		var payload json.RawMessage
		if i%7 == 0 {
			payload = json.RawMessage(fmt.Sprintf(`{"k": "<%d>"}`, i))
		}
		check(EvalView{PoolID: s(), EvalID: s(), Payload: payload})
		var c *CompletionView
		if i%5 == 0 {
			code := int32(i)
			c = &CompletionView{Status: events.CompletionStatus(s()), ExitCode: &code, Message: s()}
		}
		check(AllocView{PoolID: s(), AllocID: s(), EvalID: s(), WorkerID: s(), DatasetID: s(), Size: int64(i), Attempt: i % 3,
			Deadline: s(), Status: s(), PlacedAt: s(), EndedAt: s(), Topic: s(), Completion: c, ExpiryReason: s(),
			Placement: PlacementView{Strategy: events.Strategy(s()), Locality: events.Locality(s()), Candidates: i, WaitedMs: int64(i) * 3, Basis: -int64(i)}})
		check(workerRow{PoolID: s(), WorkerID: s(), Capacity: int64(i), Used: int64(i / 2), Free: int64(i - i/2), Deadline: s(), Topic: s(),
			RegisteredAt: s(), Datasets: ss()})
	}
}

// TestPlainMatchesEncodingJSON checks, byte by byte, that plain accepts
// only bytes that encoding/json writes unchanged between quotes, and all
// of printable ASCII but the five it escapes (the others are left to
// encoding/json).
func TestPlainMatchesEncodingJSON(t *testing.T) {
	for c := 0; c < 256; c++ {
		s := "a" + string([]byte{byte(c)}) + "b"
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		unchanged := string(b) == `"`+s+`"`
		printable := c >= 0x20 && c <= 0x7e && !bytes.ContainsRune([]byte(`"\\<>&`), rune(c))
		if got := plain(s); got && !unchanged || got != printable {
			t.Errorf("byte %#x: plain %v, encoding/json writes %s", c, got, b)
		}
	}
}

// TestRowsFromTheFoldLikeViews checks that the rows the bulk load writes
// from the fold's evals and allocs are the bytes of their views, and that
// strings that encoding/json escapes, payloads and completions still give
// its bytes.
func TestRowsFromTheFoldLikeViews(t *testing.T) {
	n := 0
	for seed := uint64(1); seed <= 4; seed++ {
		o := audittest.Options{Seed: seed, Steps: 400, Delayed: true, Disband: seed == 3}
		if seed == 4 {
			o.Pools = []string{"p<1>", "p\"2", "p/%3"}
		}
		hist, err := audittest.Simulate(o)
		if err != nil {
			t.Fatal(err)
		}
		f := newFold()
		for _, e := range hist {
			_ = f.apply(e.Envelope, e.Position, nil)
		}
		var known rowMemo
		var buf []byte
		for _, p := range f.st.Pools() {
			for _, e := range p.Evals() {
				want, err := marshal(evalView(p.ID, e))
				if err != nil {
					t.Fatal(err)
				}
				got, err := appendEvalRow(buf, p.ID, e, &known)
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("eval row from the fold\n  %s (%v)\nits view gives\n  %s", got, err, want)
				}
				buf = got
				n++
			}
			for _, a := range p.Allocs() {
				want, err := marshal(allocView(p.ID, a))
				if err != nil {
					t.Fatal(err)
				}
				got, err := appendAllocRow(buf, p.ID, a, &known)
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("alloc row from the fold\n  %s (%v)\nits view gives\n  %s", got, err, want)
				}
				buf = got
				n++
			}
		}
	}
	if n < 200 {
		t.Fatalf("only %d eval and alloc rows in the simulated histories", n)
	}
}

// TestNeedsEscEveryByte checks needsEsc, which looks at eight bytes at a
// time, against esc: every byte at every place of strings of 1 to 24
// bytes.
func TestNeedsEscEveryByte(t *testing.T) {
	for n := 1; n <= 24; n++ {
		for i := range n {
			for c := range 256 {
				s := bytes.Repeat([]byte("a"), n)
				s[i] = byte(c)
				if got, want := needsEsc(string(s)), esc(string(s)) != string(s); got != want {
					t.Fatalf("needsEsc(%q) = %v, want %v", s, got, want)
				}
				// Beside every byte value (borrows between bytes).
				if i > 0 && n%8 <= 1 {
					for d := range 256 {
						s[i-1] = byte(d)
						want := bytes.ContainsAny(s, "%/")
						if got := needsEsc(string(s)); got != want {
							t.Fatalf("needsEsc(%q) = %v, want %v", s, got, want)
						}
					}
				}
			}
		}
	}
}

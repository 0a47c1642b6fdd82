package projections

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

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
		check(workerRow{PoolID: s(), WorkerID: s(), Capacity: int64(i), Used: int64(i / 2), Free: int64(i - i/2), Deadline: s(), Topic: s(),
			RegisteredAt: s(), Datasets: ss()})
	}
	// Evals and allocs are encoded from the fold: a fold of events full
	// of awkward strings (what the fold accepts of them), every row
	// against encoding/json's bytes of its view.
	f := newFold()
	at := time.Date(2026, 11, 27, 7, 0, 0, 123456789, time.UTC)
	for i := range 3000 {
		pool := fmt.Sprintf("%s%d", s(), i%7)
		worker, eval, alloc := s()+"w", fmt.Sprintf("%se%d", s(), i), fmt.Sprintf("%sa%d", s(), i)
		at = at.Add(time.Duration(i%3) * 1500 * time.Microsecond)
		var payload json.RawMessage
		if i%7 == 0 {
			payload = json.RawMessage(fmt.Sprintf(`{"k":"<%d>"}`, i))
		}
		code := int32(i)
		for k, d := range []events.Data{
			events.PoolCreatedData{Strategy: events.Spread},
			events.WorkerRegisteredData{WorkerID: worker, Capacity: 1 << 20, Topic: s(), Deadline: at.Add(time.Hour), Datasets: []string{s()}},
			events.EvalSubmittedData{EvalID: eval, DatasetID: s(), Size: int64(i%4) + 1, Payload: payload},
			events.AllocPlacedData{AllocID: alloc, EvalID: eval, WorkerID: worker, Size: int64(i%4) + 1, Attempt: 1,
				Deadline: at.Add(time.Minute), Topic: s(), Strategy: events.Strategy(s()), Locality: events.Locality(s())},
			events.AllocCompletedData{AllocID: alloc, Status: events.CompletionStatus(s()), ExitCode: &code, Message: s()},
		} {
			if k == 4 && i%5 != 0 {
				continue
			}
			_ = f.apply(events.New(pool, at, d), events.Position{Offset: int64(5*i + k)}, nil)
		}
	}
	var known rowMemo
	evals, allocs := 0, 0
	for _, p := range f.st.Pools() {
		for _, e := range p.Evals() {
			got, err := appendEvalRow(nil, p.ID, e, &known)
			want, _ := json.Marshal(evalView(p.ID, e))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("eval row\n  %s (%v)\nencoding/json gives\n  %s", got, err, want)
			}
			evals++
		}
		for _, a := range p.Allocs() {
			got, err := appendAllocRow(nil, p.ID, a, &known)
			want, _ := json.Marshal(allocView(p.ID, a))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("alloc row\n  %s (%v)\nencoding/json gives\n  %s", got, err, want)
			}
			allocs++
		}
	}
	if evals < 1000 || allocs < 300 {
		t.Fatalf("the awkward fold holds %d evals and %d allocs, want more", evals, allocs)
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

package projections

import (
	"math/rand/v2"
	"testing"
	"time"
)

// seen is the last second that checkTimeFormat formatted.
var seen lastSecond

// checkTimeFormat compares the hand-written formats of t with the time
// package's.
func checkTimeFormat(t *testing.T, tm time.Time) {
	t.Helper()
	if got, want := string(appendRFC3339([]byte("x"), tm)), "x"+tm.UTC().Format(time.RFC3339Nano); got != want {
		t.Fatalf("%v (unix %d.%09d): RFC 3339 %q, time.Format gives %q", tm, tm.Unix(), tm.Nanosecond(), got, want)
	}
	if got, want := string(appendRFC3339Seen([]byte("x"), tm, &seen)), "x"+tm.UTC().Format(time.RFC3339Nano); got != want {
		t.Fatalf("%v (unix %d.%09d, last second %d): RFC 3339 %q, time.Format gives %q", tm, tm.Unix(), tm.Nanosecond(), seen.sec, got, want)
	}
	if got, want := string(appendDeadline([]byte("x"), tm)), "x"+tm.UTC().Format(deadlineLayout); got != want {
		t.Fatalf("%v (unix %d.%09d): deadline %q, time.Format gives %q", tm, tm.Unix(), tm.Nanosecond(), got, want)
	}
	if tm.IsZero() {
		if got := ts(tm); got != "" {
			t.Fatalf("ts of the zero time %q, want none", got)
		}
	} else if got, want := ts(tm), tm.UTC().Format(time.RFC3339Nano); got != want {
		t.Fatalf("%v: ts %q, want %q", tm, got, want)
	}
}

// TestTimeFormatLikeTimeFormat checks that times are formatted byte for
// byte like time.Format formats them: at the edges of the fast path's
// years, of days, months and leap years, with every length of fraction,
// in other zones, and at random over all the years and beyond.
func TestTimeFormatLikeTimeFormat(t *testing.T) {
	east := time.FixedZone("east", 5*3600+30*60)
	west := time.FixedZone("west", -11*3600)
	edges := []time.Time{
		{},
		time.Unix(0, 0),
		time.Unix(-1, 999_999_999),
		time.Unix(minFastUnixSecond, 0),
		time.Unix(minFastUnixSecond-1, 999_999_999),
		time.Unix(maxFastUnixSecond, 999_999_999),
		time.Unix(maxFastUnixSecond+1, 0),
		time.Date(0, 2, 29, 23, 59, 59, 1, time.UTC),
		time.Date(0, 3, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1900, 2, 28, 12, 0, 0, 10, time.UTC),
		time.Date(1900, 3, 1, 12, 0, 0, 100, time.UTC),
		time.Date(2000, 2, 29, 12, 0, 0, 1000, time.UTC),
		time.Date(2100, 3, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 26, 19, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 31, 23, 59, 59, 120_000_000, east),
		time.Date(2027, 1, 1, 0, 0, 0, 123_456_789, west),
		time.Date(-1, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 5, time.UTC),
		time.Date(-300000, 6, 1, 0, 0, 0, 5, time.UTC),
	}
	for _, tm := range edges {
		checkTimeFormat(t, tm)
	}
	// Every day of four centuries, at a random time of day.
	rng := rand.New(rand.NewPCG(3, 4))
	for d := time.Date(1899, 12, 1, 0, 0, 0, 0, time.UTC); d.Year() < 2301; d = d.AddDate(0, 0, 1) {
		checkTimeFormat(t, d.Add(time.Duration(rng.Int64N(int64(24*time.Hour)))))
	}
	// Runs of times a few milliseconds apart (the same second, then the
	// next, as the rows of a round of placements).
	for tm, i := time.Date(2026, 11, 26, 23, 59, 58, 0, time.UTC), 0; i < 5000; i++ {
		checkTimeFormat(t, tm)
		tm = tm.Add(time.Duration(rng.Int64N(3)) * time.Millisecond)
	}
	// Random times: any second of years -100 to 10100, with nanoseconds
	// of every length (zeros at the end, none at all, or milliseconds
	// as the fold stores most times).
	lo, hi := time.Date(-100, 1, 1, 0, 0, 0, 0, time.UTC).Unix(), time.Date(10100, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	for i := range 300_000 {
		var ns int64
		switch i % 4 {
		case 0:
		case 1:
			ns = rng.Int64N(1000) * 1_000_000
		case 2:
			ns = rng.Int64N(1_000_000_000)
		case 3:
			ns = rng.Int64N(10) * []int64{1, 10, 100, 1000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000}[rng.IntN(9)]
		}
		tm := time.Unix(lo+rng.Int64N(hi-lo), ns)
		if i%3 == 0 {
			tm = tm.In(east)
		}
		checkTimeFormat(t, tm)
	}
}

// FuzzTimeFormat compares the hand-written formats with the time
// package's for any instant.
func FuzzTimeFormat(f *testing.F) {
	f.Add(int64(0), int64(0))
	f.Add(int64(1_795_000_000), int64(120_000_000))
	f.Add(int64(minFastUnixSecond), int64(1))
	f.Add(int64(maxFastUnixSecond), int64(999_999_999))
	f.Fuzz(func(t *testing.T, sec, nsec int64) {
		checkTimeFormat(t, time.Unix(sec, nsec))
	})
}

package events_test

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/line-sched/line/events"
)

func TestValidateID(t *testing.T) {
	narrow := []events.IDKind{events.PoolID, events.WorkerID}
	wide := []events.IDKind{events.EvalID, events.AllocID, events.DatasetID}
	cases := []struct {
		id               string
		narrowOK, wideOK bool
	}{
		{"a", true, true},
		{"0", true, true},
		{"pool-1", true, true},
		{"pool_1", true, true},
		{validID, true, true},
		{strings.Repeat("a", 64), true, true},
		{strings.Repeat("a", 65), false, true},
		{strings.Repeat("a", 128), false, true},
		{strings.Repeat("a", 129), false, false},
		{"", false, false},
		{"Pool", false, true},
		{"POOL", false, true},
		{"ds.v2", false, true},
		{"ds:w-1", false, true},
		{"-a", false, false},
		{"_a", false, false},
		{".a", false, false},
		{":a", false, false},
		{"a b", false, false},
		{"a/b", false, false},
		{"a\n", false, false},
		{"a\x00", false, false},
		{"é", false, false},
		{"a*", false, false},
	}
	for _, c := range cases {
		for _, k := range narrow {
			if err := events.ValidateID(k, c.id); (err == nil) != c.narrowOK {
				t.Errorf("ValidateID(%s, %q) = %v, want ok=%v", k, c.id, err, c.narrowOK)
			} else if err != nil && !strings.Contains(err.Error(), string(k)) {
				t.Errorf("error %q does not name the kind %q", err, k)
			}
		}
		for _, k := range wide {
			if err := events.ValidateID(k, c.id); (err == nil) != c.wideOK {
				t.Errorf("ValidateID(%s, %q) = %v, want ok=%v", k, c.id, err, c.wideOK)
			}
		}
	}
}

func TestPosition(t *testing.T) {
	for _, p := range []events.Position{{0, 0}, {3, 42}, {11, 1 << 40}, {math.MaxInt32, math.MaxInt64}} {
		s := p.String()
		want := strconv.Itoa(int(p.Partition)) + ":" + strconv.FormatInt(p.Offset, 10)
		if s != want {
			t.Errorf("%#v.String() = %q, want %q", p, s, want)
		}
		got, err := events.ParsePosition(s)
		if err != nil || got != p {
			t.Errorf("ParsePosition(%q) = %v, %v; want %v", s, got, err, p)
		}
	}
	for _, s := range []string{
		"", "3", ":", "3:", ":42", "a:1", "1:b", "-1:0", "0:-1", "1:2:3", " 1:2", "1:2 ", "1.0:2",
		"2147483648:0", "0:9223372036854775808", "0x1:2",
	} {
		if p, err := events.ParsePosition(s); err == nil {
			t.Errorf("ParsePosition(%q) = %v, want an error", s, p)
		} else if !strings.Contains(err.Error(), strconv.Quote(s)) {
			t.Errorf("ParsePosition(%q) error %q does not quote the input", s, err)
		}
	}
}

func TestNewULID(t *testing.T) {
	at := time.Date(2026, 11, 26, 19, 38, 45, 123456789, time.UTC)
	const n = 2000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = events.NewULID(at)
	}
	for i, id := range ids {
		if len(id) != 26 || id != strings.ToLower(id) {
			t.Fatalf("ULID %q is not 26 lowercase characters", id)
		}
		u, err := ulid.ParseStrict(strings.ToUpper(id))
		if err != nil {
			t.Fatalf("ULID %q does not parse: %v", id, err)
		}
		if got := ulid.Time(u.Time()); !got.Equal(at.Truncate(time.Millisecond)) {
			t.Fatalf("ULID %q carries time %v, want %v", id, got, at.Truncate(time.Millisecond))
		}
		if i > 0 && id <= ids[i-1] {
			t.Fatalf("ULIDs within one millisecond not increasing: %q then %q", ids[i-1], id)
		}
	}
	later := events.NewULID(at.Add(time.Millisecond))
	if later <= ids[n-1] {
		t.Errorf("ULID of a later millisecond %q sorts before %q", later, ids[n-1])
	}
	earlier := events.NewULID(at.Add(-time.Millisecond))
	if earlier >= ids[0] {
		t.Errorf("ULID of an earlier millisecond %q sorts after %q", earlier, ids[0])
	}
}

func TestNewULIDConcurrent(t *testing.T) {
	at := time.Now()
	const goroutines, each = 8, 500
	var (
		mu  sync.Mutex
		all []string
		wg  sync.WaitGroup
	)
	for range goroutines {
		wg.Go(func() {
			local := make([]string, each)
			for i := range local {
				local[i] = events.NewULID(at)
			}
			if !slices.IsSorted(local) {
				t.Error("ULIDs made by one goroutine within one millisecond are not sorted")
			}
			mu.Lock()
			all = append(all, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(all)
	if len(slices.Compact(all)) != goroutines*each {
		t.Error("duplicate ULIDs")
	}
}

func TestNewULIDOutOfRangeTime(t *testing.T) {
	defer func() {
		if p := recover(); p != nil {
			t.Errorf("NewULID(time.Time{}) panicked: %v", p)
		}
	}()
	events.NewULID(time.Time{})
}

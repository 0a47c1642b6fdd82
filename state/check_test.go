package state

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/line-sched/line/events"
)

// checkLines runs Check with the parts of each pool run concurrently or
// one after the other, and returns its error's lines, sorted (the order of
// the lines of one part follows map iteration).
func checkLines(s *State, concurrent bool) []string {
	old := checkConcurrentMin
	defer func() { checkConcurrentMin = old }()
	checkConcurrentMin = 1 << 62
	if concurrent {
		checkConcurrentMin = 0
	}
	err := s.Check()
	if err == nil {
		return nil
	}
	lines := strings.Split(err.Error(), "\n")
	slices.Sort(lines)
	return lines
}

// The check of a large pool runs its parts on several goroutines and finds
// exactly what the check one part after the other finds, in particular an
// alloc that a worker lists as running but that is not the pool's (which
// the concurrent check finds by counting before it looks each one up).
func TestCheckConcurrently(t *testing.T) {
	s := bxFold(t, bxHistory(3_000, 40), events.Unmarshal)
	p := s.Pool("c1m")
	if got := checkLines(s, true); got != nil {
		t.Fatalf("clean fold: %v", got)
	}
	corrupt := []struct {
		name, want string
		do         func() (undo func())
	}{
		{"a worker lists a copy of its alloc", "inconsistent", func() func() {
			w := p.Workers()[3]
			a := w.RunningAllocs()[0]
			cp := *a
			w.running[a.slot] = &cp
			return func() { w.running[a.slot] = a }
		}},
		{"a worker lists an alloc the pool does not have", "inconsistent", func() func() {
			w := p.Workers()[5]
			a := *w.RunningAllocs()[0]
			a.ID = "orphan"
			a.slot = int32(len(w.running))
			w.running = append(w.running, &a)
			return func() { w.running = w.running[:a.slot] }
		}},
		{"a worker uses more than its allocs", "running allocs sum to", func() func() {
			w := p.Workers()[7]
			w.Used++
			return func() { w.Used-- }
		}},
		{"an eval placed with an alloc the pool does not have", "missing, foreign or completed", func() func() {
			ev := p.Evals()[11]
			old := ev.AllocID
			ev.AllocID = "nowhere"
			return func() { ev.AllocID = old }
		}},
		{"an eval placed with another eval's alloc", "missing, foreign or completed", func() func() {
			ev, other := p.Evals()[13], p.Evals()[14]
			old := ev.AllocID
			ev.AllocID = other.AllocID
			return func() { ev.AllocID = old }
		}},
		{"an alloc expired behind the fold's back", "awaits retry but is not in the retry set", func() func() {
			a := p.Alloc(p.Evals()[17].AllocID)
			a.status = allocExpiredCode
			return func() { a.status = allocRunningCode }
		}},
		{"a TTL bucket lists an alloc at a deadline it does not have", "TTL entry of alloc", func() func() {
			a := p.Alloc(p.Evals()[19].AllocID)
			old := a.deadline
			a.deadline = toStamp(a.Deadline().Add(time.Second))
			return func() { a.deadline = old }
		}},
		{"an alloc left out of its TTL bucket", "TTL buckets hold", func() func() {
			p.ttl.nallocs++
			return func() { p.ttl.nallocs-- }
		}},
		{"the insertion order misses an eval", "the insertion order lists", func() func() {
			items := p.evalOrder.items
			p.evalOrder.items = items[:len(items)-1]
			return func() { p.evalOrder.items = items }
		}},
		{"the insertion order lists an alloc twice", "allocs, the table holds", func() func() {
			items := p.allocOrder.items
			p.allocOrder.items = append(slices.Clone(items), items[0])
			return func() { p.allocOrder.items = items }
		}},
	}
	for _, c := range corrupt {
		undo := c.do()
		seq, conc := checkLines(s, false), checkLines(s, true)
		undo()
		if !slices.Equal(seq, conc) {
			t.Errorf("%s: one part after the other:\n%s\nconcurrently:\n%s", c.name, strings.Join(seq, "\n"), strings.Join(conc, "\n"))
		}
		found := false
		for _, l := range conc {
			found = found || strings.Contains(l, c.want)
		}
		if !found {
			t.Errorf("%s: not found: %v", c.name, conc)
		}
	}
	if got := checkLines(s, true); got != nil {
		t.Fatalf("after undoing: %v", got)
	}
}

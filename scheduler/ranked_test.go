package scheduler

import (
	"cmp"
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/line-sched/line/state"
)

// TestRankedMatchesASortedSlice checks both forms of the set (the heap of
// spread, the blocked list of binpack) and its fit counts against the
// obvious model: a sorted slice searched linearly.
func TestRankedMatchesASortedSlice(t *testing.T) {
	sizes := []int64{1, 2, 7, 20, 39, 40, 41}
	rapid.Check(t, func(rt *rapid.T) {
		spread := rapid.Bool().Draw(rt, "spread")
		// Big runs make sure blocks fill up and split.
		big := rapid.Bool().Draw(rt, "big")
		lo := map[bool]int{false: 0, true: 150}[big]
		n := rapid.IntRange(lo, 400).Draw(rt, "n")
		// Uniform sets send every take to the first block: splits.
		uniform := rapid.Bool().Draw(rt, "uniform")
		var slots []slot
		for i := range n {
			free := int64(40)
			if !uniform {
				free = int64(rapid.IntRange(1, 40).Draw(rt, "free"))
			}
			slots = append(slots, slot{w: &state.Worker{ID: fmt.Sprintf("w%04d", (i*7919)%10007)}, free: free})
		}
		slices.SortFunc(slots, func(a, b slot) int { return cmp.Or(cmp.Compare(a.free, b.free), cmp.Compare(a.w.ID, b.w.ID)) })
		var r ranked
		r.build(slots, spread)
		r.countFits(sizes)
		model := func() []*slot {
			var out []*slot
			for i := range slots {
				if slots[i].in {
					out = append(out, &slots[i])
				}
			}
			slices.SortFunc(out, func(a, b *slot) int { return cmpSlot(a.free, a.idx, b) })
			return out
		}
		verify := func() []*slot {
			m := model()
			var flat []*slot
			if spread {
				g := &r.groups
				valid := func(grp *freeGroup, from int) {
					for _, i := range grp.members[from:] {
						if s := &r.slots[i]; s.in && s.free == grp.free {
							flat = append(flat, s)
						}
					}
				}
				if g.top != nil {
					if !slices.IsSorted(g.top.members[g.top.head:]) {
						rt.Fatalf("top group not sorted")
					}
					if g.top.head == len(g.top.members) || r.stale(g.top.members[g.top.head], g.top.free) {
						rt.Fatalf("stale or no front in the top group")
					}
					valid(g.top, g.top.head)
				}
				if len(g.below) != len(g.byFree) {
					rt.Fatalf("%d group keys for %d groups", len(g.below), len(g.byFree))
				}
				for i, free := range g.below {
					if g.byFree[free] == nil || g.byFree[free].free != free || g.top == nil || free >= g.top.free {
						rt.Fatalf("group %d is missing, or above the top", free)
					}
					if i > 0 && free > g.below[(i-1)/2] {
						rt.Fatalf("group keys out of heap order")
					}
					valid(g.byFree[free], 0)
				}
				slices.SortFunc(flat, func(a, b *slot) int { return cmpSlot(a.free, a.idx, b) })
			} else {
				for _, b := range r.blocks {
					if len(b) == 0 || len(b) > blockMax {
						rt.Fatalf("block of %d slots", len(b))
					}
					for _, e := range b {
						flat = append(flat, r.at(e))
					}
				}
			}
			if !slices.Equal(flat, m) || r.n != len(m) {
				rt.Fatalf("set differs from the model (n=%d, model %d)", r.n, len(m))
			}
			for _, size := range sizes {
				i := slices.IndexFunc(m, func(s *slot) bool { return s.free >= size })
				want := len(m) - i
				if i < 0 {
					want = 0
				}
				if got := r.count(size); got != want {
					rt.Fatalf("count(%d) = %d, want %d", size, got, want)
				}
				if spread {
					continue
				}
				at, ok := r.firstFit(size)
				if i < 0 {
					if ok {
						rt.Fatalf("firstFit(%d) = %v; want none", size, at)
					}
					continue
				}
				if fit := r.slotAt(at); fit != m[i] {
					rt.Fatalf("firstFit(%d) = %s/%d; want %s/%d", size, fit.w.ID, fit.free, m[i].w.ID, m[i].free)
				}
			}
			if len(m) == 0 {
				if r.mostFree() != nil || r.maxFree() != 0 {
					rt.Fatalf("empty set has a most free slot")
				}
				return m
			}
			top := m[len(m)-1].free
			want := m[slices.IndexFunc(m, func(s *slot) bool { return s.free == top })]
			if got := r.mostFree(); got != want || r.maxFree() != top {
				rt.Fatalf("mostFree = %s, want %s", got.w.ID, want.w.ID)
			}
			return m
		}
		defer func() {
			if r.splits > 0 {
				rankedSplitsSeen = true
			}
		}()
		ops := rapid.IntRange(lo, 250).Draw(rt, "ops")
		for range ops {
			m := verify()
			if len(m) == 0 {
				break
			}
			// Small draws are likely: count from either end.
			i := rapid.IntRange(0, len(m)-1).Draw(rt, "slot")
			if rapid.Bool().Draw(rt, "from_top") {
				i = len(m) - 1 - i
			}
			s := m[i]
			if rapid.IntRange(0, 9).Draw(rt, "op") == 0 {
				r.remove(s)
			} else {
				size := int64(1)
				if !uniform {
					size = int64(rapid.IntRange(1, int(s.free)).Draw(rt, "size"))
				}
				if !spread && rapid.Bool().Draw(rt, "at") {
					r.takeAt(r.locate(s), size)
				} else {
					r.take(s, size)
				}
			}
		}
		verify()
	})
	if !rankedSplitsSeen {
		t.Errorf("no run split a block")
	}
}

var rankedSplitsSeen bool

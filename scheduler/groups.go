package scheduler

import "slices"

// freeGroups is the spread form of the ranked set: the slots grouped by
// free capacity, each group a list of slot indexes, the most free group on
// top, consumed in idx order. It relies on two facts of a round: free
// capacity only goes down, so no slot ever joins the top group (it would
// have to come from a group above it), and the top group is only ever
// taken from. So a slot joining a group is an append, the top group is
// sorted once when it becomes the top, and a placement costs O(1) plus a
// map lookup, amortized; only a group's sort costs O(log) per member.
//
// A slot lowered or removed anywhere else than at the front of the top
// group (a locality hit, the reservation) leaves a stale index behind, one
// whose slot left the set or no longer has the group's free capacity (free
// capacity never comes back up, so a slot is in at most one group where it
// is not stale); stale indexes are skipped when they reach the front.
type freeGroups struct {
	// top is the most free group; its members from head on are sorted.
	top *freeGroup
	// byFree holds every group but top, by free capacity: lookups only,
	// never iterated.
	byFree map[int64]*freeGroup
	// below is a max-heap of the free capacities of the groups but top.
	below freeHeap
	// spare are retired groups, reused.
	spare []*freeGroup
}

type freeGroup struct {
	free    int64
	members []int32
	head    int
}

// freeHeap is a binary max-heap of free capacities (by hand rather than
// through container/heap, whose interface would move the round to the
// heap).
type freeHeap []int64

func (h *freeHeap) push(x int64) {
	*h = append(*h, x)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if s[p] >= x {
			break
		}
		s[i] = s[p]
		i = p
	}
	s[i] = x
}

func (h *freeHeap) pop() int64 {
	s := *h
	top, last := s[0], s[len(s)-1]
	s = s[:len(s)-1]
	*h = s
	i := 0
	for {
		c := 2*i + 1
		if c >= len(s) {
			break
		}
		if c+1 < len(s) && s[c+1] > s[c] {
			c++
		}
		if s[c] <= last {
			break
		}
		s[i] = s[c]
		i = c
	}
	if len(s) > 0 {
		s[i] = last
	}
	return top
}

// build groups slots, which are sorted by (free, idx).
func (g *freeGroups) build(slots []slot) {
	g.byFree = make(map[int64]*freeGroup)
	for end := len(slots); end > 0; {
		start := end - 1
		for start > 0 && slots[start-1].free == slots[end-1].free {
			start--
		}
		grp := g.group(slots[start].free)
		for i := start; i < end; i++ {
			grp.members = append(grp.members, int32(i))
		}
		end = start
	}
	g.next()
}

// group returns the group (not top) of free capacity free, created if need
// be.
func (g *freeGroups) group(free int64) *freeGroup {
	if grp := g.byFree[free]; grp != nil {
		return grp
	}
	var grp *freeGroup
	if n := len(g.spare); n > 0 {
		grp = g.spare[n-1]
		g.spare = g.spare[:n-1]
		grp.members = grp.members[:0]
		grp.head = 0
	} else {
		grp = &freeGroup{}
	}
	grp.free = free
	g.byFree[free] = grp
	g.below.push(free)
	return grp
}

// add puts slot idx, whose free capacity is now free (below top's), in its
// group.
func (g *freeGroups) add(free int64, idx int32) {
	grp := g.group(free)
	grp.members = append(grp.members, idx)
}

// next retires top and makes the most free of the other groups the top,
// sorting it; top is nil when there is none.
func (g *freeGroups) next() {
	if g.top != nil {
		g.spare = append(g.spare, g.top)
		g.top = nil
	}
	if len(g.below) == 0 {
		return
	}
	free := g.below.pop()
	g.top = g.byFree[free]
	delete(g.byFree, free)
	if !slices.IsSorted(g.top.members) {
		slices.Sort(g.top.members)
	}
}

// front returns the slot index at the front of the top group, dropping
// stale ones (retiring exhausted groups); ok is false if the set is empty.
func (g *freeGroups) front(slots []slot) (idx int32, ok bool) {
	for g.top != nil {
		t := g.top
		for t.head < len(t.members) {
			i := t.members[t.head]
			if s := &slots[i]; s.in && s.free == t.free {
				return i, true
			}
			t.head++
		}
		g.next()
	}
	return 0, false
}

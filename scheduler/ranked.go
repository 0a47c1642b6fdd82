package scheduler

import (
	"github.com/line-sched/line/state"
)

// slot is a worker's scratch record for one round: its free capacity after
// this round's placements.
type slot struct {
	w *state.Worker
	// free is the worker's free capacity minus this round's reservations.
	free int64
	// idx is the slot's index in the round's slot array, which is sorted
	// by (free capacity at the start of the round, worker id): the
	// tie-break between slots of equal free capacity.
	idx int32
	// in tells whether the slot is in the ranked set (it has room and is
	// not reserved for a starving eval).
	in bool
}

// cmpSlot orders slots by (free, idx) ascending: the key of the ranked set.
// Integers only: no string comparison on the hot path.
func cmpSlot(free int64, idx int32, s *slot) int { return cmpKey(free, idx, entry{s.free, s.idx}) }

// entry is a slot's key as the ranked set stores it: inline, so that a
// search reads the blocks only, and free of pointers, so that moving entries
// is a plain memmove (no write barriers, nothing for the GC to scan).
type entry struct {
	free int64
	idx  int32
}

func cmpKey(free int64, idx int32, e entry) int {
	switch {
	case free < e.free:
		return -1
	case free > e.free:
		return 1
	case idx < e.idx:
		return -1
	case idx > e.idx:
		return 1
	}
	return 0
}

const (
	// blockFill is how many slots a block gets when the set is built.
	blockFill = 64
	// blockMax is the size at which a block splits in two.
	blockMax = 2 * blockFill
)

// ranked is the round's set of workers that can take an alloc (room left,
// not reserved), in one of two forms, for the strategy's question:
//
//   - spread (the most free worker, lowest idx among equals): the slots
//     grouped by free capacity (see freeGroups); a placement takes the
//     front of the most free group and appends it to a lower group.
//   - binpack (the least free worker that fits): a sorted list by (free,
//     idx) ascending, cut in blocks of at most blockMax entries (a
//     two-level B-tree; see entry). A round only ever lowers a slot's free
//     capacity, so a placement moves one entry towards the front: a binary
//     search and a short memmove, within one block when it can.
//
// Both forms keep fits, which counts the slots with room for each eval
// size in play (the candidates of a placement) in O(log sizes).
type ranked struct {
	slots []slot
	// spread selects the groups; otherwise the blocks.
	spread bool
	groups freeGroups
	blocks [][]entry
	n      int
	fits   fitCounts
	// splits counts block splits, for tests.
	splits int
}

// build fills the set with every slot, as groups if spread, else as
// blocks; slots must be sorted by (free, worker id), which build numbers
// them by. The fit counts start empty: see countFits.
func (r *ranked) build(slots []slot, spread bool) {
	r.slots = slots
	r.n = len(slots)
	r.spread = spread
	for i := range slots {
		slots[i].in = true
		slots[i].idx = int32(i)
	}
	if spread {
		r.groups.build(slots)
		return
	}
	nb := (len(slots) + blockFill - 1) / blockFill
	r.blocks = make([][]entry, 0, nb+nb/2+1)
	backing := make([]entry, nb*(blockMax+1))
	for i := 0; i < len(slots); i += blockFill {
		j := min(i+blockFill, len(slots))
		k := len(r.blocks) * (blockMax + 1)
		b := backing[k : k+j-i : k+blockMax+1]
		for x := range b {
			b[x] = entry{slots[i+x].free, int32(i + x)}
		}
		r.blocks = append(r.blocks, b)
	}
}

// countFits starts counting, for each of sizes (ascending, distinct), the
// slots of the set with at least that much room; count then answers for
// those sizes only.
func (r *ranked) countFits(sizes []int64) {
	r.fits.init(sizes)
	for i := range r.slots {
		if s := &r.slots[i]; s.in {
			r.fits.enter(s.free)
		}
	}
}

// count returns how many slots of the set have at least size free; size
// must be one of the sizes given to countFits.
func (r *ranked) count(size int64) int { return r.fits.atLeast(size) }

func (r *ranked) at(e entry) *slot { return &r.slots[e.idx] }

// seek returns the position of the first entry >= (free, idx): block bi and
// index i, with bi == len(r.blocks) when every entry is smaller.
func (r *ranked) seek(free int64, idx int32) (bi, i int) {
	lo, hi := 0, len(r.blocks)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		b := r.blocks[m]
		if cmpKey(free, idx, b[len(b)-1]) > 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(r.blocks) {
		return lo, 0
	}
	b := r.blocks[lo]
	l, h := 0, len(b)
	for l < h {
		m := int(uint(l+h) >> 1)
		if cmpKey(free, idx, b[m]) > 0 {
			l = m + 1
		} else {
			h = m
		}
	}
	return lo, l
}

// pos is a position in the set.
type pos struct{ bi, i int }

func (r *ranked) slotAt(p pos) *slot { return r.at(r.blocks[p.bi][p.i]) }

// firstFit returns the position of the slot with the least free capacity
// >= size (lowest idx among equals); ok is false if none has. Blocks only.
func (r *ranked) firstFit(size int64) (p pos, ok bool) {
	bi, i := r.seek(size, -1)
	if bi == len(r.blocks) {
		return pos{}, false
	}
	return pos{bi, i}, true
}

// mostFree returns the slot with the most free capacity (lowest idx among
// equals), or nil if the set is empty.
func (r *ranked) mostFree() *slot {
	if r.n == 0 {
		return nil
	}
	if r.spread {
		i, _ := r.groups.front(r.slots)
		return &r.slots[i]
	}
	bi, i := r.seek(r.maxFree(), -1)
	return r.slotAt(pos{bi, i})
}

// maxFree is the largest free capacity in the set, or 0 if it is empty.
func (r *ranked) maxFree() int64 {
	if r.n == 0 {
		return 0
	}
	if r.spread {
		return r.groups.top.free
	}
	b := r.blocks[len(r.blocks)-1]
	return b[len(b)-1].free
}

// locate returns the position of s, which must be in the set.
func (r *ranked) locate(s *slot) pos {
	bi, i := r.seek(s.free, s.idx)
	if bi == len(r.blocks) || r.at(r.blocks[bi][i]) != s {
		panic("scheduler: ranked set lost a slot")
	}
	return pos{bi, i}
}

func (r *ranked) insertAt(bi, i int, e entry) {
	if bi == len(r.blocks) {
		if bi == 0 {
			r.blocks = append(r.blocks, make([]entry, 0, blockMax+1))
		} else {
			bi--
		}
		i = len(r.blocks[bi])
	}
	b := append(r.blocks[bi], entry{})
	copy(b[i+1:], b[i:])
	b[i] = e
	r.n++
	r.at(e).in = true
	if len(b) <= blockMax {
		r.blocks[bi] = b
		return
	}
	// Split the block in two halves.
	r.splits++
	half := len(b) / 2
	nb := make([]entry, len(b)-half, blockMax+1)
	copy(nb, b[half:])
	r.blocks[bi] = b[:half]
	r.blocks = append(r.blocks, nil)
	copy(r.blocks[bi+2:], r.blocks[bi+1:])
	r.blocks[bi+1] = nb
}

func (r *ranked) removeAt(bi, i int) {
	b := r.blocks[bi]
	r.at(b[i]).in = false
	copy(b[i:], b[i+1:])
	b = b[:len(b)-1]
	r.n--
	if len(b) > 0 {
		r.blocks[bi] = b
		return
	}
	copy(r.blocks[bi:], r.blocks[bi+1:])
	r.blocks[len(r.blocks)-1] = nil
	r.blocks = r.blocks[:len(r.blocks)-1]
}

// remove takes s out of the set (if it is in).
func (r *ranked) remove(s *slot) {
	if !s.in {
		return
	}
	r.fits.leave(s.free)
	if r.spread {
		s.in = false
		r.n--
		r.groups.front(r.slots) // keep the top's front current
		return
	}
	p := r.locate(s)
	r.removeAt(p.bi, p.i)
}

// take lowers the free capacity of s, which must be in the set, by size; a
// slot left without room leaves the set.
func (r *ranked) take(s *slot, size int64) {
	if !r.spread {
		r.takeAt(r.locate(s), size)
		return
	}
	free := s.free - size
	r.fits.move(s.free, free)
	s.free = free // s's entry goes stale
	if free > 0 {
		r.groups.add(free, s.idx)
	} else {
		s.in = false
		r.n--
	}
	r.groups.front(r.slots) // keep the top's front current
}

// takeAt is take for the slot at p (blocks only).
func (r *ranked) takeAt(p pos, size int64) {
	bi, i := p.bi, p.i
	s := r.slotAt(p)
	free := s.free - size
	r.fits.move(s.free, free)
	if free <= 0 {
		r.removeAt(bi, i)
		s.free = free
		return
	}
	// The new key is smaller than every entry after s and than s: its
	// position is at or before s's.
	bj, j := r.seek(free, s.idx)
	s.free = free
	e := entry{free, s.idx}
	if bj == bi {
		b := r.blocks[bi]
		copy(b[j+1:i+1], b[j:i])
		b[j] = e
		return
	}
	r.removeAt(bi, i)
	r.insertAt(bj, j, e)
}

// stale reports whether slot i's entry in the group of free capacity free
// no longer stands for it (for tests).
func (r *ranked) stale(i int32, free int64) bool {
	s := &r.slots[i]
	return !s.in || s.free != free
}

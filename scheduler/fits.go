package scheduler

import "slices"

// fitCounts counts, for each eval size in play in a round, the slots with at
// least that much free capacity: the candidates of a placement. Slots are
// counted in buckets, bucket b holding those whose free capacity is in
// [sizes[b], sizes[b+1]), in a Fenwick tree over the buckets: moving a slot
// to a lower bucket and counting the slots in the buckets from a size up
// both cost O(log len(sizes)), however many slots the set has or however
// far a placement lowers a slot.
type fitCounts struct {
	// sizes are the counted sizes, ascending and distinct.
	sizes []int64
	// tree is the Fenwick tree of the bucket counts (1-based).
	tree []int32
	// total counts the slots in some bucket (free >= sizes[0]).
	total int
}

func (c *fitCounts) init(sizes []int64) {
	c.sizes = sizes
	c.tree = make([]int32, len(sizes)+1)
	c.total = 0
}

// bucket returns the bucket of a slot with free capacity free, -1 if it has
// less than the smallest size.
func (c *fitCounts) bucket(free int64) int {
	k := len(c.sizes) - 1
	if k < 0 || free >= c.sizes[k] {
		return k // the common case: room for every size
	}
	i, _ := slices.BinarySearch(c.sizes, free+1) // first size > free
	return i - 1
}

func (c *fitCounts) add(b int, delta int32) {
	if b < 0 {
		return
	}
	c.total += int(delta)
	for i := b + 1; i < len(c.tree); i += i & -i {
		c.tree[i] += delta
	}
}

// enter counts a slot with free capacity free.
func (c *fitCounts) enter(free int64) { c.add(c.bucket(free), 1) }

// leave uncounts a slot with free capacity free.
func (c *fitCounts) leave(free int64) { c.add(c.bucket(free), -1) }

// move recounts a slot whose free capacity went from old to free.
func (c *fitCounts) move(old, free int64) {
	if b, nb := c.bucket(old), c.bucket(free); b != nb {
		c.add(b, -1)
		c.add(nb, 1)
	}
}

// atLeast returns how many counted slots have at least size free; size
// must be one of the sizes.
func (c *fitCounts) atLeast(size int64) int {
	k, _ := slices.BinarySearch(c.sizes, size)
	below := 0 // slots in buckets 0..k-1
	for i := k; i > 0; i -= i & -i {
		below += int(c.tree[i])
	}
	return c.total - below
}

package schedloop

import "github.com/twmb/franz-go/pkg/kgo"

// valueArena hands out the bytes of record values (and keys) carved from
// large chunks, so that a round's thousands of records cost a few
// allocations instead of one or more each, and no growing copies.
//
// A value handed out stays valid as long as it is referenced: a chunk is
// never written again once handed out, unless the arena is recycled. The
// events' arena is never recycled (their values are kept as placements
// applied ahead until read back); the deliveries' arena is recycled at the
// start of a round, when the previous round's transaction has ended and
// franz-go has called back every record of it (commit waits for that), so
// nothing reads the previous round's delivery values any more.
type valueArena struct {
	buf []byte
	// used counts the bytes handed out since the last recycle.
	used int
}

// arenaMinChunk and arenaMaxChunk bound a chunk allocated while a round is
// encoded: small rounds share chunks, and a chunk pinned by a few values
// still referenced costs little.
const (
	arenaMinChunk = 16 << 10
	arenaMaxChunk = 256 << 10
)

// reserve makes room for at least need bytes, in a new chunk of about
// want bytes (within the chunk bounds, at least need) if the current one
// has not.
func (a *valueArena) reserve(need, want int) {
	if cap(a.buf)-len(a.buf) >= need {
		return
	}
	a.buf = make([]byte, 0, max(need, min(max(want, arenaMinChunk), arenaMaxChunk)))
}

// tail returns the arena's free space as a slice to append to; cut takes
// what was appended.
func (a *valueArena) tail() []byte { return a.buf[len(a.buf):] }

// cut takes b, the arena's tail with bytes appended (by the caller, after
// tail), as a value of its own: capped so that appending to it cannot
// write into the arena. If the appends outgrew the chunk, b is a new array
// and becomes the arena's chunk.
func (a *valueArena) cut(b []byte) []byte {
	v := b[:len(b):len(b)]
	if len(b) > 0 && cap(b) <= cap(a.buf)-len(a.buf) {
		a.buf = a.buf[:len(a.buf)+len(b)]
	} else if len(b) > 0 {
		a.buf = b[len(b):] // outgrew the chunk: the rest of b's array
	}
	a.used += len(b)
	return v
}

// bytes copies s into the arena.
func (a *valueArena) bytes(s string) []byte {
	a.reserve(len(s), 0)
	return a.cut(append(a.tail(), s...))
}

// recycle makes the arena hand out its chunk again from the start, grown
// to what the last round used so that the next one takes one chunk. Only
// for an arena whose values nobody reads any more.
func (a *valueArena) recycle() {
	if a.used > cap(a.buf) {
		a.buf = make([]byte, 0, a.used+a.used/8)
	} else {
		a.buf = a.buf[:0]
	}
	a.used = 0
}

// recordArena hands out the records of a round from one slab, recycled
// like the deliveries' arena: at the start of a round, when franz-go has
// called back every record of the previous one and the round's commit no
// longer reads them (a placement applied ahead keeps its offset and value,
// not its record).
type recordArena struct {
	recs []kgo.Record
	// used counts the records handed out since the last recycle.
	used int
}

// reserve makes room for n more records in the current slab, so that the
// records added next do not move it.
func (a *recordArena) reserve(n int) {
	if cap(a.recs)-len(a.recs) < n {
		a.recs = make([]kgo.Record, 0, max(n, 1024))
	}
}

// add returns a record of the arena holding r.
func (a *recordArena) add(r kgo.Record) *kgo.Record {
	a.recs = append(a.recs, r)
	a.used++
	return &a.recs[len(a.recs)-1]
}

// recycle makes the arena hand out its slab again from the start, grown
// to what the last round used. Only when nobody reads its records any
// more.
func (a *recordArena) recycle() {
	if a.used > cap(a.recs) {
		a.recs = make([]kgo.Record, 0, a.used+a.used/8)
	} else {
		clear(a.recs)
		a.recs = a.recs[:0]
	}
	a.used = 0
}

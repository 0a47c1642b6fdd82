package schedloop

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestValueArenaKeepsValues checks that values handed out by the arena keep
// their bytes while more are appended, across chunks and when an append
// outgrows its chunk, that appending to a value cannot write into the
// arena, and that a recycled arena takes one chunk for what the last round
// used.
func TestValueArenaKeepsValues(t *testing.T) {
	var a valueArena
	var got [][]byte
	var want []string
	for i := range 3000 {
		s := fmt.Sprintf("value-%d-%s", i, strings.Repeat("x", i%97))
		if i%500 == 0 {
			s += strings.Repeat("y", 2*arenaMaxChunk) // outgrows any chunk
		}
		a.reserve(64, 100*64)
		v := a.cut(append(a.tail(), s...))
		got = append(got, v)
		want = append(want, s)
		if cap(v) != len(v) {
			t.Fatalf("value %d has room to grow into the arena: len %d cap %d", i, len(v), cap(v))
		}
	}
	k := a.bytes("key")
	_ = append(got[len(got)-1], "overwrite"...)
	for i := range got {
		if string(got[i]) != want[i] {
			t.Fatalf("value %d changed: %.40q, want %.40q", i, got[i], want[i])
		}
	}
	if string(k) != "key" {
		t.Fatalf("key changed: %q", k)
	}
	used := a.used
	a.recycle()
	if a.used != 0 || len(a.buf) != 0 || cap(a.buf) < used {
		t.Fatalf("recycled arena: used %d, len %d, cap %d; want 0, 0, at least %d", a.used, len(a.buf), cap(a.buf), used)
	}
	before := &a.buf[:1][0]
	v := a.cut(append(a.tail(), "again"...))
	if &v[0] != before || string(v) != "again" {
		t.Errorf("a recycled arena did not hand out its chunk again")
	}
}

// TestRecordArenaReserve checks that records added after a reserve do not
// move, and that recycling reuses the slab and drops what it held.
func TestRecordArenaReserve(t *testing.T) {
	var a recordArena
	a.reserve(3000)
	first := a.add(kgo.Record{Topic: "t0", Value: []byte("v0")})
	for i := 1; i < 3000; i++ {
		a.add(kgo.Record{Topic: fmt.Sprintf("t%d", i)})
	}
	if first != &a.recs[0] || first.Topic != "t0" || !bytes.Equal(first.Value, []byte("v0")) {
		t.Fatalf("the first record moved or changed: %+v", first)
	}
	a.recycle()
	if len(a.recs) != 0 || cap(a.recs) < 3000 {
		t.Fatalf("recycled arena: len %d cap %d, want 0 and at least 3000", len(a.recs), cap(a.recs))
	}
	if a.recs[:1][0].Topic != "" || a.recs[:1][0].Value != nil {
		t.Errorf("recycling kept a record's contents: %+v", a.recs[:1][0])
	}
	if r := a.add(kgo.Record{Topic: "n"}); r != first {
		t.Errorf("a recycled arena did not hand out its slab again")
	}
}

package projections

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/state"
)

// Rows are JSON as encoding/json writes them (the views' field order,
// omitempty as tagged). The rows written on every placement (evals, allocs
// and workers) are encoded here by hand, which is several times faster;
// any row holding a string that encoding/json would escape, a payload or
// a completion is handed to encoding/json instead, so the bytes are always
// json.Marshal's (TestEncodeRowsLikeEncodingJSON).

// rowJSON appends simple values; ok turns false at the first value it
// cannot encode exactly like encoding/json.
type rowJSON struct {
	b  []byte
	ok bool
}

// plain reports whether encoding/json writes s between quotes unchanged:
// printable ASCII without '"', '\\' and the HTML characters it escapes.
// (A byte at a time: looking at eight at a time with bit tricks was
// slower for ids.)
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if !plainByte[s[i]] {
			return false
		}
	}
	return true
}

// load8 is the eight bytes of s at i, the first in the low byte (one
// load: the compiler merges the byte loads).
func load8(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// Every byte of a word: ones is 0x01 in each, highs 0x80.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// hasByte reports whether a byte of x is c (exactly: the borrows of the
// subtraction can only mark bytes above one that is c).
func hasByte(x uint64, c byte) bool {
	v := x ^ ones*uint64(c)
	return (v-ones)&^v&highs != 0
}

// plainByte tells the bytes that plain accepts: one load per byte.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c <= 0x7e; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

func (w *rowJSON) raw(s string) { w.b = append(w.b, s...) }

func (w *rowJSON) str(field, s string) {
	if !plain(s) {
		w.ok = false
		return
	}
	w.quoted(field, s)
}

// quoted appends field and s between quotes (s is plain).
func (w *rowJSON) quoted(field, s string) {
	w.b = append(w.b, field...)
	w.b = append(w.b, '"')
	w.b = append(w.b, s...)
	w.b = append(w.b, '"')
}

// strKnown is str for a value that is often the same string as the last
// one (a pool's id, a status, a topic): known holds the last value found
// plain, and an equal string (the same memory, mostly, which the
// comparison finds at once) is not looked at again.
func (w *rowJSON) strKnown(field, s string, known *string) {
	if s != *known {
		if !plain(s) {
			w.ok = false
			return
		}
		*known = s
	}
	w.quoted(field, s)
}

// time writes t as ts formats it (the zero time as ""); seen is the
// field's last second (see appendRFC3339Seen).
func (w *rowJSON) time(field string, t time.Time, seen *lastSecond) {
	w.b = append(w.b, field...)
	w.b = append(w.b, '"')
	if !t.IsZero() {
		w.b = appendRFC3339Seen(w.b, t, seen)
	}
	w.b = append(w.b, '"')
}

// timeOmit writes t unless it is zero (a field tagged omitempty that
// holds ts(t)).
func (w *rowJSON) timeOmit(field string, t time.Time) {
	if !t.IsZero() {
		w.time(field, t, nil)
	}
}

// position writes p as its String does (digits, ':' and '-' only).
func (w *rowJSON) position(field string, p events.Position) {
	w.b = append(w.b, field...)
	w.b = append(w.b, '"')
	w.b = strconv.AppendInt(w.b, int64(p.Partition), 10)
	w.b = append(w.b, ':')
	w.b = strconv.AppendInt(w.b, p.Offset, 10)
	w.b = append(w.b, '"')
}

func (w *rowJSON) strOmit(field, s string) {
	if s != "" {
		w.str(field, s)
	}
}

func (w *rowJSON) int(field string, n int64) {
	w.b = append(w.b, field...)
	w.b = strconv.AppendInt(w.b, n, 10)
}

func (w *rowJSON) strs(field string, ss []string) {
	w.b = append(w.b, field...)
	if ss == nil {
		w.b = append(w.b, "null"...)
		return
	}
	w.b = append(w.b, '[')
	for i, s := range ss {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.str("", s)
	}
	w.b = append(w.b, ']')
}

func (w *rowJSON) done(v any) ([]byte, error) {
	if w.ok {
		return w.b, nil
	}
	return json.Marshal(v)
}

func marshalWorker(dst []byte, v *workerRow) ([]byte, error) {
	w := rowJSON{b: dst[:0], ok: true}
	w.str(`{"pool_id":`, v.PoolID)
	w.str(`,"worker_id":`, v.WorkerID)
	w.int(`,"capacity":`, v.Capacity)
	w.int(`,"used":`, v.Used)
	w.int(`,"free":`, v.Free)
	w.str(`,"deadline":`, v.Deadline)
	w.str(`,"topic":`, v.Topic)
	w.str(`,"registered_at":`, v.RegisteredAt)
	w.strs(`,"datasets":`, v.Datasets)
	w.raw("}")
	return w.done(v)
}

// rowMemo holds what a row encoder remembers from row to row, one per
// goroutine writing rows: field by field, the last string it found plain
// (see strKnown), and the last second of times (see appendRFC3339Seen).
type rowMemo struct {
	pool, status, topic, strategy, locality, result string

	submitted, queued, deadline, placed lastSecond
}

// appendEvalRow appends the row of eval e of pool to dst: the bytes of
// json.Marshal(evalView(pool, e)), written from the fold's eval without
// building the view (batches and the bulk load write every eval row this
// way; TestRowsFromTheFoldLikeViews). Payloads and strings that
// encoding/json would escape go to encoding/json.
func appendEvalRow(dst []byte, pool string, e *state.Eval, known *rowMemo) ([]byte, error) {
	if len(e.Payload()) == 0 {
		w := rowJSON{b: dst[:0], ok: true}
		w.strKnown(`{"pool_id":`, pool, &known.pool)
		w.str(`,"eval_id":`, e.ID)
		w.strOmit(`,"dataset_id":`, e.DatasetID)
		w.int(`,"size":`, e.Size)
		w.strKnown(`,"status":`, string(e.Status()), &known.status)
		w.int(`,"attempts":`, int64(e.Attempts))
		w.int(`,"next_attempt":`, int64(e.NextAttempt))
		w.strOmit(`,"alloc_id":`, e.AllocID)
		w.time(`,"submitted_at":`, e.SubmittedAt(), &known.submitted)
		w.time(`,"queued_at":`, e.QueuedAt(), &known.queued)
		w.timeOmit(`,"ended_at":`, e.EndedAt())
		w.strOmit(`,"reason":`, e.Reason())
		if r := string(e.Result()); r != "" {
			w.strKnown(`,"result":`, r, &known.result)
		}
		w.position(`,"position":`, e.Position)
		w.raw("}")
		if w.ok {
			return w.b, nil
		}
	}
	return json.Marshal(evalView(pool, e))
}

// appendAllocRow appends the row of alloc a of pool to dst: the bytes of
// json.Marshal(allocView(pool, a)), written from the fold's alloc without
// building the view. Completions and strings that encoding/json would
// escape go to encoding/json.
func appendAllocRow(dst []byte, pool string, a *state.Alloc, known *rowMemo) ([]byte, error) {
	if a.Completion() == nil {
		w := rowJSON{b: dst[:0], ok: true}
		w.strKnown(`{"pool_id":`, pool, &known.pool)
		w.str(`,"alloc_id":`, a.ID)
		w.str(`,"eval_id":`, a.EvalID)
		w.str(`,"worker_id":`, a.WorkerID())
		w.strOmit(`,"dataset_id":`, a.DatasetID)
		w.int(`,"size":`, a.Size)
		w.int(`,"attempt":`, int64(a.Attempt))
		w.time(`,"deadline":`, a.Deadline(), &known.deadline)
		w.strKnown(`,"status":`, string(a.Status()), &known.status)
		w.time(`,"placed_at":`, a.PlacedAt(), &known.placed)
		w.timeOmit(`,"ended_at":`, a.EndedAt())
		w.strKnown(`,"topic":`, a.Topic(), &known.topic)
		pl := a.Placement()
		w.strKnown(`,"placement":{"strategy":`, string(pl.Strategy), &known.strategy)
		w.strKnown(`,"locality":`, string(pl.Locality), &known.locality)
		w.int(`,"candidates":`, int64(pl.Candidates))
		w.int(`,"waited_ms":`, int64(pl.WaitedMs))
		w.int(`,"basis":`, pl.Basis)
		w.raw("}")
		w.strOmit(`,"expiry_reason":`, a.ExpiryReason())
		w.raw("}")
		if w.ok {
			return w.b, nil
		}
	}
	return json.Marshal(allocView(pool, a))
}

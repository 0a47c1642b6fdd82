package projections

import (
	"encoding/json"
	"strconv"
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
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if !plainByte[s[i]] {
			return false
		}
	}
	return true
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
	w.b = append(w.b, field...)
	w.b = append(w.b, '"')
	w.b = append(w.b, s...)
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

func marshalEval(dst []byte, v *EvalView) ([]byte, error) {
	if len(v.Payload) > 0 {
		return json.Marshal(v)
	}
	w := rowJSON{b: dst[:0], ok: true}
	w.str(`{"pool_id":`, v.PoolID)
	w.str(`,"eval_id":`, v.EvalID)
	w.strOmit(`,"dataset_id":`, v.DatasetID)
	w.int(`,"size":`, v.Size)
	w.str(`,"status":`, v.Status)
	w.int(`,"attempts":`, int64(v.Attempts))
	w.int(`,"next_attempt":`, int64(v.NextAttempt))
	w.strOmit(`,"alloc_id":`, v.AllocID)
	w.str(`,"submitted_at":`, v.SubmittedAt)
	w.str(`,"queued_at":`, v.QueuedAt)
	w.strOmit(`,"ended_at":`, v.EndedAt)
	w.strOmit(`,"reason":`, v.Reason)
	w.strOmit(`,"result":`, v.Result)
	w.str(`,"position":`, v.Position)
	w.raw("}")
	return w.done(v)
}

func marshalAlloc(dst []byte, v *AllocView) ([]byte, error) {
	if v.Completion != nil {
		return json.Marshal(v)
	}
	w := rowJSON{b: dst[:0], ok: true}
	w.str(`{"pool_id":`, v.PoolID)
	w.str(`,"alloc_id":`, v.AllocID)
	w.str(`,"eval_id":`, v.EvalID)
	w.str(`,"worker_id":`, v.WorkerID)
	w.strOmit(`,"dataset_id":`, v.DatasetID)
	w.int(`,"size":`, v.Size)
	w.int(`,"attempt":`, int64(v.Attempt))
	w.str(`,"deadline":`, v.Deadline)
	w.str(`,"status":`, v.Status)
	w.str(`,"placed_at":`, v.PlacedAt)
	w.strOmit(`,"ended_at":`, v.EndedAt)
	w.str(`,"topic":`, v.Topic)
	pl := v.Placement
	w.str(`,"placement":{"strategy":`, string(pl.Strategy))
	w.str(`,"locality":`, string(pl.Locality))
	w.int(`,"candidates":`, int64(pl.Candidates))
	w.int(`,"waited_ms":`, pl.WaitedMs)
	w.int(`,"basis":`, pl.Basis)
	w.raw("}")
	w.strOmit(`,"expiry_reason":`, v.ExpiryReason)
	w.raw("}")
	return w.done(v)
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

package events

import (
	"encoding/json"
	"strconv"
	"time"
)

// AppendAllocRecord appends the JSON of r to dst as encoding/json writes it
// without escaping <, > and & (so that the payload reaches the worker with
// the bytes it has on the log), and returns the extended slice. Records
// whose strings need no escaping, whose payload is already compact and
// whose deadline is in UTC take a hand-written path; the others are encoded
// by encoding/json (MarshalAllocRecordReference), with the same bytes
// (TestAppendAllocRecordMatchesReference, FuzzAppendAllocRecord). On error
// (a payload that is not JSON) dst is returned as it was.
func AppendAllocRecord(dst []byte, r AllocRecord) ([]byte, error) {
	if out, ok := appendAllocRecordFast(dst, r); ok {
		return out, nil
	}
	b, err := MarshalAllocRecordReference(r)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

// MarshalAllocRecordReference is AppendAllocRecord without its fast path:
// encoding/json with HTML escaping off.
func MarshalAllocRecordReference(r AllocRecord) ([]byte, error) {
	return marshalJSON(r)
}

// MarshalDeadLetterRecord encodes d as the events and alloc records are
// encoded: encoding/json without escaping <, > and &, so that the reader
// of the dead-evals topic gets the bytes the log has.
func MarshalDeadLetterRecord(d DeadLetterRecord) ([]byte, error) {
	return marshalJSON(d)
}

// appendAllocRecordFast appends r encoded, or returns dst as it was and
// false when encoding/json must do it.
func appendAllocRecordFast(dst []byte, r AllocRecord) ([]byte, bool) {
	if !plainJSONString(r.AllocID) || !plainJSONString(r.EvalID) || !plainJSONString(r.PoolID) ||
		!plainJSONString(r.WorkerID) || !plainJSONString(r.DatasetID) || !plainJSONTime(r.Deadline) ||
		(len(r.Payload) > 0 && !compactJSON(r.Payload)) {
		return dst, false
	}
	out := dst
	if out == nil {
		out = make([]byte, 0, 160+len(r.AllocID)+len(r.EvalID)+len(r.PoolID)+len(r.WorkerID)+len(r.DatasetID)+len(r.Payload))
	}
	out = append(out, `{"alloc_id":"`...)
	out = append(out, r.AllocID...)
	out = append(out, `","eval_id":"`...)
	out = append(out, r.EvalID...)
	out = append(out, `","pool_id":"`...)
	out = append(out, r.PoolID...)
	out = append(out, `","worker_id":"`...)
	out = append(out, r.WorkerID...)
	out = append(out, '"')
	out = appendDatasetID(out, r.DatasetID)
	out = append(out, `,"size":`...)
	out = strconv.AppendInt(out, r.Size, 10)
	out = append(out, `,"attempt":`...)
	out = strconv.AppendInt(out, int64(r.Attempt), 10)
	if len(r.Payload) > 0 {
		out = append(out, `,"payload":`...)
		out = append(out, r.Payload...)
	}
	out = append(out, `,"deadline":"`...)
	out = r.Deadline.AppendFormat(out, time.RFC3339Nano)
	out = append(out, `"}`...)
	return out, true
}

// compactJSON reports whether b is valid JSON that encoding/json writes as
// it is: no whitespace between tokens (which json.Compact drops; with HTML
// escaping off it changes nothing else). Payloads on the log were compacted
// when their eval.submitted was encoded, so this is the common case.
func compactJSON(b []byte) bool {
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inString:
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			return false
		}
	}
	return !inString && json.Valid(b)
}

package events

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
)

// Marshal's fast paths for the events written most: eval.submitted (by
// ingest) and alloc.placed (by the scheduler). Each appends by hand the
// bytes encoding/json writes for the envelope and its data. They take only
// envelopes whose strings need no escaping and whose times encode plainly;
// any other goes the reference way (marshalReference), with the same
// result (TestMarshalFastMatchesReference, FuzzMarshalSubmitted,
// FuzzMarshalPlaced).

// marshalFast returns e encoded and true, or false when the reference
// encoder must do it.
func marshalFast(e Envelope) ([]byte, bool) {
	return appendFast(nil, e)
}

// AppendMarshal appends Marshal(e) to dst and returns the extended slice;
// on error dst is returned as it was. It lets a writer of many events
// encode them into one buffer.
func AppendMarshal(dst []byte, e Envelope) ([]byte, error) {
	if out, ok := appendFast(dst, e); ok {
		return out, nil
	}
	b, err := Marshal(e)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

// appendFast appends e encoded to dst and returns it and true, or dst as it
// was and false when the reference encoder must do it. When dst is nil it
// allocates the encoding's own slice, sized up front.
func appendFast(dst []byte, e Envelope) ([]byte, bool) {
	if e.Data == nil || e.Data.EventType() != e.Type {
		return dst, false
	}
	switch d := e.Data.(type) {
	case EvalSubmittedData:
		return appendSubmitted(dst, e, d)
	case AllocPlacedData:
		return appendPlaced(dst, e, d)
	}
	return dst, false
}

// appendEnvelopeHead appends the envelope's members before its data, up to
// and including `"data":`. The caller checked that the strings are plain.
func appendEnvelopeHead(out []byte, e Envelope) []byte {
	out = append(out, `{"id":"`...)
	out = append(out, e.ID...)
	out = append(out, `","type":"`...)
	out = append(out, e.Type...)
	out = append(out, `","v":`...)
	out = strconv.AppendInt(out, int64(e.V), 10)
	out = append(out, `,"pool":"`...)
	out = append(out, e.Pool...)
	out = append(out, `","at":"`...)
	out = e.At.UTC().AppendFormat(out, timeLayoutMillis)
	return append(out, `","data":`...)
}

// plainEnvelope reports whether the envelope's own strings need no
// escaping.
func plainEnvelope(e Envelope) bool {
	return plainJSONString(e.ID) && plainJSONString(string(e.Type)) && plainJSONString(e.Pool)
}

func appendSubmitted(dst []byte, e Envelope, d EvalSubmittedData) ([]byte, bool) {
	if !plainEnvelope(e) || !plainJSONString(d.EvalID) || !plainJSONString(d.DatasetID) {
		return dst, false
	}
	var payload []byte
	if len(d.Payload) > 0 {
		// encoding/json writes a RawMessage compacted (and checks it).
		var b bytes.Buffer
		b.Grow(len(d.Payload))
		if err := json.Compact(&b, d.Payload); err != nil {
			return dst, false
		}
		payload = b.Bytes()
	}
	out := dst
	if out == nil {
		out = make([]byte, 0, 160+len(e.ID)+len(e.Pool)+len(d.EvalID)+len(d.DatasetID)+len(payload))
	}
	out = appendEnvelopeHead(out, e)
	out = append(out, `{"eval_id":"`...)
	out = append(out, d.EvalID...)
	out = append(out, '"')
	out = appendDatasetID(out, d.DatasetID)
	out = append(out, `,"size":`...)
	out = strconv.AppendInt(out, d.Size, 10)
	if len(d.Payload) > 0 {
		out = append(out, `,"payload":`...)
		out = append(out, payload...)
	}
	out = append(out, "}}"...)
	return out, true
}

func appendPlaced(dst []byte, e Envelope, d AllocPlacedData) ([]byte, bool) {
	if !plainEnvelope(e) || !plainJSONString(d.AllocID) || !plainJSONString(d.EvalID) ||
		!plainJSONString(d.WorkerID) || !plainJSONString(d.DatasetID) || !plainJSONString(d.Topic) ||
		!plainJSONString(string(d.Strategy)) || !plainJSONString(string(d.Locality)) || !plainJSONTime(d.Deadline) {
		return dst, false
	}
	out := dst
	if out == nil {
		out = make([]byte, 0, 400+len(e.ID)+len(e.Pool)+len(d.AllocID)+len(d.EvalID)+len(d.WorkerID)+
			len(d.DatasetID)+len(d.Topic)+len(d.Strategy)+len(d.Locality))
	}
	out = appendEnvelopeHead(out, e)
	out = append(out, `{"alloc_id":"`...)
	out = append(out, d.AllocID...)
	out = append(out, `","eval_id":"`...)
	out = append(out, d.EvalID...)
	out = append(out, `","worker_id":"`...)
	out = append(out, d.WorkerID...)
	out = append(out, '"')
	out = appendDatasetID(out, d.DatasetID)
	out = append(out, `,"size":`...)
	out = strconv.AppendInt(out, d.Size, 10)
	out = append(out, `,"attempt":`...)
	out = strconv.AppendInt(out, int64(d.Attempt), 10)
	out = append(out, `,"deadline":"`...)
	out = d.Deadline.AppendFormat(out, time.RFC3339Nano)
	out = append(out, `","topic":"`...)
	out = append(out, d.Topic...)
	out = append(out, `","strategy":"`...)
	out = append(out, d.Strategy...)
	out = append(out, `","locality":"`...)
	out = append(out, d.Locality...)
	out = append(out, `","candidates":`...)
	out = strconv.AppendInt(out, int64(d.Candidates), 10)
	out = append(out, `,"waited_ms":`...)
	out = strconv.AppendInt(out, int64(d.WaitedMs), 10)
	out = append(out, `,"basis":`...)
	out = strconv.AppendInt(out, d.Basis, 10)
	out = append(out, "}}"...)
	return out, true
}

// plainJSONTime reports whether encoding/json writes t (a time.Time member,
// encoded by its MarshalJSON) as t.AppendFormat(RFC3339Nano) between
// quotes: in UTC and in the years MarshalJSON accepts. (Other zones encode
// the same way as long as their offset is in range; leaving them to the
// reference encoder keeps the rule short.)
func plainJSONTime(t time.Time) bool {
	if t.Location() != time.UTC {
		return false
	}
	y := t.Year()
	return y >= 0 && y <= 9999
}

// plainJSONString reports whether encoding/json writes s between quotes as
// it is: printable ASCII without quote or backslash (Marshal does not
// escape HTML characters).
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// appendDatasetID appends the optional dataset_id member (omitempty) of
// the hand-encoded events and records: nothing for "", else
// `,"dataset_id":"<id>"` (id needs no escaping: checked by the callers).
func appendDatasetID(out []byte, id string) []byte {
	if id == "" {
		return out
	}
	out = append(out, `,"dataset_id":"`...)
	out = append(out, id...)
	return append(out, '"')
}

package events

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Marshal's fast path for eval.submitted, the event ingest writes most:
// the bytes encoding/json writes for the envelope and its data, appended
// by hand. It takes only envelopes whose strings need no escaping; any
// other goes the reference way (marshalReference), with the same result
// (TestMarshalFastMatchesReference, FuzzMarshalSubmitted).

// marshalFast returns e encoded and true, or false when the reference
// encoder must do it.
func marshalFast(e Envelope) ([]byte, bool) {
	d, ok := e.Data.(EvalSubmittedData)
	if !ok || e.Type != EvalSubmitted || !plainJSONString(e.ID) || !plainJSONString(string(e.Type)) ||
		!plainJSONString(e.Pool) || !plainJSONString(d.EvalID) || !plainJSONString(d.DatasetID) {
		return nil, false
	}
	var payload []byte
	if len(d.Payload) > 0 {
		// encoding/json writes a RawMessage compacted (and checks it).
		var b bytes.Buffer
		b.Grow(len(d.Payload))
		if err := json.Compact(&b, d.Payload); err != nil {
			return nil, false
		}
		payload = b.Bytes()
	}
	out := make([]byte, 0, 160+len(e.ID)+len(e.Pool)+len(d.EvalID)+len(d.DatasetID)+len(payload))
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
	out = append(out, `","data":{"eval_id":"`...)
	out = append(out, d.EvalID...)
	out = append(out, '"')
	if d.DatasetID != "" {
		out = append(out, `,"dataset_id":"`...)
		out = append(out, d.DatasetID...)
		out = append(out, '"')
	}
	out = append(out, `,"size":`...)
	out = strconv.AppendInt(out, d.Size, 10)
	if len(d.Payload) > 0 {
		out = append(out, `,"payload":`...)
		out = append(out, payload...)
	}
	out = append(out, "}}"...)
	return out, true
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

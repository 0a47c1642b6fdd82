package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Envelope is one event as it sits on the events topic: a JSON object whose
// record key is the pool id and whose headers repeat type and version.
type Envelope struct {
	// ID is a ULID, unique per event.
	ID string
	// Type names the event type; Data's concrete type matches it.
	Type Type
	// V is the schema version of Data.
	V int
	// Pool is the pool the event belongs to (also the record key).
	Pool string
	// At is when the event was decided, in UTC with millisecond precision.
	// Replay never reads a clock: At is the time of the log.
	At time.Time
	// Data is the type's payload, e.g. EvalSubmittedData (a value, never a
	// pointer).
	Data Data
}

// wireEnvelope is the JSON shape of an Envelope.
type wireEnvelope struct {
	ID   string          `json:"id"`
	Type Type            `json:"type"`
	V    int             `json:"v"`
	Pool string          `json:"pool"`
	At   string          `json:"at"`
	Data json.RawMessage `json:"data"`
}

// New builds an envelope for data with a fresh ULID, at time at (truncated to
// milliseconds, in UTC).
func New(pool string, at time.Time, data Data) Envelope {
	at = Truncate(at)
	return Envelope{ID: NewULID(at), Type: data.EventType(), V: SchemaVersion, Pool: pool, At: at, Data: data}
}

// Truncate returns t in UTC truncated to milliseconds, the precision of the
// log.
func Truncate(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

// FormatTime formats t as the log does: RFC 3339 in UTC with milliseconds.
func FormatTime(t time.Time) string { return t.UTC().Format(timeLayoutMillis) }

// Marshal encodes e as JSON.
func Marshal(e Envelope) ([]byte, error) {
	if e.Data == nil {
		return nil, fmt.Errorf("marshal %s event %s: no data", e.Type, e.ID)
	}
	if e.Data.EventType() != e.Type {
		return nil, fmt.Errorf("marshal event %s: type %s does not match data of %s", e.ID, e.Type, e.Data.EventType())
	}
	if out, ok := marshalFast(e); ok {
		return out, nil
	}
	return marshalReference(e)
}

// marshalReference is Marshal without its fast path.
func marshalReference(e Envelope) ([]byte, error) {
	data, err := marshalJSON(e.Data)
	if err != nil {
		return nil, fmt.Errorf("marshal %s data: %w", e.Type, err)
	}
	out, err := marshalJSON(wireEnvelope{ID: e.ID, Type: e.Type, V: e.V, Pool: e.Pool, At: FormatTime(e.At), Data: data})
	if err != nil {
		return nil, fmt.Errorf("marshal %s envelope: %w", e.Type, err)
	}
	return out, nil
}

// Unmarshal decodes an envelope strictly: an unknown type or version, an
// unknown field, a missing required field or malformed JSON is a
// *DecodeError, never a panic. Records in the form Marshal writes take a
// hand-written fast path; everything else, and every error, is decided by
// UnmarshalReference, with the same result.
func Unmarshal(b []byte) (Envelope, error) {
	if e, ok := unmarshalFast(b); ok {
		return e, nil
	}
	return UnmarshalReference(b)
}

// UnmarshalReference is Unmarshal without its fast path: the decoder built
// on encoding/json that specifies what Unmarshal accepts and returns. Tests
// compare the two; consumers call Unmarshal.
func UnmarshalReference(b []byte) (Envelope, error) {
	var w wireEnvelope
	if err := strictJSON(b, &w); err != nil {
		return Envelope{}, &DecodeError{Reason: "malformed envelope", Err: err}
	}
	e := Envelope{ID: w.ID, Type: w.Type, V: w.V, Pool: w.Pool}
	switch {
	case w.ID == "":
		return e, &DecodeError{Type: w.Type, Reason: "missing field", Err: &MissingFieldError{Type: w.Type, Field: "id"}}
	case w.Type == "":
		return e, &DecodeError{Reason: "missing field", Err: &MissingFieldError{Field: "type"}}
	case w.Pool == "":
		return e, &DecodeError{Type: w.Type, Reason: "missing field", Err: &MissingFieldError{Type: w.Type, Field: "pool"}}
	case w.At == "":
		return e, &DecodeError{Type: w.Type, Reason: "missing field", Err: &MissingFieldError{Type: w.Type, Field: "at"}}
	case len(w.Data) == 0 || bytes.Equal(w.Data, []byte("null")):
		return e, &DecodeError{Type: w.Type, Reason: "missing field", Err: &MissingFieldError{Type: w.Type, Field: "data"}}
	}
	data := newData(w.Type)
	if data == nil {
		return e, &DecodeError{Type: w.Type, Reason: "unknown type", Err: ErrUnknownType}
	}
	if w.V != SchemaVersion {
		return e, &DecodeError{Type: w.Type, Reason: "unknown version " + strconv.Itoa(w.V), Err: ErrUnknownVersion}
	}
	at, err := time.Parse(time.RFC3339Nano, w.At)
	if err != nil {
		return e, &DecodeError{Type: w.Type, Reason: "bad time in at", Err: err}
	}
	if y := at.UTC().Year(); y < 0 || y > 9999 {
		return e, &DecodeError{Type: w.Type, Reason: "bad time in at", Err: fmt.Errorf("year %d in UTC is out of range", y)}
	}
	e.At = Truncate(at)
	if err := strictJSON(w.Data, data); err != nil {
		return e, &DecodeError{Type: w.Type, Reason: "malformed data", Err: err}
	}
	if err := data.Validate(); err != nil {
		return e, &DecodeError{Type: w.Type, Reason: "invalid data", Err: err}
	}
	e.Data = deref(data)
	return e, nil
}

// deref turns the *XData that decoding filled into the XData value that
// producers build, so that a type switch sees one form only.
func deref(d Data) Data {
	switch v := d.(type) {
	case *PoolCreatedData:
		return *v
	case *PoolDisbandedData:
		return *v
	case *PoolDeletedData:
		return *v
	case *WorkerRegisteredData:
		return *v
	case *WorkerHeartbeatData:
		return *v
	case *WorkerExpiredData:
		return *v
	case *ReplicaExpiredData:
		return *v
	case *EvalSubmittedData:
		return *v
	case *EvalRejectedData:
		return *v
	case *EvalRequeuedData:
		return *v
	case *EvalDeadLetteredData:
		return *v
	case *AllocPlacedData:
		return *v
	case *AllocCompletedData:
		return *v
	case *AllocExpiredData:
		return *v
	}
	return d
}

// strictJSON decodes the JSON object b into v, refusing unknown, repeated
// or wrongly cased keys and trailing data. (The data structs have no nested
// objects of their own, so checking the top level is checking every level.)
func strictJSON(b []byte, v any) error {
	if err := exactKeys(b, v); err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// exactKeys rejects what encoding/json forgives: a top-level key that
// matches a field only case-insensitively, and a repeated key. It scans the
// object's top level once, without allocating; anything that is not a
// well-formed object is left for Decode to report.
func exactKeys(b []byte, v any) error {
	allowed := jsonFields(reflect.TypeOf(v))
	var seen [16]string
	n := 0
	var extra map[string]bool
	ok := scanTopKeys(b, func(raw []byte, escaped bool) error {
		key := string(raw)
		if escaped {
			if err := json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &key); err != nil {
				return err
			}
		}
		if !allowed[key] {
			return fmt.Errorf("json: unknown field %q", key)
		}
		for _, k := range seen[:n] {
			if k == key {
				return fmt.Errorf("json: repeated field %q", key)
			}
		}
		if extra[key] {
			return fmt.Errorf("json: repeated field %q", key)
		}
		if n < len(seen) {
			seen[n] = key
			n++
		} else {
			if extra == nil {
				extra = make(map[string]bool)
			}
			extra[key] = true
		}
		return nil
	})
	return ok
}

// scanTopKeys calls fn with each key of the JSON object in b, raw (without
// quotes; escaped tells whether it holds a backslash escape). It returns
// fn's first error, and nil for input that is not a well-formed object.
func scanTopKeys(b []byte, fn func(key []byte, escaped bool) error) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil
	}
	for i < len(b) {
		if b[i] != '"' {
			return nil
		}
		end, escaped := scanString(b, i)
		if end < 0 {
			return nil
		}
		if err := fn(b[i+1:end-1], escaped); err != nil {
			return err
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return nil
		}
		i = skipValue(b, skipSpace(b, i+1))
		if i < 0 {
			return nil
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return nil
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return nil
		default:
			return nil
		}
	}
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString returns the index just past the string starting at b[i] (a
// quote), or -1 if it is not terminated.
func scanString(b []byte, i int) (int, bool) {
	escaped := false
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return j + 1, escaped
		}
	}
	return -1, escaped
}

// skipValue returns the index just past the JSON value starting at b[i], or
// -1 if it is malformed in a way that matters for scanning.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		end, _ := scanString(b, i)
		return end
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, _ := scanString(b, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	default:
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
			j++
		}
		return j
	}
}

var fieldCache sync.Map // reflect.Type -> map[string]bool

// jsonFields returns the JSON names of a struct type's fields.
func jsonFields(t reflect.Type) map[string]bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]bool)
	}
	m := make(map[string]bool)
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = true
	}
	fieldCache.Store(t, m)
	return m
}

// marshalJSON encodes v without escaping <, > and &, so that what line
// writes has the size it validated.
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Record encodes e as a record for the events topic: key = pool id, headers
// type and v.
func Record(topic string, e Envelope) (*kgo.Record, error) {
	value, err := Marshal(e)
	if err != nil {
		return nil, err
	}
	return &kgo.Record{
		Topic:   topic,
		Key:     []byte(e.Pool),
		Value:   value,
		Headers: RecordHeaders(e.Type, e.V),
	}, nil
}

// RecordHeaders returns the headers of the record of an event of type t and
// version v: type and v. A writer of many records may share one slice
// among the records of a type: nothing writes to it.
func RecordHeaders(t Type, v int) []kgo.RecordHeader {
	return []kgo.RecordHeader{
		{Key: headerType, Value: []byte(t)},
		{Key: headerVersion, Value: []byte(strconv.Itoa(v))},
	}
}

// FromRecord decodes a record of the events topic. Beyond Unmarshal it checks
// that the key matches the envelope's pool.
func FromRecord(r *kgo.Record) (Envelope, error) {
	e, err := Unmarshal(r.Value)
	if err != nil {
		return e, err
	}
	if string(r.Key) != e.Pool {
		return e, &DecodeError{Type: e.Type, Reason: fmt.Sprintf("record key %q differs from pool %q", r.Key, e.Pool), Err: ErrKeyMismatch}
	}
	return e, nil
}

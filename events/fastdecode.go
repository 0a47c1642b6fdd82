package events

import (
	"encoding/json"
	"hash/maphash"
	"sync/atomic"
	"time"
)

// The fast path of Unmarshal: a hand-written scanner for the envelope and
// for the data of the two types that make up almost all of a busy log
// (eval.submitted and alloc.placed). It accepts only the plain form that
// Marshal writes (any key order and JSON whitespace, strings without escapes
// or non-ASCII bytes, integers without fraction or exponent, times in the
// log's fixed layout or any other form time parsing accepts) and gives up on
// anything else, so that the reflection-based decoder (UnmarshalReference)
// decides every unusual input and reports every error. It never accepts
// what the reference decoder rejects and never decodes a value differently;
// FuzzUnmarshal and the decode tests check both against each other.

// envelope keys, as bits of a seen set.
const (
	keyID = 1 << iota
	keyType
	keyV
	keyPool
	keyAt
	keyData
)

// fastEnvelope scans the envelope in b. ok is false when b is not in the
// plain form; the caller then decodes b with the reference decoder.
func fastEnvelope(b []byte) (w fastWire, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return w, false
	}
	i = skipSpace(b, i+1)
	seen := 0
	for {
		key, j, ok := plainString(b, i)
		if !ok {
			return w, false
		}
		i = skipSpace(b, j)
		if i >= len(b) || b[i] != ':' {
			return w, false
		}
		i = skipSpace(b, i+1)
		var bit int
		switch string(key) {
		case "id":
			bit = keyID
			w.id, i, ok = plainString(b, i)
		case "type":
			bit = keyType
			w.typ, i, ok = plainString(b, i)
		case "v":
			bit = keyV
			var v int64
			v, i, ok = plainInt(b, i)
			w.v = int(v)
		case "pool":
			bit = keyPool
			w.pool, i, ok = plainString(b, i)
		case "at":
			bit = keyAt
			w.at, i, ok = plainString(b, i)
		case "data":
			bit = keyData
			if i >= len(b) || b[i] != '{' {
				return w, false
			}
			if seen&keyType != 0 {
				// The type came first (as Marshal writes it): the data of
				// the two common types is decoded in place rather than
				// skipped now and scanned again.
				if j, decoded := w.decodeData(b, i); decoded {
					if j < 0 {
						return w, false
					}
					w.data, i, ok = b[i:j], j, true
					break
				}
			}
			j := skipValue(b, i)
			if j < 0 {
				return w, false
			}
			w.data, i, ok = b[i:j], j, true
		default:
			return w, false
		}
		if !ok || seen&bit != 0 {
			return w, false
		}
		seen |= bit
		i = skipSpace(b, i)
		if i >= len(b) {
			return w, false
		}
		if b[i] == '}' {
			i++
			break
		}
		if b[i] != ',' {
			return w, false
		}
		i = skipSpace(b, i+1)
	}
	if skipSpace(b, i) != len(b) || seen&keyData == 0 {
		return w, false
	}
	return w, true
}

// fastWire is an envelope as scanned, its strings still in the input.
type fastWire struct {
	id, typ, pool, at []byte
	v                 int
	data              []byte
	// value is the data decoded while scanning (nil if it was not): the
	// data of an eval.submitted or alloc.placed whose type came first.
	value Data
}

// decodeData decodes the data object at b[i] in place if w's type is one
// that the fast path decodes: decoded is false for the other types, and
// then nothing was scanned. Otherwise next is the index past the object,
// or -1 if it is not in the plain form.
func (w *fastWire) decodeData(b []byte, i int) (next int, decoded bool) {
	s := dataScanner{b: b, i: i, inner: true}
	switch Type(w.typ) {
	case EvalSubmitted:
		d, ok := scanSubmitted(&s)
		if !ok {
			return -1, true
		}
		w.value = d
	case AllocPlaced:
		d, ok := scanPlaced(&s)
		if !ok {
			return -1, true
		}
		w.value = d
	default:
		return 0, false
	}
	return s.i, true
}

// plainString returns the contents of the JSON string at b[i] and the index
// past it, if it holds printable ASCII only (no escapes).
func plainString(b []byte, i int) (s []byte, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		c := b[j]
		if c == '"' {
			return b[i+1 : j], j + 1, true
		}
		if c < 0x20 || c >= 0x80 || c == '\\' {
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// plainInt returns the JSON integer at b[i] (no fraction, no exponent, at
// most 18 digits) and the index past it.
func plainInt(b []byte, i int) (v int64, next int, ok bool) {
	neg := false
	if i < len(b) && b[i] == '-' {
		neg = true
		i++
	}
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		v = v*10 + int64(b[i]-'0')
		i++
	}
	n := i - start
	if n == 0 || n > 18 || (n > 1 && b[start] == '0') {
		return 0, 0, false
	}
	if i < len(b) {
		switch b[i] {
		case ',', '}', ' ', '\t', '\n', '\r':
		default:
			return 0, 0, false
		}
	}
	if neg {
		v = -v
	}
	return v, i, true
}

// plainTime parses the JSON string at b[i] as time.Time's UnmarshalJSON does,
// fast for the log's own layout.
func plainTime(b []byte, i int) (t time.Time, next int, ok bool) {
	s, next, ok := plainString(b, i)
	if !ok {
		return t, 0, false
	}
	if t, ok := parseLogTime(s); ok {
		return t, next, true
	}
	if err := t.UnmarshalJSON(b[i:next]); err != nil {
		return t, 0, false
	}
	return t, next, true
}

// parseLogTime parses "2006-01-02T15:04:05.000Z", the layout of the log's
// envelope times, and the other UTC forms of RFC 3339 that
// time.RFC3339Nano writes (no fraction, or 1 to 9 fractional digits, as
// deadlines are written) into the time that time.Parse gives for them. ok
// is false for any other form, including out-of-range fields.
func parseLogTime(s []byte) (time.Time, bool) {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[len(s)-1] != 'Z' {
		return time.Time{}, false
	}
	num := func(from, to int) int {
		n := 0
		for _, c := range s[from:to] {
			if c < '0' || c > '9' {
				return -1
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	nsec := 0
	switch digits := len(s) - 21; {
	case len(s) == 20:
	case s[19] != '.' || digits < 1 || digits > 9:
		return time.Time{}, false
	default:
		if nsec = num(20, 20+digits); nsec < 0 {
			return time.Time{}, false
		}
		for range 9 - digits {
			nsec *= 10
		}
	}
	year, month, day := num(0, 4), num(5, 7), num(8, 10)
	hour, minute, sec := num(11, 13), num(14, 16), num(17, 19)
	if year < 0 || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 59 {
		return time.Time{}, false
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC), true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// dataScanner walks the keys of a data object in plain form.
type dataScanner struct {
	b      []byte
	i      int
	opened bool
	seen   uint32
	// inner: the object is inside b (an envelope's data), and may be
	// followed by more; otherwise it must end b.
	inner bool
}

// closed reports whether the scanner, past the closing brace, is where an
// object may end.
func (s *dataScanner) closed() bool { return s.inner || skipSpace(s.b, s.i) == len(s.b) }

// next returns the next key and leaves the scanner on its value; done is
// true after the closing brace. ok is false on anything not plain.
func (s *dataScanner) next() (key []byte, done, ok bool) {
	b := s.b
	i := skipSpace(b, s.i)
	if i >= len(b) {
		return nil, false, false
	}
	if !s.opened {
		if b[i] != '{' {
			return nil, false, false
		}
		s.opened = true
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			s.i = i + 1
			return nil, true, s.closed()
		}
	} else {
		switch {
		case b[i] == '}':
			s.i = i + 1
			return nil, true, s.closed()
		case b[i] == ',':
			i = skipSpace(b, i+1)
		default:
			return nil, false, false
		}
	}
	key, i, ok = plainString(b, i)
	if !ok {
		return nil, false, false
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return nil, false, false
	}
	s.i = skipSpace(b, i+1)
	return key, false, true
}

// mark records field number n as seen; it is false for a repeated field.
func (s *dataScanner) mark(n uint) bool {
	if s.seen&(1<<n) != 0 {
		return false
	}
	s.seen |= 1 << n
	return true
}

func (s *dataScanner) str() (string, bool) {
	v, next, ok := plainString(s.b, s.i)
	s.i = next
	return string(v), ok
}

func (s *dataScanner) int() (int64, bool) {
	v, next, ok := plainInt(s.b, s.i)
	s.i = next
	return v, ok
}

func (s *dataScanner) time() (time.Time, bool) {
	v, next, ok := plainTime(s.b, s.i)
	s.i = next
	return v, ok
}

// fastSubmitted decodes eval.submitted data in plain form.
func fastSubmitted(b []byte) (d EvalSubmittedData, ok bool) {
	s := dataScanner{b: b}
	return scanSubmitted(&s)
}

// scanSubmitted decodes the eval.submitted data under s.
func scanSubmitted(s *dataScanner) (d EvalSubmittedData, ok bool) {
	for {
		key, done, ok := s.next()
		if !ok {
			return d, false
		}
		if done {
			return d, true
		}
		switch string(key) {
		case "eval_id":
			ok = s.mark(0)
			if ok {
				d.EvalID, ok = s.str()
			}
		case "dataset_id":
			ok = s.mark(1)
			if ok {
				d.DatasetID, ok = s.sharedStr()
			}
		case "size":
			ok = s.mark(2)
			if ok {
				d.Size, ok = s.int()
			}
		case "payload":
			ok = s.mark(3)
			if ok {
				d.Payload, ok = s.rawValue()
			}
		default:
			return d, false
		}
		if !ok {
			return d, false
		}
	}
}

// rawValue returns a copy of the JSON value (not null) under the scanner, as
// json.RawMessage decoding does.
func (s *dataScanner) rawValue() (json.RawMessage, bool) {
	if s.i >= len(s.b) || s.b[s.i] == 'n' {
		return nil, false
	}
	end := skipValue(s.b, s.i)
	if end < 0 || !json.Valid(s.b[s.i:end]) {
		return nil, false
	}
	v := append(json.RawMessage(nil), s.b[s.i:end]...)
	s.i = end
	return v, true
}

// fastPlaced decodes alloc.placed data in plain form. Strategy and
// locality of a known value are the package's constants, so that a fold
// keeping them keeps no copy.
func fastPlaced(b []byte) (d AllocPlacedData, ok bool) {
	s := dataScanner{b: b}
	return scanPlaced(&s)
}

// scanPlaced decodes the alloc.placed data under s.
func scanPlaced(s *dataScanner) (d AllocPlacedData, ok bool) {
	for {
		key, done, ok := s.next()
		if !ok {
			return d, false
		}
		if done {
			return d, true
		}
		var n int64
		switch string(key) {
		case "alloc_id":
			if ok = s.mark(0); ok {
				d.AllocID, ok = s.str()
			}
		case "eval_id":
			if ok = s.mark(1); ok {
				d.EvalID, ok = s.str()
			}
		case "worker_id":
			if ok = s.mark(2); ok {
				d.WorkerID, ok = s.sharedStr()
			}
		case "dataset_id":
			if ok = s.mark(3); ok {
				d.DatasetID, ok = s.sharedStr()
			}
		case "size":
			if ok = s.mark(4); ok {
				d.Size, ok = s.int()
			}
		case "attempt":
			if ok = s.mark(5); ok {
				n, ok = s.int()
				d.Attempt = int(n)
			}
		case "deadline":
			if ok = s.mark(6); ok {
				d.Deadline, ok = s.time()
			}
		case "topic":
			if ok = s.mark(7); ok {
				d.Topic, ok = s.sharedStr()
			}
		case "strategy":
			if ok = s.mark(8); ok {
				var v []byte
				v, s.i, ok = plainString(s.b, s.i)
				switch Strategy(v) {
				case Spread:
					d.Strategy = Spread
				case Binpack:
					d.Strategy = Binpack
				default:
					d.Strategy = Strategy(v)
				}
			}
		case "locality":
			if ok = s.mark(9); ok {
				var v []byte
				v, s.i, ok = plainString(s.b, s.i)
				switch Locality(v) {
				case LocalityNone:
					d.Locality = LocalityNone
				case LocalityHit:
					d.Locality = LocalityHit
				case LocalityMiss:
					d.Locality = LocalityMiss
				default:
					d.Locality = Locality(v)
				}
			}
		case "candidates":
			if ok = s.mark(10); ok {
				n, ok = s.int()
				d.Candidates = int(n)
			}
		case "waited_ms":
			if ok = s.mark(11); ok {
				n, ok = s.int()
				d.WaitedMs = Millis(n)
			}
		case "basis":
			if ok = s.mark(12); ok {
				d.Basis, ok = s.int()
			}
		default:
			return d, false
		}
		if !ok {
			return d, false
		}
	}
}

// lastPool is the pool id of the last plain envelope: a log partition holds
// few pools, so a match saves a copy per record.
var lastPool atomic.Pointer[string]

// interned returns v as a string, reusing the one last holds when equal.
func interned(last *atomic.Pointer[string], v []byte) string {
	if p := last.Load(); p != nil && *p == string(v) {
		return *p
	}
	str := string(v)
	last.Store(&str)
	return str
}

// sharedStr is str for values that repeat across records (worker ids,
// topics, dataset ids): an equal string decoded recently is returned
// instead of a new copy.
func (s *dataScanner) sharedStr() (string, bool) {
	v, next, ok := plainString(s.b, s.i)
	s.i = next
	if !ok {
		return "", false
	}
	return shared.get(v), true
}

// stringCache is a direct-mapped cache of recently decoded strings, safe
// for concurrent use. A slot holds the last string that hashed to it.
//
// A replay of the c1m gate's history cycles through 5,000 worker ids, as
// many topics and 1,000 dataset ids: in 8,192 slots, three strings in four
// shared a slot with another and missed on every visit (a copy and a store
// each time); in 65,536 slots (512 KiB) more than four in five have a slot
// of their own.
type stringCache struct {
	seed  maphash.Seed
	slots [1 << 16]atomic.Pointer[string]
}

var shared = &stringCache{seed: maphash.MakeSeed()}

// get returns a string equal to v, from the cache when it has one.
func (c *stringCache) get(v []byte) string {
	if len(v) == 0 {
		return ""
	}
	if len(v) > 64 {
		return string(v)
	}
	slot := &c.slots[maphash.Bytes(c.seed, v)&(uint64(len(c.slots))-1)]
	if p := slot.Load(); p != nil && *p == string(v) {
		return *p
	}
	str := string(v)
	slot.Store(&str)
	return str
}

// knownType returns the Type named v, or "" if there is none.
func knownType(v []byte) Type {
	for _, t := range Types {
		if string(t) == string(v) {
			return t
		}
	}
	return ""
}

// unmarshalFast decodes b if it is a valid envelope in plain form; ok is
// false otherwise, and never for an envelope the reference decoder accepts
// differently.
func unmarshalFast(b []byte) (Envelope, bool) {
	w, ok := fastEnvelope(b)
	if !ok || len(w.id) == 0 || len(w.pool) == 0 || w.v != SchemaVersion {
		return Envelope{}, false
	}
	typ := knownType(w.typ)
	if typ == "" {
		return Envelope{}, false
	}
	at, ok := parseLogTime(w.at)
	if !ok {
		var err error
		if at, err = time.Parse(time.RFC3339Nano, string(w.at)); err != nil {
			return Envelope{}, false
		}
		if y := at.UTC().Year(); y < 0 || y > 9999 {
			return Envelope{}, false
		}
	}
	data := w.value
	switch {
	case data != nil:
		// Decoded while scanning.
		if data.Validate() != nil {
			return Envelope{}, false
		}
	case typ == EvalSubmitted:
		d, ok := fastSubmitted(w.data)
		if !ok || d.Validate() != nil {
			return Envelope{}, false
		}
		data = d
	case typ == AllocPlaced:
		d, ok := fastPlaced(w.data)
		if !ok || d.Validate() != nil {
			return Envelope{}, false
		}
		data = d
	default:
		if !json.Valid(w.data) {
			return Envelope{}, false
		}
		p := newData(typ)
		if strictJSON(w.data, p) != nil || p.Validate() != nil {
			return Envelope{}, false
		}
		data = deref(p)
	}
	return Envelope{ID: string(w.id), Type: typ, V: w.v, Pool: interned(&lastPool, w.pool), At: Truncate(at), Data: data}, true
}

package events

import (
	"crypto/rand"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

var (
	ulidMu      sync.Mutex
	ulidEntropy = ulid.Monotonic(rand.Reader, 0)
)

// NewULID returns a new lowercase ULID for time t. ULIDs made in one process
// sort in creation order, even within one millisecond.
func NewULID(t time.Time) string {
	ms := ulid.Timestamp(t)
	if t.Before(time.Unix(0, 0)) {
		ms = 0
	} else if ms > ulid.MaxTime() {
		ms = ulid.MaxTime()
	}
	ulidMu.Lock()
	id, err := ulid.New(ms, ulidEntropy)
	ulidMu.Unlock()
	if err != nil {
		// Monotonic entropy overflows only after 2^80 ids in one
		// millisecond; fall back to fresh entropy.
		id = ulid.MustNew(ms, rand.Reader)
	}
	return strings.ToLower(id.String())
}

// Id patterns. Pool and worker ids appear in topic names, so they are lower
// case and free of dots; the others are a little wider.
var (
	topicSafeID = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	wideID      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
)

// IDKind names a kind of id for validation messages.
type IDKind string

// Kinds of ids.
const (
	PoolID    IDKind = "pool id"
	WorkerID  IDKind = "worker id"
	EvalID    IDKind = "eval id"
	AllocID   IDKind = "alloc id"
	DatasetID IDKind = "dataset id"
)

// ValidateID checks an id that arrives from outside line. Pool and worker ids
// must match ^[a-z0-9][a-z0-9_-]{0,63}$ (they are part of topic names); eval,
// alloc and dataset ids must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$.
func ValidateID(kind IDKind, id string) error {
	re := wideID
	rule := "1-128 characters of letters, digits, '.', '_', ':' or '-', starting with a letter or digit"
	if kind == PoolID || kind == WorkerID {
		re = topicSafeID
		rule = "1-64 characters of lowercase letters, digits, '_' or '-', starting with a letter or digit"
	}
	if !re.MatchString(id) {
		return fmt.Errorf("invalid %s %q: must be %s", kind, id, rule)
	}
	return nil
}

// Position is where an event sits on the events topic. Its text form,
// "partition:offset", is what ingest returns and what queries wait for.
type Position struct {
	Partition int32
	Offset    int64
}

// String formats p as "partition:offset".
func (p Position) String() string {
	return strconv.FormatInt(int64(p.Partition), 10) + ":" + strconv.FormatInt(p.Offset, 10)
}

// ParsePosition parses "partition:offset".
func ParsePosition(s string) (Position, error) {
	part, off, ok := strings.Cut(s, ":")
	if !ok || strings.HasPrefix(part, "+") || strings.HasPrefix(off, "+") {
		return Position{}, fmt.Errorf("invalid position %q: want partition:offset", s)
	}
	p, err := strconv.ParseInt(part, 10, 32)
	if err != nil || p < 0 {
		return Position{}, fmt.Errorf("invalid position %q: bad partition", s)
	}
	o, err := strconv.ParseInt(off, 10, 64)
	if err != nil || o < 0 {
		return Position{}, fmt.Errorf("invalid position %q: bad offset", s)
	}
	return Position{Partition: int32(p), Offset: o}, nil
}

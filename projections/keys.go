package projections

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The key layout (see the package documentation). Every key is printable
// ASCII for valid ids; segments are separated by '/'.
const (
	prefixMeta        = "meta/"
	keyMetaFormat     = "meta/format"
	keyMetaTopic      = "meta/topic"
	prefixOffset      = "meta/offset/"
	prefixPool        = "pool/"
	prefixWorker      = "worker/"
	prefixEval        = "eval/"
	prefixAlloc       = "alloc/"
	prefixReplica     = "replica/"
	prefixTTL         = "idx/ttl/"
	prefixFree        = "idx/free/"
	prefixEvalStatus  = "idx/evalstatus/"
	prefixDeadLetter  = "idx/deadletter/"
	prefixWorkerAlloc = "idx/workeralloc/"

	// layoutFormat names the layout of the rows. A view written with
	// another layout is refused (rebuild it).
	layoutFormat = "line-views-3"

	// deadlineLayout formats deadlines in index keys: fixed width, so that
	// byte order is time order (years 0000-9999, which is all the log
	// carries).
	deadlineLayout = "2006-01-02T15:04:05.000000000Z"
	// freeWidth is the width of the zero-padded free capacity in keys.
	freeWidth = 20
)

// esc makes an id safe as one key segment: '%' and '/' are
// percent-encoded. Valid ids contain neither, so for them esc is the
// identity and keys sort by id; any other id still gets a unique segment
// that cannot spill into the next one.
func esc(id string) string {
	if strings.IndexByte(id, '%') < 0 && strings.IndexByte(id, '/') < 0 {
		return id
	}
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		switch c := id[i]; c {
		case '%':
			b.WriteString("%25")
		case '/':
			b.WriteString("%2F")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// unesc inverts esc.
func unesc(seg string) string {
	if !strings.Contains(seg, "%") {
		return seg
	}
	return strings.NewReplacer("%2F", "/", "%25", "%").Replace(seg)
}

func join(prefix string, segs ...string) string {
	return string(appendKey(make([]byte, 0, 64), prefix, segs...))
}

// appendKey appends to dst the key made of prefix and segs, each segment
// escaped, separated by '/': the one definition of a key's shape, which
// join and the bulk load (writing keys in place) share.
func appendKey(dst []byte, prefix string, segs ...string) []byte {
	dst = append(dst, prefix...)
	for i, s := range segs {
		if i > 0 {
			dst = append(dst, '/')
		}
		dst = appendSeg(dst, s)
	}
	return dst
}

// appendSeg appends id as one key segment: esc(id), without a copy when
// id needs no escaping.
func appendSeg(dst []byte, id string) []byte {
	if needsEsc(id) {
		return append(dst, esc(id)...)
	}
	return append(dst, id...)
}

// needsEsc reports whether id holds a byte that esc encodes ('%' or
// '/'), looking at eight bytes at a time.
func needsEsc(id string) bool {
	i := 0
	for ; i+8 <= len(id); i += 8 {
		if x := load8(id, i); hasByte(x, '%') || hasByte(x, '/') {
			return true
		}
	}
	for ; i < len(id); i++ {
		if c := id[i]; c == '%' || c == '/' {
			return true
		}
	}
	return false
}

func offsetKey(partition int32) string {
	return prefixOffset + strconv.FormatInt(int64(partition), 10)
}

func poolKey(pool string) string            { return join(prefixPool, pool) }
func workerKey(pool, worker string) string  { return join(prefixWorker, pool, worker) }
func workersPrefix(pool string) string      { return join(prefixWorker, pool) + "/" }
func evalKey(pool, eval string) string      { return join(prefixEval, pool, eval) }
func evalsPrefix(pool string) string        { return join(prefixEval, pool) + "/" }
func allocKey(pool, alloc string) string    { return join(prefixAlloc, pool, alloc) }
func replicasPrefix(pool, ds string) string { return join(prefixReplica, pool, ds) + "/" }
func replicaKey(pool, ds, worker string) string {
	return join(prefixReplica, pool, ds, worker)
}

// The kinds of TTL index entries (a key segment).
const (
	ttlKindAlloc   = "alloc"
	ttlKindWorker  = "worker"
	ttlKindReplica = "replica"
)

func ttlKey(pool string, deadline time.Time, kind string, ids ...string) string {
	return string(appendTTLKey(make([]byte, 0, 96), pool, deadline, kind, ids...))
}

// appendTTLKey appends ttlKey's key to dst.
func appendTTLKey(dst []byte, pool string, deadline time.Time, kind string, ids ...string) []byte {
	return appendTTLTail(appendTTLHead(dst, pool, deadline), kind, ids...)
}

// appendTTLHead appends the part of a TTL key up to its kind, which the
// entries of a deadline share: idx/ttl/<pool>/<deadline>/.
func appendTTLHead(dst []byte, pool string, deadline time.Time) []byte {
	dst = appendKey(dst, prefixTTL, pool)
	dst = appendDeadline(append(dst, '/'), deadline)
	return append(dst, '/')
}

// appendTTLTail appends the rest of a TTL key after its head:
// <kind>/<ids>.
func appendTTLTail(dst []byte, kind string, ids ...string) []byte {
	dst = append(append(dst, kind...), '/')
	return appendKey(dst, "", ids...)
}

func freeSeg(free int64) string { return fmt.Sprintf("%0*d", freeWidth, free) }

func freeKey(pool string, free int64, worker string) string {
	return join(prefixFree, pool) + "/" + freeSeg(free) + "/" + esc(worker)
}
func freePrefix(pool string) string { return join(prefixFree, pool) + "/" }

func evalStatusKey(pool, status, eval string) string {
	return join(prefixEvalStatus, pool, status, eval)
}
func evalStatusPrefix(pool, status string) string {
	return join(prefixEvalStatus, pool, status) + "/"
}

func deadLetterKey(pool, eval string) string { return join(prefixDeadLetter, pool, eval) }

func workerAllocKey(pool, worker, alloc string) string {
	return join(prefixWorkerAlloc, pool, worker, alloc)
}
func workerAllocsPrefix(pool string) string { return join(prefixWorkerAlloc, pool) + "/" }

// prefixEnd is the smallest key greater than every key with prefix p.
func prefixEnd(p string) []byte {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return b[:i+1]
		}
	}
	return nil
}

// Cursors are the (escaped) key suffix of the last item of a page after
// the list's prefix, in unpadded base64url: opaque to clients, exact for
// the server.
func encodeCursor(suffix string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(suffix))
}

func decodeCursor(c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) == 0 {
		return "", &QueryError{Code: "invalid_cursor", Message: fmt.Sprintf("cursor %q is not a cursor this server returned", c)}
	}
	return string(b), nil
}

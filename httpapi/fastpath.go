package httpapi

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/line-sched/line/api"
)

// The hot routes, POST /v1/pools/{pool}/evals and its batch form, skip the
// OpenAPI validator when hand-written checks derived from the spec
// (EvalRequest, EvalBatchRequest, PoolPath) prove the request valid. Anything they do not prove valid, bad or merely
// unusual (escapes in strings, sizes written as 1.0, repeated keys, other
// content types), goes the usual way through the validator and bind, so
// every refused request gets exactly the error it got before.
// TestSubmitEvalCheckAgreesWithSpec and its batch twin pin that whatever the checks accept
// the validator accepts too and bind decodes to the same request.

// submitEvalRoute and submitEvalBatchRoute are echo's paths of the hot
// routes.
const (
	submitEvalRoute      = "/v1/pools/:pool/evals"
	submitEvalBatchRoute = "/v1/pools/:pool/evals/batch"
)

// memBody is a request body read into memory by limitBody: the fast path
// reads the bytes without copying them again.
type memBody struct {
	*bytes.Reader
	b []byte
}

func (memBody) Close() error { return nil }

// fastSubmitEval serves valid eval submissions, single or batched, without
// the validator; every other request goes on to next.
func fastSubmitEval(h *handlers) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			if req.Method != http.MethodPost || req.URL.RawPath != "" {
				return next(c)
			}
			route := c.Path()
			if route != submitEvalRoute && route != submitEvalBatchRoute {
				return next(c)
			}
			body, ok := req.Body.(memBody)
			if !ok {
				return next(c)
			}
			pool, ct := c.Param("pool"), req.Header.Get(echo.HeaderContentType)
			if route == submitEvalBatchRoute {
				rs, ok := checkSubmitEvalBatch(pool, ct, body.b)
				if !ok {
					return next(c)
				}
				return h.submitEvalBatch(c, pool, rs)
			}
			r, ok := checkSubmitEval(pool, ct, body.b)
			if !ok {
				return next(c)
			}
			return h.submitEval(c, pool, r)
		}
	}
}

// checkSubmitEval returns the request of a submitEval call and true when
// the spec's checks certainly pass: pool matches PoolId, the content type
// is JSON, and the body is one JSON object whose members are EvalRequest's,
// each of its schema. false means "not proven": the caller validates the
// request the usual way.
func checkSubmitEval(pool, contentType string, body []byte) (api.EvalRequest, bool) {
	if !validPoolID(pool) || !jsonContentType(contentType) || !json.Valid(body) {
		return api.EvalRequest{}, false
	}
	r, _, ok := checkEvalObject(body, skipSpace(body, 0))
	return r, ok
}

// checkSubmitEvalBatch is checkSubmitEval for a submitEvalBatch call: the
// body is one JSON object with the single member "evals", an array of 1 to
// maxBatchEvals objects, each one proven valid by checkEvalObject.
func checkSubmitEvalBatch(pool, contentType string, body []byte) ([]api.EvalRequest, bool) {
	if !validPoolID(pool) || !jsonContentType(contentType) || !json.Valid(body) {
		return nil, false
	}
	// body is valid JSON: after `{`, a member is "key": value.
	i := skipSpace(body, 0)
	if body[i] != '{' {
		return nil, false
	}
	i = skipSpace(body, i+1)
	const key = `"evals"`
	if !bytes.HasPrefix(body[i:], []byte(key)) {
		return nil, false
	}
	if i = skipSpace(body, i+len(key)); body[i] != ':' {
		return nil, false // a longer key
	}
	if i = skipSpace(body, i+1); body[i] != '[' {
		return nil, false
	}
	// Size the result from a cheap upper bound: every eval is an object.
	out := make([]api.EvalRequest, 0, min(bytes.Count(body, []byte{'{'}), maxBatchEvals+1))
	i = skipSpace(body, i+1)
	if body[i] == ']' {
		return nil, false // minItems 1
	}
	for {
		r, end, ok := checkEvalObject(body, i)
		if !ok || len(out) == maxBatchEvals {
			return nil, false
		}
		out = append(out, r)
		i = skipSpace(body, end)
		if body[i] == ']' {
			break
		}
		i = skipSpace(body, i+1) // past the comma
	}
	// The array closes the only member: the object must end here.
	if i = skipSpace(body, i+1); body[i] != '}' {
		return nil, false
	}
	return out, true
}

// maxBatchEvals is EvalBatchRequest's maxItems.
const maxBatchEvals = 10_000

// checkEvalObject checks the JSON object at body[i] (body is valid JSON)
// against EvalRequest: members of its schema only, each at most once. It
// returns the request and the index just past the object; false means "not
// proven".
func checkEvalObject(body []byte, i int) (api.EvalRequest, int, bool) {
	var r api.EvalRequest
	if body[i] != '{' {
		return r, 0, false
	}
	i = skipSpace(body, i+1)
	if body[i] == '}' {
		return r, i + 1, true
	}
	var seen [4]bool
	for {
		// body is valid JSON: a member is "key": value.
		k := i + 1
		for body[k] != '"' {
			if body[k] == '\\' {
				return r, 0, false
			}
			k++
		}
		key := body[i+1 : k]
		i = skipSpace(body, skipSpace(body, k+1)+1) // past the colon
		end := skipValue(body, i)
		val := body[i:end]
		switch string(key) {
		case "eval_id":
			id, ok := plainString(val)
			if !ok || seen[0] || !validEvalishID(id) {
				return r, 0, false
			}
			seen[0] = true
			s := string(id)
			r.EvalId = &s
		case "dataset_id":
			id, ok := plainString(val)
			if !ok || seen[1] || !validEvalishID(id) {
				return r, 0, false
			}
			seen[1] = true
			s := string(id)
			r.DatasetId = &s
		case "size":
			n, ok := plainSize(val)
			if !ok || seen[2] {
				return r, 0, false
			}
			seen[2] = true
			r.Size = &n
		case "payload":
			if seen[3] {
				return r, 0, false
			}
			seen[3] = true
			r.Payload = json.RawMessage(val)
		default:
			return r, 0, false
		}
		i = skipSpace(body, end)
		if body[i] == '}' {
			return r, i + 1, true
		}
		i = skipSpace(body, i+1) // past the comma
	}
}

// jsonContentType accepts the content types the spec's application/json
// certainly matches.
func jsonContentType(ct string) bool {
	switch ct {
	case "application/json", "application/json; charset=utf-8", "application/json; charset=UTF-8":
		return true
	}
	return false
}

// validPoolID matches PoolId's pattern ^[a-z0-9][a-z0-9_-]{0,63}$.
func validPoolID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// validEvalishID matches the pattern of EvalId and DatasetId,
// ^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$.
func validEvalishID(s []byte) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == ':' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// plainString returns the content of a JSON string without escapes.
func plainString(v []byte) ([]byte, bool) {
	if len(v) < 2 || v[0] != '"' || bytes.IndexByte(v, '\\') >= 0 {
		return nil, false
	}
	return v[1 : len(v)-1], true
}

// plainSize parses a size written as a plain integer within the schema's
// bounds, 0 to 2147483647.
func plainSize(v []byte) (int64, bool) {
	if len(v) == 0 || bytes.ContainsAny(v, ".eE") || v[0] == '-' {
		return 0, false
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || n < 0 || n > math.MaxInt32 {
		return 0, false
	}
	return n, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the end of the JSON value starting at i in b, which is
// valid JSON.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default:
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

// skipString returns the end of the JSON string starting at i.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// writeEvalAccepted writes a as c.JSON would, without reflection: the ids
// and the position hold no character JSON escapes (checked; otherwise it
// falls back to c.JSON). It sets the response's headers in place and writes
// the body once, allocating only the body.
func writeEvalAccepted(c echo.Context, status int, a api.EvalAccepted) error {
	if wantsPretty(c.Request()) || !plainJSON(a.EvalId) || !plainJSON(a.PoolId) || !plainJSON(a.Position) {
		return c.JSON(status, a)
	}
	buf := make([]byte, 0, 64+len(a.EvalId)+len(a.PoolId)+len(a.Position))
	buf = append(buf, `{"duplicate":`...)
	buf = strconv.AppendBool(buf, a.Duplicate)
	buf = append(buf, `,"eval_id":"`...)
	buf = append(buf, a.EvalId...)
	buf = append(buf, `","pool_id":"`...)
	buf = append(buf, a.PoolId...)
	buf = append(buf, `","position":"`...)
	buf = append(buf, a.Position...)
	buf = append(buf, "\"}\n"...)
	res := c.Response()
	h := res.Header()
	if h.Get(echo.HeaderContentType) == "" {
		h[echo.HeaderContentType] = jsonContentTypeValue
	}
	res.WriteHeader(status)
	_, err := res.Write(buf)
	return err
}

// jsonContentTypeValue is the Content-Type header echo's c.JSON and c.Blob
// write. Shared by every response: net/http only reads it, and its
// capacity equals its length, so an append elsewhere copies it.
var jsonContentTypeValue = []string{echo.MIMEApplicationJSON}

// wantsPretty reports whether the query asks for indented JSON (?pretty),
// as echo's c.JSON decides it, without parsing the query when there is none.
func wantsPretty(req *http.Request) bool {
	if req.URL.RawQuery == "" {
		return false
	}
	_, pretty := req.URL.Query()["pretty"]
	return pretty
}

// plainJSON reports whether s is written as is inside a JSON string by
// encoding/json (no escapes, including its HTML-safe ones).
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

package testkit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// HTTPClient is the client Send and Do use: it keeps enough idle
// connections for tests that send from many goroutines at once.
var HTTPClient = &http.Client{
	Timeout: 2 * time.Minute,
	Transport: &http.Transport{
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     30 * time.Second,
	},
}

// Response is an HTTP answer, read whole.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	// JSON is the body decoded as a JSON object (numbers as json.Number),
	// or nil if the body is not one.
	JSON map[string]any
}

// String formats r for failure messages: status and (the start of) body.
func (r Response) String() string {
	b := r.Body
	if len(b) > 512 {
		b = append(b[:512:512], "..."...)
	}
	return fmt.Sprintf("%d %s", r.Status, b)
}

// Str returns the top-level JSON field key as a string ("" if absent or not
// a string).
func (r Response) Str(key string) string {
	s, _ := r.JSON[key].(string)
	return s
}

// Decode decodes the body into v, failing the test if it does not fit.
func (r Response) Decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("testkit: decode %T from %s: %v", v, r, err)
	}
}

// Send sends one request. body is sent as is if it is a []byte,
// json.RawMessage or string, streamed without Content-Length (chunked) if
// it is an io.Reader, not at all if nil, and as JSON otherwise; a body goes
// with Content-Type application/json.
func Send(ctx context.Context, method, url string, body any) (Response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case json.RawMessage:
		rd = bytes.NewReader(b)
	case string:
		rd = bytes.NewReader([]byte(b))
	case io.Reader:
		// Hidden behind a MultiReader, its length is unknown: the body
		// goes chunked, without Content-Length.
		rd = io.MultiReader(b)
	default:
		enc, err := json.Marshal(body)
		if err != nil {
			return Response{}, fmt.Errorf("encode request body: %w", err)
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return Response{}, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := HTTPClient.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	out := Response{Status: resp.StatusCode, Header: resp.Header}
	if out.Body, err = io.ReadAll(resp.Body); err != nil {
		return out, fmt.Errorf("read response body: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out.Body))
	dec.UseNumber()
	var m map[string]any
	if dec.Decode(&m) == nil {
		out.JSON = m
	}
	return out, nil
}

// Do is Send that fails the test if no answer comes back.
func Do(t testing.TB, method, url string, body any) Response {
	t.Helper()
	r, err := Send(context.Background(), method, url, body)
	if err != nil {
		t.Fatalf("testkit: %s %s: %v", method, url, err)
	}
	return r
}

// ExpectError checks that r is an API error: the given status and a JSON
// body of exactly the form {"error": {"code": "...", "message": "..."}} with
// a non-empty code (equal to code unless code is "") and message. It
// returns the code.
func ExpectError(t testing.TB, r Response, status int, code string) string {
	t.Helper()
	if r.Status != status {
		t.Errorf("status %d, want %d: %s", r.Status, status, r)
		return ""
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" && ct != "application/json; charset=UTF-8" {
		t.Errorf("Content-Type %q, want application/json: %s", ct, r)
	}
	var body map[string]map[string]any
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || len(body) != 1 || body["error"] == nil {
		t.Errorf("error body is not {\"error\": {...}}: %s (%v)", r, err)
		return ""
	}
	e := body["error"]
	got, _ := e["code"].(string)
	msg, _ := e["message"].(string)
	if len(e) != 2 || got == "" || msg == "" {
		t.Errorf("error body must hold exactly a non-empty code and message: %s", r)
	}
	if code != "" && got != code {
		t.Errorf("error code %q, want %q: %s", got, code, r)
	}
	return got
}

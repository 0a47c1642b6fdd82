package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Error is an answer of the server that is not a success: the HTTP status
// and the code and message of the JSON error body
// ({"error": {"code": "...", "message": "..."}}).
type Error struct {
	// Status is the HTTP status, e.g. 404.
	Status int
	// Code is the stable machine-readable code, e.g. "pool_not_found".
	// Empty if the body was not line's JSON error (a proxy's page, say).
	Code string
	// Message is the server's human-readable message, or the start of
	// the body when it was not a JSON error.
	Message string
	// RetryAfter is the server's Retry-After, if it sent one (503s).
	RetryAfter time.Duration
	// Method and Path name the request.
	Method, Path string
}

func (e *Error) Error() string {
	code := e.Code
	if code == "" {
		code = http.StatusText(e.Status)
	}
	if e.Message == "" {
		return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, code)
	}
	return fmt.Sprintf("%s (%d %s)", e.Message, e.Status, code)
}

// Temporary reports whether the request may succeed if sent again later:
// 503 (Kafka unreachable, starting up), 502, 504 and 429.
func (e *Error) Temporary() bool {
	switch e.Status {
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout, http.StatusTooManyRequests:
		return true
	}
	return false
}

// ConnError is a request that got no answer: the server could not be
// reached, or the connection broke.
type ConnError struct {
	// Addr is the server's base URL.
	Addr string
	// Method and Path name the request.
	Method, Path string
	Err          error
}

func (e *ConnError) Error() string {
	return fmt.Sprintf("cannot reach line at %s: %v", e.Addr, rootCause(e.Err))
}

func (e *ConnError) Unwrap() error { return e.Err }

// rootCause strips url.Error's "Get "...": " wrapping, which repeats what
// ConnError already says.
func rootCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// AsError returns err as an *Error, or nil.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// StatusOf returns the HTTP status of an *Error in err's chain, or 0.
func StatusOf(err error) int {
	if e := AsError(err); e != nil {
		return e.Status
	}
	return 0
}

// CodeOf returns the error code of an *Error in err's chain, or "".
func CodeOf(err error) string {
	if e := AsError(err); e != nil {
		return e.Code
	}
	return ""
}

// IsNotFound reports whether err is a 404 answer.
func IsNotFound(err error) bool { return StatusOf(err) == http.StatusNotFound }

// IsConflict reports whether err is a 409 answer.
func IsConflict(err error) bool { return StatusOf(err) == http.StatusConflict }

// IsConnError reports whether err is a request that got no answer.
func IsConnError(err error) bool {
	var ce *ConnError
	return errors.As(err, &ce)
}

// Temporary reports whether a request that failed with err may succeed if
// sent again: no answer at all, or an *Error that is Temporary. A
// cancelled or expired context is not temporary.
func Temporary(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if IsConnError(err) {
		return true
	}
	if e := AsError(err); e != nil {
		return e.Temporary()
	}
	return false
}

// decodeError builds the *Error of a non-success answer.
func decodeError(method, path string, resp *http.Response, body []byte) *Error {
	e := &Error{Method: method, Path: path}
	if resp != nil {
		e.Status = resp.StatusCode
		if s := resp.Header.Get("Retry-After"); s != "" {
			if n, err := strconv.Atoi(s); err == nil && n >= 0 {
				e.RetryAfter = time.Duration(n) * time.Second
			}
		}
	}
	var eb struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &eb) == nil && eb.Error.Code != "" {
		e.Code, e.Message = eb.Error.Code, eb.Error.Message
		return e
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	e.Message = msg
	return e
}

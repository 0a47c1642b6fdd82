package ingest

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is a refused command: an HTTP status, a stable machine-readable code
// and a message that tells the user what to do next.
type Error struct {
	Status  int
	Code    string
	Message string
	// RetryAfter, in seconds, is set on 503s.
	RetryAfter int
	// Err is the cause, if any.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// AsError returns err as an *Error, or nil.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

func badRequest(code, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: code, Message: fmt.Sprintf(format, args...)}
}

func notFound(code, format string, args ...any) *Error {
	return &Error{Status: http.StatusNotFound, Code: code, Message: fmt.Sprintf(format, args...)}
}

func conflict(code, format string, args ...any) *Error {
	return &Error{Status: http.StatusConflict, Code: code, Message: fmt.Sprintf(format, args...)}
}

func unavailable(err error) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: "kafka_unavailable",
		Message:    "the event log did not acknowledge the write in time; nothing was accepted, retry later",
		RetryAfter: 1, Err: err}
}

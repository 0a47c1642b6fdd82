package events

import (
	"errors"
	"fmt"
)

// Sentinel causes inside a *DecodeError, for errors.Is.
var (
	// ErrUnknownType means the envelope names a type this code does not know.
	ErrUnknownType = errors.New("unknown event type")
	// ErrUnknownVersion means the envelope's schema version is not supported.
	ErrUnknownVersion = errors.New("unknown event schema version")
	// ErrKeyMismatch means the record key is not the envelope's pool id.
	ErrKeyMismatch = errors.New("record key does not match pool")
)

// DecodeError is returned for any record that cannot be decoded into a valid
// envelope. Consumers skip such a record and report it (a poison record
// never stops a partition).
type DecodeError struct {
	// Type is the envelope's type, if it could be read.
	Type Type
	// Reason says what is wrong, in a few words.
	Reason string
	// Err is the underlying cause.
	Err error
}

func (e *DecodeError) Error() string {
	if e.Type != "" {
		return fmt.Sprintf("decode %s event: %s: %v", e.Type, e.Reason, e.Err)
	}
	return fmt.Sprintf("decode event: %s: %v", e.Reason, e.Err)
}

// Unwrap returns the cause.
func (e *DecodeError) Unwrap() error { return e.Err }

// MissingFieldError names a required field that is absent or empty.
type MissingFieldError struct {
	Type  Type
	Field string
}

func (e *MissingFieldError) Error() string {
	if e.Type == "" {
		return fmt.Sprintf("missing required field %q", e.Field)
	}
	return fmt.Sprintf("%s: missing required field %q", e.Type, e.Field)
}

// InvalidFieldError names a field whose value is not allowed.
type InvalidFieldError struct {
	Type   Type
	Field  string
	Reason string
}

func (e *InvalidFieldError) Error() string {
	return fmt.Sprintf("%s: invalid field %q: %s", e.Type, e.Field, e.Reason)
}

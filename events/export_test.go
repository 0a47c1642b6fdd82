package events

// UnmarshalFast exposes the fast path of Unmarshal to the external tests.
func UnmarshalFast(b []byte) (Envelope, bool) { return unmarshalFast(b) }

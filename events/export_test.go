package events

// UnmarshalFast exposes the fast path of Unmarshal to the external tests.
func UnmarshalFast(b []byte) (Envelope, bool) { return unmarshalFast(b) }

// MarshalFast and MarshalReference expose the two ways of Marshal.
func MarshalFast(e Envelope) ([]byte, bool) { return marshalFast(e) }

// MarshalReference is Marshal without its fast path.
func MarshalReference(e Envelope) ([]byte, error) { return marshalReference(e) }

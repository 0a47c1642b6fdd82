package events

// AppendAllocRecordFast exposes the fast path of AppendAllocRecord to the
// external tests.
func AppendAllocRecordFast(dst []byte, r AllocRecord) ([]byte, bool) {
	return appendAllocRecordFast(dst, r)
}

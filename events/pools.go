package events

import (
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ReadPools are the memory pools of a reader of the log that decodes every
// record it fetches and then lets it go (the projector, the audit): the
// slices that a fetched batch's records are held in, used again for the
// next batches instead of left to the garbage collector (a catch-up over
// the c1m history fetches about a gigabyte of them).
//
// It does not pool the slices that compressed batches are decompressed
// into (kgo.PoolDecompressBytes): batches differ in size, a pooled slice
// fits few of them, and a pool of slices rounded up to fit most held
// gigabytes of them in flight while a replay read ahead.
//
// Pass it to the client with kgo.WithPools, and call Recycle on every
// record of a poll once nothing refers to it any more. A record not
// recycled is merely collected as usual. It is safe for concurrent use.
type ReadPools struct {
	records sync.Pool // *[]kgo.Record
}

// NewReadPools returns empty pools.
func NewReadPools() *ReadPools { return &ReadPools{} }

var _ kgo.PoolRecords = (*ReadPools)(nil)

// GetRecords returns a slice with capacity n at least (kgo.PoolRecords).
func (p *ReadPools) GetRecords(n int) []kgo.Record {
	if v, ok := p.records.Get().(*[]kgo.Record); ok && cap(*v) >= n {
		return (*v)[:0]
	}
	return make([]kgo.Record, 0, n)
}

// PutRecords takes back a slice of GetRecords (kgo.PoolRecords).
func (p *ReadPools) PutRecords(rs []kgo.Record) {
	clear(rs[:cap(rs)])
	p.records.Put(&rs)
}

package events

import (
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ReadPools are the memory pools of a reader of the log that decodes every
// record it fetches and then lets it go (the projector, the audit): the
// slices that a fetched batch's records are held in and that its
// compressed records are decompressed into, used again for the next
// batches instead of left to the garbage collector. A catch-up over the
// c1m history fetches about a gigabyte of them.
//
// Pass it to the client with kgo.WithPools, and call Recycle on every
// record of a poll once nothing refers to it or to its bytes any more
// (the decoded events hold copies of every string and payload). A record
// not recycled is merely collected as usual. It is safe for concurrent use.
type ReadPools struct {
	records sync.Pool // *[]kgo.Record
	bytes   sync.Pool // *[]byte
}

// NewReadPools returns empty pools.
func NewReadPools() *ReadPools { return &ReadPools{} }

var (
	_ kgo.PoolRecords         = (*ReadPools)(nil)
	_ kgo.PoolDecompressBytes = (*ReadPools)(nil)
)

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

// GetDecompressBytes returns a slice to decompress compressed into
// (kgo.PoolDecompressBytes), with the capacity that the data declares
// when the codec tells it (snappy), else an estimate; the client grows a
// slice that is too small. New slices are sized up to a power of two, at
// least minDecompressBytes, so that the pool's slices fit most batches; a
// pooled slice too small for this one is dropped.
func (p *ReadPools) GetDecompressBytes(compressed []byte, codec kgo.CompressionCodecType) []byte {
	want := 4 * len(compressed)
	if codec == kgo.CodecSnappy {
		if n, err := s2.DecodedLen(compressed); err == nil {
			want = n
		}
	}
	if v, ok := p.bytes.Get().(*[]byte); ok && cap(*v) >= want {
		return (*v)[:0]
	}
	size := minDecompressBytes
	for size < want {
		size *= 2
	}
	return make([]byte, 0, size)
}

// minDecompressBytes is the smallest slice GetDecompressBytes makes: a
// producer's batch is at most 1 MiB compressed by default.
const minDecompressBytes = 1 << 20

// PutDecompressBytes takes back a slice of GetDecompressBytes
// (kgo.PoolDecompressBytes); the client has zeroed it.
func (p *ReadPools) PutDecompressBytes(b []byte) { p.bytes.Put(&b) }

package events

// PartitionFor returns the partition of the events topic that holds pool's
// events, for a topic of n partitions. It is Kafka's default partitioner for
// keyed records (murmur2 of the key, made positive, modulo n), so any Kafka
// client that produces with the pool id as key agrees with line.
func PartitionFor(pool string, n int32) int32 {
	if n <= 1 {
		return 0
	}
	return int32(murmur2([]byte(pool))&0x7fffffff) % n
}

// murmur2 is the 32-bit MurmurHash2 as Kafka's Java client computes it.
func murmur2(b []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(b))
	for len(b) >= 4 {
		k := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		b = b[4:]
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

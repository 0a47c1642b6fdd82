package events

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestPartitionForMatchesKafka checks PartitionFor against franz-go's
// Kafka-compatible key partitioner, so other clients agree with line.
func TestPartitionForMatchesKafka(t *testing.T) {
	p := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	for _, n := range []int32{1, 3, 12, 64} {
		for _, pool := range []string{"a", "ab", "abc", "abcd", "pool-1", "01jdx0k7q4vyb6m9w2c3e5f8gh", "x_y-z"} {
			want := int32(p.Partition(&kgo.Record{Key: []byte(pool)}, int(n)))
			if got := PartitionFor(pool, n); got != want {
				t.Errorf("PartitionFor(%q, %d) = %d, kafka partitioner says %d", pool, n, got, want)
			}
		}
	}
}

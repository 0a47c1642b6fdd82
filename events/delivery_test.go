package events_test

import (
	"testing"

	"github.com/line-sched/line/events"
)

// TestAllocTarget: per-worker (and empty) delivery is partition 0 of the
// worker's own topic; shared is the worker's murmur2 partition of the
// shared topic, which is never mistaken for a worker topic.
func TestAllocTarget(t *testing.T) {
	topics, err := events.NewTopics("line")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []events.Delivery{"", events.PerWorker} {
		if got, want := topics.AllocTarget(d, "p1", "w1", 32), (events.AllocTarget{Topic: "line.allocs.p1.w1"}); got != want {
			t.Errorf("AllocTarget(%q) = %+v, want %+v", d, got, want)
		}
	}
	seen := map[int32]bool{}
	for _, w := range []string{"w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8"} {
		got := topics.AllocTarget(events.Shared, "p1", w, 4)
		if got.Topic != "line.allocs" || got.Partition != events.PartitionFor(w, 4) || got.Partition < 0 || got.Partition >= 4 {
			t.Errorf("AllocTarget(shared, %s, 4) = %+v", w, got)
		}
		if other := topics.AllocTarget(events.Shared, "p2", w, 4); other.Partition != got.Partition {
			t.Errorf("worker %s: partition depends on the pool: %d vs %d", w, got.Partition, other.Partition)
		}
		seen[got.Partition] = true
	}
	if len(seen) < 2 {
		t.Errorf("8 workers all on one partition of 4: %v", seen)
	}
	if _, _, ok := topics.ParseWorkerAllocs(topics.SharedAllocs()); ok {
		t.Errorf("ParseWorkerAllocs accepts the shared topic %s", topics.SharedAllocs())
	}
	for d, want := range map[events.Delivery]bool{"": true, events.PerWorker: true, events.Shared: true, "Shared": false, "broadcast": false} {
		if d.Valid() != want {
			t.Errorf("Delivery(%q).Valid() = %v", d, !want)
		}
	}
}

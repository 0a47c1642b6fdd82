package events

// Delivery is how a pool's alloc records reach its workers.
type Delivery string

// Delivery modes of a pool.
const (
	// PerWorker gives every worker its own alloc topic
	// (<deployment>.allocs.<pool>.<worker>, one partition), created when
	// the worker registers and deleted when it expires. It is the default:
	// a pool.created without a delivery field means PerWorker.
	PerWorker Delivery = "per-worker"
	// Shared sends the allocs of every worker of the pool to the
	// deployment's one shared alloc topic (<deployment>.allocs, a fixed
	// number of partitions), on the partition of the worker id, keyed by
	// worker id. Workers read their partition and keep their own records.
	Shared Delivery = "shared"
)

// DefaultAllocsPartitions is the partition count of a new shared alloc
// topic (LINE_ALLOCS_PARTITIONS).
const DefaultAllocsPartitions = 32

// Valid reports whether d is a known delivery mode; empty counts as
// PerWorker.
func (d Delivery) Valid() bool { return d == "" || d == PerWorker || d == Shared }

// OrDefault returns d, or PerWorker when d is empty.
func (d Delivery) OrDefault() Delivery {
	if d == "" {
		return PerWorker
	}
	return d
}

// SharedAllocs is the shared alloc topic of the pools with Shared
// delivery. It is not a worker alloc topic: ParseWorkerAllocs rejects it.
func (t Topics) SharedAllocs() string { return t.Deployment + ".allocs" }

// AllocTarget is where the alloc records of one worker go: a topic and a
// partition of it. The record key is always the worker id.
type AllocTarget struct {
	Topic     string
	Partition int32
}

// AllocTarget is the one rule for where a worker's alloc records go, used
// by ingest (the topic named in worker.registered), the scheduler (the
// records it writes), the agent (what it reads) and the bench (what it
// verifies). For PerWorker (or empty) delivery it is partition 0 of the
// worker's own topic; for Shared it is partition
// PartitionFor(worker, sharedPartitions) of SharedAllocs, where
// sharedPartitions is the partition count of that topic
// (LINE_ALLOCS_PARTITIONS when bootstrap created it).
func (t Topics) AllocTarget(d Delivery, pool, worker string, sharedPartitions int32) AllocTarget {
	if d == Shared {
		return AllocTarget{Topic: t.SharedAllocs(), Partition: PartitionFor(worker, sharedPartitions)}
	}
	return AllocTarget{Topic: t.WorkerAllocs(pool, worker)}
}

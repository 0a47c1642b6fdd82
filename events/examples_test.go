package events_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/line-sched/line/events"
)

// exampleAt has sub-millisecond digits on purpose: the log keeps
// milliseconds only.
var exampleAt = time.Date(2026, 11, 26, 19, 38, 45, 123456789, time.UTC)

// exampleAtText is exampleAt as the log writes it.
const exampleAtText = "2026-11-26T19:38:45.123Z"

const examplePool = "pool-7f3a"

func ms(d time.Duration) time.Time { return exampleAt.Truncate(time.Millisecond).Add(d) }

func int32p(v int32) *int32 { return &v }

// exampleData returns a valid data value of every event type, with every
// optional field set so that round trips cover all of them.
func exampleData() map[events.Type]events.Data {
	return map[events.Type]events.Data{
		events.PoolCreated:   events.PoolCreatedData{Strategy: events.Binpack, LocalityWaitMs: 1500},
		events.PoolDisbanded: events.PoolDisbandedData{DeleteAt: ms(time.Hour)},
		events.PoolDeleted:   events.PoolDeletedData{},
		events.WorkerRegistered: events.WorkerRegisteredData{
			WorkerID: "w-1", Capacity: 8, Topic: "line.allocs." + examplePool + ".w-1",
			Deadline: ms(30 * time.Second), Datasets: []string{"ds-a", "ds.b:1"}, ReplicaDeadline: ms(time.Minute),
		},
		events.WorkerHeartbeat: events.WorkerHeartbeatData{
			WorkerID: "w-1", Deadline: ms(40 * time.Second), Datasets: []string{"ds-a"}, ReplicaDeadline: ms(70 * time.Second),
			Allocs: []string{"a-1", "a-2"}, AllocDeadline: ms(70 * time.Second),
		},
		events.WorkerExpired:  events.WorkerExpiredData{WorkerID: "w-1", Deadline: ms(30 * time.Second)},
		events.ReplicaExpired: events.ReplicaExpiredData{WorkerID: "w-1", DatasetID: "ds-a", Deadline: ms(time.Minute)},
		events.EvalSubmitted: events.EvalSubmittedData{
			EvalID: "e-1", DatasetID: "ds-a", Size: 3, Payload: json.RawMessage(`{"cmd":["run","--fast"],"n":1}`),
		},
		events.EvalRejected:     events.EvalRejectedData{EvalID: "e-1", Reason: "pool disbanded"},
		events.EvalRequeued:     events.EvalRequeuedData{EvalID: "e-1", AllocID: "a-1", Attempt: 2, Reason: "alloc expired"},
		events.EvalDeadLettered: events.EvalDeadLetteredData{EvalID: "e-1", AllocID: "a-3", Attempts: 3, Reason: "max retries reached"},
		events.AllocPlaced: events.AllocPlacedData{
			AllocID: "a-1", EvalID: "e-1", WorkerID: "w-1", DatasetID: "ds-a", Size: 3, Attempt: 1,
			Deadline: ms(time.Minute), Topic: "line.allocs." + examplePool + ".w-1", Strategy: events.Binpack,
			Locality: events.LocalityHit, Candidates: 4, WaitedMs: 12, Basis: 1042,
		},
		events.AllocCompleted: events.AllocCompletedData{AllocID: "a-1", Status: events.Failed, ExitCode: int32p(2), Message: "exit status 2"},
		events.AllocExpired:   events.AllocExpiredData{AllocID: "a-1", Reason: "no heartbeat"},
	}
}

// exampleEnvelopes returns one valid envelope per type, in events.Types
// order.
func exampleEnvelopes(t testing.TB) []events.Envelope {
	t.Helper()
	data := exampleData()
	out := make([]events.Envelope, 0, len(events.Types))
	for _, typ := range events.Types {
		d, ok := data[typ]
		if !ok {
			t.Fatalf("no example for event type %s: add one to exampleData", typ)
		}
		out = append(out, events.New(examplePool, exampleAt, d))
	}
	return out
}

func mustMarshal(t testing.TB, e events.Envelope) []byte {
	t.Helper()
	b, err := events.Marshal(e)
	if err != nil {
		t.Fatalf("Marshal(%s): %v", e.Type, err)
	}
	return b
}

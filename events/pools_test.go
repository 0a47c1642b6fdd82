package events_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/testkit"
)

// countingPools counts what the client takes from and gives back to
// ReadPools.
type countingPools struct {
	*events.ReadPools
	getRecs, putRecs atomic.Int64
}

func (c *countingPools) GetRecords(n int) []kgo.Record {
	c.getRecs.Add(1)
	return c.ReadPools.GetRecords(n)
}

func (c *countingPools) PutRecords(rs []kgo.Record) {
	c.putRecs.Add(1)
	c.ReadPools.PutRecords(rs)
}

// TestReadPoolsRecycledRecordsLeaveEventsIntact reads compressed batches
// through ReadPools, decoding and recycling every record as the projector
// and the audit do, so that later batches are decoded into the record
// slices of earlier ones: every event decoded before its record was
// recycled must still equal what was produced, and every slice the client
// took from the pools must have come back.
func TestReadPoolsRecycledRecordsLeaveEventsIntact(t *testing.T) {
	brokers := testkit.StartBroker(t).Addrs()
	const topic, pool, n = "pools.events", "p1", 20_000
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	at := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	if _, err := testkit.Admin(t, brokers).CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	var want []events.Envelope
	prod := testkit.Client(t, brokers, kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchCompression(kgo.SnappyCompression()), kgo.ProducerLinger(10*time.Millisecond))
	for i := range n {
		e := events.New(pool, at.Add(time.Duration(i)*time.Millisecond), events.EvalSubmittedData{
			EvalID: fmt.Sprintf("eval-%06d", i), DatasetID: fmt.Sprintf("ds-%d", i%7), Size: int64(1 + i%5),
			Payload: json.RawMessage(fmt.Sprintf(`{"n":%d,"pad":"%0100d"}`, i, i)),
		})
		r, err := events.Record(topic, e)
		if err != nil {
			t.Fatal(err)
		}
		prod.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
		want = append(want, e)
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	pools := &countingPools{ReadPools: events.NewReadPools()}
	cons := testkit.Client(t, brokers, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(64<<10), kgo.FetchMaxPartitionBytes(64<<10), kgo.WithPools(pools))
	var got []events.Envelope
	for len(got) < n && ctx.Err() == nil {
		fs := cons.PollFetches(ctx)
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) {
			e, err := events.FromRecord(r)
			if err != nil {
				t.Fatalf("offset %d: %v", r.Offset, err)
			}
			got = append(got, e)
			r.Recycle()
		})
	}
	if len(got) != n {
		t.Fatalf("read %d events, want %d", len(got), n)
	}
	for i := range want {
		if !reflect.DeepEqual(normalize(t, got[i]), normalize(t, want[i])) {
			t.Fatalf("event %d after its record was recycled:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	if pools.getRecs.Load() < 2 {
		t.Fatalf("the client took %d record slices from the pools: the batches were not pooled", pools.getRecs.Load())
	}
	if g, p := pools.getRecs.Load(), pools.putRecs.Load(); g != p {
		t.Errorf("record slices: %d taken, %d given back", g, p)
	}
}

// normalize is e as its JSON encoding: envelopes compare by what they say.
func normalize(t *testing.T, e events.Envelope) string {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/line-sched/line/events"
)

// Alloc is one record of a worker's alloc topic.
type Alloc struct {
	// Offset is the record's offset on the partition read. A
	// consumer that restarts at Offset+1 does not see it again.
	Offset int64
	// Record is the decoded value. Its zero value when Err is set.
	Record events.AllocRecord
	// Err is set when the value could not be decoded: the record is not
	// an alloc and is to be skipped (its Offset still counts).
	Err error
	// Foreign is set for a record keyed by another worker, on a shared
	// alloc topic read with ConsumeWorkerAllocs: it is not decoded and is
	// to be skipped (its Offset still counts).
	Foreign bool
}

// AllocConsumer reads one worker's alloc topic
// (<deployment>.allocs.<pool>.<worker>, one partition) or its partition of
// the shared alloc topic (<deployment>.allocs) with
// isolation.level=read_committed, so it sees an alloc exactly when the
// event log does. It uses no consumer group: the caller chooses the start
// offset and keeps its own position (see package agent).
type AllocConsumer struct {
	cl     *kgo.Client
	topic  string
	worker string // if set, records keyed otherwise are Foreign
	buf    []Alloc
}

// ConsumeAllocs starts reading topic at offset from (0 for a new worker).
// An offset that is no longer on the topic restarts at the earliest one.
// opts are extra franz-go options (TLS, SASL, ...).
func ConsumeAllocs(brokers []string, topic string, from int64, opts ...kgo.Opt) (*AllocConsumer, error) {
	return ConsumeWorkerAllocs(brokers, events.AllocTarget{Topic: topic}, "", from, opts...)
}

// ConsumeWorkerAllocs reads the allocs of worker at t (a partition of the
// shared alloc topic, or partition 0 of the worker's own topic: see
// events.Topics.AllocTarget and the registration's topic and partition)
// from offset from. Records keyed by another worker come back Foreign,
// undecoded; an empty worker decodes every record.
func ConsumeWorkerAllocs(brokers []string, t events.AllocTarget, worker string, from int64, opts ...kgo.Opt) (*AllocConsumer, error) {
	topic := t.Topic
	if len(brokers) == 0 {
		return nil, errors.New("no Kafka brokers given")
	}
	if from < 0 {
		from = 0
	}
	base := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {t.Partition: kgo.NewOffset().At(from)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500 * time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 250 * time.Millisecond }),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client for %s: %w", topic, err)
	}
	return &AllocConsumer{cl: cl, topic: topic, worker: worker}, nil
}

// Topic is the topic being read.
func (c *AllocConsumer) Topic() string { return c.topic }

// Next returns the next alloc, waiting for one until ctx is done. Records
// come in offset order. Fetch errors that the client retries (broker
// unreachable, topic not yet visible) are not returned; Next keeps
// waiting.
func (c *AllocConsumer) Next(ctx context.Context) (Alloc, error) {
	for len(c.buf) == 0 {
		if err := ctx.Err(); err != nil {
			return Alloc{}, err
		}
		fs := c.cl.PollFetches(ctx)
		if fs.IsClientClosed() {
			return Alloc{}, errors.New("alloc consumer closed")
		}
		if err := ctx.Err(); err != nil {
			return Alloc{}, err
		}
		fs.EachRecord(func(r *kgo.Record) {
			a := Alloc{Offset: r.Offset}
			if c.worker != "" && string(r.Key) != c.worker {
				a.Foreign = true
				c.buf = append(c.buf, a)
				return
			}
			if err := decodeAlloc(r.Value, &a.Record); err != nil {
				a.Err = fmt.Errorf("record %d of %s: %w", r.Offset, c.topic, err)
			}
			c.buf = append(c.buf, a)
		})
	}
	a := c.buf[0]
	c.buf = c.buf[1:]
	return a, nil
}

func decodeAlloc(b []byte, r *events.AllocRecord) error {
	if err := json.Unmarshal(b, r); err != nil {
		return fmt.Errorf("not an alloc record: %w", err)
	}
	if r.AllocID == "" || r.EvalID == "" || r.Size <= 0 {
		return errors.New("not an alloc record: alloc_id, eval_id or size missing")
	}
	return nil
}

// Ping checks that a broker answers; Next does not report unreachable
// brokers (it keeps waiting for them).
func (c *AllocConsumer) Ping(ctx context.Context) error { return c.cl.Ping(ctx) }

// Close stops the consumer.
func (c *AllocConsumer) Close() { c.cl.Close() }

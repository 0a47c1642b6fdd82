package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/line-sched/line/events"
)

// StreamEvent is one event of a pool's stream.
type StreamEvent struct {
	Position events.Position
	Envelope events.Envelope
	// JSON is the envelope re-encoded by events.Marshal: one line.
	JSON []byte
}

// streamIdle is how long a stream waits for an event before calling its
// idle function (servers send a keepalive then).
const streamIdle = 15 * time.Second

// Stream reads the pool's events from its partition of the events topic
// (read_committed), from offset from on, and calls fn for each in log
// order; records of other pools and records that cannot be decoded are
// skipped. idle, if not nil, is called whenever nothing came for
// 15 seconds. Stream returns when ctx is done or the projector stops (nil),
// or with the first error of fn or idle. It reads the log, not the views:
// it has its own Kafka consumer.
func (p *Projector) Stream(ctx context.Context, pool string, from int64, fn func(StreamEvent) error, idle func() error) error {
	part := events.PartitionFor(pool, p.nparts)
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(p.opts.Brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{p.topic: {part: kgo.NewOffset().At(from)}}),
		// An offset past the end of the partition tails it (records
		// below from are skipped).
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(250 * time.Millisecond),
	}, p.opts.ClientOpts...)...)
	if err != nil {
		return fmt.Errorf("projections: create the stream's consumer: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.stopped:
			cancel()
		case <-ctx.Done():
		}
	}()
	last := time.Now()
	for {
		pctx, pcancel := context.WithTimeout(ctx, streamIdle)
		fs := cl.PollFetches(pctx)
		pcancel()
		if ctx.Err() != nil {
			return nil
		}
		n := 0
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				p.log.Warn("event stream: fetch error", "pool", pool, "err", err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			if ferr != nil || string(r.Key) != pool || r.Offset < from {
				return
			}
			e, err := events.FromRecord(r)
			if err != nil {
				return
			}
			b, err := events.Marshal(e)
			if err != nil {
				return
			}
			n++
			ferr = fn(StreamEvent{Position: events.Position{Partition: r.Partition, Offset: r.Offset}, Envelope: e, JSON: b})
		})
		if ferr != nil {
			return ferr
		}
		if n > 0 {
			last = time.Now()
		} else if idle != nil && time.Since(last) >= streamIdle {
			if err := idle(); err != nil {
				return err
			}
			last = time.Now()
		}
	}
}

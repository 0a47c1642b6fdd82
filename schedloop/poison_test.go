package schedloop_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/state"
	"github.com/line-sched/line/testkit"
)

// TestPoisonRecordQuarantined: records on the events topic that do not
// decode (garbage, an unknown type) are skipped: the scheduler keeps
// placing the evals behind them, and copies each to the quarantine topic
// once, with a "source" header naming its position, even when a new
// instance rebuilds the partition from offset 0.
func TestPoisonRecordQuarantined(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, longTTLs)
	const pool = "pz"
	e.createPool(pool, events.Spread, 0)
	e.registerWorker(pool, "w1", 100)
	loop, stop := startLoop(t, e.cfg, e.brokers, "one")
	placed := func(ids ...string) func(*state.State) bool {
		return func(st *state.State) bool {
			for _, id := range ids {
				if ev := st.Pool(pool).Eval(id); ev == nil || ev.Status() != state.EvalPlaced {
					return false
				}
			}
			return true
		}
	}
	e.submit(pool, evalReq{ID: "before"})
	e.waitView(30*time.Second, "eval before placed", placed("before"))

	// Two poison records where the pool's events go, from a plain
	// producer.
	topic := e.cfg.Topics.Events()
	part := events.PartitionFor(pool, testkit.Partitions(t, e.brokers, topic))
	unknown := fmt.Sprintf(`{"id":%q,"type":"pool.exploded","v":1,"pool":%q,"at":"2026-01-02T03:04:05.000Z","data":{"boom":true}}`,
		events.NewULID(time.Now()), pool)
	poison := []*kgo.Record{
		{Topic: topic, Partition: part, Key: []byte(pool), Value: []byte(`{"id": "x", "type": garbage`)},
		{Topic: topic, Partition: part, Key: []byte(pool), Value: []byte(unknown),
			Headers: []kgo.RecordHeader{{Key: "type", Value: []byte("pool.exploded")}, {Key: "v", Value: []byte("1")}}},
	}
	cl := testkit.Client(t, e.brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, poison...).FirstErr(); err != nil {
		t.Fatalf("produce poison: %v", err)
	}
	sources := map[string][]byte{} // position -> value
	for _, r := range poison {
		sources[events.Position{Partition: r.Partition, Offset: r.Offset}.String()] = r.Value
	}

	e.submit(pool, evalReq{ID: "after-1"})
	e.submit(pool, evalReq{ID: "after-2", Payload: `{"x":1}`})
	e.waitView(30*time.Second, "evals after the poison placed", placed("after-1", "after-2"))
	checkQuarantine := func(when string) {
		t.Helper()
		recs := testkit.ReadRecords(t, e.brokers, e.cfg.Topics.Quarantine())
		seen := map[string]int{}
		for _, r := range recs {
			var src, why string
			for _, h := range r.Headers {
				switch h.Key {
				case "source":
					src = string(h.Value)
				case "error":
					why = string(h.Value)
				}
			}
			seen[src]++
			want, ok := sources[src]
			if !ok || !bytes.Equal(r.Value, want) || string(r.Key) != pool || why == "" {
				t.Errorf("%s: quarantine record source %q key %q error %q value %q matches no poison record", when, src, r.Key, why, r.Value)
			}
		}
		for src := range sources {
			if seen[src] != 1 {
				t.Errorf("%s: %d quarantine copies of the poison record at %s, want 1", when, seen[src], src)
			}
		}
	}
	checkQuarantine("first instance")
	if s := loop.Stats(); s.Poison != 2 || s.Rejected != 0 {
		t.Errorf("stats %+v, want 2 poison, nothing rejected", s)
	}

	// Another instance takes over and rebuilds from offset 0: it skips the
	// poison again, keeps placing, and does not copy them twice.
	stop()
	loop2, _ := startLoop(t, e.cfg, e.brokers, "two")
	e.submit(pool, evalReq{ID: "after-3"})
	e.waitView(30*time.Second, "eval placed by the second instance", placed("after-3"))
	if s := loop2.Stats(); s.Poison != 2 || s.Placed != 1 {
		t.Errorf("second instance stats %+v, want 2 poison seen, 1 placed", s)
	}
	checkQuarantine("after a rebuild")

	// The rest of the log folds cleanly: every eval placed once.
	var log testkit.Log
	for _, r := range testkit.ReadRecords(t, e.brokers, topic) {
		pos := events.Position{Partition: r.Partition, Offset: r.Offset}
		env, err := events.FromRecord(r)
		if err != nil {
			var de *events.DecodeError
			if _, isPoison := sources[pos.String()]; !isPoison || !errors.As(err, &de) {
				t.Errorf("record %s: %v", pos, err)
			}
			continue
		}
		log = append(log, testkit.Event{Envelope: env, Position: pos, Record: r})
	}
	f := fold(t, log.OfPool(pool), nil)
	if len(f.rejected) > 0 {
		t.Errorf("the fold rejected %v", f.rejected)
	}
	for _, id := range []string{"before", "after-1", "after-2", "after-3"} {
		if len(f.placedOK[id]) != 1 {
			t.Errorf("eval %s placed %d times", id, len(f.placedOK[id]))
		}
	}
}

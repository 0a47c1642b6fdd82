package schedloop_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/state"
	"github.com/line-sched/line/testkit"
)

// TestRebuildDecodesAhead: a scheduler that starts on a history decodes the
// records of the partition it rebuilds on several cores before folding them
// in log order. The result is exactly the fold of the log: a poison record
// in the middle of the history is still skipped and counted once, and every
// eval of the history is placed once.
func TestRebuildDecodesAhead(t *testing.T) {
	e := newEnv(t, nil, longTTLs)
	const pool, total = "pre", 1500
	e.createPool(pool, events.Spread, 0)
	for i := range 3 {
		e.registerWorker(pool, fmt.Sprintf("w%d", i), total)
	}
	batch := func(from, n int) []evalReq {
		var reqs []evalReq
		for i := from; i < from+n; i++ {
			reqs = append(reqs, evalReq{ID: fmt.Sprintf("e%04d", i)})
		}
		return reqs
	}
	if err := e.submitBatch(pool, batch(0, total/2)); err != nil {
		t.Fatal(err)
	}
	topic := e.cfg.Topics.Events()
	part := events.PartitionFor(pool, testkit.Partitions(t, e.brokers, topic))
	cl := testkit.Client(t, e.brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: part, Key: []byte(pool), Value: []byte(`{"id":"x","type":`)}).FirstErr(); err != nil {
		t.Fatalf("produce poison: %v", err)
	}
	if err := e.submitBatch(pool, batch(total/2, total/2)); err != nil {
		t.Fatal(err)
	}

	l, _ := startLoop(t, e.cfg, e.brokers, "one")
	e.waitView(2*testkit.Timeout, "every eval placed", func(st *state.State) bool {
		n := 0
		for _, ev := range st.Pool(pool).Evals() {
			if ev.Status() == state.EvalPlaced {
				n++
			}
		}
		return n == total
	})
	st := l.Stats()
	if st.Predecoded == 0 {
		t.Errorf("stats %+v: no record was decoded ahead while rebuilding", st)
	}
	if st.Poison != 1 {
		t.Errorf("stats %+v: %d poison records, want 1", st, st.Poison)
	}
	// The loop's state is the fold of the log, the poison record skipped.
	var dump []byte
	testkit.WaitFor(t, testkit.Timeout, "the loop read back its partition", func() bool {
		end := testkit.EndOffsets(t, e.brokers, topic)[part]
		d, next, ahead, ok := l.PartitionDump(part)
		dump = d
		return ok && next >= end && ahead == 0
	})
	fold := state.New()
	placed := map[string]int{}
	poison := 0
	for _, r := range testkit.ReadRecords(t, e.brokers, topic) {
		if r.Partition != part {
			continue
		}
		env, err := events.FromRecord(r)
		if err != nil {
			poison++
			continue
		}
		if d, ok := env.Data.(events.AllocPlacedData); ok {
			placed[d.EvalID]++
		}
		_ = fold.Apply(env, events.Position{Partition: r.Partition, Offset: r.Offset})
	}
	if poison != 1 {
		t.Errorf("%d undecodable records on the partition, want 1", poison)
	}
	if want := state.Dump(fold); !bytes.Equal(dump, want) {
		t.Errorf("the loop's state differs from the fold of the log:\nloop: %.2000s\nlog:  %.2000s", dump, want)
	}
	for id, n := range placed {
		if n != 1 {
			t.Errorf("eval %s placed %d times", id, n)
		}
	}
	if len(placed) != total {
		t.Errorf("%d evals placed, want %d", len(placed), total)
	}
}

package audit

import (
	"context"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/line-sched/line/audit/audittest"
	"github.com/line-sched/line/bootstrap"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/testkit"
)

// poisonEvery makes every poisonEvery-th event of a produced history an
// undecodable record.
const poisonEvery = 41

// produceWithPoison writes hist to topic on the events' own positions,
// every poisonEvery-th event replaced by an undecodable record (same key,
// same position), and returns the positions of the poison records.
func produceWithPoison(t *testing.T, brokers []string, topic string, hist []audittest.Event) map[events.Position]bool {
	t.Helper()
	cl := testkit.Client(t, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(8<<20))
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	poison := map[events.Position]bool{}
	var recs []*kgo.Record
	want := map[*kgo.Record]events.Position{}
	for i, e := range hist {
		r, err := events.Record(topic, e.Envelope)
		if err != nil {
			t.Fatal(err)
		}
		r.Partition = e.Position.Partition
		if i%poisonEvery == poisonEvery-1 {
			r.Value = []byte(`{"id":"x","type":`)
			poison[e.Position] = true
		}
		recs = append(recs, r)
		want[r] = e.Position
	}
	res := cl.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if at := (events.Position{Partition: r.Record.Partition, Offset: r.Record.Offset}); at != want[r.Record] {
			t.Fatalf("an event landed on %s, not %s", at, want[r.Record])
		}
	}
	return poison
}

// withDecoding runs f with the replay decoding each poll on workers
// goroutines in chunks of at least chunkMin records.
func withDecoding(workers, chunkMin int, f func()) {
	oldWorkers, oldMin := decoders, decodeChunkMin
	defer func() { decoders, decodeChunkMin = oldWorkers, oldMin }()
	decoders, decodeChunkMin = func() int { return workers }, chunkMin
	f()
}

// A replay that decodes each poll on several goroutines reports exactly
// what a replay decoding on one goroutine reports: the same records in the
// same (log, then time) order, the same poison records at the same
// positions, the same rejections and violations.
func TestReplayDecodesOnEveryCore(t *testing.T) {
	emb := testkit.StartBroker(t)
	cfg := testkit.Config(t)
	ctx := context.Background()
	if err := bootstrap.EnsureTopics(ctx, cfg, emb.Addrs()); err != nil {
		t.Fatal(err)
	}
	hist, err := audittest.Simulate(audittest.Options{Seed: 3, Steps: 1000, Partitions: cfg.EventsPartitions,
		Pools: []string{"p1", "p2", "p3", "p4", "p5"}, Delayed: true})
	if err != nil {
		t.Fatal(err)
	}
	poison := produceWithPoison(t, emb.Addrs(), cfg.Topics.Events(), hist)

	replay := func() ([]string, *Report) {
		var steps []string
		rep, err := Replay(ctx, Options{Brokers: emb.Addrs(), Deployment: cfg.Deployment, Visit: func(s Step) {
			line := fmt.Sprintf("%s %s poison=%v rejected=%v", s.Position, s.Envelope.Type, s.Poison, s.Rejected)
			for _, v := range s.Violations {
				line += "\n\t" + v.String()
			}
			steps = append(steps, line)
		}})
		if err != nil {
			t.Fatal(err)
		}
		return steps, rep
	}
	var one, many []string
	var repOne, repMany *Report
	withDecoding(1, 1, func() { one, repOne = replay() })
	withDecoding(4, 1, func() { many, repMany = replay() })

	if len(one) != len(hist) || len(many) != len(hist) {
		t.Fatalf("replays visited %d and %d records, history has %d", len(one), len(many), len(hist))
	}
	for i := range one {
		if one[i] != many[i] {
			t.Fatalf("record %d differs:\none goroutine: %s\nfour:          %s", i, one[i], many[i])
		}
	}
	if fmt.Sprint(repOne.Violations) != fmt.Sprint(repMany.Violations) || fmt.Sprint(repOne.Summary) != fmt.Sprint(repMany.Summary) {
		t.Fatalf("reports differ:\n%v\n%v", repOne.Summary, repMany.Summary)
	}
	// The history exercises what is compared: poison records, and the
	// violations that skipping them causes further on.
	s := repMany.Summary
	if s.Poison != int64(len(poison)) || s.Poison < 10 || s.Violations <= s.Poison {
		t.Fatalf("summary %+v: want %d poison records and violations beyond them", s, len(poison))
	}
	for _, v := range repMany.Violations {
		if v.Kind == KindPoison && !poison[v.Position] {
			t.Errorf("poison reported at %s, which holds an event", v.Position)
		}
	}
}

// decode gives every record the same decoding whatever the number of
// goroutines and the chunk size, and leaves records of partitions not read
// alone.
func TestDecodeChunks(t *testing.T) {
	hist, err := audittest.Simulate(audittest.Options{Seed: 5, Steps: 60, Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	rd := &reader{byID: map[int32]*part{0: {id: 0}}}
	records := func() fetched {
		var f fetched
		for i, e := range hist {
			r, err := events.Record("t", e.Envelope)
			if err != nil {
				t.Fatal(err)
			}
			r.Partition, r.Offset = e.Position.Partition, e.Position.Offset
			if i%7 == 3 {
				r.Value = []byte(`{"id":"x"`)
			}
			f = append(f, decodedRecord{r: r})
		}
		return f
	}
	want := records()
	rd.decode(want, 1)
	show := func(d decodedRecord) string {
		return fmt.Sprintf("%d:%d %s %s %v %v", d.r.Partition, d.r.Offset, d.env.Type, d.env.ID, d.env.Data, d.err)
	}
	decoded, failed := 0, 0
	for _, d := range want {
		switch {
		case d.r.Partition != 0 && (d.env.Type != "" || d.err != nil):
			t.Fatalf("record of partition %d decoded: %s", d.r.Partition, show(d))
		case d.err != nil:
			failed++
		case d.env.Type != "":
			decoded++
		}
	}
	if decoded == 0 || failed == 0 {
		t.Fatalf("%d decoded, %d failed: the records do not exercise decode", decoded, failed)
	}
	for _, workers := range []int{2, 3, 8} {
		for _, chunkMin := range []int{1, 7, 64, len(want)} {
			old := decodeChunkMin
			decodeChunkMin = chunkMin
			got := records()
			rd.decode(got, workers)
			decodeChunkMin = old
			for i := range want {
				if show(got[i]) != show(want[i]) {
					t.Fatalf("%d goroutines, chunks of %d: record %d decoded as\n%s\nnot\n%s", workers, chunkMin, i, show(got[i]), show(want[i]))
				}
			}
		}
	}
}

package projections

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/line-sched/line/audit/audittest"
	"github.com/line-sched/line/events"
)

// TestParallelDecodeFoldsInLogOrder decodes polls large enough to be split
// across goroutines, with poison records, control records and records of
// another topic scattered through them, and checks that each record gets
// its own decoding, that the fold gives the same view as a fold record by
// record, and that the poison records are reported in log order.
func TestParallelDecodeFoldsInLogOrder(t *testing.T) {
	const topic = "line.events"
	hist, err := audittest.Simulate(audittest.Options{Seed: 5, Pools: []string{"p1", "p2"}, Partitions: 1, Steps: 3000, Delayed: true})
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	var poison []int64
	for i, e := range hist {
		offset := int64(len(recs))
		switch {
		case i%997 == 3:
			recs = append(recs, &kgo.Record{Topic: topic, Offset: offset, Key: []byte("p1"), Value: []byte(`{"not":"an event"}`)})
			poison = append(poison, offset)
			offset++
		case i%1013 == 7:
			recs = append(recs, &kgo.Record{Topic: topic, Offset: offset, Value: []byte("\x00\x00"),
				Attrs: kgo.NewRecordAttrs(kgo.RecordAttrsOpts{Control: true, Transactional: true})})
			offset++
		case i%1031 == 11:
			recs = append(recs, &kgo.Record{Topic: "other", Offset: offset, Value: []byte("not decoded")})
			offset++
		}
		r, err := events.Record(topic, e.Envelope)
		if err != nil {
			t.Fatal(err)
		}
		r.Offset = offset
		recs = append(recs, r)
	}
	if len(recs) < 4*decodeChunk {
		t.Fatalf("%d records: too few to decode in parallel", len(recs))
	}
	var logs bytes.Buffer
	p := &Projector{topic: topic, log: slog.New(slog.NewTextHandler(&logs, nil)), f: newFold(),
		next: map[int32]int64{}, resumed: map[int32]int64{}}
	bt := p.newBatch()
	bt.bulk = true
	for lo := 0; lo < len(recs); lo += 2 * pollRecords / 3 {
		pl := poll{}
		for _, r := range recs[lo:min(lo+2*pollRecords/3, len(recs))] {
			pl.recs = append(pl.recs, decoded{r: r})
		}
		p.decode(pl.recs)
		for _, d := range pl.recs {
			if d.r.Topic != topic || d.r.Attrs.IsControl() {
				if d.err != nil || d.e.Type != "" {
					t.Fatalf("offset %d: decoded a record that is not an event", d.r.Offset)
				}
				continue
			}
			want, wantErr := events.FromRecord(d.r)
			if (wantErr == nil) != (d.err == nil) || want.Type != d.e.Type || want.Pool != d.e.Pool {
				t.Fatalf("offset %d: decoded %v %v, want %v %v", d.r.Offset, d.e.Type, d.err, want.Type, wantErr)
			}
		}
		p.fold(pl, bt)
	}
	if bt.st.Poison != int64(len(poison)) {
		t.Errorf("%d poison records counted, want %d", bt.st.Poison, len(poison))
	}
	var reported []string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "skipping undecodable record") {
			reported = append(reported, line)
		}
	}
	if len(reported) != len(poison) {
		t.Fatalf("%d poison records reported, want %d", len(reported), len(poison))
	}
	for i, off := range poison {
		if want := fmt.Sprintf("position=%s", events.Position{Offset: off}); !strings.Contains(reported[i], want) {
			t.Errorf("report %d: %q, want %s", i, reported[i], want)
		}
	}
	model := FoldRecords(recs)
	if got, want := (&Model{f: p.f}).Dump(), model.Dump(); !bytes.Equal(got, want) {
		t.Errorf("the fold of the parallel decoding differs from the fold record by record")
	}
}

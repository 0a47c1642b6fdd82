package projections_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/line-sched/line/bootstrap"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/projections"
	"github.com/line-sched/line/testkit"
)

// TestStaleViews: views of another topic, or ahead of the log, are refused
// unless rebuilt; Rebuild wipes them; RebuildIfStale rebuilds them.
func TestStaleViews(t *testing.T) {
	e := newEnv(t, nil)
	e.do("POST", "/v1/pools", map[string]any{"pool_id": "p1"}, 201)
	dir := filepath.Join(t.TempDir(), "views")
	p := e.start(e.options(dir))
	catchUp(t, p)
	before := dump(t, p)
	if !strings.Contains(string(before), "pool/p1\t") {
		t.Fatalf("view without pool p1:\n%s", before)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	// The same directory against another deployment's topic.
	other := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	_, err := projections.Open(ctx, other.options(dir))
	if err == nil || !strings.Contains(err.Error(), "--rebuild") {
		t.Fatalf("open views of another topic: %v, want a refusal that says --rebuild", err)
	}
	// The same topic, empty, on another broker: the views are ahead of
	// the log.
	emb := testkit.StartBroker(t)
	if err := bootstrap.EnsureTopics(ctx, e.cfg, emb.Addrs()); err != nil {
		t.Fatal(err)
	}
	ahead := e.options(dir)
	ahead.Brokers = emb.Addrs()
	_, err = projections.Open(ctx, ahead)
	if err == nil || !strings.Contains(err.Error(), "ends at 0") || !strings.Contains(err.Error(), "--rebuild") {
		t.Fatalf("open views ahead of the log: %v, want a refusal that says --rebuild", err)
	}

	// RebuildIfStale rebuilds for the other topic; Rebuild wipes.
	opts := other.options(dir)
	opts.RebuildIfStale = true
	q := other.start(opts)
	catchUp(t, q)
	if d := dump(t, q); len(d) != 0 {
		t.Errorf("rebuilt view of an empty log is not empty:\n%s", d)
	}
	_ = q.Close()
	opts = e.options(dir)
	opts.Rebuild = true
	r := e.start(opts)
	if got := r.Resumed(); len(got) != 0 {
		t.Errorf("rebuild resumed at %v, want from 0", got)
	}
	catchUp(t, r)
	sameDump(t, "rebuilt view", before, dump(t, r))
}

// TestPoisonAndForeignEvents: undecodable records are skipped and
// counted, events that do not apply are counted as rejected in their pool,
// and neither stops the view.
func TestPoisonAndForeignEvents(t *testing.T) {
	e := newEnv(t, nil)
	topic := e.cfg.Topics.Events()
	e.do("POST", "/v1/pools", map[string]any{"pool_id": "p1"}, 201)
	p := e.start(e.options(filepath.Join(t.TempDir(), "views")))
	part := e.partitionOf("p1")
	cl := testkit.Client(t, e.brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Partition: part, Key: []byte("p1"), Value: []byte(`{"not":"an event"}`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	pos := testkit.Append(t, e.brokers, topic,
		events.New("p1", now, events.AllocCompletedData{AllocID: "nope", Status: events.Succeeded}),
		events.New("ghost", now, events.EvalSubmittedData{EvalID: "e1", Size: 1}),
		events.New("p1", now, events.EvalSubmittedData{EvalID: "e1", Size: 1}),
	)
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	for _, at := range pos {
		if err := p.WaitApplied(ctx, at); err != nil {
			t.Fatal(err)
		}
	}
	st := p.Stats()
	if st.Poison != 1 || st.Rejected != 2 {
		t.Errorf("stats %+v: want 1 poison record and 2 rejected events", st)
	}
	s := snap(t, p)
	defer s.Close()
	pool, err := s.Pool("p1")
	if err != nil || pool.Events != 3 || pool.Rejected != 1 || pool.Evals != 1 || pool.Pending != 1 {
		t.Errorf("pool p1: %+v %v, want 3 events (1 rejected), 1 pending eval", pool, err)
	}
	if _, err := s.Pool("ghost"); err == nil {
		t.Errorf("an event of an unknown pool made a pool")
	}
}

// TestCloseWaitsForReaders: Close waits for open snapshots; afterwards no
// snapshot can be opened and waits end with ErrStopped.
func TestCloseWaitsForReaders(t *testing.T) {
	e := newEnv(t, nil)
	p := e.start(e.options(filepath.Join(t.TempDir(), "views")))
	s := snap(t, p)
	waitErr := make(chan error, 1)
	go func() {
		waitErr <- p.WaitApplied(context.Background(), events.Position{Partition: 0, Offset: 1 << 40})
	}()
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	select {
	case err := <-waitErr:
		if !errors.Is(err, projections.ErrStopped) {
			t.Errorf("wait on a stopping projector: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("wait did not end when the projector stopped")
	}
	select {
	case <-closed:
		t.Fatal("Close returned while a snapshot was open")
	case <-time.After(200 * time.Millisecond):
	}
	if _, _, err := s.Pools(projections.Page{}); err != nil {
		t.Errorf("read from an open snapshot while closing: %v", err)
	}
	_ = s.Close()
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := p.Snapshot(); !errors.Is(err, projections.ErrStopped) {
		t.Errorf("snapshot after Close: %v", err)
	}
	select {
	case <-p.Done():
	default:
		t.Error("Done not closed after Close")
	}
}

package projections_test

import (
	"context"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"github.com/line-sched/line/audit/audittest"
	"github.com/line-sched/line/bootstrap"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/projections"
	"github.com/line-sched/line/testkit"
)

// TestRunningAllocsFromIndex checks that the workers the queries return
// (their running allocs are read from the index of running allocs by
// worker, not stored in the worker's row) equal the fold's, after every
// batch of a rebuild over a simulated history in which allocs are placed,
// complete and expire, and workers expire.
func TestRunningAllocsFromIndex(t *testing.T) {
	emb := testkit.StartBroker(t)
	cfg := testkit.Config(t)
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	if err := bootstrap.EnsureTopics(ctx, cfg, emb.Addrs()); err != nil {
		t.Fatal(err)
	}
	pools := []string{"p1", "p2"}
	hist, err := audittest.Simulate(audittest.Options{Seed: 5, Pools: pools, Partitions: cfg.EventsPartitions, Steps: 600, Delayed: true})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[events.Type]int{}
	for _, e := range hist {
		kinds[e.Type]++
	}
	for _, k := range []events.Type{events.AllocPlaced, events.AllocCompleted, events.AllocExpired, events.WorkerExpired} {
		if kinds[k] == 0 {
			t.Fatalf("the simulated history has no %s event: %v", k, kinds)
		}
	}
	if err := audittest.Produce(ctx, emb.Addrs(), cfg.Topics.Events(), hist, 500); err != nil {
		t.Fatal(err)
	}

	// After each commit, the fold of the log up to the new checkpoint.
	model := projections.NewModel()
	folded := map[int32]int64{}
	var mu sync.Mutex
	var p *projections.Projector
	batches, maxRunning, emptied := 0, 0, 0
	running := map[string]int{} // running allocs of each worker at the previous batch
	check := func(c projections.Commit) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range hist {
			if e.Position.Offset >= folded[e.Position.Partition] && e.Position.Offset < c.To[e.Position.Partition] {
				model.Apply(e.Envelope, e.Position)
			}
		}
		for part, o := range c.To {
			folded[part] = o
		}
		batches++
		s, err := p.Snapshot()
		if err != nil {
			t.Errorf("snapshot: %v", err)
			return
		}
		defer s.Close()
		for _, pool := range pools {
			want := model.Workers(pool)
			var got []projections.WorkerView
			for pg := (projections.Page{Limit: 3}); ; {
				items, next, err := s.Workers(pool, -1, pg)
				if err != nil {
					t.Errorf("batch %d: workers of %s: %v", batches, pool, err)
					return
				}
				got = append(got, items...)
				if next == "" {
					break
				}
				pg.Cursor = next
			}
			if len(got)+len(want) > 0 && !reflect.DeepEqual(got, want) {
				t.Errorf("batch %d (checkpoint %v): workers of %s from the view:\n%+v\nfrom the fold:\n%+v", batches, c.To, pool, got, want)
				return
			}
			byFree, _, err := s.Workers(pool, 0, projections.Page{Limit: projections.MaxLimit})
			if err != nil || len(byFree)+len(got) > 0 && !reflect.DeepEqual(byFree, got) {
				t.Errorf("batch %d: workers of %s with min_free 0: %+v (%v), want %+v", batches, pool, byFree, err, got)
			}
			for _, w := range want {
				d, err := s.Worker(pool, w.WorkerID)
				if err != nil || !reflect.DeepEqual(d.WorkerView, w) || len(d.Allocs) != len(w.RunningAllocs) {
					t.Errorf("batch %d: worker %s/%s: %+v (%v), want %+v", batches, pool, w.WorkerID, d, err, w)
					continue
				}
				for i, a := range d.Allocs {
					if a.AllocID != w.RunningAllocs[i] || a.Status != "running" || a.WorkerID != w.WorkerID {
						t.Errorf("batch %d: worker %s/%s: alloc %d is %+v, want running alloc %s", batches, pool, w.WorkerID, i, a, w.RunningAllocs[i])
					}
				}
				key := pool + "/" + w.WorkerID
				maxRunning = max(maxRunning, len(w.RunningAllocs))
				if len(w.RunningAllocs) == 0 && running[key] > 0 {
					emptied++
				}
				running[key] = len(w.RunningAllocs)
			}
		}
	}
	p, err = projections.Open(ctx, projections.Options{Config: cfg, Brokers: emb.Addrs(), Dir: filepath.Join(t.TempDir(), "views"),
		Rebuild: true, Logger: testkit.Logger(t), MaxBatchRecords: 17, MaxBulkRecords: -1, OnCommit: check})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	if err := p.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	// The history ran allocs side by side and ran them out.
	if batches < 20 || maxRunning < 2 || emptied == 0 {
		t.Fatalf("%d batches, at most %d running allocs on a worker, %d times a worker's last alloc ended: the history does not exercise the index",
			batches, maxRunning, emptied)
	}
	t.Logf("%d events %v in %d batches; at most %d running allocs on a worker", len(hist), kinds, batches, maxRunning)
}

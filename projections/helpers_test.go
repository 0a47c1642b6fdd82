package projections_test

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/line-sched/line/config"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/ingest"
	"github.com/line-sched/line/projections"
	"github.com/line-sched/line/schedloop"
	"github.com/line-sched/line/testkit"
)

// env is one test's deployment: an embedded broker and an ingest service
// serving the HTTP commands.
type env struct {
	t       *testing.T
	brokers []string
	cfg     config.Config
	base    string
	svc     *ingest.Service
}

func newEnv(t *testing.T, mutate func(*config.Config)) *env {
	t.Helper()
	emb := testkit.StartBroker(t)
	cfg := testkit.Config(t)
	if mutate != nil {
		mutate(&cfg)
	}
	base, svc := testkit.StartIngest(t, cfg, emb.Addrs())
	return &env{t: t, brokers: emb.Addrs(), cfg: cfg, base: base, svc: svc}
}

func (e *env) do(method, path string, body any, want int) testkit.Response {
	e.t.Helper()
	r := testkit.Do(e.t, method, e.base+path, body)
	if r.Status != want {
		e.t.Fatalf("%s %s: %s, want status %d", method, path, r, want)
	}
	return r
}

// options are the projector's options for dir in this deployment.
func (e *env) options(dir string) projections.Options {
	return projections.Options{Config: e.cfg, Brokers: e.brokers, Dir: dir, Logger: testkit.Logger(e.t)}
}

// open opens a projector without running it; it is closed when the test
// ends.
func (e *env) open(opts projections.Options) *projections.Projector {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	p, err := projections.Open(ctx, opts)
	if err != nil {
		e.t.Fatalf("open projector on %s: %v", opts.Dir, err)
	}
	e.t.Cleanup(func() { _ = p.Close() })
	return p
}

// start opens a projector and runs it until the test ends.
func (e *env) start(opts projections.Options) *projections.Projector {
	e.t.Helper()
	p := e.open(opts)
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	e.t.Cleanup(func() {
		_ = p.Close()
		if err := <-done; err != nil {
			e.t.Errorf("projector Run: %v", err)
		}
	})
	return p
}

// catchUp waits until p reflects everything committed on the log.
func catchUp(t *testing.T, p *projections.Projector) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	if err := p.CatchUp(ctx); err != nil {
		t.Fatalf("projector catch-up: %v (applied %v)", err, p.Applied())
	}
}

func dump(t *testing.T, p *projections.Projector) []byte {
	t.Helper()
	b, err := p.Dump()
	if err != nil {
		t.Fatalf("dump: %v", err)
	}
	return b
}

// sameDump fails with the first differing line unless a equals b.
func sameDump(t *testing.T, what string, a, b []byte) {
	t.Helper()
	if bytes.Equal(a, b) {
		return
	}
	la, lb := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := 0; i < len(la) || i < len(lb); i++ {
		var x, y string
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if x != y {
			t.Fatalf("%s: dumps differ at line %d (of %d and %d):\n  %s\n  %s", what, i+1, len(la), len(lb), x, y)
		}
	}
}

// startScheduler runs a real scheduler loop until the returned stop is
// called (or the test ends).
func (e *env) startScheduler() (stop func()) {
	e.t.Helper()
	l, err := schedloop.New(schedloop.Options{Config: e.cfg, Brokers: e.brokers, Logger: testkit.Logger(e.t),
		InstanceID: "projections-test"})
	if err != nil {
		e.t.Fatalf("scheduler: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				e.t.Errorf("scheduler Run: %v", err)
			}
			l.Close()
		})
	}
	e.t.Cleanup(stop)
	return stop
}

// quiesce waits until no transaction is open on the events topic (its
// committed end is its end), so that what is committed no longer moves.
func (e *env) quiesce() {
	e.t.Helper()
	topic := e.cfg.Topics.Events()
	testkit.WaitFor(e.t, 30*time.Second, "no open transaction on the events topic", func() bool {
		return maps.Equal(testkit.CommittedOffsets(e.t, e.brokers, topic), testkit.EndOffsets(e.t, e.brokers, topic))
	})
}

// eval reads an eval from the view.
func eval(t *testing.T, p *projections.Projector, pool, id string) (projections.EvalDetail, bool) {
	t.Helper()
	s := snap(t, p)
	defer s.Close()
	v, err := s.Eval(pool, id)
	var qe *projections.QueryError
	if errors.As(err, &qe) && qe.Status == 404 {
		return v, false
	}
	if err != nil {
		t.Fatalf("eval %s/%s: %v", pool, id, err)
	}
	return v, true
}

// partitionOf is the events partition of pool.
func (e *env) partitionOf(pool string) int32 {
	return events.PartitionFor(pool, e.cfg.EventsPartitions)
}

// snap opens a snapshot of p's views.
func snap(t *testing.T, p *projections.Projector) *projections.Snapshot {
	t.Helper()
	s, err := p.Snapshot()
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return s
}

package testkit

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/line-sched/line/bootstrap"
	"github.com/line-sched/line/broker"
	"github.com/line-sched/line/config"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/httpapi"
	"github.com/line-sched/line/ingest"
)

// Settings of Config. The TTLs differ from one another so that a test can
// tell which one a deadline was computed with.
const (
	// EventsPartitions is the partition count of the events topic: few
	// partitions keep the broker and the consumers fast, more than one
	// keeps partitioning visible.
	EventsPartitions = 3
	// AllocsPartitions is the partition count of the shared alloc topic:
	// few, so that workers of a test share partitions.
	AllocsPartitions = 4
	// PoolTTL is how long a disbanded pool lives.
	PoolTTL = 20 * time.Second
	// WorkerTTL is how long a worker lives without heartbeat.
	WorkerTTL = 2 * time.Second
	// ReplicaTTL is how long a replica lives without being reported.
	ReplicaTTL = 3 * time.Second
	// AllocTTL is how long an alloc lives without heartbeat.
	AllocTTL = 4 * time.Second
	// MaxRetry is how many placements an eval gets.
	MaxRetry = 3
	// ProduceTimeout bounds each write; long enough for -race on a small
	// machine, short enough that a test of an unavailable broker ends.
	ProduceTimeout = 5 * time.Second
)

// Timeout bounds every helper that waits for the broker.
const Timeout = 30 * time.Second

var deploymentSeq atomic.Int64

// Deployment returns a deployment name unique in this process, derived from
// the test's name: topics of two tests never collide, even on one broker.
func Deployment(t testing.TB) string {
	var b strings.Builder
	b.WriteByte('t')
	for _, r := range strings.ToLower(t.Name()) {
		if b.Len() >= 20 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '/', r == '_', r == '-':
			b.WriteByte('-')
		}
	}
	return fmt.Sprintf("%s-%d", b.String(), deploymentSeq.Add(1))
}

// Config returns a configuration for tests: the deployment named by the
// optional argument (default: Deployment(t)), EventsPartitions partitions,
// the short TTLs above, a data dir in t.TempDir() and loopback addresses
// with port 0.
func Config(t testing.TB, deployment ...string) config.Config {
	t.Helper()
	name := ""
	switch len(deployment) {
	case 0:
		name = Deployment(t)
	case 1:
		name = deployment[0]
	default:
		t.Fatalf("testkit.Config: at most one deployment, got %q", deployment)
	}
	topics, err := events.NewTopics(name)
	if err != nil {
		t.Fatalf("testkit.Config: %v", err)
	}
	c := config.Default()
	c.Deployment = name
	c.Topics = topics
	c.DataDir = t.TempDir()
	c.DevKafkaAddr = "127.0.0.1:0"
	c.HTTPAddr = "127.0.0.1:0"
	c.EventsPartitions = EventsPartitions
	c.AllocsPartitions = AllocsPartitions
	c.PoolTTL = PoolTTL
	c.WorkerTTL = WorkerTTL
	c.ReplicaTTL = ReplicaTTL
	c.AllocTTL = AllocTTL
	c.MaxRetry = MaxRetry
	c.ProduceTimeout = ProduceTimeout
	return c
}

// StartBroker starts an embedded kfake broker on 127.0.0.1:0 with its data
// in a new t.TempDir(); it is closed when the test ends.
func StartBroker(t testing.TB) *broker.Embedded {
	t.Helper()
	return StartBrokerAt(t, t.TempDir(), "127.0.0.1:0")
}

// StartBrokerAt starts an embedded broker on dir and addr, closed when the
// test ends. To restart a broker with its log, Close the first one and call
// StartBrokerAt with the same dir and with its Addrs()[0].
func StartBrokerAt(t testing.TB, dir, addr string) *broker.Embedded {
	t.Helper()
	logf := Logf(t)
	emb, err := broker.StartEmbedded(broker.EmbeddedConfig{DataDir: dir, Addr: addr, Logf: logf})
	if err != nil {
		t.Fatalf("testkit: start embedded broker: %v", err)
	}
	t.Cleanup(func() {
		if err := emb.Close(); err != nil {
			t.Logf("testkit: close embedded broker: %v", err)
		}
	})
	return emb
}

// StartIngest makes sure cfg's topics exist on brokers, starts an ingest
// service and serves the HTTP API on a random loopback port. It returns the
// base URL ("http://127.0.0.1:port") and the service. Both stop when the
// test ends (the server first, gracefully).
func StartIngest(t testing.TB, cfg config.Config, brokers []string) (string, *ingest.Service) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := bootstrap.EnsureTopics(ctx, cfg, brokers); err != nil {
		t.Fatalf("testkit: ensure topics: %v", err)
	}
	log := Logger(t)
	svc, err := ingest.New(ctx, ingest.Options{Config: cfg, Brokers: brokers, Logger: log})
	if err != nil {
		t.Fatalf("testkit: start ingest: %v", err)
	}
	e, err := httpapi.New(httpapi.Options{Ingest: svc, Logger: log})
	if err != nil {
		svc.Close()
		t.Fatalf("testkit: http api: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		svc.Close()
		t.Fatalf("testkit: listen: %v", err)
	}
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- httpapi.Serve(sctx, e, ln) }()
	t.Cleanup(func() {
		// Connections the client dialed but never used count as
		// active for 5s in http.Server.Shutdown: close them first.
		HTTPClient.CloseIdleConnections()
		stop()
		if err := <-done; err != nil {
			t.Logf("testkit: http server: %v", err)
		}
		svc.Close()
	})
	return "http://" + ln.Addr().String(), svc
}

// Logf returns a printf-style logger that writes to t.Logf and drops
// messages once the test is over (goroutines that outlive a test must not
// call t.Logf). "Over" is when the cleanup Logf registers runs: after the
// cleanups registered later, such as closing what logs to it.
func Logf(t testing.TB) func(format string, args ...any) {
	var (
		mu   sync.Mutex
		done bool
	)
	t.Cleanup(func() {
		mu.Lock()
		done = true
		mu.Unlock()
	})
	return func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if !done {
			t.Logf(format, args...)
		}
	}
}

// Logger returns a slog.Logger writing warnings and errors to Logf(t).
func Logger(t testing.TB) *slog.Logger {
	logf := Logf(t)
	return slog.New(slog.NewTextHandler(logWriter(logf), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type logWriter func(format string, args ...any)

func (w logWriter) Write(p []byte) (int, error) {
	w("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// WaitFor polls cond every 20ms until it holds, failing the test with msg
// after timeout.
func WaitFor(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("testkit: timed out after %s waiting for %s", timeout, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

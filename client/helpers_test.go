package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/line-sched/line/app"
	"github.com/line-sched/line/client"
	"github.com/line-sched/line/config"
	"github.com/line-sched/line/testkit"
)

// line is a whole line (ingest, scheduler, projector) running in-process
// on an embedded broker, as `line dev` runs it.
type line struct {
	cfg     config.Config
	brokers []string
	addr    string
	c       *client.Client
}

// startLine starts line with testkit's short TTLs, changed by tweak.
func startLine(t *testing.T, tweak func(*config.Config)) *line {
	t.Helper()
	emb := testkit.StartBroker(t)
	cfg := testkit.Config(t)
	cfg.Brokers = emb.Addrs()
	if tweak != nil {
		tweak(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan app.DevAddrs, 1)
	done := make(chan error, 1)
	go func() { done <- app.Dev(ctx, cfg, testkit.Logger(t), func(a app.DevAddrs) { ready <- a }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Logf("line: %v", err)
		}
	})
	var a app.DevAddrs
	select {
	case a = <-ready:
	case err := <-done:
		t.Fatalf("line did not start: %v", err)
	case <-time.After(testkit.Timeout):
		t.Fatal("line did not start in time")
	}
	c, err := client.New("http://" + a.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, testkit.Timeout, "healthy", func() bool {
		_, err := c.Health(context.Background())
		return err == nil
	})
	return &line{cfg: cfg, brokers: emb.Addrs(), addr: "http://" + a.HTTP, c: c}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	t.Cleanup(cancel)
	return ctx
}

func ptr[T any](v T) *T { return &v }

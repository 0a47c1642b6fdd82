// Package e2e runs line against a real Kafka broker in a container
// (testcontainers). Without a Docker engine the tests skip, saying why; the
// default suite runs everything else on the embedded broker.
package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tckafka "github.com/testcontainers/testcontainers-go/modules/kafka"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/schedloop"
	"github.com/line-sched/line/testkit"
)

// TestRealKafka places an eval through ingest and the scheduler on a real
// Kafka: the alloc arrives on the worker's topic.
func TestRealKafka(t *testing.T) {
	testcontainers.SkipIfProviderIsNotHealthy(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	kc, err := tckafka.Run(ctx, "confluentinc/confluent-local:7.5.0", tckafka.WithClusterID("line-e2e"))
	if err != nil {
		t.Fatalf("start kafka container: %v", err)
	}
	t.Cleanup(func() { _ = testcontainers.TerminateContainer(kc) })
	brokers, err := kc.Brokers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testkit.Config(t)
	base, _ := testkit.StartIngest(t, cfg, brokers)
	loop, err := schedloop.New(schedloop.Options{Config: cfg, Brokers: brokers, Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	lctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- loop.Run(lctx) }()
	t.Cleanup(func() { stop(); <-done; loop.Close() })

	if r := testkit.Do(t, http.MethodPost, base+"/v1/pools", map[string]any{"pool_id": "real"}); r.Status != http.StatusCreated {
		t.Fatalf("create pool: %s", r)
	}
	if r := testkit.Do(t, http.MethodPost, base+"/v1/pools/real/workers", map[string]any{"worker_id": "w1", "capacity": 2}); r.Status != http.StatusCreated {
		t.Fatalf("register worker: %s", r)
	}
	if r := testkit.Do(t, http.MethodPost, base+"/v1/pools/real/evals", map[string]any{"eval_id": "e1", "payload": map[string]any{"x": 1}}); r.Status != http.StatusAccepted {
		t.Fatalf("submit eval: %s", r)
	}
	topic := cfg.Topics.WorkerAllocs("real", "w1")
	var got events.AllocRecord
	testkit.WaitFor(t, 60*time.Second, "alloc on the worker topic", func() bool {
		recs := testkit.ReadRecords(t, brokers, topic)
		if len(recs) == 0 {
			return false
		}
		return json.Unmarshal(recs[0].Value, &got) == nil
	})
	if got.EvalID != "e1" || got.WorkerID != "w1" || string(got.Payload) != `{"x":1}` {
		t.Fatalf("alloc record = %+v", got)
	}
}

package config

import (
	"strings"
	"testing"
	"time"
)

func lookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func TestDefaults(t *testing.T) {
	c, err := FromLookup(lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Deployment != "line" || c.Topics.Events() != "line.events" || c.EventsPartitions != 12 {
		t.Fatalf("deployment defaults: %+v", c)
	}
	if c.PoolTTL != time.Hour || c.WorkerTTL != 30*time.Second || c.ReplicaTTL != time.Minute || c.AllocTTL != time.Minute || c.MaxRetry != 3 {
		t.Fatalf("TTL defaults: %+v", c)
	}
	if c.HTTPAddr != "127.0.0.1:8080" || c.DevKafkaAddr != "127.0.0.1:9092" || c.DataDir != "./.line" || len(c.Brokers) != 0 {
		t.Fatalf("address defaults: %+v", c)
	}
	if c.ProjectorNice != 10 {
		t.Fatalf("projector nice %d, want 10", c.ProjectorNice)
	}
}

func TestOverrides(t *testing.T) {
	c, err := FromLookup(lookup(map[string]string{
		"LINE_DEPLOYMENT":      "prod-1",
		"LINE_KAFKA_BROKERS":   " a:1, ,b:2 ",
		"LINE_WORKER_TTL":      "2s",
		"LINE_MAX_RETRY":       "5",
		"LINE_DEV_SYNC_WRITES": "true",
		"LINE_PROJECTOR_NICE":  "0",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Topics.Events() != "prod-1.events" || strings.Join(c.Brokers, ",") != "a:1,b:2" ||
		c.WorkerTTL != 2*time.Second || c.MaxRetry != 5 || !c.DevSyncWrites || c.ProjectorNice != 0 {
		t.Fatalf("overrides not applied: %+v", c)
	}
}

// TestInvalidReportsEveryVariable: each bad variable is named, with what
// it should look like.
func TestInvalidReportsEveryVariable(t *testing.T) {
	_, err := FromLookup(lookup(map[string]string{
		"LINE_DEPLOYMENT":      "Bad.Name",
		"LINE_ALLOC_TTL":       "soon",
		"LINE_MAX_RETRY":       "0",
		"LINE_DEV_SYNC_WRITES": "maybe",
		"LINE_PROJECTOR_NICE":  "20",
	}))
	if err == nil {
		t.Fatal("invalid configuration accepted")
	}
	for _, want := range []string{"LINE_DEPLOYMENT", "LINE_ALLOC_TTL", "positive duration", "LINE_MAX_RETRY", "LINE_DEV_SYNC_WRITES", "LINE_PROJECTOR_NICE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
}

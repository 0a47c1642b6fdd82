package events_test

import (
	"strings"
	"testing"

	"github.com/line-sched/line/events"
)

func TestTopicNames(t *testing.T) {
	tp, err := events.NewTopics("line")
	if err != nil {
		t.Fatal(err)
	}
	for got, want := range map[string]string{
		tp.Events():                      "line.events",
		tp.DeadEvals():                   "line.evals.dead",
		tp.Quarantine():                  "line.events.quarantine",
		tp.WorkerAllocs("pool-1", "w_2"): "line.allocs.pool-1.w_2",
		tp.AllocsPrefix():                "line.allocs.",
	} {
		if got != want {
			t.Errorf("topic %q, want %q", got, want)
		}
	}
	if events.DefaultDeployment != "line" || events.DefaultEventsPartitions != 12 {
		t.Errorf("defaults = %q, %d; want line, 12", events.DefaultDeployment, events.DefaultEventsPartitions)
	}
	other, err := events.NewTopics("prod-eu_1")
	if err != nil {
		t.Fatal(err)
	}
	if got := other.Events(); got != "prod-eu_1.events" {
		t.Errorf("Events() = %q", got)
	}
}

func TestNewTopicsValidation(t *testing.T) {
	for _, d := range []string{"a", "0", "line", "prod-eu_1", strings.Repeat("x", 32)} {
		if _, err := events.NewTopics(d); err != nil {
			t.Errorf("NewTopics(%q) = %v", d, err)
		}
	}
	for _, d := range []string{"", "Line", "a.b", "-a", "_a", "a b", "a/b", strings.Repeat("x", 33)} {
		if tp, err := events.NewTopics(d); err == nil {
			t.Errorf("NewTopics(%q) = %+v, want an error", d, tp)
		} else if !strings.Contains(err.Error(), "LINE_DEPLOYMENT") {
			t.Errorf("NewTopics(%q) error %q does not name LINE_DEPLOYMENT", d, err)
		}
	}
}

func TestParseWorkerAllocs(t *testing.T) {
	tp, _ := events.NewTopics("line")
	for _, c := range []struct{ pool, worker string }{{"p", "w"}, {"pool-1", "worker_2"}, {strings.Repeat("p", 64), strings.Repeat("w", 64)}} {
		topic := tp.WorkerAllocs(c.pool, c.worker)
		pool, worker, ok := tp.ParseWorkerAllocs(topic)
		if !ok || pool != c.pool || worker != c.worker {
			t.Errorf("ParseWorkerAllocs(%q) = %q, %q, %v", topic, pool, worker, ok)
		}
	}
	for _, topic := range []string{
		"", "line.events", "line.evals.dead", "line.events.quarantine", "line.allocs.", "line.allocs.p",
		"line.allocs.p.", "line.allocs..w", "line.allocs.p.w.x", "line.allocs.P.w", "line.allocs.p.W",
		"other.allocs.p.w", "lineX.allocs.p.w", "line.allocsp.w", "line.allocs.-p.w",
		"line.allocs." + strings.Repeat("p", 65) + ".w",
	} {
		if pool, worker, ok := tp.ParseWorkerAllocs(topic); ok || pool != "" || worker != "" {
			t.Errorf("ParseWorkerAllocs(%q) = %q, %q, %v; want not ok", topic, pool, worker, ok)
		}
	}
}

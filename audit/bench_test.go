package audit

import (
	"testing"

	"github.com/line-sched/line/audit/audittest"
)

// BenchmarkChecker measures the checker alone on a simulated history.
func BenchmarkChecker(b *testing.B) {
	hist, err := audittest.Simulate(audittest.Options{Seed: 1, Steps: 5000, Pools: []string{"p1", "p2", "p3", "p4"}, Delayed: true})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		c := NewChecker()
		for _, e := range hist {
			c.Check(e.Envelope, e.Position)
		}
		c.Finish()
	}
	b.ReportMetric(float64(len(hist)*b.N)/b.Elapsed().Seconds(), "events/s")
}

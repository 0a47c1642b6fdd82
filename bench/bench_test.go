package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
)

// roleEnv makes the test binary a child of the harness (see TestMain).
const roleEnv = "LINE_BENCH_TEST_ROLE"

// TestMain runs the test binary as a harness child when roleEnv is set, so
// that the smoke benchmark exercises the same process boundaries as
// `line bench`.
func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := Serve(ctx, Role(role), os.Stdout, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// BenchmarkScenarios runs every end-to-end scenario once at a tiny size
// (core is scheduler's BenchmarkDecide, which `go test -bench` runs
// anyway). The full sizes are `line bench all` (make bench).
func BenchmarkScenarios(b *testing.B) {
	o := SmallOptions()
	o.Launch = func(role Role) *exec.Cmd {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), roleEnv+"="+string(role))
		return cmd
	}
	o.Out = b.TempDir()
	o.GoTool = ""
	o.Log = benchLog{b}
	for b.Loop() {
		r := NewRunner(o)
		if err := r.Run(context.Background(), []string{"c1m-shared", "c1m", "replay", "takeover", "latency", "ingest"}); err != nil {
			b.Fatal(err)
		}
		for _, res := range r.Results {
			for _, g := range res.Gates {
				if g.Value == "not measured" {
					b.Errorf("%s: gate %s not measured", res.Scenario, g.Name)
				}
			}
		}
		report := func(scenario, metric, unit string) {
			for _, res := range r.Results {
				if m := res.Get(metric); res.Scenario == scenario && m != nil {
					b.ReportMetric(m.Median, scenario+"-"+unit)
				}
			}
		}
		report("c1m", "evals/s", "evals/s")
		report("c1m-shared", "evals/s", "shared-evals/s")
		report("latency", "p99", "p99-ms")
		report("ingest", "requests/s", "req/s")
		report("takeover", "takeover: start to placed", "takeover-s")
	}
}

type benchLog struct{ b *testing.B }

func (l benchLog) Write(p []byte) (int, error) {
	l.b.Logf("%s", p)
	return len(p), nil
}

func TestStats(t *testing.T) {
	if m := Median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median of 3 1 2 = %v", m)
	}
	if m := Median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median of 4 1 2 3 = %v", m)
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("median of nothing is not NaN")
	}
	s := make([]float64, 100)
	for i := range s {
		s[i] = float64(i + 1)
	}
	for p, want := range map[float64]float64{50: 50, 99: 99, 100: 100, 1: 1} {
		if got := Percentile(s, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
}

func TestParseBench(t *testing.T) {
	out := []byte(`goos: linux
BenchmarkDecide/spread/workers=5000/evals=1000000-2   	       1	1500000000 ns/op	   1000000 placements/op	    666666 placements/s	    700000 placements/cpu-s	         0.2000 hit-ratio	123456 B/op	  42 allocs/op
BenchmarkDecide/binpack/workers=5000/evals=1000000-2   	       1	1000000000 ns/op	   1000000 placements/op	   1000000 placements/s	   1100000 placements/cpu-s	         0.2000 hit-ratio	123456 B/op	  40 allocs/op
BenchmarkDecideFull-2   	      10	    100000 ns/op	  64 B/op	  1 allocs/op
PASS`)
	res := newResult("core")
	parseBench(res, out)
	if m := res.Get("spread placements/s"); m == nil || m.Median != 666666 {
		t.Fatalf("spread placements/s: %+v", m)
	}
	if m := res.Get("binpack allocs/op"); m == nil || m.Median != 40 {
		t.Fatalf("binpack allocs/op: %+v", m)
	}
	if m := res.Get("DecideFull ns/op"); m == nil || m.Median != 100000 {
		t.Fatalf("DecideFull ns/op: %+v", m)
	}
	res.gate("g", "spread placements/s", 500_000, true, "placements/s")
	if !res.Gates[0].Pass {
		t.Errorf("gate: %+v", res.Gates[0])
	}
}

func TestEvalGen(t *testing.T) {
	g := newEvalGen("e", 10, 0)
	ws := workerSpecs(30, 4, 10)
	held := map[string]int{}
	for _, w := range ws {
		for _, d := range w.Datasets {
			held[d]++
		}
	}
	for i := range 100 {
		e := g.next()
		if e.Size < 1 || e.Size > 4 || e.ID != fmt.Sprintf("e%d", i) {
			t.Fatalf("eval %d: %+v", i, e)
		}
		if (i%5 == 0) != (e.Dataset != "") || (e.Dataset != "" && held[e.Dataset] != 3) {
			t.Fatalf("eval %d: dataset %q held by %d workers", i, e.Dataset, held[e.Dataset])
		}
	}
	if got := string(batchBody([]evalSpec{{ID: "a", Size: 2}, {Dataset: "d1", Size: 1}})); got != `{"evals":[{"eval_id":"a","size":2},{"dataset_id":"d1","size":1}]}` {
		t.Errorf("batch body %s", got)
	}
}

// TestResultSkipsUncomputedValues: a NaN or infinite value is not recorded,
// so that results.json can always be written.
func TestResultSkipsUncomputedValues(t *testing.T) {
	r := newResult("x")
	r.add("m", "ms", math.NaN())
	r.add("m", "ms", math.Inf(1))
	r.add("m", "ms", 3)
	m := r.Get("m")
	if m == nil || len(m.Runs) != 1 || m.Median != 3 {
		t.Fatalf("metric %+v, want one run of 3", m)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Fatalf("marshal: %v", err)
	}
}

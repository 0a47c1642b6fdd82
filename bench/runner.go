package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/line-sched/line/events"
)

// Scenarios lists the scenarios in the order `all` runs them: replay and
// takeover work on the history c1m leaves (c1m-shared runs first, so that
// no idle history broker runs beside it).
var Scenarios = []string{"core", "c1m-shared", "c1m", "replay", "takeover", "latency", "ingest"}

// Runner runs scenarios and collects their results.
type Runner struct {
	o       Options
	Machine Machine
	Results []*Result
	hist    *history
}

// history is the log a c1m run left: its line dev (still running) and data
// dir, for replay and takeover.
type history struct {
	dir     string
	dev     *child
	brokers []string
	pool    string
	evals   int
	workers int
}

// NewRunner returns a runner with options o.
func NewRunner(o Options) *Runner {
	if o.Runs <= 0 {
		o.Runs = 1
	}
	return &Runner{o: o, Machine: ThisMachine()}
}

func (r *Runner) logf(format string, args ...any) {
	fmt.Fprintf(r.o.log(), "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// Run runs the named scenarios ("all" for every one) in the order of
// Scenarios, prints each result as it is done, and writes results.json in
// Out.
func (r *Runner) Run(ctx context.Context, names []string) error {
	want := map[string]bool{}
	for _, n := range names {
		if n == "all" {
			for _, s := range Scenarios {
				want[s] = true
			}
			continue
		}
		if !slices.Contains(Scenarios, n) {
			return fmt.Errorf("unknown scenario %q (want one of %s, or all)", n, strings.Join(Scenarios, ", "))
		}
		want[n] = true
	}
	if err := os.MkdirAll(r.o.Out, 0o755); err != nil {
		return err
	}
	defer r.dropHistory()
	r.logf("machine: %s", r.Machine)
	for _, name := range Scenarios {
		if !want[name] {
			continue
		}
		start := time.Now()
		res, err := r.scenario(ctx, name)
		if res != nil {
			res.Elapsed = time.Since(start).Seconds()
			res.Params["load_after"] = LoadAvg()
			r.Results = append(r.Results, res)
			fmt.Fprint(r.o.log(), res.Format())
			if werr := r.write(); werr != nil {
				return werr
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	r.Machine.LoadEnd = LoadAvg()
	return r.write()
}

func (r *Runner) scenario(ctx context.Context, name string) (*Result, error) {
	switch name {
	case "core":
		return r.core(ctx)
	case "c1m":
		return r.c1m(ctx, name, r.o.Runs, true, r.o.Delivery)
	case "c1m-shared":
		return r.c1m(ctx, name, r.o.Runs, false, string(events.Shared))
	case "replay":
		if err := r.ensureHistory(ctx); err != nil {
			return nil, err
		}
		return r.replay(ctx)
	case "takeover":
		return r.takeover(ctx) // makes its own history of TakeoverEvents events
	case "latency":
		return r.latency(ctx)
	case "ingest":
		return r.ingest(ctx)
	}
	return nil, fmt.Errorf("unknown scenario %q", name)
}

// ensureHistory makes a c1m history (one unreported run) if none exists.
func (r *Runner) ensureHistory(ctx context.Context) error {
	if r.hist != nil {
		return nil
	}
	r.logf("no c1m history yet: making one (c1m, 1 run, %d workers, %d evals)", r.o.Workers, r.o.Evals)
	res, err := r.c1m(ctx, "c1m", 1, true, r.o.Delivery)
	if res != nil {
		res.Scenario = "c1m (history for replay/takeover)"
		res.Elapsed = 0
		r.Results = append(r.Results, res)
	}
	return err
}

func (r *Runner) dropHistory() {
	if r.hist == nil {
		return
	}
	if r.hist.dev != nil {
		_ = r.hist.dev.stop(time.Minute)
	}
	if !r.o.Keep {
		_ = os.RemoveAll(r.hist.dir)
	}
	r.hist = nil
}

type report struct {
	Machine Machine   `json:"machine"`
	Results []*Result `json:"results"`
}

func (r *Runner) write() error {
	b, err := json.MarshalIndent(report{Machine: r.Machine, Results: r.Results}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(r.o.Out, "results.json"), b, 0o644)
}

// path returns a file name in Out.
func (r *Runner) path(name string) string { return filepath.Join(r.o.Out, name) }

// topProfile writes `go tool pprof -top` of a profile beside it (best
// effort: the go tool may be missing).
func (r *Runner) topProfile(res *Result, path string, sample string) {
	res.Profiles = append(res.Profiles, path)
	if r.o.GoTool == "" {
		return
	}
	args := []string{"tool", "pprof", "-top", "-nodecount=40"}
	if sample != "" {
		args = append(args, "-sample_index="+sample)
	}
	out, err := exec.Command(r.o.GoTool, append(args, path)...).Output()
	if err != nil {
		return
	}
	_ = os.WriteFile(path+".top.txt", out, 0o644)
	out, err = exec.Command(r.o.GoTool, append(append(args[:2:2], "-top", "-cum", "-nodecount=60"), append(args[4:], path)...)...).Output()
	if err == nil {
		_ = os.WriteFile(path+".cum.txt", out, 0o644)
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

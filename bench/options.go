package bench

import (
	"io"
	"os"
	"os/exec"
	"time"
)

// Options configure a Runner. DefaultOptions are the full sizes;
// SmallOptions a tiny version of every scenario (CI's smoke run).
type Options struct {
	// Launch starts a child process of a role (required for every
	// scenario but core).
	Launch Launcher
	// Out is where logs, profiles and results.json go.
	Out string
	// Runs is how many times each scenario is measured (medians).
	Runs int
	// Profile takes CPU and heap profiles of the system under test.
	Profile bool
	// Log receives progress lines; nil means os.Stderr.
	Log io.Writer
	// GoTool is the go command, for core and for pprof summaries (none
	// when empty).
	GoTool string
	// Keep leaves the data directories in Out.
	Keep bool

	// core: scheduler.BenchmarkDecide at this size.
	CoreWorkers, CoreEvals int
	CoreBenchtime          string

	// c1m (and the history of replay and takeover).
	// Topology is how c1m runs the system: each service in its own
	// process (TopologyServices, the default: per-service RSS) or line dev.
	Topology Topology
	// MemoryLimit is the GOMEMLIMIT of each line service's process in the
	// end-to-end scenarios ("" for none); DefaultMemoryLimit by default.
	MemoryLimit  string
	Workers      int
	Evals        int
	Datasets     int
	BatchSize    int
	BatchConc    int
	RegisterConc int
	Strategy     string
	LocalityWait time.Duration
	// Delivery is the pools' delivery mode: per-worker or shared.
	Delivery string
	// Headroom is total worker capacity over total eval size.
	Headroom float64
	// TakeoverEvents is the size of the history takeover measures on
	// (events on the pool's partition: Workers registrations, then
	// submissions and placements of (TakeoverEvents-Workers)/2 evals).
	TakeoverEvents int

	// latency: Rate evals/s for Duration, on LatencyWorkers workers.
	Rate           int
	Duration       time.Duration
	LatencyWorkers int
	LatencyConns   int

	// ingest: IngestConns connections posting single evals for
	// IngestDuration (after IngestWarmup).
	IngestConns    int
	IngestDuration time.Duration
	IngestWarmup   time.Duration
}

// DefaultMemoryLimit is the services' GOMEMLIMIT in the bench: the Go
// runtime's soft limit, set below the 1 GiB budget of the RSS gate so that
// the collector works harder before the heap grows past it (what
// docs/operations.md recommends for any deployment with a memory budget).
const DefaultMemoryLimit = "900MiB"

// DefaultOptions are the sizes of the issue.
func DefaultOptions() Options {
	return Options{
		Out:            "bench-out",
		Runs:           3,
		Profile:        true,
		GoTool:         goTool(),
		CoreWorkers:    5000,
		CoreEvals:      1_000_000,
		CoreBenchtime:  "1s",
		Topology:       TopologyServices,
		MemoryLimit:    DefaultMemoryLimit,
		Workers:        5000,
		Evals:          1_000_000,
		Datasets:       1000,
		BatchSize:      10_000,
		BatchConc:      4,
		RegisterConc:   32,
		Strategy:       "spread",
		LocalityWait:   0,
		Delivery:       "per-worker",
		Headroom:       1.25,
		TakeoverEvents: 1_000_000,
		Rate:           1000,
		Duration:       60 * time.Second,
		LatencyWorkers: 100,
		LatencyConns:   64,
		IngestConns:    64,
		IngestDuration: 20 * time.Second,
		IngestWarmup:   2 * time.Second,
	}
}

// SmallOptions shrink every scenario so that all of them run in well under
// a minute (one run each).
func SmallOptions() Options {
	o := DefaultOptions()
	o.Runs = 1
	o.CoreWorkers, o.CoreEvals, o.CoreBenchtime = 50, 1000, "1x"
	o.Workers, o.Evals, o.Datasets, o.BatchSize, o.RegisterConc = 20, 2000, 5, 500, 8
	o.TakeoverEvents = o.Workers + 2*o.Evals // takeover reuses the c1m history
	o.Rate, o.Duration, o.LatencyWorkers, o.LatencyConns = 100, 2*time.Second, 5, 8
	o.IngestConns, o.IngestDuration, o.IngestWarmup = 8, time.Second, 200*time.Millisecond
	return o
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}

func (o *Options) log() io.Writer {
	if o.Log == nil {
		return os.Stderr
	}
	return o.Log
}

package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/spf13/cobra"

	"github.com/line-sched/line/bench"
)

// newBenchCmd is `line bench <scenario>...`: the end-to-end benchmarks
// (package bench, BENCHMARKS.md).
func newBenchCmd() *cobra.Command {
	o := bench.DefaultOptions()
	var small bool
	cmd := &cobra.Command{
		Use:   "bench <scenario>... | all",
		Short: "Run the end-to-end benchmark scenarios (see BENCHMARKS.md)",
		Long: `bench runs benchmark scenarios and prints, for each, the per-run values and
their medians, the gates of the issue, and where the profiles are. Scenarios:

  core      scheduler.BenchmarkDecide at full size (go test; needs the source tree)
  c1m       register workers, submit evals through the batch endpoint, until every
            alloc is readable on its worker topic (--delivery shared: on the
            shared alloc topic); with the broker limit (a transactional copy of
            as many records) on the same broker
  c1m-shared  c1m with shared delivery, whatever --delivery says (all runs
            it before c1m; only c1m leaves the history of replay)
  replay    line audit and a projector rebuild over the c1m history
  takeover  a fresh scheduler on a partition with --takeover-events of history
            (made by a smaller c1m run; one more run on the c1m history if
            one was left): seconds until it places again
  latency   paced single-eval POSTs: submit -> alloc readable, p50/p95/p99
  ingest    single-eval POSTs from many connections: requests/s, p99
  all       every one of them, in this order

The system runs in child processes (line dev, or the broker and a scheduler
alone) started from this binary; results.json, logs and profiles go to --out.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if small {
				s := bench.SmallOptions()
				s.Out, s.Profile, s.Keep, s.GoTool, s.Delivery = o.Out, o.Profile, o.Keep, o.GoTool, o.Delivery
				if cmd.Flags().Changed("runs") {
					s.Runs = o.Runs
				}
				if cmd.Flags().Changed("takeover-events") {
					s.TakeoverEvents = o.TakeoverEvents
				}
				o = s
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			o.Launch = func(role bench.Role) *exec.Cmd { return exec.Command(exe, "bench", "serve", "--role", string(role)) }
			o.Log = cmd.ErrOrStderr()
			r := bench.NewRunner(o)
			err = r.Run(cmd.Context(), args)
			fmt.Fprintf(cmd.OutOrStdout(), "\nmachine: %s, load at end %s\n", r.Machine, bench.LoadAvg())
			for _, res := range r.Results {
				fmt.Fprint(cmd.OutOrStdout(), res.Format())
			}
			fmt.Fprintf(cmd.OutOrStdout(), "results: %s/results.json\n", o.Out)
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVar(&small, "small", false, "tiny sizes (CI smoke), one run unless --runs is given")
	f.StringVar(&o.Out, "out", o.Out, "directory for results.json, logs and profiles")
	f.IntVar(&o.Runs, "runs", o.Runs, "runs of each scenario (medians are reported)")
	f.BoolVar(&o.Profile, "profile", o.Profile, "take CPU and heap profiles of the system under test")
	f.BoolVar(&o.Keep, "keep", o.Keep, "keep the data directories in --out")
	f.IntVar(&o.CoreWorkers, "core-workers", o.CoreWorkers, "core: workers")
	f.IntVar(&o.CoreEvals, "core-evals", o.CoreEvals, "core: pending evals")
	f.StringVar(&o.CoreBenchtime, "core-benchtime", o.CoreBenchtime, "core: go test -benchtime")
	f.Var(topologyFlag{&o.Topology}, "topology", "c1m: services (ingest, projector, scheduler and broker as separate processes) or dev (line dev, one process)")
	f.StringVar(&o.MemoryLimit, "memory-limit", o.MemoryLimit, "GOMEMLIMIT of each line service in the end-to-end scenarios (empty: none)")
	f.IntVar(&o.Workers, "workers", o.Workers, "c1m: workers to register")
	f.IntVar(&o.Evals, "evals", o.Evals, "c1m: evals to submit (also the history of replay)")
	f.IntVar(&o.TakeoverEvents, "takeover-events", o.TakeoverEvents, "takeover: events of history on the partition taken over (a c1m run of (this-workers)/2 evals makes it)")
	f.IntVar(&o.Datasets, "datasets", o.Datasets, "c1m: datasets, each held by 3 workers; every fifth eval names one")
	f.IntVar(&o.BatchSize, "batch", o.BatchSize, "c1m: evals per batch request (at most 10,000)")
	f.IntVar(&o.BatchConc, "batch-concurrency", o.BatchConc, "c1m: batch requests in flight")
	f.IntVar(&o.RegisterConc, "register-concurrency", o.RegisterConc, "c1m: registrations in flight")
	f.StringVar(&o.Strategy, "strategy", o.Strategy, "pool strategy: spread or binpack")
	f.DurationVar(&o.LocalityWait, "locality-wait", o.LocalityWait, "pool locality wait")
	f.StringVar(&o.Delivery, "delivery", o.Delivery, "pool delivery: per-worker (a topic per worker) or shared (the shared alloc topic)")
	f.Float64Var(&o.Headroom, "headroom", o.Headroom, "c1m: total worker capacity over total eval size")
	f.IntVar(&o.Rate, "rate", o.Rate, "latency: evals per second")
	f.DurationVar(&o.Duration, "duration", o.Duration, "latency: how long to submit")
	f.IntVar(&o.LatencyWorkers, "latency-workers", o.LatencyWorkers, "latency: workers")
	f.IntVar(&o.LatencyConns, "latency-connections", o.LatencyConns, "latency: connections")
	f.IntVar(&o.IngestConns, "connections", o.IngestConns, "ingest: connections")
	f.DurationVar(&o.IngestDuration, "ingest-duration", o.IngestDuration, "ingest: measured time")
	f.DurationVar(&o.IngestWarmup, "ingest-warmup", o.IngestWarmup, "ingest: warm-up before measuring")
	cmd.AddCommand(newBenchServeCmd())
	return cmd
}

// newBenchServeCmd is the child side of the harness (hidden).
func newBenchServeCmd() *cobra.Command {
	var role string
	cmd := &cobra.Command{
		Use:    "serve",
		Short:  "Run a service for the bench harness (internal)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return bench.Serve(cmd.Context(), bench.Role(strings.TrimSpace(role)), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&role, "role", "dev", "dev, broker, scheduler, ingest or projector")
	return cmd
}

// topologyFlag is --topology, checked by bench.ParseTopology.
type topologyFlag struct{ t *bench.Topology }

func (f topologyFlag) String() string {
	if f.t == nil {
		return ""
	}
	return string(*f.t)
}

func (f topologyFlag) Set(s string) error {
	t, err := bench.ParseTopology(s)
	if err != nil {
		return err
	}
	*f.t = t
	return nil
}

func (f topologyFlag) Type() string { return "topology" }

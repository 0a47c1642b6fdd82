package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/line-sched/line/agent"
	"github.com/line-sched/line/api"
	"github.com/line-sched/line/broker"
	"github.com/line-sched/line/client"
)

func newWorkerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "List and show workers; run a worker agent",
	}
	cmd.AddCommand(newWorkerListCmd(), newWorkerShowCmd(), newWorkerRunCmd())
	return cmd
}

func newWorkerListCmd() *cobra.Command {
	var minFree int64
	cmd := &cobra.Command{
		Use:   "list POOL",
		Short: "List the registered workers of a pool",
		Args:  cobra.ExactArgs(1),
		RunE: withClient(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			ws, err := client.All(ctx, 1000, func(ctx context.Context, p client.Page) ([]api.Worker, *string, error) {
				l, _, err := c.ListWorkers(ctx, args[0], minFree, p, client.Q{})
				if err != nil {
					return nil, nil, err
				}
				return l.Items, l.NextCursor, nil
			})
			if err != nil {
				return err
			}
			if ws == nil {
				ws = []api.Worker{}
			}
			return emit(cmd, ws, func(t *tw) {
				t.row("WORKER", "CAPACITY", "USED", "FREE", "RUNNING", "DATASETS", "DEADLINE")
				for _, w := range ws {
					t.row(w.WorkerId, w.Capacity, w.Used, w.Free, len(w.RunningAllocs), w.Datasets, w.Deadline)
				}
			})
		}),
	}
	cmd.Flags().Int64Var(&minFree, "min-free", 0, "only workers with at least this much free capacity")
	return cmd
}

func newWorkerShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show POOL WORKER",
		Short: "Show a worker with its running allocs and replicas",
		Args:  cobra.ExactArgs(2),
		RunE: withClient(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			w, _, err := c.GetWorker(ctx, args[0], args[1], client.Q{})
			if err != nil {
				return err
			}
			return emit(cmd, w, func(t *tw) {
				t.kv("Worker", w.WorkerId)
				t.kv("Pool", w.PoolId)
				t.kv("Capacity", w.Capacity)
				t.kv("Used", w.Used)
				t.kv("Free", w.Free)
				t.kv("Deadline", w.Deadline)
				t.kv("Registered", w.RegisteredAt)
				t.kv("Topic", w.Topic)
				t.kv("Datasets", w.Datasets)
				t.flush()
				fmt.Fprintln(cmd.OutOrStdout())
				t.row("ALLOC", "EVAL", "SIZE", "ATTEMPT", "PLACED", "DEADLINE")
				for _, a := range w.Allocs {
					t.row(a.AllocId, a.EvalId, a.Size, a.Attempt, a.PlacedAt, a.Deadline)
				}
				if len(w.Replicas) > 0 {
					t.flush()
					fmt.Fprintln(cmd.OutOrStdout())
					t.row("DATASET", "REPLICA DEADLINE")
					for _, r := range w.Replicas {
						t.row(r.DatasetId, r.Deadline)
					}
				}
			})
		}),
	}
}

// defaultWorkerBrokers is LINE_KAFKA_BROKERS, else the address `line dev`
// serves Kafka on (LINE_DEV_KAFKA_ADDR, default 127.0.0.1:9092).
func defaultWorkerBrokers() string {
	if b := broker.Brokers(os.Getenv("LINE_KAFKA_BROKERS")); len(b) > 0 {
		return strings.Join(b, ",")
	}
	return envOr("LINE_DEV_KAFKA_ADDR", "127.0.0.1:9092")
}

func newWorkerRunCmd() *cobra.Command {
	var (
		cfg      agent.Config
		brokers  string
		quiet    bool
		logLevel string
	)
	cmd := &cobra.Command{
		Use:   "run --pool POOL --capacity N [--dataset D]... -- COMMAND [ARGS...]",
		Short: "Run a worker agent: register, heartbeat, run COMMAND for every alloc",
		Long: `run registers a worker in POOL (or re-attaches to the one it registered
before, remembered in its state file), heartbeats at a third of the worker
TTL, reads the worker's alloc topic from Kafka and runs COMMAND for every
alloc, never more at once than --capacity (the sum of the allocs' sizes).
Each run gets in its environment:

  LINE_ALLOC_ID, LINE_EVAL_ID, LINE_POOL_ID, LINE_WORKER_ID,
  LINE_DATASET, LINE_SIZE, LINE_ATTEMPT, LINE_PAYLOAD (the eval's JSON payload)

When COMMAND exits, the alloc is completed: succeeded on exit status 0,
failed otherwise, with the exit status and the last 4 KiB of its output.
The output is also printed, each line prefixed with the alloc id
(--quiet hides it).

The state file (--state-dir, default $XDG_STATE_HOME/line or
~/.local/state/line) keeps the worker's identity and how far its topic was
read: a restart re-attaches to the worker if it is still alive, never
starts an alloc twice, and still runs the allocs that had not started.

SIGTERM or Ctrl-C stops taking allocs and waits for the running ones (up
to --drain-timeout) before leaving; a second signal kills them at once.`,
		Example: `  line worker run --pool demo --capacity 4 -- sh -c 'echo "eval $LINE_EVAL_ID: $LINE_PAYLOAD"; sleep 1'
  line worker run --pool demo --capacity 8 --dataset census-2020 -- ./process.sh`,
		RunE: withHints(func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 0 || len(args) == 0 {
				return fmt.Errorf("give the command to run after --, e.g. line worker run --pool %s --capacity %d -- ./work.sh",
					orDefault(cfg.Pool, "POOL"), max(cfg.Capacity, 1))
			}
			if cfg.Pool == "" {
				return errors.New("--pool is required: the pool to work in (`line pool list` shows them)")
			}
			if cfg.Capacity <= 0 {
				return errors.New("--capacity is required: how many size units of allocs may run at once, e.g. --capacity 4")
			}
			c, err := apiClient()
			if err != nil {
				return err
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level %q: want debug, info, warn or error", logLevel)
			}
			cfg.Client = c
			cfg.Brokers = broker.Brokers(brokers)
			cfg.Command = args
			cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			if !quiet {
				cfg.Output = cmd.OutOrStdout()
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			// The first signal cancels ctx (main): drain. A second one
			// aborts the drain.
			abort := make(chan struct{})
			sigs := make(chan os.Signal, 2)
			signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(sigs)
			go func() {
				n := 0
				for range sigs {
					if n++; n == 2 {
						close(abort)
						return
					}
				}
			}()
			cfg.Abort = abort
			return agent.Run(ctx, cfg)
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&cfg.Pool, "pool", "", "the pool to work in (required)")
	fl.Int64Var(&cfg.Capacity, "capacity", 0, "the worker's capacity: size units of allocs run at once (required)")
	fl.StringArrayVar(&cfg.Datasets, "dataset", nil, "a dataset this worker holds (repeat for several)")
	fl.StringVar(&cfg.WorkerID, "worker-id", "", "worker id to register with (default: the server's choice); also names the state file")
	fl.StringVar(&cfg.StateDir, "state-dir", agent.DefaultStateDir(), "where the agent keeps its state file")
	fl.DurationVar(&cfg.Heartbeat, "heartbeat", 0, "heartbeat interval (default: a third of the worker TTL the server gives)")
	fl.DurationVar(&cfg.DrainTimeout, "drain-timeout", time.Minute, "on SIGTERM, how long to wait for running allocs")
	fl.StringVar(&brokers, "brokers", defaultWorkerBrokers(), "Kafka brokers, comma separated (LINE_KAFKA_BROKERS)")
	fl.BoolVar(&quiet, "quiet", false, "do not print the commands' output")
	fl.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/line-sched/line/api"
	"github.com/line-sched/line/client"
)

func newPoolCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pool",
		Short: "Create, list, show and disband pools",
	}
	cmd.AddCommand(newPoolCreateCmd(), newPoolListCmd(), newPoolShowCmd(), newPoolDisbandCmd())
	return cmd
}

func newPoolCreateCmd() *cobra.Command {
	var strategy, delivery string
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "create [POOL]",
		Short: "Create a pool (the server picks an id when POOL is omitted)",
		Example: `  line pool create demo
  line pool create demo --strategy binpack --locality-wait 2s
  line pool create big --delivery shared`,
		Args: cobra.MaximumNArgs(1),
		RunE: withHints(func(cmd *cobra.Command, args []string) error {
			c, err := apiClient()
			if err != nil {
				return err
			}
			req := api.CreatePoolRequest{}
			if len(args) == 1 {
				req.PoolId = &args[0]
			}
			if strategy != "" {
				s := api.Strategy(strategy)
				req.Strategy = &s
			}
			if cmd.Flags().Changed("locality-wait") {
				d := wait.String()
				req.LocalityWait = &d
			}
			if delivery != "" {
				d := api.Delivery(delivery)
				req.Delivery = &d
			}
			ctx, cancel := callCtx(cmd)
			defer cancel()
			res, err := c.CreatePool(ctx, req)
			if err != nil {
				return err
			}
			return emit(cmd, res, func(t *tw) {
				t.row("POOL", "STRATEGY", "LOCALITY WAIT", "DELIVERY", "POSITION")
				t.row(res.PoolId, res.Strategy, res.LocalityWait, res.Delivery, res.Position)
			})
		}),
	}
	cmd.Flags().StringVar(&strategy, "strategy", "", "placement strategy: spread (default) or binpack")
	cmd.Flags().DurationVar(&wait, "locality-wait", 0, "how long an eval waits for a worker holding its dataset")
	cmd.Flags().StringVar(&delivery, "delivery", "", "how allocs reach the workers: per-worker (default: one topic per worker) or shared (one shared topic, a partition per group of workers; for large fleets)")
	return cmd
}

func newPoolListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the pools",
		Args:  cobra.NoArgs,
		RunE: withClient(func(ctx context.Context, cmd *cobra.Command, c *client.Client, _ []string) error {
			pools, err := client.All(ctx, 1000, func(ctx context.Context, p client.Page) ([]api.Pool, *string, error) {
				l, _, err := c.ListPools(ctx, p, client.Q{})
				if err != nil {
					return nil, nil, err
				}
				return l.Items, l.NextCursor, nil
			})
			if err != nil {
				return err
			}
			if pools == nil {
				pools = []api.Pool{}
			}
			return emit(cmd, pools, func(t *tw) {
				t.row("POOL", "STATUS", "STRATEGY", "WORKERS", "EVALS", "PENDING", "MAX FREE", "CREATED")
				for _, p := range pools {
					t.row(p.PoolId, p.Status, p.Strategy, p.Workers, p.Evals, p.Pending, p.MaxFree, p.CreatedAt)
				}
			})
		}),
	}
}

func newPoolShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show POOL",
		Short: "Show a pool: status, settings and counters",
		Args:  cobra.ExactArgs(1),
		RunE: withClient(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			p, _, err := c.GetPool(ctx, args[0], client.Q{})
			if err != nil {
				return err
			}
			return emit(cmd, p, func(t *tw) {
				t.kv("Pool", p.PoolId)
				t.kv("Status", p.Status)
				t.kv("Strategy", p.Strategy)
				t.kv("Locality wait", p.LocalityWait)
				t.kv("Delivery", p.Delivery)
				t.kv("Created", p.CreatedAt)
				if p.DisbandedAt != nil {
					t.kv("Disbanded", p.DisbandedAt)
					t.kv("Deleted at", p.DeleteAt)
				}
				if p.DeletedAt != nil {
					t.kv("Deleted", p.DeletedAt)
				}
				t.kv("Workers", p.Workers)
				t.kv("Max free", p.MaxFree)
				t.kv("Evals", p.Evals)
				t.kv("Pending", p.Pending)
				t.kv("Awaiting retry", p.AwaitingRetry)
				t.kv("Next deadline", p.NextDeadline)
				t.kv("Events", p.Events)
				t.kv("Rejected events", p.Rejected)
				t.kv("Last position", p.LastPosition)
			})
		}),
	}
}

func newPoolDisbandCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "disband POOL",
		Short: "Disband a pool: pending evals are rejected, running allocs may finish",
		Args:  cobra.ExactArgs(1),
		RunE: withClient(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			res, err := c.DisbandPool(ctx, args[0])
			if err != nil {
				return err
			}
			return emit(cmd, res, func(t *tw) {
				t.row("POOL", "STATUS", "DELETE AT", "POSITION")
				t.row(res.PoolId, res.Status, res.DeleteAt, res.Position)
			})
		}),
	}
}

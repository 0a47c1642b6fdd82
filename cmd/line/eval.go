package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/line-sched/line/api"
	"github.com/line-sched/line/client"
	"github.com/line-sched/line/events"
)

func newEvalCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "Submit, show and list evals",
	}
	cmd.AddCommand(newEvalSubmitCmd(), newEvalShowCmd(), newEvalListCmd(), newEvalDeadCmd())
	return cmd
}

// readPayload returns the JSON of --payload: inline JSON, or @FILE.
func readPayload(s string) (json.RawMessage, error) {
	if s == "" {
		return nil, nil
	}
	b := []byte(s)
	if name, ok := strings.CutPrefix(s, "@"); ok {
		var err error
		if b, err = os.ReadFile(name); err != nil {
			return nil, fmt.Errorf("--payload: %w", err)
		}
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("--payload is not valid JSON: %.60q (quote it for the shell, e.g. --payload '{\"n\": 1}')", b)
	}
	return json.RawMessage(b), nil
}

func newEvalSubmitCmd() *cobra.Command {
	var (
		id, dataset, payload string
		size                 int64
		count                int
		wait                 bool
		timeout              time.Duration
	)
	cmd := &cobra.Command{
		Use:   "submit POOL",
		Short: "Submit evals to a pool; --wait blocks until they are placed",
		Long: `submit queues one eval (or --count of them, in batches of up to 10,000, each
all or nothing) in POOL. An --eval-id makes the submission idempotent: a
known id is reported as a duplicate and not queued again; with --count N
the ids are ID-1 ... ID-N.

--wait blocks until every submitted eval has left the queue (placed on a
worker, or ended), using blocking queries on the server's views.`,
		Example: `  line eval submit demo --size 2 --dataset census-2020 --payload '{"cmd":"count"}'
  line eval submit demo --count 100 --wait`,
		Args: cobra.ExactArgs(1),
		RunE: withHints(func(cmd *cobra.Command, args []string) error {
			pool := args[0]
			if count < 1 || count > 1_000_000 {
				return fmt.Errorf("--count %d: want 1 to 1000000", count)
			}
			if size < 0 {
				return fmt.Errorf("--size %d: want 1 or more", size)
			}
			body, err := readPayload(payload)
			if err != nil {
				return err
			}
			c, err := apiClient()
			if err != nil {
				return err
			}
			reqs := make([]api.EvalRequest, count)
			for i := range reqs {
				r := api.EvalRequest{Payload: body}
				if size > 0 {
					r.Size = &size
				}
				if dataset != "" {
					r.DatasetId = &dataset
				}
				if id != "" {
					eid := id
					if count > 1 {
						eid = fmt.Sprintf("%s-%d", id, i+1)
					}
					r.EvalId = &eid
				}
				reqs[i] = r
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			cctx, cancel := context.WithTimeout(ctx, callTimeout+time.Duration(count/1000)*time.Second)
			accepted, err := submit(cctx, c, pool, reqs)
			cancel()
			if err != nil {
				return err
			}
			if !wait {
				return printAccepted(cmd, pool, accepted)
			}
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			evals, err := waitPlaced(ctx, cmd, c, pool, accepted)
			if err != nil {
				if errors.Is(err, context.DeadlineExceeded) {
					return fmt.Errorf("evals still pending after --timeout %s\nhint: is a worker with room running? `line worker list %s`", timeout, pool)
				}
				return err
			}
			if err := printPlaced(cmd, evals); err != nil {
				return err
			}
			var failed []string
			for _, e := range evals {
				if e.Status == api.EvalStatusRejected || e.Status == api.EvalStatusDeadLettered {
					failed = append(failed, fmt.Sprintf("%s %s (%s)", e.EvalId, e.Status, derefOr(e.Reason)))
				}
			}
			if len(failed) > 0 {
				return fmt.Errorf("%d evals were not placed: %s", len(failed), strings.Join(failed, "; "))
			}
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&id, "eval-id", "", "eval id (idempotency key); with --count N, the prefix of ID-1 ... ID-N")
	fl.StringVar(&dataset, "dataset", "", "dataset the eval reads (placed on a worker holding it if possible)")
	fl.Int64Var(&size, "size", 1, "capacity units the eval needs")
	fl.StringVar(&payload, "payload", "", "JSON handed to the worker (LINE_PAYLOAD), or @FILE")
	fl.IntVar(&count, "count", 1, "how many evals to submit")
	fl.BoolVar(&wait, "wait", false, "wait until the evals are placed")
	fl.DurationVar(&timeout, "timeout", 0, "with --wait, give up after this long (default: wait until placed)")
	return cmd
}

// submit sends one eval, or batches of up to client.MaxBatch.
func submit(ctx context.Context, c *client.Client, pool string, reqs []api.EvalRequest) ([]api.EvalAccepted, error) {
	if len(reqs) == 1 {
		a, err := c.SubmitEval(ctx, pool, reqs[0])
		if err != nil {
			return nil, err
		}
		return []api.EvalAccepted{*a}, nil
	}
	var out []api.EvalAccepted
	for chunk := range slices.Chunk(reqs, client.MaxBatch) {
		res, err := c.SubmitEvals(ctx, pool, chunk)
		if err != nil {
			if len(out) > 0 {
				return nil, fmt.Errorf("%w (the first %d evals were submitted)", err, len(out))
			}
			return nil, err
		}
		out = append(out, res.Evals...)
	}
	return out, nil
}

func printAccepted(cmd *cobra.Command, pool string, acc []api.EvalAccepted) error {
	if global.json {
		if len(acc) == 1 {
			return printJSON(cmd.OutOrStdout(), acc[0])
		}
		return printJSON(cmd.OutOrStdout(), acc)
	}
	if len(acc) == 1 {
		return emit(cmd, nil, func(t *tw) {
			t.row("EVAL", "POOL", "POSITION", "DUPLICATE")
			t.row(acc[0].EvalId, acc[0].PoolId, acc[0].Position, acc[0].Duplicate)
		})
	}
	dups := 0
	for _, a := range acc {
		if a.Duplicate {
			dups++
		}
	}
	_, err := fmt.Fprintf(cmd.OutOrStdout(), "submitted %d evals to pool %s (%d duplicates): %s ... %s\n",
		len(acc), pool, dups, acc[0].EvalId, acc[len(acc)-1].EvalId)
	return err
}

// waitPlaced blocks until every accepted eval has left the queue and
// returns them. One eval is watched with a blocking GetEval; many with
// blocking pages of the pool's pending evals.
func waitPlaced(ctx context.Context, cmd *cobra.Command, c *client.Client, pool string, acc []api.EvalAccepted) ([]api.Eval, error) {
	// The latest write: every position is on the pool's partition.
	since, best := acc[0].Position, int64(-1)
	for _, a := range acc {
		if p, err := events.ParsePosition(a.Position); err == nil && p.Offset > best {
			since, best = a.Position, p.Offset
		}
	}
	// A reminder, unless evals are leaving the queue.
	var progress atomic.Bool
	notice := time.AfterFunc(5*time.Second, func() {
		if !progress.Load() {
			fmt.Fprintf(cmd.ErrOrStderr(), "still waiting for placement; is a worker with room running? (`line worker list %s`)\n", pool)
		}
	})
	defer notice.Stop()
	notDone := func(s api.EvalStatus) bool { return s == api.EvalStatusPending }
	if len(acc) == 1 {
		e, err := client.Block(ctx, since, 0, func(ctx context.Context, q client.Q) (*api.EvalDetail, client.Index, error) {
			return c.GetEval(ctx, pool, acc[0].EvalId, q)
		}, func(e *api.EvalDetail) bool { return !notDone(e.Status) })
		if err != nil {
			return nil, err
		}
		return []api.Eval{evalOf(e)}, nil
	}
	ours := make(map[string]bool, len(acc))
	for _, a := range acc {
		ours[a.EvalId] = true
	}
	_, err := client.Block(ctx, since, 0, func(ctx context.Context, q client.Q) (int, client.Index, error) {
		pending := 0
		var idx client.Index
		_, err := client.All(ctx, 1000, func(ctx context.Context, p client.Page) ([]api.Eval, *string, error) {
			qq := q
			if p.Cursor != "" {
				qq = client.Q{} // later pages: the same view is fine
			}
			l, i, err := c.ListEvals(ctx, pool, api.EvalStatusPending, p, qq)
			if err != nil {
				return nil, nil, err
			}
			if idx == nil {
				idx = i
			}
			for _, e := range l.Items {
				if ours[e.EvalId] {
					pending++
				}
			}
			return nil, l.NextCursor, nil
		})
		if err == nil && pending < len(ours) {
			progress.Store(true)
		}
		return pending, idx, err
	}, func(pending int) bool { return pending == 0 })
	if err != nil {
		return nil, err
	}
	all, err := client.All(ctx, 1000, func(ctx context.Context, p client.Page) ([]api.Eval, *string, error) {
		l, _, err := c.ListEvals(ctx, pool, "", p, client.Q{Index: since})
		if err != nil {
			return nil, nil, err
		}
		return l.Items, l.NextCursor, nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]api.Eval, 0, len(acc))
	for _, e := range all {
		if ours[e.EvalId] {
			out = append(out, e)
		}
	}
	return out, nil
}

func evalOf(d *api.EvalDetail) api.Eval {
	return api.Eval{PoolId: d.PoolId, EvalId: d.EvalId, DatasetId: d.DatasetId, Size: d.Size, Status: d.Status,
		Attempts: d.Attempts, NextAttempt: d.NextAttempt, AllocId: d.AllocId, SubmittedAt: d.SubmittedAt,
		QueuedAt: d.QueuedAt, EndedAt: d.EndedAt, Reason: d.Reason, Result: d.Result, Position: d.Position,
		Payload: d.Payload}
}

func printPlaced(cmd *cobra.Command, evals []api.Eval) error {
	if global.json {
		if len(evals) == 1 {
			return printJSON(cmd.OutOrStdout(), evals[0])
		}
		return printJSON(cmd.OutOrStdout(), evals)
	}
	if len(evals) == 1 {
		e := evals[0]
		return emit(cmd, nil, func(t *tw) {
			t.row("EVAL", "STATUS", "ALLOC", "ATTEMPTS", "REASON")
			t.row(e.EvalId, e.Status, e.AllocId, e.Attempts, e.Reason)
		})
	}
	by := map[api.EvalStatus]int{}
	for _, e := range evals {
		by[e.Status]++
	}
	var parts []string
	for _, s := range []api.EvalStatus{api.EvalStatusPlaced, api.EvalStatusCompleted, api.EvalStatusRejected, api.EvalStatusDeadLettered} {
		if by[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", by[s], s))
		}
	}
	_, err := fmt.Fprintf(cmd.OutOrStdout(), "%d evals left the queue: %s\n", len(evals), strings.Join(parts, ", "))
	return err
}

func newEvalShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show POOL EVAL",
		Short: "Show an eval with its current (or last) alloc",
		Args:  cobra.ExactArgs(2),
		RunE: withClient(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			e, _, err := c.GetEval(ctx, args[0], args[1], client.Q{})
			if err != nil {
				return err
			}
			return emit(cmd, e, func(t *tw) {
				t.kv("Eval", e.EvalId)
				t.kv("Pool", e.PoolId)
				t.kv("Status", e.Status)
				t.kv("Result", e.Result)
				t.kv("Size", e.Size)
				t.kv("Dataset", e.DatasetId)
				t.kv("Attempts", e.Attempts)
				t.kv("Submitted", e.SubmittedAt)
				t.kv("Queued", e.QueuedAt)
				t.kv("Ended", e.EndedAt)
				t.kv("Reason", e.Reason)
				t.kv("Position", e.Position)
				if len(e.Payload) > 0 {
					t.kv("Payload", string(e.Payload))
				}
				if e.Alloc != nil {
					allocRows(t, e.Alloc, "Alloc")
				}
			})
		}),
	}
}

func newEvalListCmd() *cobra.Command {
	var status string
	var limit int
	cmd := &cobra.Command{
		Use:   "list POOL",
		Short: "List a pool's evals (sorted by id)",
		Args:  cobra.ExactArgs(1),
		RunE: withHints(func(cmd *cobra.Command, args []string) error {
			st := api.EvalStatus(status)
			if status != "" && !st.Valid() {
				return fmt.Errorf("--status %q: want pending, placed, completed, rejected or dead_lettered", status)
			}
			c, err := apiClient()
			if err != nil {
				return err
			}
			ctx, cancel := callCtx(cmd)
			defer cancel()
			evals, err := listEvals(ctx, limit, func(ctx context.Context, p client.Page) (*api.EvalList, error) {
				l, _, err := c.ListEvals(ctx, args[0], st, p, client.Q{})
				return l, err
			})
			if err != nil {
				return err
			}
			return emitEvals(cmd, evals, false)
		}),
	}
	cmd.Flags().StringVar(&status, "status", "", "only evals in this status: pending, placed, completed, rejected, dead_lettered")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many evals (default: all)")
	return cmd
}

func newEvalDeadCmd() *cobra.Command {
	var pool string
	var limit int
	cmd := &cobra.Command{
		Use:   "dead-letters",
		Short: "List dead-lettered evals (of every pool, or of --pool)",
		Args:  cobra.NoArgs,
		RunE: withClient(func(ctx context.Context, cmd *cobra.Command, c *client.Client, _ []string) error {
			evals, err := listEvals(ctx, limit, func(ctx context.Context, p client.Page) (*api.EvalList, error) {
				l, _, err := c.ListDeadLetters(ctx, pool, p, client.Q{})
				return l, err
			})
			if err != nil {
				return err
			}
			return emitEvals(cmd, evals, true)
		}),
	}
	cmd.Flags().StringVar(&pool, "pool", "", "only this pool's dead letters")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many evals (default: all)")
	return cmd
}

// listEvals reads pages until limit evals (0: all).
func listEvals(ctx context.Context, limit int, page func(context.Context, client.Page) (*api.EvalList, error)) ([]api.Eval, error) {
	out := []api.Eval{}
	p := client.Page{Limit: 1000}
	for {
		if limit > 0 {
			p.Limit = min(1000, limit-len(out))
		}
		l, err := page(ctx, p)
		if err != nil {
			return nil, err
		}
		out = append(out, l.Items...)
		if l.NextCursor == nil || *l.NextCursor == "" || (limit > 0 && len(out) >= limit) {
			return out, nil
		}
		p.Cursor = *l.NextCursor
	}
}

func emitEvals(cmd *cobra.Command, evals []api.Eval, withPool bool) error {
	return emit(cmd, evals, func(t *tw) {
		head := []any{"EVAL", "STATUS", "RESULT", "SIZE", "DATASET", "ATTEMPTS", "ALLOC", "SUBMITTED"}
		if withPool {
			head = append([]any{"POOL"}, head...)
		}
		t.row(head...)
		for _, e := range evals {
			r := []any{e.EvalId, e.Status, e.Result, e.Size, e.DatasetId, e.Attempts, e.AllocId, e.SubmittedAt}
			if withPool {
				r = append([]any{e.PoolId}, r...)
			}
			t.row(r...)
		}
	})
}

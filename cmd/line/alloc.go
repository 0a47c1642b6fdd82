package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/line-sched/line/api"
	"github.com/line-sched/line/client"
)

func newAllocCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "alloc",
		Short: "Show and complete allocs",
	}
	cmd.AddCommand(newAllocShowCmd(), newAllocCompleteCmd())
	return cmd
}

// allocRows writes an alloc as "Key: value" rows; a prefix ("Alloc")
// goes before every key but the first, for an alloc inside another view.
func allocRows(t *tw, a *api.Alloc, prefix string) {
	k := func(s string) string {
		if prefix == "" {
			return strings.ToUpper(s[:1]) + s[1:]
		}
		return prefix + " " + s
	}
	t.kv("Alloc", a.AllocId)
	if prefix == "" {
		t.kv("Eval", a.EvalId)
		t.kv("Pool", a.PoolId)
	}
	t.kv(k("status"), a.Status)
	t.kv(k("worker"), a.WorkerId)
	t.kv(k("size"), a.Size)
	t.kv(k("attempt"), a.Attempt)
	t.kv(k("placed"), a.PlacedAt)
	t.kv(k("deadline"), a.Deadline)
	t.kv(k("ended"), a.EndedAt)
	pl := a.Placement
	t.kv(k("placement"), fmt.Sprintf("strategy=%s locality=%s candidates=%d waited=%dms basis=%d",
		pl.Strategy, pl.Locality, pl.Candidates, pl.WaitedMs, pl.Basis))
	if c := a.Completion; c != nil {
		t.kv(k("result"), c.Status)
		t.kv(k("exit code"), c.ExitCode)
		if c.Message != nil && *c.Message != "" {
			t.kv(k("output"), oneLine(*c.Message, 200))
		}
	}
	if a.ExpiryReason != nil {
		t.kv(k("expired"), a.ExpiryReason)
	}
}

// oneLine shows the last n bytes of s on one line.
func oneLine(s string, n int) string {
	out := []rune{}
	for _, r := range s {
		if r == '\n' || r == '\r' || r == '\t' {
			r = ' '
		}
		out = append(out, r)
	}
	if len(out) > n {
		out = append([]rune("..."), out[len(out)-n:]...)
	}
	return string(out)
}

func newAllocShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show POOL ALLOC",
		Short: "Show an alloc: placement, deadline, completion or expiry",
		Args:  cobra.ExactArgs(2),
		RunE: withClient(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			a, _, err := c.GetAlloc(ctx, args[0], args[1], client.Q{})
			if err != nil {
				return err
			}
			return emit(cmd, a, func(t *tw) { allocRows(t, a, "") })
		}),
	}
}

func newAllocCompleteCmd() *cobra.Command {
	var (
		status   string
		exitCode int32
		message  string
	)
	cmd := &cobra.Command{
		Use:   "complete POOL ALLOC",
		Short: "Report the end of an alloc (what the worker agent does for you)",
		Args:  cobra.ExactArgs(2),
		RunE: withHints(func(cmd *cobra.Command, args []string) error {
			st := api.AllocStatus(status)
			if !st.Valid() {
				return fmt.Errorf("--status %q: want succeeded or failed", status)
			}
			req := api.CompleteAllocRequest{Status: st}
			if cmd.Flags().Changed("exit-code") {
				req.ExitCode = &exitCode
			}
			if message != "" {
				req.Message = &message
			}
			c, err := apiClient()
			if err != nil {
				return err
			}
			ctx, cancel := callCtx(cmd)
			defer cancel()
			res, err := c.CompleteAlloc(ctx, args[0], args[1], req)
			if err != nil {
				return err
			}
			return emit(cmd, res, func(t *tw) {
				t.row("ALLOC", "POOL", "STATUS", "POSITION")
				t.row(res.AllocId, res.PoolId, res.Status, res.Position)
			})
		}),
	}
	cmd.Flags().StringVar(&status, "status", "succeeded", "succeeded or failed")
	cmd.Flags().Int32Var(&exitCode, "exit-code", 0, "the exit code of the work")
	cmd.Flags().StringVar(&message, "message", "", "a message, e.g. why it failed (at most 4096 bytes)")
	return cmd
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/line-sched/line/client"
)

func newWatchCmd() *cobra.Command {
	var (
		from  int64
		fresh bool
		count int
	)
	cmd := &cobra.Command{
		Use:   "watch POOL",
		Short: "Follow a pool's events live (its whole history first, unless --new)",
		Long: `watch streams POOL's events from the log, in order, one per line:

  POSITION  TIME  TYPE  FIELDS

from the pool's first event (or --from OFFSET of its partition, or only new
ones with --new), then live until Ctrl-C. If the server goes away, watch
reconnects and resumes after the last event it printed. --json prints one
JSON object per event: {"position": "...", "type": "...", "event": {...}}.`,
		Example: `  line watch demo
  line watch demo --new --json | jq .`,
		Args: cobra.ExactArgs(1),
		RunE: withHints(func(cmd *cobra.Command, args []string) error {
			pool := args[0]
			c, err := apiClient()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			start := client.StreamFrom{Offset: from}
			if fresh {
				cctx, cancel := callCtx(cmd)
				p, _, err := c.GetPool(cctx, pool, client.Q{})
				cancel()
				if err != nil {
					return err
				}
				start = client.StreamFrom{After: p.LastPosition}
			}
			w := cmd.OutOrStdout()
			seen := 0
			errDone := errors.New("done")
			show := func(e client.Event) error {
				if err := printEvent(w, e); err != nil {
					return err
				}
				start = client.StreamFrom{After: e.ID}
				if seen++; count > 0 && seen >= count {
					return errDone
				}
				return nil
			}
			connected := false
			backoff := 500 * time.Millisecond
			for {
				err := c.StreamEvents(ctx, pool, start, func(e client.Event) error {
					connected, backoff = true, 500*time.Millisecond
					return show(e)
				})
				switch {
				case errors.Is(err, errDone):
					return nil
				case ctx.Err() != nil:
					return nil // Ctrl-C
				case errors.Is(err, io.ErrUnexpectedEOF) || (connected && client.IsConnError(err)):
					connected = true
					fmt.Fprintf(cmd.ErrOrStderr(), "line watch: stream ended (%v); reconnecting in %s\n", err, backoff)
				default:
					return err
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 10*time.Second)
			}
		}),
	}
	cmd.Flags().Int64Var(&from, "from", 0, "offset of the pool's partition to start from (0: the pool's whole history)")
	cmd.Flags().BoolVar(&fresh, "new", false, "only events from now on")
	cmd.Flags().IntVar(&count, "count", 0, "exit after this many events (default: follow until Ctrl-C)")
	return cmd
}

// printEvent prints one event, as a line of text or (--json) of JSON.
func printEvent(w io.Writer, e client.Event) error {
	var env struct {
		Type string          `json:"type"`
		At   string          `json:"at"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(e.Data, &env); err != nil {
		return fmt.Errorf("event %s: %w", e.ID, err)
	}
	if global.json {
		b, err := json.Marshal(struct {
			Position string          `json:"position"`
			Type     string          `json:"type"`
			Event    json.RawMessage `json:"event"`
		}{e.ID, orDefault(e.Type, env.Type), e.Data})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	at := env.At
	if t, err := time.Parse(time.RFC3339Nano, env.At); err == nil {
		at = t.UTC().Format("15:04:05.000")
	}
	_, err := fmt.Fprintf(w, "%-8s %s  %-18s %s\n", e.ID, at, orDefault(e.Type, env.Type), fields(env.Data))
	return err
}

// fieldOrder puts the ids of an event's data first.
var fieldOrder = []string{"alloc_id", "eval_id", "worker_id", "dataset_id", "size", "capacity", "attempt", "status", "exit_code", "strategy", "locality"}

// fields formats an event's data as key=value pairs, ids first, "_id"
// dropped from the keys and long values shortened.
func fields(data json.RawMessage) string {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if dec.Decode(&m) != nil {
		return string(data)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	rank := func(k string) int {
		if i := slices.Index(fieldOrder, k); i >= 0 {
			return i
		}
		return len(fieldOrder)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		v := string(m[k])
		var s string
		if json.Unmarshal(m[k], &s) == nil {
			v = s
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil && (strings.Contains(k, "deadline") || strings.HasSuffix(k, "_at")) {
				v = t.UTC().Format("15:04:05.000")
			}
		}
		v = strings.TrimSpace(oneLine(v, 60))
		if strings.ContainsAny(v, " \t") {
			v = fmt.Sprintf("%q", v)
		}
		parts = append(parts, strings.TrimSuffix(k, "_id")+"="+v)
	}
	return strings.Join(parts, " ")
}

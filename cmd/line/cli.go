package main

// The client commands' shared plumbing: global flags (--addr, --json,
// --token), the API client, tables and JSON output, and errors that say
// what to do next.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/line-sched/line/client"
)

// globalFlags are the root command's persistent flags.
type globalFlags struct {
	addr  string
	token string
	json  bool
}

// global holds the values of the persistent flags of the last root built
// (newRoot); commands read them when they run.
var global globalFlags

// envOr returns the environment variable name, or def when it is unset or
// empty.
func envOr(name, def string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}

// addClientCommands adds the global flags and the client commands (pool,
// worker, eval, alloc, watch) to root.
func addClientCommands(root *cobra.Command) {
	global = globalFlags{}
	pf := root.PersistentFlags()
	pf.StringVar(&global.addr, "addr", envOr("LINE_ADDR", client.DefaultAddr), "address of the line HTTP API (LINE_ADDR)")
	pf.StringVar(&global.token, "token", os.Getenv("LINE_TOKEN"), "bearer token sent as Authorization: Bearer (LINE_TOKEN)")
	pf.BoolVar(&global.json, "json", false, "print JSON instead of tables")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%w\nrun '%s --help' for usage", err, cmd.CommandPath())
	})
	root.AddCommand(newPoolCmd(), newWorkerCmd(), newEvalCmd(), newAllocCmd(), newWatchCmd())
}

// apiClient returns a client for --addr with --token.
func apiClient() (*client.Client, error) {
	c, err := client.New(global.addr, client.WithToken(global.token), client.WithUserAgent("line-cli"))
	if err != nil {
		return nil, fmt.Errorf("%w\nset --addr (or LINE_ADDR) to the line HTTP API, e.g. http://127.0.0.1:8080", err)
	}
	return c, nil
}

// callTimeout bounds a command that does not wait on purpose.
const callTimeout = 30 * time.Second

func callCtx(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return context.WithTimeout(ctx, callTimeout)
}

// explain adds to err what to do next.
func explain(err error) error {
	if err == nil {
		return nil
	}
	var ce *client.ConnError
	if errors.As(err, &ce) {
		return fmt.Errorf("%w\nis `line dev` running? start it (`line dev` or `make run`), or set --addr (LINE_ADDR) to the server's address", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w\nthe server at %s did not answer in time; check that it is healthy (curl %s/healthz)", err, global.addr, global.addr)
	}
	e := client.AsError(err)
	if e == nil {
		return err
	}
	hint := ""
	switch {
	case e.Code == "pool_not_found":
		hint = "`line pool list` shows the pools; `line pool create NAME` creates one"
	case e.Code == "worker_not_found":
		hint = "`line worker list POOL` shows the pool's workers (an expired worker is gone; its agent registers a new one)"
	case e.Code == "eval_not_found":
		hint = "`line eval list POOL` shows the pool's evals"
	case e.Code == "alloc_not_found":
		hint = "`line eval show POOL EVAL` shows an eval's alloc; `line worker show POOL WORKER` a worker's running allocs"
	case e.Code == "no_such_route":
		hint = fmt.Sprintf("the server at %s does not serve this call; is --addr a line server of this version?", global.addr)
	case e.Code == "pool_exists":
		hint = "choose another name, or omit it for a generated one (`line pool create`)"
	case e.Code == "pool_disbanded" || e.Code == "pool_deleted":
		hint = "the pool accepts no new work; create another with `line pool create`"
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		hint = "pass a valid token with --token (or LINE_TOKEN)"
	case e.Status == http.StatusServiceUnavailable:
		hint = "the server cannot reach Kafka or is starting; retry in a moment"
	case e.Status == http.StatusGatewayTimeout:
		hint = "the server's views are behind the log; retry in a moment"
	}
	if hint == "" {
		return err
	}
	return fmt.Errorf("%w\nhint: %s", err, hint)
}

// run wraps a command's work: its error is explained.
func withHints(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error { return explain(f(cmd, args)) }
}

// withClient is withHints for a command that calls the API: it passes a
// client for --addr and a context bounded by callTimeout.
func withClient(f func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error) func(*cobra.Command, []string) error {
	return withHints(func(cmd *cobra.Command, args []string) error {
		c, err := apiClient()
		if err != nil {
			return err
		}
		ctx, cancel := callCtx(cmd)
		defer cancel()
		return f(ctx, cmd, c, args)
	})
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// output prints v as JSON with --json, and as the table that table writes
// otherwise.
func emit(cmd *cobra.Command, v any, table func(t *tw)) error {
	w := cmd.OutOrStdout()
	if global.json {
		return printJSON(w, v)
	}
	t := newTable(w)
	table(t)
	return t.flush()
}

// tw is a table: tab-separated cells, aligned on flush.
type tw struct{ w *tabwriter.Writer }

func newTable(w io.Writer) *tw { return &tw{w: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)} }

// row writes one row; nil and empty cells print as "-".
func (t *tw) row(cells ...any) {
	for i, c := range cells {
		if i > 0 {
			fmt.Fprint(t.w, "\t")
		}
		fmt.Fprint(t.w, cellText(c))
	}
	fmt.Fprint(t.w, "\n")
}

// kv writes "key:<tab>value" rows (a detail view).
func (t *tw) kv(key string, v any) { fmt.Fprintf(t.w, "%s:\t%s\n", key, cellText(v)) }

func (t *tw) flush() error { return t.w.Flush() }

func cellText(c any) string {
	switch v := c.(type) {
	case nil:
		return "-"
	case string:
		if v == "" {
			return "-"
		}
		return v
	case *string:
		if v == nil {
			return "-"
		}
		return cellText(*v)
	case time.Time:
		return fmtWhen(v)
	case *time.Time:
		if v == nil {
			return "-"
		}
		return fmtWhen(*v)
	case *int32:
		if v == nil {
			return "-"
		}
		return strconv.Itoa(int(*v))
	case []string:
		if len(v) == 0 {
			return "-"
		}
		return strings.Join(v, ",")
	default:
		if rv := reflect.ValueOf(c); rv.Kind() == reflect.Pointer {
			if rv.IsNil() {
				return "-"
			}
			return cellText(rv.Elem().Interface())
		}
		s := fmt.Sprint(v)
		if s == "" {
			return "-"
		}
		return s
	}
}

// now is the clock of relative times (tests fix it).
var cliNow = time.Now

// when formats t as a UTC time and, for readers, how far it is from now.
func fmtWhen(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := t.Sub(cliNow()).Round(time.Second)
	rel := "now"
	switch {
	case d > 0:
		rel = "in " + d.String()
	case d < 0:
		rel = (-d).String() + " ago"
	}
	return t.UTC().Format("2006-01-02T15:04:05Z") + " (" + rel + ")"
}

// derefOr returns *p, or the zero value for nil.
func derefOr[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

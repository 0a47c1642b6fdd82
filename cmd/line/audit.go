package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/line-sched/line/audit"
	"github.com/line-sched/line/broker"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/state"
)

// auditFlags are the flags of `line audit`.
type auditFlags struct {
	brokers        string
	deployment     string
	until          string
	at             string
	pool           string
	eval           string
	alloc          string
	worker         string
	progress       bool
	connectTimeout time.Duration
	whatIf         string
}

// defaultBrokers is LINE_KAFKA_BROKERS, else the address `line dev` listens
// on (LINE_DEV_KAFKA_ADDR, default 127.0.0.1:9092).
func auditDefaultBrokers() string {
	if b := broker.Brokers(os.Getenv("LINE_KAFKA_BROKERS")); len(b) > 0 {
		return strings.Join(b, ",")
	}
	if a := strings.TrimSpace(os.Getenv("LINE_DEV_KAFKA_ADDR")); a != "" {
		return a
	}
	return "127.0.0.1:9092"
}

func auditDefaultDeployment() string {
	if d := strings.TrimSpace(os.Getenv("LINE_DEPLOYMENT")); d != "" {
		return d
	}
	return events.DefaultDeployment
}

// violationsError is the error of an audit that found violations: the
// command exits non-zero.
type auditViolationsError struct{ n int64 }

func (e *auditViolationsError) Error() string {
	if e.n == 1 {
		return "audit found 1 violation"
	}
	return fmt.Sprintf("audit found %d violations", e.n)
}

func newAuditCmd() *cobra.Command {
	var f auditFlags
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Replay the events topic and verify every recorded decision",
		Long: `audit replays <deployment>.events from the start (or up to --until) into scratch
state with the shared fold and verifies the history at every event: no worker
overcommitted; each alloc.placed valid where it stands (pool, worker alive,
room, locality judged against what the deciding scheduler could see); each
completion and expiry of a live alloc; every event applied; every record
decodable; at the end every eval in exactly one status. It prints the
violations and a summary, and exits non-zero if it found any.

  line audit                                the whole history
  line audit --until 2026-11-26T19:40:00Z   up to a time (or a position p:o)
  line audit --at 3:1042 --pool p1          the pool's state at that point
  line audit --eval e-17 [--pool p1]        an eval's history (also --alloc, --worker)
  line audit --what-if strategy=binpack     the recorded run beside a re-decided one

See docs/audit.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runAudit(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.brokers, "brokers", auditDefaultBrokers(), "Kafka brokers, comma separated (LINE_KAFKA_BROKERS, else LINE_DEV_KAFKA_ADDR)")
	fl.StringVar(&f.deployment, "deployment", auditDefaultDeployment(), "deployment whose <deployment>.events to replay (LINE_DEPLOYMENT)")
	fl.StringVar(&f.until, "until", "", "stop at a time (RFC 3339) or after a position (partition:offset)")
	fl.StringVar(&f.at, "at", "", "show --pool's state at a time (RFC 3339) or after a position (partition:offset)")
	fl.StringVar(&f.pool, "pool", "", "the pool of --at, --eval, --alloc or --worker (without it they search every pool)")
	fl.StringVar(&f.eval, "eval", "", "show this eval's history")
	fl.StringVar(&f.alloc, "alloc", "", "show this alloc's history")
	fl.StringVar(&f.worker, "worker", "", "show this worker's history")
	fl.BoolVar(&f.progress, "progress", false, "show progress on stderr even when it is not a terminal")
	fl.DurationVar(&f.connectTimeout, "connect-timeout", 10*time.Second, "how long to wait for Kafka to answer")
	fl.StringVar(&f.whatIf, "what-if", "", "re-decide the recorded commands with other settings and compare, e.g. strategy=binpack\n(keys: strategy, locality_wait, max_retry, alloc_ttl, starvation_age)")
	return cmd
}

func runAudit(cmd *cobra.Command, f auditFlags) error {
	var ent *audit.Entity
	for _, e := range []audit.Entity{{Kind: audit.EntityEval, ID: f.eval}, {Kind: audit.EntityAlloc, ID: f.alloc}, {Kind: audit.EntityWorker, ID: f.worker}} {
		if e.ID == "" {
			continue
		}
		if ent != nil {
			return errors.New("give one of --eval, --alloc and --worker")
		}
		e.Pool = f.pool
		ent = &e
	}
	opts := audit.Options{Brokers: broker.Brokers(f.brokers), Deployment: f.deployment, ConnectTimeout: f.connectTimeout}
	if len(opts.Brokers) == 0 {
		return errors.New("no Kafka brokers: set --brokers (or LINE_KAFKA_BROKERS)")
	}
	if f.pool != "" {
		if err := events.ValidateID(events.PoolID, f.pool); err != nil {
			return fmt.Errorf("--pool: %w", err)
		}
		opts.Pools = []string{f.pool}
	}
	switch {
	case f.at != "" && f.until != "":
		return errors.New("--at and --until both cut the replay: give one")
	case f.at != "" && ent != nil:
		return errors.New("--at shows a pool's state; for a history up to a point use --until with --eval, --alloc or --worker")
	case f.at != "" && f.pool == "":
		return errors.New("--at needs --pool: the pool whose state to show")
	case f.whatIf != "" && (f.at != "" || ent != nil):
		return errors.New("--what-if compares whole runs: drop --at, --eval, --alloc and --worker")
	}
	var whatIf *audit.WhatIf
	var whatIfOpts audit.WhatIfOptions
	if f.whatIf != "" {
		var err error
		if whatIfOpts, err = parseAuditWhatIf(f.whatIf); err != nil {
			return err
		}
		whatIf = audit.NewWhatIf(whatIfOpts)
	}
	cutFlag, cutText := "--until", f.until
	if f.at != "" {
		cutFlag, cutText = "--at", f.at
	}
	if cutText != "" {
		cut, err := audit.ParseCut(cutText)
		if err != nil {
			return fmt.Errorf("%s: %w", cutFlag, err)
		}
		opts.Until = cut
	}
	stderr := cmd.ErrOrStderr()
	if f.progress || auditIsTerminal(stderr) {
		opts.Progress = auditProgressBar(stderr)
	}
	var hist *audit.History
	switch {
	case ent != nil:
		hist = audit.NewHistory(*ent)
		opts.Visit = hist.Visit
	case whatIf != nil:
		opts.Visit = whatIf.Visit
	}
	rep, err := audit.Replay(cmd.Context(), opts)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	switch {
	case f.at != "":
		return printAuditAt(out, stderr, f, rep)
	case ent != nil:
		return printAuditHistory(out, stderr, f, *ent, hist, rep)
	case whatIf != nil:
		return printAuditWhatIf(out, stderr, f, whatIf, rep)
	}
	if global.json {
		if rep.Violations == nil {
			rep.Violations = []audit.Violation{}
		}
		if err := auditJSON(out, rep); err != nil {
			return err
		}
	} else {
		printAuditReport(out, rep)
	}
	if n := rep.Summary.Violations; n > 0 {
		return &auditViolationsError{n: n}
	}
	return nil
}

func auditJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func auditIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressBar draws the replay's progress on one line of w.
func auditProgressBar(w io.Writer) func(audit.Progress) {
	return func(p audit.Progress) {
		const width = 30
		frac := 1.0
		if p.Total > 0 {
			frac = float64(p.Read) / float64(p.Total)
		}
		n := int(frac * width)
		eta := "?"
		if p.ETA >= 0 {
			eta = p.ETA.Round(time.Second).String()
		}
		fmt.Fprintf(w, "\raudit [%s%s] %3.0f%% %d/%d offsets, %d events, %.0f/s, ETA %s ",
			strings.Repeat("#", n), strings.Repeat(".", width-n), frac*100, p.Read, p.Total, p.Events, p.Rate, eta)
		if p.Done {
			fmt.Fprintf(w, "\raudit: read %d offsets (%d events) in %s%s\n", p.Read, p.Events,
				p.Elapsed.Round(time.Millisecond), strings.Repeat(" ", 40))
		}
	}
}

func auditTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

func auditDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func auditTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return events.FormatTime(t)
}

// counts formats "total (k1 n1, k2 n2, ...)" in the order of keys.
func auditCounts[K ~string](m map[K]int64, keys []K) string {
	var total int64
	var parts []string
	for _, k := range keys {
		total += m[k]
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}

var (
	auditPoolStatuses  = []state.PoolStatus{state.PoolActive, state.PoolDisbanded, state.PoolDeleted}
	auditAllocStatuses = []state.AllocStatus{state.AllocRunning, state.AllocCompleted, state.AllocExpired}
)

func printAuditReport(w io.Writer, rep *audit.Report) {
	s := rep.Summary
	if len(rep.Violations) > 0 {
		fmt.Fprintln(w, "VIOLATIONS")
		tw := auditTable(w)
		fmt.Fprintln(tw, "POSITION\tAT\tPOOL\tTYPE\tKIND\tMESSAGE")
		for _, v := range rep.Violations {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", v.Where(), auditTime(v.At), auditDash(v.Pool), auditDash(string(v.Type)), v.Kind, v.Message)
		}
		tw.Flush()
		if rep.Truncated {
			fmt.Fprintf(w, "... and %d more (see the summary)\n", s.Violations-int64(len(rep.Violations)))
		}
		fmt.Fprintln(w)
	}
	var parts []string
	for _, p := range rep.Partitions {
		r := fmt.Sprintf("%d:%d-%d", p.Partition, p.Start, p.End)
		if p.Cut {
			r += " (cut)"
		}
		parts = append(parts, r)
	}
	fmt.Fprintf(w, "audit of %s up to %s, partitions %s, in %s\n", rep.Topic, rep.Until, strings.Join(parts, " "),
		rep.Elapsed.Round(time.Millisecond))
	tw := auditTable(w)
	if s.First != nil {
		fmt.Fprintf(tw, "time\t%s to %s\n", auditTime(*s.First), auditTime(*s.Last))
	}
	fmt.Fprintf(tw, "events\t%d (%d poison, %d rejected)\n", s.Events, s.Poison, s.Rejected)
	fmt.Fprintf(tw, "pools\t%s\n", auditCounts(s.Pools, auditPoolStatuses))
	fmt.Fprintf(tw, "workers\t%d\n", s.Workers)
	fmt.Fprintf(tw, "evals\t%s\n", auditCounts(s.Evals, state.EvalStatuses))
	fmt.Fprintf(tw, "allocs\t%s\n", auditCounts(s.Allocs, auditAllocStatuses))
	if s.Unjudged > 0 {
		fmt.Fprintf(tw, "unjudged\t%d placements without a valid basis (locality and disband not judged)\n", s.Unjudged)
	}
	var kinds []audit.Kind
	for _, k := range audit.Kinds {
		if s.ByKind[k] > 0 {
			kinds = append(kinds, k)
		}
	}
	if s.Violations == 0 {
		fmt.Fprintf(tw, "violations\t0: the history is valid\n")
	} else {
		fmt.Fprintf(tw, "violations\t%s\n", auditCounts(s.ByKind, kinds))
	}
	tw.Flush()
}

// noteViolations tells, on stderr, that the replay behind a query found
// violations.
func auditNote(w io.Writer, rep *audit.Report) {
	if n := rep.Summary.Violations; n > 0 {
		fmt.Fprintf(w, "note: the replay found %d violations; run `line audit` for the list\n", n)
	}
}

func printAuditAt(w, stderr io.Writer, f auditFlags, rep *audit.Report) error {
	p := rep.State.Pool(f.pool)
	if p == nil {
		return fmt.Errorf("pool %s does not exist at %s (the replay read %d events of its partition): check --pool and --at",
			f.pool, rep.Until, rep.Summary.Events)
	}
	v := audit.ViewPool(p, rep.CutTime)
	auditNote(stderr, rep)
	if global.json {
		return auditJSON(w, struct {
			Until string         `json:"until"`
			View  audit.PoolView `json:"state"`
		}{rep.Until, v})
	}
	fmt.Fprintf(w, "pool %s at %s (cut %s): %s, %s, locality wait %s\n", v.Pool, auditTime(v.At), rep.Until, v.Status,
		v.Strategy, time.Duration(v.LocalityWaitMs)*time.Millisecond)
	if v.DeleteAt != nil {
		fmt.Fprintf(w, "disbanded at %s, to be deleted at %s\n", auditTime(*v.DisbandedAt), auditTime(*v.DeleteAt))
	}
	fmt.Fprintf(w, "evals %s\n", auditCounts(v.Evals, auditKeys(state.EvalStatuses)))
	fmt.Fprintf(w, "allocs %s\n", auditCounts(v.Allocs, auditKeys(auditAllocStatuses)))
	fmt.Fprintf(w, "\nWORKERS (%d)\n", len(v.Workers))
	tw := auditTable(w)
	fmt.Fprintln(tw, "WORKER\tCAPACITY\tUSED\tFREE\tDEADLINE\tLIVE\tDATASETS\tRUNNING")
	for _, wv := range v.Workers {
		var ds []string
		for _, r := range wv.Datasets {
			if r.Live {
				ds = append(ds, r.Dataset)
			} else {
				ds = append(ds, r.Dataset+"(expired)")
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", wv.ID, wv.Capacity, wv.Used, wv.Free, auditTime(wv.Deadline),
			auditYesNo(wv.Live), auditDash(strings.Join(ds, ",")), auditDash(strings.Join(wv.Running, ",")))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nQUEUE (%d)\n", len(v.Queue))
	if len(v.Queue) > 0 {
		tw = auditTable(w)
		fmt.Fprintln(tw, "#\tEVAL\tSIZE\tDATASET\tATTEMPT\tQUEUED AT\tWAITING")
		for i, q := range v.Queue {
			fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%d\t%s\t%s\n", i+1, q.ID, q.Size, auditDash(q.Dataset), q.Attempt, auditTime(q.QueuedAt),
				time.Duration(q.WaitingMs)*time.Millisecond)
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "\nRUNNING ALLOCS (%d)\n", len(v.Running))
	if len(v.Running) > 0 {
		tw = auditTable(w)
		fmt.Fprintln(tw, "ALLOC\tEVAL\tWORKER\tSIZE\tATTEMPT\tLOCALITY\tPLACED AT\tDEADLINE")
		for _, a := range v.Running {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", a.ID, a.Eval, a.Worker, a.Size, a.Attempt, a.Locality,
				auditTime(a.PlacedAt), auditTime(a.Deadline))
		}
		tw.Flush()
	}
	if len(v.AwaitingRetry) > 0 {
		fmt.Fprintf(w, "\nAWAITING A RETRY DECISION: %s\n", strings.Join(v.AwaitingRetry, " "))
	}
	return nil
}

func auditKeys[K ~string](ks []K) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = string(k)
	}
	return out
}

func auditYesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func printAuditHistory(w, stderr io.Writer, f auditFlags, ent audit.Entity, h *audit.History, rep *audit.Report) error {
	entries := h.Entries()
	if len(entries) == 0 {
		where := "in any pool"
		if ent.Pool != "" {
			where = "in pool " + ent.Pool
		}
		return fmt.Errorf("no %s %s %s up to %s (%d events read): check the id, --pool and --deployment",
			ent.Kind, ent.ID, where, rep.Until, rep.Summary.Events)
	}
	auditNote(stderr, rep)
	if global.json {
		if entries == nil {
			entries = []audit.Entry{}
		}
		return auditJSON(w, struct {
			Entity  audit.Entity  `json:"entity"`
			Until   string        `json:"until"`
			Pools   []string      `json:"pools"`
			History []audit.Entry `json:"history"`
		}{ent, rep.Until, h.Pools(), entries})
	}
	for i, pool := range h.Pools() {
		if i > 0 {
			fmt.Fprintln(w)
		}
		n := 0
		for _, e := range entries {
			if e.Pool == pool {
				n++
			}
		}
		fmt.Fprintf(w, "%s %s in pool %s: %d events\n", ent.Kind, ent.ID, pool, n)
		tw := auditTable(w)
		fmt.Fprintln(tw, "POSITION\tAT\tTYPE\tWHAT")
		for _, e := range entries {
			if e.Pool != pool {
				continue
			}
			what := e.Description
			if e.Rejected != "" && len(e.Violations) == 0 {
				what += " [did not apply: " + e.Rejected + "]"
			}
			for _, v := range e.Violations {
				what += " [violation " + string(v.Kind) + ": " + v.Message + "]"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Pos, auditTime(e.At), e.Type, what)
		}
		tw.Flush()
	}
	return nil
}

// parseWhatIf parses "key=value,..." into what-if options.
func parseAuditWhatIf(s string) (audit.WhatIfOptions, error) {
	var o audit.WhatIfOptions
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return o, fmt.Errorf("--what-if %q: want key=value pairs, e.g. strategy=binpack", s)
		}
		bad := func(want string) error { return fmt.Errorf("--what-if %s=%q: want %s", k, v, want) }
		dur := func() (time.Duration, error) {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return 0, bad("a duration such as 2s")
			}
			return d, nil
		}
		switch k {
		case "strategy":
			if !events.Strategy(v).Valid() {
				return o, bad("spread or binpack")
			}
			o.Strategy = events.Strategy(v)
		case "locality_wait":
			d, err := dur()
			if err != nil {
				return o, err
			}
			o.LocalityWait = &d
		case "alloc_ttl":
			d, err := dur()
			if err != nil || d == 0 {
				return o, bad("a positive duration such as 60s")
			}
			o.Config.AllocTTL = d
		case "starvation_age":
			d, err := dur()
			if err != nil {
				return o, err
			}
			o.Config.StarvationAge = d
		case "max_retry":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return o, bad("an integer >= 1")
			}
			o.Config.MaxRetry = n
		default:
			return o, fmt.Errorf("--what-if: unknown key %q (strategy, locality_wait, max_retry, alloc_ttl, starvation_age)", k)
		}
	}
	return o, nil
}

func printAuditWhatIf(w, stderr io.Writer, f auditFlags, wi *audit.WhatIf, rep *audit.Report) error {
	auditNote(stderr, rep)
	rec, alt := wi.Run()
	if global.json {
		return auditJSON(w, struct {
			WhatIf   string        `json:"what_if"`
			Until    string        `json:"until"`
			Recorded audit.Metrics `json:"recorded"`
			Rerun    audit.Metrics `json:"what_if_run"`
		}{f.whatIf, rep.Until, rec, alt})
	}
	fmt.Fprintf(w, "what-if %s over %d events up to %s\n", f.whatIf, rep.Summary.Events, rep.Until)
	fmt.Fprintln(w, "(the recorded commands at their log times; each attempt ends as the recorded one did)")
	tw := auditTable(w)
	fmt.Fprintln(tw, "\tRECORDED\tWHAT-IF")
	pct := func(x float64) string { return fmt.Sprintf("%.1f%%", 100*x) }
	ms := func(x int64) string { return (time.Duration(x) * time.Millisecond).String() }
	row := func(name, a, b string) { fmt.Fprintf(tw, "%s\t%s\t%s\n", name, a, b) }
	row("placements", fmt.Sprint(rec.Placements), fmt.Sprint(alt.Placements))
	row("utilization", pct(rec.Utilization), pct(alt.Utilization))
	row("locality hit rate", fmt.Sprintf("%s (%d/%d)", pct(rec.LocalityHitRate), rec.LocalityHits, rec.LocalityHits+rec.LocalityMisses),
		fmt.Sprintf("%s (%d/%d)", pct(alt.LocalityHitRate), alt.LocalityHits, alt.LocalityHits+alt.LocalityMisses))
	row("mean wait", ms(rec.MeanWaitMs), ms(alt.MeanWaitMs))
	row("p50 wait", ms(rec.P50WaitMs), ms(alt.P50WaitMs))
	row("p95 wait", ms(rec.P95WaitMs), ms(alt.P95WaitMs))
	row("max wait", ms(rec.MaxWaitMs), ms(alt.MaxWaitMs))
	row("completed", fmt.Sprint(rec.Completed), fmt.Sprint(alt.Completed))
	row("expired", fmt.Sprint(rec.Expired), fmt.Sprint(alt.Expired))
	row("dead-lettered", fmt.Sprint(rec.DeadLettered), fmt.Sprint(alt.DeadLettered))
	row("pending at end", fmt.Sprint(rec.Pending), fmt.Sprint(alt.Pending))
	return tw.Flush()
}

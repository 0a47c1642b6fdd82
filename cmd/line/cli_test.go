package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/line-sched/line/api"
	"github.com/line-sched/line/app"
	"github.com/line-sched/line/client"
	"github.com/line-sched/line/config"
	"github.com/line-sched/line/testkit"
)

// lineServer is a whole line (ingest, scheduler, projector) running in
// this process on an embedded broker, as `line dev` runs it.
type lineServer struct {
	cfg     config.Config
	brokers []string
	addr    string
	c       *client.Client
}

func startLineServer(t *testing.T, tweak func(*config.Config)) *lineServer {
	t.Helper()
	emb := testkit.StartBroker(t)
	cfg := testkit.Config(t)
	cfg.Brokers = emb.Addrs()
	if tweak != nil {
		tweak(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan app.DevAddrs, 1)
	done := make(chan error, 1)
	go func() { done <- app.Dev(ctx, cfg, testkit.Logger(t), func(a app.DevAddrs) { ready <- a }) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	var a app.DevAddrs
	select {
	case a = <-ready:
	case err := <-done:
		t.Fatalf("line did not start: %v", err)
	}
	c, err := client.New("http://" + a.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, testkit.Timeout, "healthy", func() bool { _, err := c.Health(context.Background()); return err == nil })
	return &lineServer{cfg: cfg, brokers: emb.Addrs(), addr: "http://" + a.HTTP, c: c}
}

// cli runs the line command in this process with args (--addr first) and
// returns what it printed; a failure is printed as main prints it.
func (s *lineServer) cli(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	addr := "http://127.0.0.1:1"
	if s != nil {
		addr = s.addr
	}
	root := newRoot()
	root.SetArgs(append([]string{"--addr", addr}, args...))
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintln(&errb, "line:", err)
	}
	return out.String(), errb.String(), err
}

// ok runs the CLI and fails the test if the command fails.
func (s *lineServer) ok(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := s.cli(t, args...)
	if err != nil {
		t.Fatalf("line %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// lines splits a table into rows of cells.
func rows(out string) [][]string {
	var rs [][]string
	for l := range strings.SplitSeq(strings.TrimRight(out, "\n"), "\n") {
		rs = append(rs, regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(l), -1))
	}
	return rs
}

func wantRow(t *testing.T, out string, i int, cells ...string) {
	t.Helper()
	rs := rows(out)
	if i >= len(rs) {
		t.Errorf("no row %d in:\n%s", i, out)
		return
	}
	for j, c := range cells {
		if c == "*" {
			continue
		}
		if j >= len(rs[i]) || rs[i][j] != c {
			t.Errorf("row %d = %q, want %q in:\n%s", i, rs[i], cells, out)
			return
		}
	}
}

func decodeJSON[T any](t *testing.T, out string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("not JSON of %T: %v\n%s", v, err, out)
	}
	return v
}

func TestCLITablesAndJSON(t *testing.T) {
	s := startLineServer(t, func(c *config.Config) { c.WorkerTTL = 10 * time.Second })

	out := s.ok(t, "pool", "create", "demo", "--strategy", "binpack", "--locality-wait", "2s")
	wantRow(t, out, 0, "POOL", "STRATEGY", "LOCALITY WAIT", "DELIVERY", "POSITION")
	wantRow(t, out, 1, "demo", "binpack", "2s", "per-worker", "*")
	pc := decodeJSON[api.PoolCreated](t, s.ok(t, "--json", "pool", "create", "other", "--delivery", "shared"))
	if pc.PoolId != "other" || pc.Strategy != api.StrategySpread || pc.Delivery != api.DeliveryShared || pc.Position == "" {
		t.Errorf("pool create --json: %+v", pc)
	}
	testkit.WaitFor(t, 10*time.Second, "two pools listed", func() bool { return len(rows(s.ok(t, "pool", "list"))) == 3 })
	out = s.ok(t, "pool", "list")
	wantRow(t, out, 0, "POOL", "STATUS", "STRATEGY", "WORKERS", "EVALS", "PENDING", "MAX FREE", "CREATED")
	wantRow(t, out, 1, "demo", "active", "binpack", "0", "0", "0", "0")
	if pools := decodeJSON[[]api.Pool](t, s.ok(t, "--json", "pool", "list")); len(pools) != 2 || pools[1].PoolId != "other" {
		t.Errorf("pool list --json: %+v", pools)
	}
	out = s.ok(t, "pool", "show", "demo")
	wantRow(t, out, 0, "Pool:", "demo")
	wantRow(t, out, 1, "Status:", "active")
	wantRow(t, out, 3, "Locality wait:", "2s")

	out = s.ok(t, "eval", "submit", "demo", "--eval-id", "e1", "--size", "2", "--payload", `{"a":1}`)
	wantRow(t, out, 0, "EVAL", "POOL", "POSITION", "DUPLICATE")
	wantRow(t, out, 1, "e1", "demo", "*", "false")
	if ea := decodeJSON[api.EvalAccepted](t, s.ok(t, "--json", "eval", "submit", "demo", "--eval-id", "e1")); !ea.Duplicate {
		t.Errorf("resubmit --json: %+v", ea)
	}
	out = s.ok(t, "eval", "submit", "demo", "--count", "5", "--eval-id", "b")
	if !strings.HasPrefix(out, "submitted 5 evals to pool demo (0 duplicates): b-1 ... b-5") {
		t.Errorf("eval submit --count: %q", out)
	}
	testkit.WaitFor(t, 10*time.Second, "6 evals listed", func() bool { return len(rows(s.ok(t, "eval", "list", "demo"))) == 7 })
	out = s.ok(t, "eval", "list", "demo", "--status", "pending")
	wantRow(t, out, 0, "EVAL", "STATUS", "RESULT", "SIZE", "DATASET", "ATTEMPTS", "ALLOC", "SUBMITTED")
	wantRow(t, out, 1, "b-1", "pending", "-", "1", "-", "0", "-")
	wantRow(t, out, 6, "e1", "pending", "-", "2", "-", "0", "-")
	if evs := decodeJSON[[]api.Eval](t, s.ok(t, "--json", "eval", "list", "demo", "--limit", "2")); len(evs) != 2 {
		t.Errorf("eval list --limit 2 --json: %d", len(evs))
	}

	// A worker (heartbeated here) takes the evals; --wait returns once
	// the eval is placed.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := s.c.RegisterWorker(ctx, "demo", api.RegisterWorkerRequest{WorkerId: ptr("w1"), Capacity: 100, Datasets: &[]string{"d1"}})
	if err != nil {
		t.Fatal(err)
	}
	go (&client.Heartbeater{Client: s.c, Pool: "demo", Worker: "w1", Interval: time.Second}).Run(ctx)
	out = s.ok(t, "eval", "submit", "demo", "--eval-id", "waited", "--dataset", "d1", "--wait")
	wantRow(t, out, 0, "EVAL", "STATUS", "ALLOC", "ATTEMPTS", "REASON")
	wantRow(t, out, 1, "waited", "placed", "*", "1", "-")
	alloc := rows(out)[1][2]
	out = s.ok(t, "eval", "submit", "demo", "--count", "3", "--wait")
	if out != "3 evals left the queue: 3 placed\n" {
		t.Errorf("eval submit --count 3 --wait: %q", out)
	}
	out = s.ok(t, "eval", "show", "demo", "waited")
	for _, want := range []string{"Status:", "placed", "Alloc status:", "running", "Alloc worker:", "w1", "locality=hit"} {
		if !strings.Contains(out, want) {
			t.Errorf("eval show: no %q in:\n%s", want, out)
		}
	}
	out = s.ok(t, "worker", "list", "demo")
	wantRow(t, out, 0, "WORKER", "CAPACITY", "USED", "FREE", "RUNNING", "DATASETS", "DEADLINE")
	wantRow(t, out, 1, "w1", "100", "*", "*", "*", "d1")
	out = s.ok(t, "worker", "show", "demo", "w1")
	if !strings.Contains(out, "Topic:") || !strings.Contains(out, w.Topic) || !strings.Contains(out, alloc) {
		t.Errorf("worker show:\n%s", out)
	}
	out = s.ok(t, "alloc", "show", "demo", alloc)
	wantRow(t, out, 0, "Alloc:", alloc)
	wantRow(t, out, 1, "Eval:", "waited")
	wantRow(t, out, 3, "Status:", "running")
	out = s.ok(t, "alloc", "complete", "demo", alloc, "--status", "failed", "--exit-code", "2", "--message", "oops")
	wantRow(t, out, 0, "ALLOC", "POOL", "STATUS", "POSITION")
	wantRow(t, out, 1, alloc, "demo", "failed")
	testkit.WaitFor(t, 10*time.Second, "the completion in the view", func() bool {
		a := decodeJSON[api.Alloc](t, s.ok(t, "--json", "alloc", "show", "demo", alloc))
		return a.Status == api.AllocStateCompleted && *a.Completion.ExitCode == 2 && *a.Completion.Message == "oops"
	})

	out = s.ok(t, "watch", "demo", "--count", "3")
	if r := rows(out); len(r) != 3 || !strings.HasSuffix(r[0][0], ":0") || r[0][2] != "pool.created" ||
		!strings.Contains(out, "strategy=binpack") || !strings.Contains(out, "eval=e1") {
		t.Errorf("watch:\n%s", out)
	}
	out = s.ok(t, "--json", "watch", "demo", "--count", "1", "--from", "1")
	ev := decodeJSON[struct {
		Position string          `json:"position"`
		Type     string          `json:"type"`
		Event    json.RawMessage `json:"event"`
	}](t, out)
	// Offset 1 of the partition may hold another pool's event: the
	// first of demo's from there is e1's submission.
	if ev.Type != "eval.submitted" || ev.Position == "" || !strings.Contains(string(ev.Event), `"eval_id":"e1"`) {
		t.Errorf("watch --json: %+v", ev)
	}

	out = s.ok(t, "pool", "disband", "other")
	wantRow(t, out, 0, "POOL", "STATUS", "DELETE AT", "POSITION")
	wantRow(t, out, 1, "other", "disbanded")
}

func TestCLIErrorsSayWhatToDo(t *testing.T) {
	// A wrong address.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	s0 := &lineServer{addr: dead}
	_, errOut, err := s0.cli(t, "pool", "list")
	if err == nil || !strings.Contains(errOut, "line: cannot reach line at "+dead) ||
		!strings.Contains(errOut, "is `line dev` running?") || !strings.Contains(errOut, "--addr") {
		t.Errorf("wrong address: %v\n%s", err, errOut)
	}

	s := startLineServer(t, nil)
	_, errOut, err = s.cli(t, "eval", "submit", "nope")
	if err == nil || !strings.Contains(errOut, "line: pool nope does not exist") || !strings.Contains(errOut, "404 pool_not_found") ||
		!strings.Contains(errOut, "hint: `line pool list` shows the pools") {
		t.Errorf("unknown pool: %v\n%s", err, errOut)
	}
	_, errOut, _ = s.cli(t, "pool", "show", "nope")
	if !strings.Contains(errOut, "pool nope does not exist") || !strings.Contains(errOut, "`line pool create NAME`") {
		t.Errorf("show unknown pool:\n%s", errOut)
	}
	_, errOut, err = s.cli(t, "eval", "submit", "demo", "--bogus")
	if err == nil || errOut != "line: unknown flag: --bogus\nrun 'line eval submit --help' for usage\n" {
		t.Errorf("bad flag: %q", errOut)
	}
	_, errOut, err = s.cli(t, "eval", "submit", "demo", "--payload", "{nope")
	if err == nil || !strings.Contains(errOut, "--payload is not valid JSON") {
		t.Errorf("bad payload: %q", errOut)
	}
	_, errOut, err = s.cli(t, "worker", "run", "--pool", "demo", "--capacity", "2", "sh")
	if err == nil || !strings.Contains(errOut, "give the command to run after --") {
		t.Errorf("worker run without --: %q", errOut)
	}
	_, errOut, err = s.cli(t, "pool", "show")
	if err == nil || !strings.Contains(errOut, "accepts 1 arg(s), received 0") {
		t.Errorf("missing argument: %q", errOut)
	}

	// The binary exits 1 with the message on stderr.
	cmd := exec.Command(lineBin, "--addr", dead, "pool", "list")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.HasPrefix(stderr.String(), "line: cannot reach line at") {
		t.Errorf("binary: %v\n%s", err, stderr.String())
	}
}

func ptr[T any](v T) *T { return &v }

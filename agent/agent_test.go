//go:build unix

package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/line-sched/line/api"
	"github.com/line-sched/line/app"
	"github.com/line-sched/line/client"
	"github.com/line-sched/line/config"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/testkit"
)

func TestMessageIsTheTailOfTheOutput(t *testing.T) {
	out := strings.Repeat("é", 3000) + "last line\n" // 6010 bytes
	m := message("", []byte(out), nil)
	if len(m) > MaxMessage || !utf8.ValidString(m) || !strings.HasSuffix(m, "last line\n") {
		t.Fatalf("message: %d bytes, valid %v, ends %q", len(m), utf8.ValidString(m), m[len(m)-12:])
	}
	m = message("signal: killed", []byte("\xff\xfeoops"), nil)
	if m != "signal: killed\n?oops" {
		t.Errorf("with head and invalid UTF-8: %q", m)
	}
	tb := &tailBuffer{max: 8}
	tb.Write([]byte("0123"))
	tb.Write([]byte("456789"))
	tb.Write([]byte("ab"))
	if string(tb.Bytes()) != "456789ab" {
		t.Errorf("tail buffer: %q", tb.Bytes())
	}
	tb.Write([]byte("0123456789xyz"))
	if string(tb.Bytes()) != "56789xyz" {
		t.Errorf("tail buffer after a long write: %q", tb.Bytes())
	}
}

func TestGateNeverExceedsCapacity(t *testing.T) {
	g := newGate(5)
	var used, peak atomic.Int64
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &run{rec: events.AllocRecord{AllocID: strconv.Itoa(i), Size: int64(1 + i%5), WorkerID: "w"}}
			if err := g.acquire(context.Background(), r); err != nil {
				t.Error(err)
				return
			}
			n := used.Add(r.rec.Size)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(time.Millisecond)
			used.Add(-r.rec.Size)
			g.release(r)
		}()
	}
	wg.Wait()
	if peak.Load() > 5 || peak.Load() < 2 {
		t.Fatalf("peak %d for capacity 5", peak.Load())
	}
	select {
	case <-g.idle():
	case <-time.After(time.Second):
		t.Fatal("gate not idle")
	}
	ctx, cancel := context.WithCancel(context.Background())
	big := &run{rec: events.AllocRecord{AllocID: "x", Size: 5}}
	_ = g.acquire(ctx, big)
	cancel()
	if err := g.acquire(ctx, &run{rec: events.AllocRecord{AllocID: "y", Size: 1}}); !errors.Is(err, context.Canceled) {
		t.Errorf("acquire on a full gate with a cancelled context: %v", err)
	}
}

// line is a whole line (ingest, scheduler, projector) running in-process.
type line struct {
	cfg     config.Config
	brokers []string
	c       *client.Client
}

func startLine(t *testing.T, tweak func(*config.Config)) *line {
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
	created, err := c.CreatePool(context.Background(), api.CreatePoolRequest{PoolId: ptr("p")})
	if err != nil {
		t.Fatal(err)
	}
	// Queries read views that follow the log: the tests' queries (which
	// pass no index) find the pool once the views applied its creation.
	if _, _, err := c.GetPool(context.Background(), "p", client.Q{Index: created.Position, Wait: 30 * time.Second}); err != nil {
		t.Fatalf("the views do not show pool p: %v", err)
	}
	return &line{cfg: cfg, brokers: emb.Addrs(), c: c}
}

func ptr[T any](v T) *T { return &v }

// agentRun is an agent running in a goroutine.
type agentRun struct {
	cancel  context.CancelFunc
	done    chan error
	started chan events.AllocRecord
}

func (l *line) startAgent(t *testing.T, cfg Config) *agentRun {
	t.Helper()
	cfg.Client, cfg.Brokers, cfg.Pool = l.c, l.brokers, "p"
	if cfg.Logger == nil {
		cfg.Logger = testkit.Logger(t)
	}
	r := &agentRun{done: make(chan error, 1), started: make(chan events.AllocRecord, 1000)}
	cfg.OnStarted = func(rec events.AllocRecord) { r.started <- rec }
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Error("agent did not stop")
		}
	})
	return r
}

// stop cancels the agent and returns Run's error.
func (r *agentRun) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not stop")
		return nil
	}
}

func (l *line) submit(t *testing.T, evals ...api.EvalRequest) {
	t.Helper()
	if _, err := l.c.SubmitEvals(context.Background(), "p", evals); err != nil {
		t.Fatal(err)
	}
}

// evals returns the pool's evals by id.
func (l *line) evals(t *testing.T) map[string]api.Eval {
	t.Helper()
	el, _, err := l.c.ListEvals(context.Background(), "p", "", client.Page{Limit: 1000}, client.Q{})
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]api.Eval)
	for _, e := range el.Items {
		out[e.EvalId] = e
	}
	return out
}

func (l *line) waitCompleted(t *testing.T, n int) map[string]api.Eval {
	t.Helper()
	var evs map[string]api.Eval
	testkit.WaitFor(t, 60*time.Second, fmt.Sprintf("%d completed evals", n), func() bool {
		evs = l.evals(t)
		done := 0
		for _, e := range evs {
			if e.Status == api.EvalStatusCompleted {
				done++
			}
		}
		return done >= n
	})
	return evs
}

func (l *line) alloc(t *testing.T, id string) *api.Alloc {
	t.Helper()
	a, _, err := l.c.GetAlloc(context.Background(), "p", id, client.Q{})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// script runs sh -c with the agent's environment; each alloc leaves
// $DIR/<alloc>.env (its LINE_* variables); the running ones are counted in
// $DIR/running to check the capacity.
func script(dir, body string) []string {
	return []string{"sh", "-c", `set -e
d=` + dir + `
env | grep '^LINE_' | sort > "$d/$LINE_ALLOC_ID.env"
mkdir "$d/running/$LINE_ALLOC_ID-$LINE_SIZE"
used=0; for r in "$d"/running/*; do used=$((used + ${r##*-})); done
echo "$used" >> "$d/used.$LINE_ALLOC_ID"
` + body + `
rmdir "$d/running/$LINE_ALLOC_ID-$LINE_SIZE"
`}
}

func TestAgentRunsAllocsWithinCapacity(t *testing.T) {
	l := startLine(t, nil)
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "running"), 0o755)
	cmd := script(dir, `
if [ "$LINE_EVAL_ID" = fails ]; then
  i=0; while [ $i -lt 300 ]; do echo "noise line $i of a long output"; i=$((i+1)); done
  rmdir "$d/running/$LINE_ALLOC_ID-$LINE_SIZE"; echo "the end" >&2; exit 3
fi
sleep 0.1; echo "ran $LINE_EVAL_ID"`)
	var out strings.Builder
	var outMu sync.Mutex
	a := l.startAgent(t, Config{Capacity: 3, Command: cmd, StateDir: t.TempDir(), Datasets: []string{"d1"},
		Output: writerFunc(func(p []byte) (int, error) { outMu.Lock(); defer outMu.Unlock(); return out.Write(p) })})
	var reqs []api.EvalRequest
	for i := range 12 {
		reqs = append(reqs, api.EvalRequest{EvalId: ptr(fmt.Sprintf("e%02d", i)), Size: ptr(int64(1 + i%3))})
	}
	reqs = append(reqs,
		api.EvalRequest{EvalId: ptr("payload"), DatasetId: ptr("d1"), Payload: []byte(`{"cmd":["a b","c"]}`)},
		api.EvalRequest{EvalId: ptr("fails")})
	l.submit(t, reqs...)
	evs := l.waitCompleted(t, len(reqs))

	for id, e := range evs {
		al := l.alloc(t, *e.AllocId)
		c := al.Completion
		if id == "fails" {
			if *e.Result != api.AllocStatusFailed || *c.ExitCode != 3 || len(*c.Message) > MaxMessage ||
				!strings.HasSuffix(*c.Message, "the end\n") || !strings.Contains(*c.Message, "noise line 299") || strings.Contains(*c.Message, "noise line 0 ") {
				t.Errorf("failing alloc: %+v %v %d bytes %q", e.Result, *c.ExitCode, len(*c.Message), *c.Message)
			}
			continue
		}
		if *e.Result != api.AllocStatusSucceeded || *c.ExitCode != 0 || *c.Message != "ran "+id+"\n" {
			t.Errorf("alloc of %s: %+v %+v", id, e.Result, c)
		}
	}
	env, err := os.ReadFile(filepath.Join(dir, *evs["payload"].AllocId+".env"))
	want := fmt.Sprintf("LINE_ALLOC_ID=%s\nLINE_ATTEMPT=1\nLINE_DATASET=d1\nLINE_EVAL_ID=payload\nLINE_PAYLOAD={\"cmd\":[\"a b\",\"c\"]}\nLINE_POOL_ID=p\nLINE_SIZE=1\nLINE_WORKER_ID=",
		*evs["payload"].AllocId)
	if err != nil || !strings.HasPrefix(string(env), want) {
		t.Errorf("environment:\n%s\nwant prefix:\n%s", env, want)
	}
	// The capacity: what ran at once never exceeded 3.
	files, _ := filepath.Glob(filepath.Join(dir, "used.*"))
	if len(files) != len(reqs) {
		t.Errorf("%d runs, want %d", len(files), len(reqs))
	}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if n, _ := strconv.Atoi(strings.TrimSpace(string(b))); n > 3 || n < 1 {
			t.Errorf("%s: %d size units ran at once", filepath.Base(f), n)
		}
	}
	outMu.Lock()
	if !strings.Contains(out.String(), "] ran e00\n") {
		t.Errorf("output not forwarded with the alloc prefix:\n%.300s", out.String())
	}
	outMu.Unlock()
	if err := a.stop(t); err != nil {
		t.Errorf("stop: %v", err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func readIdentity(t *testing.T, stateDir string) Identity {
	t.Helper()
	b, err := os.ReadFile(StatePath(stateDir, "p", ""))
	if err != nil {
		t.Fatal(err)
	}
	var id Identity
	if err := json.Unmarshal(b, &id); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestRestartReattaches: an agent restarted while its worker lives takes
// the same identity, starts no alloc twice, and runs the allocs that were
// placed on the worker while it was down.
func TestRestartReattaches(t *testing.T) {
	l := startLine(t, func(c *config.Config) { c.WorkerTTL = 8 * time.Second })
	dir, state := t.TempDir(), t.TempDir()
	os.Mkdir(filepath.Join(dir, "running"), 0o755)
	cmd := script(dir, `echo "$LINE_ALLOC_ID" >> "$d/runs"`)
	cfg := Config{Capacity: 2, Command: cmd, StateDir: state}

	a := l.startAgent(t, cfg)
	l.submit(t, api.EvalRequest{EvalId: ptr("a1")}, api.EvalRequest{EvalId: ptr("a2")}, api.EvalRequest{EvalId: ptr("a3")})
	l.waitCompleted(t, 3)
	if err := a.stop(t); err != nil {
		t.Fatal(err)
	}
	first := readIdentity(t, state)

	// Placed while the agent is down: they wait on the worker's topic.
	l.submit(t, api.EvalRequest{EvalId: ptr("b1")}, api.EvalRequest{EvalId: ptr("b2")})
	testkit.WaitFor(t, 20*time.Second, "b1, b2 placed", func() bool {
		evs := l.evals(t)
		return evs["b1"].Status == api.EvalStatusPlaced && evs["b2"].Status == api.EvalStatusPlaced
	})

	b := l.startAgent(t, cfg)
	l.waitCompleted(t, 5)
	if err := b.stop(t); err != nil {
		t.Fatal(err)
	}
	second := readIdentity(t, state)
	// Offsets count transaction markers too: they only grow.
	if second.Worker != first.Worker || first.Offset < 3 || second.Offset < first.Offset+2 {
		t.Errorf("identity before %+v, after %+v: want the same worker, further on", first, second)
	}
	runs, _ := os.ReadFile(filepath.Join(dir, "runs"))
	ids := strings.Fields(string(runs))
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Errorf("alloc %s ran twice", id)
		}
		seen[id] = true
	}
	if len(ids) != 5 {
		t.Errorf("%d runs, want 5: %v", len(ids), ids)
	}
	for _, e := range l.evals(t) {
		if e.Attempts != 1 {
			t.Errorf("eval %s: %d attempts", e.EvalId, e.Attempts)
		}
	}
}

// TestLostWorkerRegistersAgain: heartbeats slower than the worker TTL let
// the worker expire; the agent registers a new one and works on.
func TestLostWorkerRegistersAgain(t *testing.T) {
	l := startLine(t, nil) // worker TTL 2s
	state := t.TempDir()
	a := l.startAgent(t, Config{Capacity: 1, Command: []string{"true"}, StateDir: state, Heartbeat: 3 * time.Second})
	testkit.WaitFor(t, 10*time.Second, "a registration", func() bool {
		_, err := os.Stat(StatePath(state, "p", ""))
		return err == nil
	})
	first := readIdentity(t, state)
	testkit.WaitFor(t, 20*time.Second, "a new worker", func() bool { return readIdentity(t, state).Worker != first.Worker })
	if err := a.stop(t); err != nil {
		t.Errorf("stop: %v", err)
	}
}

// TestDrainTimeoutKills: allocs still running at the end of the drain are
// killed and left uncompleted (they expire and are retried).
func TestDrainTimeoutKills(t *testing.T) {
	l := startLine(t, nil)
	dir := t.TempDir()
	cmd := []string{"sh", "-c", `echo $$ > "` + dir + `/pid"; exec sleep 30`}
	a := l.startAgent(t, Config{Capacity: 1, Command: cmd, StateDir: t.TempDir(), DrainTimeout: 300 * time.Millisecond})
	l.submit(t, api.EvalRequest{EvalId: ptr("long")})
	var rec events.AllocRecord
	select {
	case rec = <-a.started:
	case <-time.After(30 * time.Second):
		t.Fatal("alloc not started")
	}
	t0 := time.Now()
	err := a.stop(t)
	if !errors.Is(err, ErrDrainTimeout) || time.Since(t0) > 10*time.Second {
		t.Fatalf("stop: %v after %s", err, time.Since(t0))
	}
	if al := l.alloc(t, rec.AllocID); al.Status != api.AllocStateRunning {
		t.Errorf("killed alloc: %s, want running (left to expire)", al.Status)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "pid"))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid == 0 {
		t.Fatal("no pid")
	}
	if p, err := os.FindProcess(pid); err == nil && p.Signal(syscall.Signal(0)) == nil {
		t.Errorf("process %d still alive", pid)
	}
}

func TestStateFileIsLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := openState(StatePath(dir, "p", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if _, err := openState(StatePath(dir, "p", "")); !errors.Is(err, ErrStateInUse) {
		t.Fatalf("second open: %v", err)
	}
	if err := s.save(Identity{Pool: "p", Worker: "w", Offset: 7}); err != nil {
		t.Fatal(err)
	}
	id, err := s.load()
	if err != nil || id.Worker != "w" || id.Offset != 7 || id.Version != 1 {
		t.Fatalf("load: %+v %v", id, err)
	}
}

func TestSkipsExpiredAllocs(t *testing.T) {
	if !expired(events.AllocRecord{Deadline: time.Now().Add(-time.Second)}) || expired(events.AllocRecord{Deadline: time.Now().Add(time.Minute)}) {
		t.Error("expired")
	}
}

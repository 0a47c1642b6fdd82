package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/line-sched/line/agent"
	"github.com/line-sched/line/api"
	"github.com/line-sched/line/client"
	"github.com/line-sched/line/config"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/testkit"
)

// syncBuffer is a bytes.Buffer safe for a process writing and a test
// reading.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// agentProc is `line worker run` running as a process of the built binary.
type agentProc struct {
	name   string
	cmd    *exec.Cmd
	stderr *syncBuffer
	state  string
	pool   string
	done   chan struct{}
	err    error
}

// startAgentProc runs `line worker run` against s with its state in
// stateDir and command as the alloc command.
func (s *lineServer) startAgentProc(t *testing.T, name, pool, stateDir string, capacity int, command ...string) *agentProc {
	t.Helper()
	args := []string{"--addr", s.addr, "worker", "run", "--pool", pool, "--capacity", fmt.Sprint(capacity),
		"--brokers", strings.Join(s.brokers, ","), "--state-dir", stateDir, "--quiet", "--drain-timeout", "20s", "--"}
	cmd := exec.Command(lineBin, append(args, command...)...)
	cmd.Env = append(os.Environ(), "GORACE=halt_on_error=0")
	p := &agentProc{name: name, cmd: cmd, stderr: &syncBuffer{}, state: stateDir, pool: pool, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stderr, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if strings.Contains(p.stderr.String(), "WARNING: DATA RACE") {
			t.Errorf("agent %s reported a data race:\n%s", name, p.stderr)
		}
		if t.Failed() {
			t.Logf("agent %s:\n%s", name, lastLines(p.stderr.String(), 40))
		}
	})
	return p
}

func lastLines(s string, n int) string {
	ls := strings.Split(s, "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// worker waits for the agent's registration and returns its worker id.
func (p *agentProc) worker(t *testing.T) string {
	t.Helper()
	var id agent.Identity
	testkit.WaitFor(t, 30*time.Second, "agent "+p.name+" registered", func() bool {
		b, err := os.ReadFile(agent.StatePath(p.state, p.pool, ""))
		return err == nil && json.Unmarshal(b, &id) == nil && id.Worker != ""
	})
	return id.Worker
}

// signal sends sig and waits for the process to exit.
func (p *agentProc) signal(t *testing.T, sig syscall.Signal, timeout time.Duration) error {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		t.Fatalf("agent %s did not exit within %s of %v", p.name, timeout, sig)
		return nil
	}
}

func (s *lineServer) countEvals(t *testing.T, pool string, status api.EvalStatus) int {
	t.Helper()
	n := 0
	_, err := client.All(context.Background(), 1000, func(ctx context.Context, pg client.Page) ([]api.Eval, *string, error) {
		l, _, err := s.c.ListEvals(ctx, pool, status, pg, client.Q{})
		if err != nil {
			return nil, nil, err
		}
		n += len(l.Items)
		return nil, l.NextCursor, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestWorkersRun500Evals: two agents run 500 evals; one is killed with
// SIGKILL midway, its allocs expire and are run by the other; every eval
// completes exactly once; the survivor drains on SIGTERM and exits 0.
func TestWorkersRun500Evals(t *testing.T) {
	s := startLineServer(t, nil) // worker TTL 2s, alloc TTL 4s
	ctx := context.Background()
	if _, err := s.c.CreatePool(ctx, api.CreatePoolRequest{PoolId: ptr("e2e")}); err != nil {
		t.Fatal(err)
	}
	work := []string{"sh", "-c", `sleep 0.05; echo "done $LINE_EVAL_ID $LINE_PAYLOAD"`}
	a := s.startAgentProc(t, "a", "e2e", t.TempDir(), 8, work...)
	b := s.startAgentProc(t, "b", "e2e", t.TempDir(), 8, work...)
	wa, wb := a.worker(t), b.worker(t)

	const n = 500
	reqs := make([]api.EvalRequest, n)
	for i := range reqs {
		reqs[i] = api.EvalRequest{EvalId: ptr(fmt.Sprintf("e-%d", i+1)), Payload: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i+1))}
	}
	if _, err := s.c.SubmitEvals(ctx, "e2e", reqs); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 60*time.Second, "100 completed evals", func() bool { return s.countEvals(t, "e2e", api.EvalStatusCompleted) >= 100 })
	testkit.WaitFor(t, 10*time.Second, "running allocs on a", func() bool {
		w, _, err := s.c.GetWorker(ctx, "e2e", wa, client.Q{})
		return err == nil && len(w.RunningAllocs) > 0
	})
	killedAt := time.Now()
	if err := a.signal(t, syscall.SIGKILL, 10*time.Second); err == nil {
		t.Fatal("a exited cleanly after SIGKILL")
	}
	testkit.WaitFor(t, 90*time.Second, "500 completed evals", func() bool { return s.countEvals(t, "e2e", api.EvalStatusCompleted) == n })
	t.Logf("500 evals completed %s after the kill", time.Since(killedAt).Round(time.Millisecond))
	if err := b.signal(t, syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatalf("b after SIGTERM: %v", err)
	}

	// The log: one completion per eval, every one succeeded with its
	// output; a's allocs expired and were finished by b.
	log := testkit.ReadEvents(t, s.brokers, s.cfg.Topics.Events()).OfPool("e2e")
	placed := map[string]events.AllocPlacedData{}
	for _, e := range log.OfType(events.AllocPlaced) {
		d := e.Data.(events.AllocPlacedData)
		placed[d.AllocID] = d
	}
	perEval := map[string]int{}
	workers := map[string]int{}
	for _, e := range log.OfType(events.AllocCompleted) {
		d := e.Data.(events.AllocCompletedData)
		p, ok := placed[d.AllocID]
		if !ok {
			t.Fatalf("completion of an unknown alloc %s", d.AllocID)
		}
		perEval[p.EvalID]++
		workers[p.WorkerID]++
		if d.Status != events.Succeeded || d.ExitCode == nil || *d.ExitCode != 0 ||
			d.Message != fmt.Sprintf("done %s {\"n\":%s}\n", p.EvalID, strings.TrimPrefix(p.EvalID, "e-")) {
			t.Errorf("completion of %s (eval %s): %+v", d.AllocID, p.EvalID, d)
		}
	}
	if len(log.OfType(events.AllocCompleted)) != n || len(perEval) != n {
		t.Errorf("%d alloc.completed for %d evals, want %d for %d", len(log.OfType(events.AllocCompleted)), len(perEval), n, n)
	}
	for ev, k := range perEval {
		if k != 1 {
			t.Errorf("eval %s completed %d times", ev, k)
		}
	}
	expired := 0
	for _, e := range log.OfType(events.AllocExpired) {
		d := e.Data.(events.AllocExpiredData)
		if p := placed[d.AllocID]; p.WorkerID == wa {
			expired++
		} else {
			t.Errorf("alloc %s of worker %s expired", d.AllocID, p.WorkerID)
		}
	}
	if expired == 0 || workers[wb] < n/2 || workers[wa]+workers[wb] != n {
		t.Errorf("expired allocs of a: %d; completions: a %d, b %d", expired, workers[wa], workers[wb])
	}
	t.Logf("a completed %d, b %d; %d allocs of a expired and were retried", workers[wa], workers[wb], expired)
	if !strings.Contains(b.stderr.String(), "stopped:") {
		t.Errorf("b did not log its drain:\n%s", lastLines(b.stderr.String(), 10))
	}
}

// TestWorkerRunDrainsAndResumes: SIGTERM lets the running allocs finish
// and complete, and the agent exits 0; what was placed meanwhile stays on
// the worker's topic and runs after a restart, which re-attaches to the
// same worker and starts nothing twice.
func TestWorkerRunDrainsAndResumes(t *testing.T) {
	s := startLineServer(t, func(c *config.Config) { c.WorkerTTL = 10 * time.Second })
	ctx := context.Background()
	if _, err := s.c.CreatePool(ctx, api.CreatePoolRequest{PoolId: ptr("drain")}); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	work := []string{"sh", "-c", `echo "start $LINE_EVAL_ID"; sleep 1.5; echo "end $LINE_EVAL_ID"`}
	a := s.startAgentProc(t, "first", "drain", state, 2, work...)
	w := a.worker(t)
	if _, err := s.c.SubmitEvals(ctx, "drain", []api.EvalRequest{{EvalId: ptr("d-1")}, {EvalId: ptr("d-2")}, {EvalId: ptr("d-3")}}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "two allocs started", func() bool { return strings.Count(a.stderr.String(), "alloc started") == 2 })
	t0 := time.Now()
	if err := a.signal(t, syscall.SIGTERM, 20*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, a.stderr)
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("drain took %s", d)
	}
	if n := strings.Count(a.stderr.String(), "alloc completed"); n != 2 || !strings.Contains(a.stderr.String(), "every running alloc finished") {
		t.Errorf("first agent: %d completions logged\n%s", n, a.stderr)
	}
	// Both running allocs completed before the exit; the third was placed
	// on the worker (it had room again) but not started.
	evs := map[string]api.Eval{}
	testkit.WaitFor(t, 20*time.Second, "d-3 placed", func() bool {
		l, _, err := s.c.ListEvals(ctx, "drain", "", client.Page{}, client.Q{})
		if err != nil {
			return false
		}
		for _, e := range l.Items {
			evs[e.EvalId] = e
		}
		return evs["d-3"].Status == api.EvalStatusPlaced
	})
	if evs["d-1"].Status != api.EvalStatusCompleted || evs["d-2"].Status != api.EvalStatusCompleted {
		t.Fatalf("after the drain: %+v", evs)
	}

	b := s.startAgentProc(t, "second", "drain", state, 2, work...)
	if b.worker(t) != w {
		t.Errorf("second agent registered a new worker")
	}
	testkit.WaitFor(t, 30*time.Second, "3 completed", func() bool { return s.countEvals(t, "drain", api.EvalStatusCompleted) == 3 })
	if err := b.signal(t, syscall.SIGTERM, 20*time.Second); err != nil {
		t.Fatalf("second agent after SIGTERM: %v", err)
	}
	if !strings.Contains(b.stderr.String(), "re-attached to the saved worker") || strings.Count(b.stderr.String(), "alloc started") != 1 {
		t.Errorf("second agent:\n%s", b.stderr)
	}
	log := testkit.ReadEvents(t, s.brokers, s.cfg.Topics.Events()).OfPool("drain")
	if n := len(log.OfType(events.AllocPlaced)); n != 3 {
		t.Errorf("%d placements, want 3 (no retry)", n)
	}
	for _, e := range log.OfType(events.AllocCompleted) {
		d := e.Data.(events.AllocCompletedData)
		if d.Status != events.Succeeded || !strings.HasPrefix(d.Message, "start d-") || !strings.Contains(d.Message, "\nend d-") {
			t.Errorf("completion: %+v", d)
		}
	}
	if n := len(log.OfType(events.AllocCompleted)); n != 3 {
		t.Errorf("%d completions, want 3", n)
	}
	var ee *exec.ExitError
	if errors.As(a.err, &ee) {
		t.Errorf("first agent: %v", a.err)
	}
}

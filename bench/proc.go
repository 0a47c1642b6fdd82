package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Launcher returns the command that runs a child of the given role, e.g.
// `line bench serve --role dev`. The harness adds the environment.
type Launcher func(role Role) *exec.Cmd

// child is a running child process.
type child struct {
	role  Role
	cmd   *exec.Cmd
	ready Ready
	start time.Time
	done  chan struct{}
	err   error

	mu    sync.Mutex
	lines []logLine
	log   *os.File
}

type logLine struct {
	at   time.Time
	text string
}

// startChild runs role with env added to the harness's environment and
// waits for its Ready line. Its stderr goes to logPath.
func startChild(ctx context.Context, launch Launcher, role Role, env []string, logPath string) (*child, error) {
	cmd := launch(role)
	// Keep what the launcher set (e.g. the test binary's role variable).
	cmd.Env = append(append(cmd.Environ(), env...), "GOTRACEBACK=all")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	c := &child{role: role, cmd: cmd, done: make(chan struct{}), log: lf, start: time.Now()}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s child: %w", role, err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			now := time.Now()
			c.mu.Lock()
			c.lines = append(c.lines, logLine{now, sc.Text()})
			fmt.Fprintf(lf, "%s %s\n", now.Format("15:04:05.000"), sc.Text())
			c.mu.Unlock()
		}
	}()
	readyc := make(chan error, 1)
	go func() {
		rd := bufio.NewReader(stdout)
		line, err := rd.ReadBytes('\n')
		if err == nil {
			err = json.Unmarshal(line, &c.ready)
		}
		readyc <- err
		_, _ = io.Copy(io.Discard, rd)
	}()
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	select {
	case err := <-readyc:
		if err != nil {
			c.kill()
			return nil, fmt.Errorf("%s child did not start (see %s): %w", role, logPath, err)
		}
	case <-c.done:
		return nil, fmt.Errorf("%s child exited at start (see %s): %v", role, logPath, c.err)
	case <-ctx.Done():
		c.kill()
		return nil, ctx.Err()
	case <-time.After(2 * time.Minute):
		c.kill()
		return nil, fmt.Errorf("%s child not ready after 2m (see %s)", role, logPath)
	}
	return c, nil
}

// lineAt returns the time the first log line containing s arrived.
func (c *child) lineAt(s string) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.lines {
		if strings.Contains(l.text, s) {
			return l.at, true
		}
	}
	return time.Time{}, false
}

func (c *child) get(ctx context.Context, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.ready.Control+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %d %s", path, resp.StatusCode, b)
	}
	return b, nil
}

// status returns the child's memory and CPU. VmHWM is read from
// /proc/<pid>/status when there is one, so that it is the kernel's figure.
func (c *child) status(ctx context.Context) (ProcStatus, error) {
	var s ProcStatus
	b, err := c.get(ctx, "/status")
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, err
	}
	if hwm, rss := readVm(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid)); hwm > 0 {
		s.VmHWM, s.VmRSS = hwm, rss
	}
	return s, nil
}

func (c *child) startCPU(ctx context.Context) error {
	_, err := c.get(ctx, "/cpu/start")
	return err
}

func (c *child) stopCPU(ctx context.Context, path string) error {
	b, err := c.get(ctx, "/cpu/stop")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func (c *child) heap(ctx context.Context, path string) error {
	b, err := c.get(ctx, "/heap")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// stop sends SIGTERM and waits up to timeout, then kills.
func (c *child) stop(timeout time.Duration) error {
	defer c.log.Close()
	select {
	case <-c.done:
		return nil
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		var ee *exec.ExitError
		if c.err != nil && !errors.As(c.err, &ee) {
			return c.err
		}
		return nil
	case <-time.After(timeout):
		c.kill()
		return fmt.Errorf("%s child did not stop within %s of SIGTERM; killed", c.role, timeout)
	}
}

func (c *child) kill() {
	_ = c.cmd.Process.Kill()
	<-c.done
}

// wrap adds to err, if the child is gone, how it ended and its last log
// lines.
func (c *child) wrap(err error) error {
	if err == nil {
		return nil
	}
	select {
	case <-c.done:
	case <-time.After(2 * time.Second):
		return err
	}
	c.mu.Lock()
	var tail []string
	for _, l := range c.lines[max(len(c.lines)-8, 0):] {
		tail = append(tail, "  "+l.at.Format("15:04:05.000")+" "+l.text)
	}
	c.mu.Unlock()
	return fmt.Errorf("%w\n%s child exited (%v); its last log lines (%s):\n%s", err, c.role, c.err, c.log.Name(), strings.Join(tail, "\n"))
}

// exited reports whether the child is gone.
func (c *child) exited() error {
	select {
	case <-c.done:
		return fmt.Errorf("%s child exited: %v (log: %s)", c.role, c.err, c.log.Name())
	default:
		return nil
	}
}

// systemEnv is the LINE_* environment of a bench deployment in dir: its
// own topic prefix, loopback ports chosen by the kernel, and TTLs far longer
// than any run (no heartbeats are sent: nothing may expire while measured).
func systemEnv(dir string) []string {
	return []string{
		"LINE_DEPLOYMENT=" + benchDeployment,
		"LINE_DATA_DIR=" + dir,
		"LINE_DEV_KAFKA_ADDR=127.0.0.1:0",
		"LINE_HTTP_ADDR=127.0.0.1:0",
		"LINE_WORKER_TTL=6h",
		"LINE_REPLICA_TTL=6h",
		"LINE_ALLOC_TTL=6h",
		"LINE_POOL_TTL=6h",
		"LINE_KAFKA_BROKERS=",
	}
}

const benchDeployment = "bench"

func mkdir(parts ...string) (string, error) {
	p := filepath.Join(parts...)
	return p, os.MkdirAll(p, 0o755)
}

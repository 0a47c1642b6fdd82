package testkit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/line-sched/line/broker"
	"github.com/line-sched/line/config"
)

// StartBrokerWith starts an embedded broker like StartBroker, with broker
// config overrides, e.g. {"group.min.session.timeout.ms": "1000"} for tests
// whose group members use a short session timeout.
func StartBrokerWith(t testing.TB, brokerConfigs map[string]string) *broker.Embedded {
	t.Helper()
	emb, err := broker.StartEmbedded(broker.EmbeddedConfig{DataDir: t.TempDir(), Addr: "127.0.0.1:0",
		Logf: Logf(t), BrokerConfigs: brokerConfigs})
	if err != nil {
		t.Fatalf("testkit: start embedded broker: %v", err)
	}
	t.Cleanup(func() {
		if err := emb.Close(); err != nil {
			t.Logf("testkit: close embedded broker: %v", err)
		}
	})
	return emb
}

var schedBin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// SchedulerBinary builds cmd/scheduler with -race once per test binary and
// returns the path of the executable. Call RemoveSchedulerBinary from
// TestMain after m.Run to delete it.
func SchedulerBinary(t testing.TB) string {
	t.Helper()
	schedBin.once.Do(func() {
		_, file, _, ok := runtime.Caller(0)
		if !ok {
			schedBin.err = errors.New("cannot locate the module")
			return
		}
		root := filepath.Dir(filepath.Dir(file))
		dir, err := os.MkdirTemp("", "line-scheduler-bin")
		if err != nil {
			schedBin.err = err
			return
		}
		schedBin.dir = dir
		out := filepath.Join(dir, "scheduler")
		goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goTool); err != nil {
			goTool = "go"
		}
		cmd := exec.Command(goTool, "build", "-race", "-o", out, "./cmd/scheduler")
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			schedBin.err = fmt.Errorf("go build -race ./cmd/scheduler: %v\n%s", err, b)
			return
		}
		schedBin.path = out
	})
	if schedBin.err != nil {
		t.Fatalf("testkit: %v", schedBin.err)
	}
	return schedBin.path
}

// RemoveSchedulerBinary deletes the binary SchedulerBinary built, if any.
func RemoveSchedulerBinary() {
	if schedBin.dir != "" {
		os.RemoveAll(schedBin.dir)
	}
}

// SchedulerEnv is the LINE_* environment that gives cmd/scheduler the
// settings of cfg, with brokers and the scheduler id.
func SchedulerEnv(cfg config.Config, brokers []string, id string) []string {
	dur := func(d time.Duration) string { return d.String() }
	return []string{
		"LINE_DEPLOYMENT=" + cfg.Deployment,
		"LINE_KAFKA_BROKERS=" + strings.Join(brokers, ","),
		"LINE_EVENTS_PARTITIONS=" + strconv.Itoa(int(cfg.EventsPartitions)),
		"LINE_ALLOCS_PARTITIONS=" + strconv.Itoa(int(cfg.AllocsPartitions)),
		"LINE_POOL_TTL=" + dur(cfg.PoolTTL),
		"LINE_WORKER_TTL=" + dur(cfg.WorkerTTL),
		"LINE_REPLICA_TTL=" + dur(cfg.ReplicaTTL),
		"LINE_ALLOC_TTL=" + dur(cfg.AllocTTL),
		"LINE_MAX_RETRY=" + strconv.Itoa(cfg.MaxRetry),
		"LINE_PRODUCE_TIMEOUT=" + dur(cfg.ProduceTimeout),
		"LINE_GROUP_SESSION_TIMEOUT=" + dur(cfg.GroupSessionTimeout),
		"LINE_TXN_TIMEOUT=" + dur(cfg.TxnTimeout),
		"LINE_SCHEDULER_ID=" + id,
	}
}

// SchedulerProcess is a cmd/scheduler process started by StartScheduler.
type SchedulerProcess struct {
	// ID is its LINE_SCHEDULER_ID.
	ID  string
	cmd *exec.Cmd
	log *lockedBuffer

	done    chan struct{}
	waitErr error
	mu      sync.Mutex
	// stopped is set once the test signalled the process.
	stopped bool
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// StartScheduler runs the scheduler binary (SchedulerBinary) with the
// environment of SchedulerEnv(cfg, brokers, id). The process is killed when
// the test ends; if it ever reported a data race, the test fails.
func StartScheduler(t testing.TB, cfg config.Config, brokers []string, id string) *SchedulerProcess {
	t.Helper()
	bin := SchedulerBinary(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), SchedulerEnv(cfg, brokers, id)...)
	cmd.Env = append(cmd.Env, "GORACE=halt_on_error=0")
	p := &SchedulerProcess{ID: id, cmd: cmd, log: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("testkit: start scheduler %s: %v", id, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill(t)
		if strings.Contains(p.Log(), "WARNING: DATA RACE") {
			t.Errorf("scheduler %s (pid %d) reported a data race:\n%s", id, p.Pid(), p.Log())
		}
	})
	return p
}

// Pid is the process id.
func (p *SchedulerProcess) Pid() int { return p.cmd.Process.Pid }

// Log returns what the process wrote to stdout and stderr so far.
func (p *SchedulerProcess) Log() string { return p.log.String() }

// WaitLog waits up to timeout until the process's output contains s, and
// reports whether it did.
func (p *SchedulerProcess) WaitLog(s string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.Log(), s) {
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-p.done:
			return strings.Contains(p.Log(), s)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return true
}

// Exited reports whether the process ended, and how.
func (p *SchedulerProcess) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// ExitedUnasked reports whether the process ended without being signalled
// by the test (a crash or an error exit), with its error.
func (p *SchedulerProcess) ExitedUnasked() (bool, error) {
	p.mu.Lock()
	stopped := p.stopped
	p.mu.Unlock()
	if stopped {
		return false, nil
	}
	return p.Exited()
}

// Kill sends SIGKILL and waits for the process to end.
func (p *SchedulerProcess) Kill(t testing.TB) {
	t.Helper()
	p.signal(t, syscall.SIGKILL, 10*time.Second)
}

// Term sends SIGTERM and waits up to timeout for the process to exit; if
// it does not, it is killed and the test fails.
func (p *SchedulerProcess) Term(t testing.TB, timeout time.Duration) {
	t.Helper()
	if !p.signal(t, syscall.SIGTERM, timeout) {
		t.Errorf("scheduler %s (pid %d) did not exit within %s of SIGTERM; killed", p.ID, p.Pid(), timeout)
		p.Kill(t)
	}
}

func (p *SchedulerProcess) signal(t testing.TB, sig syscall.Signal, timeout time.Duration) bool {
	t.Helper()
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	select {
	case <-p.done:
		return true
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("testkit: signal scheduler %s: %v", p.ID, err)
	}
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

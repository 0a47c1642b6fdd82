package projections_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/line-sched/line/config"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/projections"
	"github.com/line-sched/line/testkit"
)

// Environment of the projector run as a child process by
// TestResumeAfterKill.
const (
	helperDir        = "LINE_TEST_PROJECTOR_DIR"
	helperBrokers    = "LINE_TEST_PROJECTOR_BROKERS"
	helperDeployment = "LINE_TEST_PROJECTOR_DEPLOYMENT"
)

// TestHelperProjectorProcess is not a test: run by TestResumeAfterKill as
// a child process, it runs a projector that commits small batches slowly
// and prints every commit ("commit {json}") until it is killed.
func TestHelperProjectorProcess(t *testing.T) {
	dir := os.Getenv(helperDir)
	if dir == "" {
		t.Skip("helper process of TestResumeAfterKill")
	}
	cfg := config.Default()
	topics, err := events.NewTopics(os.Getenv(helperDeployment))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	cfg.Deployment, cfg.Topics = topics.Deployment, topics
	p, err := projections.Open(context.Background(), projections.Options{
		Config: cfg, Brokers: strings.Split(os.Getenv(helperBrokers), ","), Dir: dir, MaxBatchRecords: 20,
		// A bulk load of the first records, then batches: the child is
		// killed after a few of them.
		MaxBulkRecords: 100,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnCommit: func(c projections.Commit) {
			b, _ := json.Marshal(c)
			fmt.Printf("commit %s\n", b)
			time.Sleep(30 * time.Millisecond)
		},
	})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	fmt.Println("running")
	err = p.Run(context.Background())
	fmt.Println("error", err)
	os.Exit(2)
}

// TestResumeAfterKill kills a projector (a child process, SIGKILL: Pebble is
// abandoned without Close) in the middle of the log, then resumes on its
// directory: nothing below the checkpoint is written again, checkpoints
// only move forward, every record is folded exactly once, and the view
// equals a fresh rebuild and the fold of the log.
func TestResumeAfterKill(t *testing.T) {
	e := newEnv(t, func(c *config.Config) {
		c.WorkerTTL, c.ReplicaTTL, c.AllocTTL, c.PoolTTL = time.Hour, time.Hour, time.Hour, time.Hour
	})
	stopScheduler := e.startScheduler()
	for _, pool := range []string{"pa", "pb", "pc", "pd"} {
		e.do("POST", "/v1/pools", map[string]any{"pool_id": pool}, 201)
		e.do("POST", "/v1/pools/"+pool+"/workers", map[string]any{"worker_id": "w1", "capacity": 100, "datasets": []string{"d1"}}, 201)
		evs := make([]map[string]any, 150)
		for i := range evs {
			evs[i] = map[string]any{"eval_id": fmt.Sprintf("e%03d", i), "size": 1 + i%3}
		}
		e.do("POST", "/v1/pools/"+pool+"/evals/batch", map[string]any{"evals": evs}, 202)
	}
	// Let the scheduler place what fits, then freeze the log.
	time.Sleep(time.Second)
	stopScheduler()
	e.quiesce()
	recs := testkit.ReadRecords(t, e.brokers, e.cfg.Topics.Events())
	ends := testkit.CommittedOffsets(t, e.brokers, e.cfg.Topics.Events())

	dir := filepath.Join(t.TempDir(), "views")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProjectorProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperDir+"="+dir, helperBrokers+"="+strings.Join(e.brokers, ","),
		helperDeployment+"="+e.cfg.Deployment)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var last projections.Commit
	commits := 0
	sc := bufio.NewScanner(out)
	deadline := time.AfterFunc(60*time.Second, func() { _ = cmd.Process.Kill() })
	for commits < 3 && sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "commit "); ok {
			if err := json.Unmarshal([]byte(rest), &last); err != nil {
				t.Fatalf("child: %q: %v", line, err)
			}
			commits++
		} else if strings.HasPrefix(line, "error") {
			t.Fatalf("child: %s", line)
		}
	}
	deadline.Stop()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if commits < 3 {
		t.Fatalf("the child committed %d batches before it ended", commits)
	}

	// Resume on the abandoned directory.
	var (
		resumed map[int32]int64
		prev    = map[int32]int64{}
		bad     []string
	)
	p := e.open(projections.Options{Config: e.cfg, Brokers: e.brokers, Dir: dir, Logger: testkit.Logger(t),
		OnCommit: func(c projections.Commit) {
			for part, from := range c.From {
				if from < resumed[part] {
					bad = append(bad, fmt.Sprintf("partition %d: wrote from offset %d, below the checkpoint %d", part, from, resumed[part]))
				}
				if to := c.To[part]; to <= prev[part] || to <= from {
					bad = append(bad, fmt.Sprintf("partition %d: checkpoint %d after %d (batch from %d)", part, to, prev[part], from))
				}
				prev[part] = c.To[part]
			}
		}})
	resumed = p.Resumed()
	midStream := false
	for part, to := range last.To {
		if resumed[part] < to {
			t.Errorf("partition %d: resumed at %d, but the child had committed up to %d", part, resumed[part], to)
		}
	}
	for part, end := range ends {
		if resumed[part] < end {
			midStream = true
		}
		prev[part] = resumed[part]
	}
	if !midStream {
		t.Fatalf("the child was killed after it had applied the whole log (resumed %v, log ends %v): not mid-stream", resumed, ends)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	catchUp(t, p)
	_ = p.Close()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, b := range bad {
		t.Error(b)
	}
	st := p.Stats()
	if st.Replayed == 0 || st.Applied == 0 || st.Replayed+st.Applied+st.Poison != int64(len(recs)) {
		t.Errorf("stats %+v: want every one of the %d records folded exactly once, some replayed and some applied", st, len(recs))
	}
	t.Logf("killed after %d commits; resumed at %v of %v; %+v", commits, resumed, ends, st)

	// The resumed view equals a fresh rebuild and the fold of the log.
	p2 := e.open(projections.Options{Config: e.cfg, Brokers: e.brokers, Dir: dir, Logger: testkit.Logger(t)})
	nonEmpty := map[int32]int64{}
	for part, end := range ends {
		if end > 0 {
			nonEmpty[part] = end
		}
	}
	if got := p2.Resumed(); !maps.Equal(got, nonEmpty) {
		t.Errorf("checkpoint after catching up %v, want the end of the log %v", got, ends)
	}
	resumedDump := dump(t, p2)
	fresh := e.start(e.options(filepath.Join(t.TempDir(), "fresh")))
	catchUp(t, fresh)
	sameDump(t, "resumed view vs fresh rebuild", resumedDump, dump(t, fresh))
	sameDump(t, "resumed view vs the fold of the log", resumedDump, projections.FoldRecords(recs).Dump())
	log := testkit.ReadEvents(t, e.brokers, e.cfg.Topics.Events())
	for _, pool := range []string{"pa", "pb", "pc", "pd"} {
		n, rejected, ok := projections.PoolCounters(resumedDump, pool)
		if want := int64(len(log.OfPool(pool))); !ok || n != want || rejected != 0 {
			t.Errorf("pool %s: %d events (%d rejected) in the view, %d on the log", pool, n, rejected, want)
		}
	}
}

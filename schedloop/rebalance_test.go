package schedloop_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/testkit"
)

// TestRebalanceTwoInstances: two scheduler processes share the events
// partitions while the second is stopped (SIGTERM or SIGKILL, if possible
// in the middle of a transaction) and started again and again during a
// stream of 10,000 evals over three pools, one per partition: every eval is
// placed exactly once, and a SIGTERM leaves no transaction open.
func TestRebalanceTwoInstances(t *testing.T) {
	testkit.SchedulerBinary(t) // build before the clock starts
	e := newEnv(t, shortSessions, crashConfig)
	n := e.cfg.EventsPartitions
	var pools []string
	for p := range n {
		pools = append(pools, poolOn("reb", p, n))
	}
	s := setupStream(e, pools, 7, 500, 10000)
	a := testkit.StartScheduler(t, e.cfg, e.brokers, "sched-a")
	adm := testkit.Admin(t, e.brokers)

	seed := time.Now().UnixNano()
	t.Logf("schedule seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	pause := func(lo, hi time.Duration) { time.Sleep(lo + time.Duration(rng.Int64N(int64(hi-lo)))) }
	start := time.Now()
	var wg sync.WaitGroup
	var submitErr error
	wg.Go(func() { submitErr = s.submit(e, 100, 60*time.Millisecond) })

	txnB := e.cfg.Deployment + "-scheduler-sched-b"
	midTxn := 0
	for k := range 5 {
		pause(300*time.Millisecond, 800*time.Millisecond)
		b := testkit.StartScheduler(t, e.cfg, e.brokers, "sched-b")
		// Stopped only once it joined (see assigned): 0.5-1.5s after
		// it got its partitions, rebuilding them or deciding.
		if !b.WaitLog(assigned, 30*time.Second) {
			t.Fatalf("sched-b incarnation %d was not assigned partitions in 30s:\n%s\ngroup: %s", k, b.Log(), describeGroup(t, adm, e.cfg.Deployment+"-scheduler"))
		}
		pause(500*time.Millisecond, 1500*time.Millisecond)
		// Then, preferably, in the middle of one of its transactions.
		if ongoing(t, adm, txnB, 3*time.Second) {
			midTxn++
		}
		for _, p := range []*testkit.SchedulerProcess{a, b} {
			if gone, err := p.ExitedUnasked(); gone {
				t.Fatalf("scheduler %s exited on its own (%v):\n%s", p.ID, err, p.Log())
			}
		}
		how := "SIGKILL"
		if k%2 == 0 {
			how = "SIGTERM"
			b.Term(t, 15*time.Second)
			// A graceful stop exits 0 and leaves no transaction open
			// (one would hold back every read_committed reader until
			// the broker aborts it): not its own, nor that of the
			// SIGKILLed incarnation before it, which it fenced when it
			// started.
			if _, err := b.Exited(); err != nil {
				t.Errorf("sched-b incarnation %d exited with %v after SIGTERM:\n%s", k, err, b.Log())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			txns, err := adm.DescribeTransactions(ctx, txnB)
			cancel()
			if err != nil {
				t.Fatalf("describe transaction %s: %v", txnB, err)
			}
			if d, ok := txns[txnB]; !ok || d.Err != nil || d.State == "Ongoing" {
				t.Errorf("after SIGTERM, transaction %s is %+v: want it ended", txnB, d)
			}
		} else {
			b.Kill(t)
		}
		t.Logf("%5.1fs: stopped sched-b incarnation %d with %s; %d evals placed", time.Since(start).Seconds(), k, how, s.placed(e))
	}
	wg.Wait()
	if submitErr != nil {
		t.Fatal(submitErr)
	}
	t.Logf("%5.1fs: all submitted; %d evals placed", time.Since(start).Seconds(), s.placed(e))
	s.waitPlaced(e, 90*time.Second)
	t.Logf("%5.1fs: all placed", time.Since(start).Seconds())
	if gone, err := a.ExitedUnasked(); gone {
		t.Fatalf("sched-a exited on its own (%v):\n%s", err, a.Log())
	}
	// The rebalances did move partitions: sched-a got some back after
	// sched-b left.
	if c := strings.Count(a.Log(), assigned); c < 2 {
		t.Errorf("sched-a was assigned partitions %d times, want at least twice (initially and after sched-b left)", c)
	}
	if c := strings.Count(a.Log(), "unable to join group session"); c > 0 {
		// A round longer than the rebalance timeout (= the session
		// timeout) gets a busy member evicted: correct, but costly.
		t.Logf("sched-a was evicted from the group %d times while busy", c)
	}
	s.assertExactlyOnce(e)
	all := countAllRecords(t, e.brokers, e.cfg.Topics.Events())
	t.Logf("%d of 5 stops landed in an ongoing transaction of sched-b; %d alloc.placed written in aborted transactions",
		midTxn, all[string(events.AllocPlaced)]-s.total)
}

package schedloop_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/line-sched/line/config"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/state"
	"github.com/line-sched/line/testkit"
)

// Settings of the tests that kill scheduler processes: the broker accepts
// short group sessions so that a killed member is replaced quickly.
var shortSessions = map[string]string{"group.min.session.timeout.ms": "1000"}

func crashConfig(c *config.Config) {
	longTTLs(c)
	c.GroupSessionTimeout = 1500 * time.Millisecond
	c.TxnTimeout = 5 * time.Second
}

// stream is a workload: total evals in batches over pools, each pool with
// its workers.
type stream struct {
	pools   []string
	workers map[string][]string // pool -> worker ids
	topics  []string
	total   int
}

// setupStream creates the pools, each with workers of capacity, over HTTP.
func setupStream(e *env, pools []string, workersPerPool int, capacity int64, total int) *stream {
	s := &stream{pools: pools, workers: map[string][]string{}, total: total}
	for _, p := range pools {
		e.createPool(p, events.Spread, 0)
		for i := range workersPerPool {
			w := fmt.Sprintf("w%02d", i)
			s.workers[p] = append(s.workers[p], w)
			s.topics = append(s.topics, e.registerWorker(p, w, capacity))
		}
	}
	return s
}

// evalID names the i-th eval of a stream.
func evalID(i int) string { return fmt.Sprintf("e-%05d", i) }

// submit sends the stream's evals in batches of batch, round robin over
// its pools, pausing pause between batches. It returns at the end, with the
// first error.
func (s *stream) submit(e *env, batch int, pause time.Duration) error {
	for b := 0; b*batch < s.total; b++ {
		pool := s.pools[b%len(s.pools)]
		var evs []evalReq
		for i := b * batch; i < min((b+1)*batch, s.total); i++ {
			evs = append(evs, evalReq{ID: evalID(i), Size: 1, Payload: fmt.Sprintf(`{"i":%d}`, i)})
		}
		if err := e.submitBatch(pool, evs); err != nil {
			return fmt.Errorf("batch %d: %w", b, err)
		}
		time.Sleep(pause)
	}
	return nil
}

// placed counts the stream's evals that ingest's live fold shows placed.
func (s *stream) placed(e *env) int {
	n := 0
	e.view(func(st *state.State) {
		for _, id := range s.pools {
			if p := st.Pool(id); p != nil {
				for _, ev := range p.Evals() {
					if ev.Status() == state.EvalPlaced {
						n++
					}
				}
			}
		}
	})
	return n
}

// waitPlaced waits until every eval of the stream is placed.
func (s *stream) waitPlaced(e *env, timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n := s.placed(e)
		if n >= s.total {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("after %s, %d of %d evals placed", timeout, n, s.total)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// assertExactlyOnce checks the outcome of a stream: the committed log holds
// exactly one alloc.placed per eval, all applied by the fold (nothing
// rejected, no worker over capacity at any offset), and the worker topics,
// read_committed, hold exactly one alloc record per eval, each the one the
// log names.
func (s *stream) assertExactlyOnce(e *env) {
	t := e.t
	t.Helper()
	log := readEvents(t, e.brokers, e.cfg.Topics.Events())
	f := fold(t, log, nil)
	if len(f.rejected) > 0 {
		n := min(len(f.rejected), 10)
		t.Errorf("the fold rejected %d events; first %d: %v", len(f.rejected), n, f.rejected[:n])
	}
	placements := log.OfType(events.AllocPlaced)
	if len(placements) != s.total {
		t.Errorf("%d committed alloc.placed, want %d", len(placements), s.total)
	}
	if len(f.placedOK) != s.total {
		t.Errorf("%d evals placed by the fold, want %d", len(f.placedOK), s.total)
	}
	byAlloc := map[string]events.AllocPlacedData{}
	for _, ev := range placements {
		d := ev.Data.(events.AllocPlacedData)
		byAlloc[d.AllocID] = d
	}
	for i := range s.total {
		id := evalID(i)
		if n := len(f.placedOK[id]); n != 1 {
			t.Errorf("eval %s placed %d times", id, n)
		}
	}
	for _, p := range s.pools {
		pool := f.st.Pool(p)
		for _, ev := range pool.Evals() {
			if ev.Status() != state.EvalPlaced || ev.Attempts != 1 {
				t.Errorf("pool %s eval %s: %s after %d attempts, want placed once", p, ev.ID, ev.Status(), ev.Attempts)
			}
		}
	}

	records, seen := 0, map[string]string{}
	for _, topic := range s.topics {
		pool, worker, ok := e.cfg.Topics.ParseWorkerAllocs(topic)
		if !ok {
			t.Fatalf("bad worker topic %s", topic)
		}
		recs, _ := allocRecords(t, e.brokers, topic)
		records += len(recs)
		for _, r := range recs {
			if prev, dup := seen[r.EvalID]; dup {
				t.Errorf("eval %s delivered twice: on %s and on %s", r.EvalID, prev, topic)
			}
			seen[r.EvalID] = topic
			d, ok := byAlloc[r.AllocID]
			if !ok || d.EvalID != r.EvalID || d.WorkerID != worker || r.WorkerID != worker || r.PoolID != pool {
				t.Errorf("%s: record %+v matches no committed alloc.placed of this worker", topic, r)
			}
			if want := fmt.Sprintf(`{"i":%d}`, atoi(r.EvalID[2:])); string(r.Payload) != want {
				t.Errorf("%s: eval %s payload %s, want %s", topic, r.EvalID, r.Payload, want)
			}
		}
	}
	if records != s.total || len(seen) != s.total {
		t.Errorf("worker topics hold %d alloc records of %d distinct evals, want %d of %d", records, len(seen), s.total, s.total)
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// TestCrashSafetyKill: a scheduler process SIGKILLed again and again while
// 10,000 evals stream in, restarted each time with the same
// LINE_SCHEDULER_ID, places every eval exactly once. Every other
// incarnation is killed once it has placed something, in the middle of one
// of its transactions (polled with DescribeTransactions), and the next one
// must abort that transaction at once; the others are killed 0-1.5s after
// the group assigned them partitions (rebuilding their state, first
// rounds).
func TestCrashSafetyKill(t *testing.T) {
	testkit.SchedulerBinary(t) // build before the clock starts
	e := newEnv(t, shortSessions, crashConfig)
	s := setupStream(e, []string{"crash"}, 20, 1000, 10000)
	const id = "sched-a"
	proc := testkit.StartScheduler(t, e.cfg, e.brokers, id)

	seed := time.Now().UnixNano()
	t.Logf("kill schedule seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	start := time.Now()
	var wg sync.WaitGroup
	var submitErr error
	wg.Go(func() { submitErr = s.submit(e, 100, 80*time.Millisecond) })
	adm := testkit.Admin(t, e.brokers)
	txnID := e.cfg.Deployment + "-scheduler-" + id
	const kills = 5
	midTxn := 0
	for k := range kills {
		killedMidTxn := false
		if k%2 == 0 {
			// Wait until this incarnation placed something (or
			// everything is placed), then until it is in the middle
			// of a transaction (a round being written).
			base := s.placed(e)
			deadline := time.Now().Add(45 * time.Second)
			for n := base; n == base && n < s.total; n = s.placed(e) {
				if time.Now().After(deadline) {
					t.Fatalf("incarnation %d placed nothing in 45s:\n%s\ngroup: %s", k, proc.Log(), describeGroup(t, adm, e.cfg.Deployment+"-scheduler"))
				}
				time.Sleep(20 * time.Millisecond)
			}
			if ongoing(t, adm, txnID, 5*time.Second) {
				midTxn++
				killedMidTxn = true
			}
		} else {
			// Kill it while it starts: rebuilding its state or in its
			// first rounds. Not before it joined the group: kfake
			// keeps a member that dies while its JoinGroup is
			// pending forever, with the partitions it is assigned
			// (see assigned below).
			if !proc.WaitLog(assigned, 30*time.Second) {
				t.Fatalf("incarnation %d was not assigned partitions in 30s:\n%s\ngroup: %s", k, proc.Log(), describeGroup(t, adm, e.cfg.Deployment+"-scheduler"))
			}
			time.Sleep(time.Duration(rng.Int64N(int64(1500 * time.Millisecond))))
		}
		if gone, err := proc.ExitedUnasked(); gone {
			t.Fatalf("scheduler incarnation %d exited on its own (%v):\n%s", k, err, proc.Log())
		}
		proc.Kill(t)
		t.Logf("%5.1fs: killed incarnation %d (pid %d); %d evals placed", time.Since(start).Seconds(), k, proc.Pid(), s.placed(e))
		restarted := time.Now()
		proc = testkit.StartScheduler(t, e.cfg, e.brokers, id)
		if killedMidTxn {
			// The new incarnation takes over the transactional id at
			// once: the killed one's transaction is aborted right away,
			// not when the broker times it out (LINE_TXN_TIMEOUT) or
			// when the new one first writes; until then it holds back
			// every read_committed reader of what it wrote to.
			d, ok := waitTxn(t, adm, txnID, 2*e.cfg.TxnTimeout, func(d kadm.DescribedTransaction) bool { return d.State != "Ongoing" })
			took := time.Since(restarted)
			t.Logf("killed transaction ended %.1fs after the restart (%s)", took.Seconds(), d.State)
			if !ok || took > e.cfg.TxnTimeout/2 {
				t.Errorf("the transaction of the killed incarnation %d ended %s after the restart (%+v); want at once", k, took, d)
			}
		}
	}
	wg.Wait()
	if submitErr != nil {
		t.Fatal(submitErr)
	}
	t.Logf("%5.1fs: all submitted; %d evals placed", time.Since(start).Seconds(), s.placed(e))
	s.waitPlaced(e, 90*time.Second)
	t.Logf("%5.1fs: all placed", time.Since(start).Seconds())
	if gone, err := proc.ExitedUnasked(); gone {
		t.Fatalf("the last scheduler exited on its own (%v):\n%s", err, proc.Log())
	}
	s.assertExactlyOnce(e)
	all := countAllRecords(t, e.brokers, e.cfg.Topics.Events())
	t.Logf("%5.1fs: checked; %d kills landed in an ongoing transaction; %d alloc.placed written in transactions the kills aborted",
		time.Since(start).Seconds(), midTxn, all[string(events.AllocPlaced)]-s.total)
}

// assigned is what a scheduler logs once the group assigned it partitions.
//
// A scheduler process killed while its JoinGroup is pending is never
// removed from the group by kfake (franz-go/pkg/kfake groups.go: reply()
// re-arms the member's session timer only if the JoinGroup response could
// be written to the connection, and completeLeaderSync then cancels the
// pending-sync timer that would have removed it): it keeps its partitions
// forever and no other member gets them. Tests therefore kill scheduler
// processes only once they joined.
const assigned = "partitions assigned"

// ongoing waits up to timeout until the transaction txnID is ongoing (a
// scheduler round being written) and reports whether it saw it so.
func ongoing(t *testing.T, adm *kadm.Client, txnID string, timeout time.Duration) bool {
	t.Helper()
	_, ok := waitTxn(t, adm, txnID, timeout, func(d kadm.DescribedTransaction) bool { return d.State == "Ongoing" })
	return ok
}

// waitTxn waits up to timeout until the description of transaction txnID
// satisfies cond, and returns it.
func waitTxn(t *testing.T, adm *kadm.Client, txnID string, timeout time.Duration, cond func(kadm.DescribedTransaction) bool) (kadm.DescribedTransaction, bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		txns, err := adm.DescribeTransactions(ctx, txnID)
		cancel()
		if err != nil {
			t.Fatalf("describe transaction %s: %v", txnID, err)
		}
		if d := txns[txnID]; d.Err == nil && cond(d) {
			return d, true
		}
		if time.Now().After(deadline) {
			return txns[txnID], false
		}
		time.Sleep(2 * time.Millisecond)
	}
}

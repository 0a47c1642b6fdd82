package schedloop_test

import (
	"testing"
	"time"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/state"
)

// TestCatchUpToTransactionalTail: a scheduler that starts on a log whose
// last committed record is a transaction marker (a batch submission, or a
// previous scheduler's round) still catches up and decides.
func TestCatchUpToTransactionalTail(t *testing.T) {
	e := newEnv(t, nil, longTTLs)
	const pool = "p1"
	e.createPool(pool, events.Spread, 0)
	e.registerWorker(pool, "w1", 10)
	if err := e.submitBatch(pool, []evalReq{{ID: "e1"}, {ID: "e2"}}); err != nil {
		t.Fatal(err)
	}
	startLoop(t, e.cfg, e.brokers, "one")
	e.waitView(15*time.Second, "both evals placed", func(st *state.State) bool {
		return evalOf(st, pool, "e1").Status() == state.EvalPlaced && evalOf(st, pool, "e2").Status() == state.EvalPlaced
	})
}

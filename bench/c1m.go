package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/line-sched/line/events"
)

// c1m registers Workers workers (timed), submits Evals evals through the
// batch endpoint and measures until every alloc is readable on its worker
// topic (timed on the alloc.placed events, committed in the same
// transaction, then checked on the worker topics); then it measures the broker limit on the same broker. The last
// run's line dev stays up as the history of replay and takeover when
// keep is set. delivery is the pool's delivery mode (per-worker or
// shared); the result is named after the scenario, name.
func (r *Runner) c1m(ctx context.Context, name string, runs int, keep bool, delivery string) (*Result, error) {
	o := r.o
	o.Delivery = delivery
	return r.c1mWith(ctx, o, name, runs, keep)
}

// c1mWith is c1m with options o (the history of takeover has fewer evals).
func (r *Runner) c1mWith(ctx context.Context, o Options, name string, runs int, keep bool) (*Result, error) {
	res := newResult(name)
	res.Params["workers"], res.Params["evals"], res.Params["batch"], res.Params["batch_concurrency"] = o.Workers, o.Evals, o.BatchSize, o.BatchConc
	res.Params["strategy"], res.Params["locality_wait"], res.Params["datasets"], res.Params["headroom"] = o.Strategy, o.LocalityWait.String(), o.Datasets, o.Headroom
	res.Params["delivery"] = o.Delivery
	gen := newEvalGen("", o.Datasets, 0)
	specs := make([]evalSpec, o.Evals)
	var total int64
	for i := range specs {
		specs[i] = gen.next()
		total += specs[i].Size
	}
	capacity := max(int64(math.Ceil(float64(total)*o.Headroom/float64(o.Workers))), 4)
	res.Params["capacity"] = capacity
	topics, _ := events.NewTopics(benchDeployment)
	for run := 1; run <= runs; run++ {
		last := run == runs && keep
		if err := r.c1mRun(ctx, o, res, run, specs, capacity, topics, last); err != nil {
			return res, err
		}
	}
	if o.Delivery == string(events.Shared) {
		res.gate("c1m end to end, shared delivery", "end to end", 60, false, "s")
	} else {
		res.gate("c1m end to end, per-worker topics", "end to end", 120, false, "s")
	}
	res.Params["topology"], res.Params["memory_limit"] = string(o.Topology), o.MemoryLimit
	res.gate("c1m every service < 1 GiB RSS", "largest service peak RSS", 1024, false, "MiB")
	if o.Topology == TopologyDev {
		res.note("topology dev: line dev runs broker, ingest, projector and scheduler in one process: its peak RSS (VmHWM) is every service's together, the broker's in-memory log included")
	} else {
		res.note("topology services: broker, ingest, projector and scheduler each run as their own process; the RSS gate is on the largest of ingest, projector and scheduler (the embedded broker stands in for Kafka and is reported, not gated)")
		res.note("the projector runs at its default lower CPU priority (LINE_PROJECTOR_NICE=10): the views are not on the measured path; 'views caught up' says when they held every event")
	}
	res.note("TTLs are 6h and no heartbeats are sent: nothing expires during a run; evals carry no payload")
	res.note("delivery %s: allocs on %s", o.Delivery, map[bool]string{true: "the shared alloc topic " + topics.SharedAllocs(), false: "one topic per worker"}[o.Delivery == string(events.Shared)])
	return res, nil
}

func (r *Runner) c1mRun(ctx context.Context, o Options, res *Result, run int, specs []evalSpec, capacity int64, topics events.Topics, keep bool) (err error) {
	dir, err := mkdir(o.Out, fmt.Sprintf("%s-run%d", res.Scenario, run))
	if err != nil {
		return err
	}
	sys, err := startSystem(ctx, o.Launch, o.Topology, dir, o.MemoryLimit)
	if err != nil {
		return err
	}
	defer func() {
		if keep && err == nil {
			holder, serr := sys.stopServices(time.Minute)
			if serr == nil {
				r.dropHistory()
				r.hist = &history{dir: dir, dev: holder, brokers: sys.kafka, pool: "c1m", evals: len(specs), workers: o.Workers}
				return
			}
			err = serr
		}
		_ = sys.stop(time.Minute)
		if !o.Keep {
			_ = os.RemoveAll(dir + "/data")
			_ = os.RemoveAll(dir + "/views")
		}
	}()
	api := newAPI(sys.commands, max(o.BatchConc, o.RegisterConc)+2)
	defer api.close()
	if err := api.waitHealthy(ctx, 2*time.Minute); err != nil {
		return err
	}
	if err := api.createPool(ctx, "c1m", o.Strategy, o.LocalityWait, o.Delivery); err != nil {
		return err
	}
	r.logf("%s run %d: registering %d workers (capacity %d, delivery %s)", res.Scenario, run, o.Workers, capacity, o.Delivery)
	t := time.Now()
	if err := api.registerWorkers(ctx, "c1m", workerSpecs(o.Workers, capacity, o.Datasets), o.RegisterConc); err != nil {
		return err
	}
	reg := time.Since(t)
	res.add("register workers", "s", reg.Seconds())
	res.add("register rate", "workers/s", float64(o.Workers)/reg.Seconds())
	w, err := watchPlaced(sys.kafka, topics)
	if err != nil {
		return err
	}
	defer w.close()
	if o.Profile {
		if err := sys.startCPU(ctx); err != nil {
			return err
		}
	}
	cpu0 := sys.cpu(ctx)
	r.logf("%s run %d: workers registered in %.1fs; submitting %d evals in batches of %d", res.Scenario, run, reg.Seconds(), len(specs), o.BatchSize)
	t0 := time.Now()
	pctx, stopProgress := context.WithCancel(ctx)
	go func() {
		for {
			select {
			case <-pctx.Done():
				return
			case <-time.After(10 * time.Second):
				r.logf("%s run %d: submitting; %d allocs readable after %.0fs", res.Scenario, run, w.count.Load(), time.Since(t0).Seconds())
			}
		}
	}()
	submitted, err := submitBatches(ctx, api, "c1m", specs, o.BatchSize, o.BatchConc)
	stopProgress()
	if err != nil {
		return sys.wrap(err)
	}
	acked := time.Since(t0)
	if submitted != len(specs) {
		return fmt.Errorf("submitted %d evals, %d accepted", len(specs), submitted)
	}
	r.logf("%s run %d: all %d evals acknowledged after %.1fs (%.0f evals/s); waiting for the allocs", res.Scenario, run, submitted, acked.Seconds(), float64(submitted)/acked.Seconds())
	wctx, cancel := context.WithTimeout(ctx, 45*time.Minute)
	end, err := w.waitCount(wctx, int64(len(specs)), func(n int64) {
		r.logf("%s run %d: %d allocs readable after %.0fs", res.Scenario, run, n, time.Since(t0).Seconds())
		if e := sys.exited(); e != nil {
			cancel()
		}
	})
	cancel()
	if err != nil {
		return sys.wrap(err)
	}
	e2e := end.Sub(t0)
	res.add("end to end", "s", e2e.Seconds())
	res.add("evals/s", "evals/s", float64(len(specs))/e2e.Seconds())
	res.add("submit (acks)", "s", acked.Seconds())
	res.add("submit rate (acks)", "evals/s", float64(len(specs))/acked.Seconds())
	cpu1 := sys.cpu(ctx)
	for _, c := range sys.all() {
		res.add(c.name()+" CPU", "cpu-s", cpu1[c.name()]-cpu0[c.name()])
	}
	if d := w.dups.Load(); d > 0 {
		res.note("run %d: %d duplicate alloc.placed events", run, d)
	}
	if behind, err := viewsBehind(ctx, sys.queries, sys.kafka, topics.Events(), "c1m"); err == nil {
		res.add("views behind the log at the end", "events", float64(behind))
	} else {
		res.note("run %d: views lag unknown: %v", run, err)
	}
	// The views are not on the measured path; how long after the first
	// submission they hold every event is reported beside it (and the
	// peak RSS below covers their catching up).
	if at, err := waitViews(ctx, sys.queries, sys.kafka, topics.Events(), "c1m", 10*time.Minute); err == nil {
		res.add("views caught up (from first submit)", "s", at.Sub(t0).Seconds())
	} else {
		res.note("run %d: views did not catch up: %v", run, err)
	}
	var peak float64
	for _, c := range sys.all() {
		st, err := c.status(ctx)
		if err != nil {
			return fmt.Errorf("%s status: %w", c.name(), err)
		}
		res.add(c.name()+" peak RSS", "MiB", mib(st.Peak()))
		res.add(c.name()+" Go heap in use", "MiB", mib(int64(st.HeapInuse)))
		if c.role != RoleBroker {
			peak = max(peak, mib(st.Peak()))
		}
	}
	res.add("largest service peak RSS", "MiB", peak)
	if o.Profile {
		prefix := fmt.Sprintf("%s/%s-run%d", o.Out, res.Scenario, run)
		cpus, err := sys.stopCPU(ctx, prefix)
		if err != nil {
			return err
		}
		heaps, err := sys.heap(ctx, prefix)
		if err != nil {
			return err
		}
		if run == 1 {
			for _, c := range sys.all() {
				r.topProfile(res, cpus[c.name()], "")
				r.topProfile(res, heaps[c.name()], "inuse_space")
			}
		}
	}
	if rs, err := schedulerRounds(ctx, sys.kafka, topics.Events(), "c1m"); err == nil && rs.Rounds > 0 {
		res.add("scheduler rounds", "rounds", float64(rs.Rounds))
		res.add("round: placements (p50)", "placements", rs.PlacedP50)
		res.add("round: decide+encode (p50)", "ms", rs.DecideToProduce[0])
		res.add("round: produce+commit (p50)", "ms", rs.ProduceToCommit[0])
		res.add("round: commit to next decision (p50)", "ms", rs.CommitToNextDecide[0])
		res.add("first submit to first decision", "ms", rs.FirstSubmitToFirstDecide)
		res.note("run %d rounds (from the log: decision time in the events, record timestamps, commit markers): %s", run, rs)
	} else if err != nil {
		res.note("run %d: round breakdown unavailable: %v", run, err)
	}
	r.logf("%s run %d: %d allocs readable after %.1fs (%.0f evals/s), largest service peak RSS %.0f MiB; checking the alloc records (%s delivery)", res.Scenario, run, len(specs), e2e.Seconds(), float64(len(specs))/e2e.Seconds(), peak, o.Delivery)
	if o.Delivery == string(events.Shared) {
		if err := verifyShared(ctx, res, run, sys.kafka, topics, len(specs)); err != nil {
			return err
		}
	} else if err := verifyPerWorker(ctx, res, run, sys.kafka, topics, len(specs)); err != nil {
		return err
	}
	r.logf("%s run %d: measuring the broker limit", res.Scenario, run)
	cp, err := brokerCopy(ctx, sys.kafka, len(specs), o.BatchSize, 20000)
	if err != nil {
		return fmt.Errorf("broker limit: %w", err)
	}
	copyRate := float64(cp.Records) / cp.Copy.Seconds()
	res.add("broker limit: txn copy", "records/s", copyRate)
	res.add("broker limit: txn fill", "records/s", float64(cp.Records)/cp.Fill.Seconds())
	res.add("ratio evals/s : copy records/s", "x", float64(len(specs))/e2e.Seconds()/copyRate)
	r.logf("%s run %d: broker limit: copy %.0f records/s (%d txns), fill %.0f records/s", res.Scenario, run, copyRate, cp.Transactions, float64(cp.Records)/cp.Fill.Seconds())
	return nil
}

// viewsBehind is how many offsets of the pool's partition the projector's
// views (X-Line-Index of GET /v1/pools/{pool}) are behind the committed end.
func viewsBehind(ctx context.Context, queries string, brokers []string, topic, pool string) (int64, error) {
	ends, err := committedEnd(ctx, brokers, topic)
	if err != nil {
		return 0, err
	}
	part := events.PartitionFor(pool, int32(len(ends)))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, queries+"/v1/pools/"+pool, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	var applied int64 = -1
	for _, pos := range strings.Split(resp.Header.Get("X-Line-Index"), ",") {
		if p, err := events.ParsePosition(strings.TrimSpace(pos)); err == nil && p.Partition == part {
			applied = p.Offset
		}
	}
	return ends[part] - 1 - applied, nil
}

// waitViews polls the projector until its views hold every committed event
// of the pool's partition and returns when they did.
func waitViews(ctx context.Context, queries string, brokers []string, topic, pool string, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		behind, err := viewsBehind(ctx, queries, brokers, topic, pool)
		if err == nil && behind <= 0 {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("still %d events behind after %s", behind, timeout)
			}
			return time.Time{}, err
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// childCPU is the CPU seconds the child used so far (0 if unknown).
func childCPU(ctx context.Context, c *child) float64 {
	st, err := c.status(ctx)
	if err != nil {
		return 0
	}
	return st.CPU
}

// submitBatches posts specs in batches of size with conc concurrent
// requests and returns how many evals were accepted.
func submitBatches(ctx context.Context, api *apiClient, pool string, specs []evalSpec, size, conc int) (int, error) {
	var (
		next     atomic.Int64
		accepted atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		first    error
	)
	nb := (len(specs) + size - 1) / size
	for range max(conc, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				b := int(next.Add(1) - 1)
				if b >= nb || ctx.Err() != nil {
					return
				}
				batch := specs[b*size : min((b+1)*size, len(specs))]
				status, body, err := api.do(ctx, http.MethodPost, "/v1/pools/"+pool+"/evals/batch", batchBody(batch))
				if err == nil && status != http.StatusAccepted {
					if len(body) > 512 {
						body = body[:512]
					}
					err = fmt.Errorf("batch %d: %d %s", b, status, body)
				}
				var out struct {
					Count int `json:"count"`
				}
				if err == nil {
					err = json.Unmarshal(body, &out)
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
				accepted.Add(int64(out.Count))
			}
		}()
	}
	wg.Wait()
	return int(accepted.Load()), first
}

// verifyPerWorker checks that every alloc is on its worker topic, once.
func verifyPerWorker(ctx context.Context, res *Result, run int, brokers []string, topics events.Topics, n int) error {
	ww, err := watchAllocs(brokers, topics, nil, true)
	if err != nil {
		return err
	}
	vctx, vcancel := context.WithTimeout(ctx, 20*time.Minute)
	_, err = ww.waitCount(vctx, int64(n), nil)
	vcancel()
	time.Sleep(time.Second) // let duplicates, if any, arrive
	ww.close()
	if err != nil {
		return fmt.Errorf("worker topics: %w", err)
	}
	if d := ww.dups.Load(); d > 0 {
		res.note("run %d: %d duplicate alloc records on worker topics", run, d)
	}
	ww.mu.Lock()
	evals := len(ww.evals)
	ww.mu.Unlock()
	res.note("run %d: every one of the %d allocs found on its worker topic (read_committed), %d duplicates, %d distinct evals", run, ww.count.Load(), ww.dups.Load(), evals)
	if ww.count.Load() != int64(n) || evals != n {
		return fmt.Errorf("worker topics: %d distinct allocs of %d distinct evals, want %d of each: some eval was placed more than once", ww.count.Load(), evals, n)
	}
	return nil
}

// verifyShared reads the shared alloc topic (read_committed, every
// partition) and checks that every alloc is there exactly once, keyed by
// its worker, on the partition events.Topics.AllocTarget gives that worker.
func verifyShared(ctx context.Context, res *Result, run int, brokers []string, topics events.Topics, n int) error {
	chk, err := readShared(ctx, brokers, topics, n)
	if err != nil {
		return fmt.Errorf("shared alloc topic: %w", err)
	}
	res.note("run %d: shared alloc topic %s (%d partitions): %d distinct allocs of %d distinct evals (%d submitted), %d duplicates, %d on a wrong partition, %d with a key other than their worker",
		run, topics.SharedAllocs(), chk.partitions, chk.distinct, chk.evals, n, chk.dups, chk.misplaced, chk.badKey)
	if chk.distinct != int64(n) || chk.evals != int64(n) || chk.dups != 0 || chk.misplaced != 0 || chk.badKey != 0 {
		return fmt.Errorf("shared alloc topic: %d distinct allocs of %d distinct evals, want %d of each; %d duplicates, %d on a wrong partition, %d badly keyed",
			chk.distinct, chk.evals, n, chk.dups, chk.misplaced, chk.badKey)
	}
	return nil
}

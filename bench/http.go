package bench

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/line-sched/line/events"
)

// startSystem starts a fresh system under test (Options.Topology) in
// Out/<name>, healthy, with a client of conns connections to its commands.
func (r *Runner) startSystem(ctx context.Context, name string, conns int) (*system, *apiClient, func(), error) {
	dir, err := mkdir(r.o.Out, name)
	if err != nil {
		return nil, nil, nil, err
	}
	sys, err := startSystem(ctx, r.o.Launch, r.o.Topology, dir, r.o.MemoryLimit)
	if err != nil {
		return nil, nil, nil, err
	}
	api := newAPI(sys.commands, conns)
	cleanup := func() {
		api.close()
		_ = sys.stop(time.Minute)
		if !r.o.Keep {
			_ = os.RemoveAll(dir + "/data")
			_ = os.RemoveAll(dir + "/views")
		}
	}
	if err := api.waitHealthy(ctx, 2*time.Minute); err != nil {
		cleanup()
		return nil, nil, nil, err
	}
	return sys, api, cleanup, nil
}

// addProcesses records every process's peak RSS and, when cpu0 is not nil,
// the CPU seconds it used since cpu0.
func addProcesses(ctx context.Context, res *Result, sys *system, cpu0 map[string]float64) error {
	cpu1 := sys.cpu(ctx)
	for _, c := range sys.all() {
		st, err := c.status(ctx)
		if err != nil {
			return fmt.Errorf("%s status: %w", c.name(), err)
		}
		res.add(c.name()+" peak RSS", "MiB", mib(st.Peak()))
		if cpu0 != nil {
			res.add(c.name()+" CPU", "cpu-s", cpu1[c.name()]-cpu0[c.name()])
		}
	}
	return nil
}

// stopProfiles collects the CPU profiles started with sys.startCPU into
// Out/<name>.<role>.cpu.pprof and, when summarize, summarizes them.
func (r *Runner) stopProfiles(ctx context.Context, res *Result, sys *system, name string, summarize bool) error {
	paths, err := sys.stopCPU(ctx, fmt.Sprintf("%s/%s", r.o.Out, name))
	if err != nil {
		return err
	}
	if summarize {
		for _, c := range sys.all() {
			r.topProfile(res, paths[c.name()], "")
		}
	}
	return nil
}

// latency submits Rate single evals per second for Duration (open loop:
// each eval has its intended send time) and measures, per eval, the time
// from its intended send time to its alloc being readable (read_committed)
// on its worker topic.
func (r *Runner) latency(ctx context.Context) (*Result, error) {
	o := r.o
	res := newResult("latency")
	n := int(float64(o.Rate) * o.Duration.Seconds())
	capacity := int64(math.Ceil(float64(n) * 1.5 / float64(o.LatencyWorkers)))
	res.Params["rate"], res.Params["duration"], res.Params["workers"], res.Params["capacity"], res.Params["connections"] = o.Rate, o.Duration.String(), o.LatencyWorkers, capacity, o.LatencyConns
	topics, _ := events.NewTopics(benchDeployment)
	for run := 1; run <= o.Runs; run++ {
		if err := r.latencyRun(ctx, res, run, n, capacity, topics); err != nil {
			return res, err
		}
	}
	res.Params["topology"], res.Params["memory_limit"] = string(o.Topology), o.MemoryLimit
	res.gate("latency p99", "p99", 100, false, "ms")
	res.note("p50/p95/p99 run from each eval's intended send time (open loop: an eval queued in the load generator because all connections wait for answers counts against it); \"from request sent\" from when its POST was sent")
	return res, nil
}

func (r *Runner) latencyRun(ctx context.Context, res *Result, run, n int, capacity int64, topics events.Topics) error {
	o := r.o
	sys, api, cleanup, err := r.startSystem(ctx, fmt.Sprintf("latency-run%d", run), o.LatencyConns+2)
	if err != nil {
		return err
	}
	defer cleanup()
	datasets := o.LatencyWorkers / 3
	if err := api.createPool(ctx, "lat", o.Strategy, o.LocalityWait, o.Delivery); err != nil {
		return err
	}
	if err := api.registerWorkers(ctx, "lat", workerSpecs(o.LatencyWorkers, capacity, datasets), 16); err != nil {
		return err
	}
	w, err := watchAllocs(sys.kafka, topics, nil, true)
	if err != nil {
		return err
	}
	defer w.close()
	gen := newEvalGen(fmt.Sprintf("lat%d-", run), datasets, 1)
	specs := make([]evalSpec, n)
	for i := range specs {
		specs[i] = gen.next()
	}
	bodies := make([][]byte, n)
	for i, s := range specs {
		bodies[i] = appendEvalJSON(nil, s)
	}
	if o.Profile {
		if err := sys.startCPU(ctx); err != nil {
			return err
		}
	}
	cpu0 := sys.cpu(ctx)
	r.logf("latency run %d: %d evals at %d/s", run, n, o.Rate)
	period := time.Second / time.Duration(o.Rate)
	intended := make([]time.Time, n)
	sentAt := make([]time.Time, n)
	acks := make([]time.Duration, n)
	work := make(chan int, n)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		fails int
	)
	for range o.LatencyConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				s := time.Now()
				sentAt[i] = s
				status, body, err := api.do(ctx, http.MethodPost, "/v1/pools/lat/evals", bodies[i])
				acks[i] = time.Since(s)
				if err != nil || status != http.StatusAccepted {
					mu.Lock()
					fails++
					if first == nil {
						first = fmt.Errorf("eval %d: %d %s %v", i, status, body, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	t0 := time.Now().Add(50 * time.Millisecond)
	for i := range n {
		at := t0.Add(time.Duration(i) * period)
		intended[i] = at
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		work <- i
	}
	close(work)
	wg.Wait()
	sent := time.Since(t0)
	if first != nil {
		return fmt.Errorf("%d submissions failed, first: %w", fails, first)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	_, err = w.waitCount(wctx, int64(n), nil)
	cancel()
	if err != nil {
		return err
	}
	lat := make([]time.Duration, 0, n)
	fromSend := make([]time.Duration, 0, n)
	for i, s := range specs {
		at, ok := w.seenAt(s.ID)
		if !ok {
			return fmt.Errorf("alloc of eval %s not seen", s.ID)
		}
		lat = append(lat, at.Sub(intended[i]))
		fromSend = append(fromSend, at.Sub(sentAt[i]))
	}
	ms := durationsMs(lat)
	res.add("p50", "ms", Percentile(ms, 50))
	res.add("p95", "ms", Percentile(ms, 95))
	res.add("p99", "ms", Percentile(ms, 99))
	res.add("max", "ms", ms[len(ms)-1])
	sms := durationsMs(fromSend)
	res.add("p50 from request sent", "ms", Percentile(sms, 50))
	res.add("p99 from request sent", "ms", Percentile(sms, 99))
	ackMs := durationsMs(acks)
	res.add("submit ack p50", "ms", Percentile(ackMs, 50))
	res.add("submit ack p99", "ms", Percentile(ackMs, 99))
	res.add("achieved rate", "evals/s", float64(n)/sent.Seconds())
	if err := addProcesses(ctx, res, sys, cpu0); err != nil {
		return err
	}
	if rs, err := schedulerRounds(ctx, sys.kafka, topics.Events(), "lat"); err == nil && rs.Rounds > 0 {
		res.add("scheduler rounds", "rounds", float64(rs.Rounds))
		res.add("round: commit to next decision (p50)", "ms", rs.CommitToNextDecide[0])
		res.add("round: commit to next decision (p90)", "ms", rs.CommitToNextDecide[1])
		res.note("run %d rounds: %s", run, rs)
	}
	if o.Profile {
		if err := r.stopProfiles(ctx, res, sys, fmt.Sprintf("latency-run%d", run), run == 1); err != nil {
			return err
		}
	}
	r.logf("latency run %d: p50 %.1fms p95 %.1fms p99 %.1fms", run, Percentile(ms, 50), Percentile(ms, 95), Percentile(ms, 99))
	return nil
}

// ingest posts single evals from IngestConns connections in a closed loop
// (each sends its next request when the last is answered) to a pool
// without workers (the scheduler has nothing to place).
func (r *Runner) ingest(ctx context.Context) (*Result, error) {
	o := r.o
	res := newResult("ingest")
	res.Params["connections"], res.Params["duration"], res.Params["warmup"] = o.IngestConns, o.IngestDuration.String(), o.IngestWarmup.String()
	for run := 1; run <= o.Runs; run++ {
		if err := r.ingestRun(ctx, res, run); err != nil {
			return res, err
		}
	}
	res.gate("ingest requests/s", "requests/s", 10_000, true, "requests/s")
	res.Params["topology"], res.Params["memory_limit"] = string(o.Topology), o.MemoryLimit
	res.note("the pool has no workers, so the scheduler places nothing; the projector and the scheduler still fold every event (topology %s)", o.Topology)
	return res, nil
}

func (r *Runner) ingestRun(ctx context.Context, res *Result, run int) error {
	o := r.o
	sys, api, cleanup, err := r.startSystem(ctx, fmt.Sprintf("ingest-run%d", run), o.IngestConns)
	if err != nil {
		return err
	}
	defer cleanup()
	if err := api.createPool(ctx, "ing", o.Strategy, o.LocalityWait, o.Delivery); err != nil {
		return err
	}
	body := []byte(`{"size":1}`)
	start := time.Now()
	from, until := start.Add(o.IngestWarmup), start.Add(o.IngestWarmup+o.IngestDuration)
	profiling := false
	var cpu0 map[string]float64
	type stats struct {
		lat    []time.Duration
		errors int
		first  error
	}
	all := make([]stats, o.IngestConns)
	var wg sync.WaitGroup
	for c := range o.IngestConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := &all[c]
			for {
				s := time.Now()
				if !s.Before(until) || ctx.Err() != nil {
					return
				}
				status, b, err := api.do(ctx, http.MethodPost, "/v1/pools/ing/evals", body)
				d := time.Since(s)
				if err != nil || status != http.StatusAccepted {
					st.errors++
					if st.first == nil {
						st.first = fmt.Errorf("%d %s %v", status, b, err)
					}
					continue
				}
				if !s.Before(from) && s.Add(d).Before(until) {
					st.lat = append(st.lat, d)
				}
			}
		}()
	}
	time.Sleep(time.Until(from))
	cpu0 = sys.cpu(ctx)
	if o.Profile {
		profiling = sys.startCPU(ctx) == nil
	}
	wg.Wait()
	var lat []time.Duration
	errs := 0
	var first error
	for _, st := range all {
		lat = append(lat, st.lat...)
		errs += st.errors
		if first == nil {
			first = st.first
		}
	}
	if errs > 0 {
		res.note("run %d: %d requests failed, first: %v", run, errs, first)
	}
	if len(lat) == 0 {
		return fmt.Errorf("no request completed: %v", first)
	}
	ms := durationsMs(lat)
	res.add("requests/s", "requests/s", float64(len(lat))/o.IngestDuration.Seconds())
	res.add("p50", "ms", Percentile(ms, 50))
	res.add("p99", "ms", Percentile(ms, 99))
	if err := addProcesses(ctx, res, sys, cpu0); err != nil {
		return err
	}
	for _, c := range sys.services {
		if c.role == RoleIngest || c.role == RoleDev {
			if m := res.Get(c.name() + " CPU"); m != nil && m.Runs[len(m.Runs)-1] > 0 {
				cpu := m.Runs[len(m.Runs)-1]
				res.add(c.name()+" CPU per request", "µs", cpu/float64(len(lat))*1e6)
			}
		}
	}
	if profiling {
		if err := r.stopProfiles(ctx, res, sys, fmt.Sprintf("ingest-run%d", run), run == 1); err != nil {
			return err
		}
	}
	r.logf("ingest run %d: %.0f requests/s, p99 %.1fms", run, float64(len(lat))/o.IngestDuration.Seconds(), Percentile(ms, 99))
	return nil
}

package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/line-sched/line/audit"
	"github.com/line-sched/line/config"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/projections"
)

// replay measures, over the c1m history, `line audit` (audit.Replay: read,
// decode, fold, check) and a projector rebuild (projections: read, decode,
// fold, write the views to Pebble), in this process.
func (r *Runner) replay(ctx context.Context) (*Result, error) {
	o := r.o
	h := r.hist
	res := newResult("replay")
	res.Params["history_evals"], res.Params["history_workers"] = h.evals, h.workers
	if err := r.brokerOnly(ctx); err != nil {
		return res, err
	}
	cfg := config.Default()
	cfg.Deployment = benchDeployment
	cfg.Topics, _ = events.NewTopics(benchDeployment)
	for run := 1; run <= o.Runs; run++ {
		profile := o.Profile && run == 1
		var last audit.Progress
		stop := r.profileSelf(profile, "replay-audit")
		t := time.Now()
		rep, err := audit.Replay(ctx, audit.Options{Brokers: h.brokers, Deployment: benchDeployment,
			Progress: func(p audit.Progress) { last = p }})
		el := time.Since(t)
		stop(res)
		if err != nil {
			return res, fmt.Errorf("audit: %w", err)
		}
		if profile {
			p := r.path("replay-audit.heap.pprof")
			if err := writeHeap(p); err == nil {
				r.topProfile(res, p, "inuse_space")
			}
		}
		auditRate := float64(last.Events) / el.Seconds()
		res.add("audit events/s", "events/s", auditRate)
		res.add("audit elapsed", "s", el.Seconds())
		res.Params["events"] = last.Events
		if n := len(rep.Violations); n > 0 {
			res.note("run %d: the audit found %d violations, first: %v", run, n, rep.Violations[0])
		}
		rep = nil
		runtime.GC()

		dir, err := os.MkdirTemp(o.Out, "views-")
		if err != nil {
			return res, err
		}
		stop = r.profileSelf(profile, "replay-projector")
		t = time.Now()
		applied, err := rebuildViews(ctx, cfg, h.brokers, dir)
		el = time.Since(t)
		stop(res)
		_ = os.RemoveAll(dir)
		if err != nil {
			return res, fmt.Errorf("projector: %w", err)
		}
		res.add("projector events/s", "events/s", float64(applied)/el.Seconds())
		res.add("projector elapsed", "s", el.Seconds())
		r.logf("replay run %d: audit %.0f events/s, projector %.0f events/s", run, auditRate, float64(applied)/el.Seconds())
	}
	res.gate("replay: audit", "audit events/s", 200_000, true, "events/s")
	res.gate("replay: projector", "projector events/s", 200_000, true, "events/s")
	res.note("both read the events topic of the c1m history from the embedded broker running alone (line dev stopped) and run in the harness process")
	return res, nil
}

// brokerOnly stops the history's line dev, if it runs, and serves its data
// with the embedded broker alone: replay and takeover then measure
// themselves, not line dev's projector catching up.
func (r *Runner) brokerOnly(ctx context.Context) error {
	h := r.hist
	if h.dev != nil && h.dev.role == RoleBroker {
		return nil
	}
	if h.dev != nil {
		err := h.dev.stop(3 * time.Minute)
		h.dev = nil
		if err != nil {
			return err
		}
	}
	brk, err := startChild(ctx, r.o.Launch, RoleBroker, systemEnv(h.dir+"/data"), h.dir+"/broker.log")
	if err != nil {
		return err
	}
	h.dev, h.brokers = brk, brk.ready.Kafka
	return nil
}

// rebuildViews rebuilds the projector's views in dir from offset 0 and
// returns the number of events applied once caught up.
func rebuildViews(ctx context.Context, cfg config.Config, brokers []string, dir string) (int64, error) {
	p, err := projections.Open(ctx, projections.Options{Config: cfg, Brokers: brokers, Dir: dir, Rebuild: true})
	if err != nil {
		return 0, err
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(rctx) }()
	err = p.CatchUp(ctx)
	cancel()
	<-done
	st := p.Stats()
	if cerr := p.Close(); err == nil {
		err = cerr
	}
	return st.Applied, err
}

// profileSelf starts a CPU profile of this process; the returned func
// stops it and adds it to res.
func (r *Runner) profileSelf(on bool, name string) func(*Result) {
	if !on {
		return func(*Result) {}
	}
	p := r.path(name + ".cpu.pprof")
	f, err := os.Create(p)
	if err != nil {
		return func(*Result) {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return func(*Result) {}
	}
	return func(res *Result) {
		pprof.StopCPUProfile()
		f.Close()
		r.topProfile(res, p, "")
	}
}

func writeHeap(path string) error {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup("heap").WriteTo(f, 0)
}

// takeoverRuns, on the current history served by the broker alone, runs
// times: appends one new eval, starts a fresh scheduler process (no other
// member in the group) and measures the time until the eval's alloc is
// readable on its worker topic. Metric names start with prefix.
func (r *Runner) takeoverRuns(ctx context.Context, res *Result, runs int, prefix string) error {
	o := r.o
	h := r.hist
	topics, _ := events.NewTopics(benchDeployment)
	if err := r.brokerOnly(ctx); err != nil {
		return err
	}
	ends, err := committedEnd(ctx, h.brokers, topics.Events())
	if err != nil {
		return err
	}
	nparts := int32(len(ends))
	part := events.PartitionFor(h.pool, nparts)
	res.Params[prefix+"partition_offsets"] = ends[part]
	var total int64
	for _, e := range ends {
		total += e
	}
	res.Params[prefix+"events_topic_offsets"] = total
	for run := 1; run <= runs; run++ {
		from, err := workerTopicEnds(ctx, h.brokers, topics)
		if err != nil {
			return err
		}
		w, err := watchAllocs(h.brokers, topics, from, true)
		if err != nil {
			return err
		}
		id := fmt.Sprintf("takeover-%d-%d", run, time.Now().UnixNano())
		if _, err := appendEvent(ctx, h.brokers, topics, nparts, events.New(h.pool, events.Truncate(time.Now()),
			events.EvalSubmittedData{EvalID: id, Size: 1})); err != nil {
			w.close()
			return err
		}
		env := append(systemEnv(h.dir+"/data"), "LINE_KAFKA_BROKERS="+h.brokers[0], "LINE_SCHEDULER_ID=bench-takeover")
		if o.MemoryLimit != "" {
			env = append(env, "GOMEMLIMIT="+o.MemoryLimit) // as every line service of the bench
		}
		t0 := time.Now()
		s, err := startChild(ctx, o.Launch, RoleScheduler, env, fmt.Sprintf("%s/scheduler-run%d.log", h.dir, run))
		if err != nil {
			w.close()
			return err
		}
		profile := o.Profile && run == 1 && prefix == ""
		if profile {
			_ = s.startCPU(ctx)
		}
		var placed time.Time
		deadline := time.Now().Add(5 * time.Minute)
		for {
			if at, ok := w.seenAt(id); ok {
				placed = at
				break
			}
			if err := s.exited(); err != nil {
				w.close()
				return err
			}
			if time.Now().After(deadline) {
				w.close()
				_ = s.stop(time.Minute)
				return fmt.Errorf("run %d: no placement 5m after the scheduler started (log: %s)", run, s.log.Name())
			}
			time.Sleep(5 * time.Millisecond)
		}
		w.close()
		took := placed.Sub(t0)
		res.add(prefix+"takeover: start to placed", "s", took.Seconds())
		if at, ok := s.lineAt("partitions assigned"); ok {
			res.add(prefix+"start to partitions assigned", "s", at.Sub(t0).Seconds())
			res.add(prefix+"assigned to placed (rebuild+decide+commit)", "s", placed.Sub(at).Seconds())
		}
		st, err := s.status(ctx)
		if err == nil {
			res.add(prefix+"scheduler peak RSS", "MiB", mib(st.Peak()))
		}
		if profile {
			p := r.path("takeover.cpu.pprof")
			if err := s.stopCPU(ctx, p); err == nil {
				r.topProfile(res, p, "")
			}
			hp := r.path("takeover.heap.pprof")
			if err := s.heap(ctx, hp); err == nil {
				r.topProfile(res, hp, "inuse_space")
			}
		}
		r.logf("takeover %srun %d: placed %.2fs after the scheduler started (%d events on the partition)", prefix, run, took.Seconds(), ends[part])
		if err := s.stop(time.Minute); err != nil {
			return err
		}
	}
	return nil
}

// takeover measures a fresh scheduler taking over a partition with
// TakeoverEvents events of history (the size): one informational run
// on the c1m history if there is one (twice as many events at 1M evals),
// then a history of that size (a c1m run with fewer evals, unreported), on
// which the gated runs happen.
func (r *Runner) takeover(ctx context.Context) (*Result, error) {
	o := r.o
	res := newResult("takeover")
	evals := max((o.TakeoverEvents-o.Workers)/2, 1)
	if r.hist != nil && r.hist.evals > evals*11/10 {
		if err := r.takeoverRuns(ctx, res, 1, "c1m history: "); err != nil {
			return res, err
		}
	}
	if r.hist == nil || r.hist.evals != evals {
		r.logf("takeover: making a history of about %d events (c1m, 1 run, %d workers, %d evals)", o.TakeoverEvents, o.Workers, evals)
		r.dropHistory() // its broker and data are not needed any more
		ho := o
		ho.Evals = evals
		hres, err := r.c1mWith(ctx, ho, "takeover-history", 1, true)
		if hres != nil {
			hres.Scenario = "c1m (history for takeover)"
			hres.Elapsed = 0
			r.Results = append(r.Results, hres)
		}
		if err != nil {
			return res, err
		}
	}
	if err := r.takeoverRuns(ctx, res, o.Runs, ""); err != nil {
		return res, err
	}
	res.gate("takeover", "takeover: start to placed", 10, false, "s")
	res.note("the gated runs take over a partition of about %d events (%d workers registered, %d evals submitted and placed); \"c1m history:\" is one run on the c1m history, when one was left", o.TakeoverEvents, o.Workers, evals)
	res.note("a fresh scheduler process (cmd/scheduler's code: app.Scheduler) joins the group alone after the previous owner left, rebuilds the pool's partition from offset 0 and places one new eval; the time runs from exec to the alloc being readable on the worker topic")
	return res, nil
}

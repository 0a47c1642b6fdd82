package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/line-sched/line/api"
	"github.com/line-sched/line/client"
	"github.com/line-sched/line/events"
)

// consume reads the current identity's alloc topic and starts its allocs
// until ctx is done (nil), the heartbeats report the worker lost
// (errWorkerLost), or something fails for good.
func (a *agent) consume(ctx context.Context, lost <-chan error) error {
	id := a.identity()
	cons, err := client.ConsumeWorkerAllocs(a.cfg.Brokers, events.AllocTarget{Topic: id.Topic, Partition: id.Partition},
		id.Worker, id.Offset, a.cfg.KafkaOpts...)
	if err != nil {
		return err
	}
	defer cons.Close()
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case err := <-lost:
			cancel(err)
		case <-cctx.Done():
		}
	}()
	go a.checkKafka(cctx, cons)
	for {
		m, err := cons.Next(cctx)
		if err == nil {
			err = a.handle(cctx, &id, m)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if cause := context.Cause(cctx); cause != nil && !errors.Is(cause, context.Canceled) {
				return cause
			}
			return err
		}
	}
}

// checkKafka warns, every 10 seconds, while no broker answers: the
// consumer itself waits for them silently.
func (a *agent) checkKafka(ctx context.Context, cons *client.AllocConsumer) {
	for {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := cons.Ping(pctx)
		if err == nil {
			cancel()
			return
		}
		if ctx.Err() != nil {
			cancel()
			return
		}
		a.log.Warn("cannot reach Kafka; no alloc can arrive (check --brokers or LINE_KAFKA_BROKERS)",
			"brokers", strings.Join(a.cfg.Brokers, ","), "err", err)
		<-pctx.Done() // at most one warning per 10 seconds
		cancel()
	}
}

// expired reports whether rec's deadline has passed: the scheduler expires
// it (if it has not yet) and retries its eval, so it is not started.
func expired(rec events.AllocRecord) bool {
	return !rec.Deadline.IsZero() && time.Now().After(rec.Deadline)
}

// handle starts (or skips) one record of the alloc topic and saves the
// offset after it.
func (a *agent) handle(ctx context.Context, id *Identity, m client.Alloc) error {
	skip := func(msg string, args ...any) error {
		a.log.Warn(msg, append(args, "offset", m.Offset)...)
		return a.commit(id, m.Offset+1)
	}
	if m.Foreign {
		// Another worker's record on the shared alloc topic: move on
		// without writing the state file (the next save covers it).
		a.advance(id, m.Offset+1)
		return nil
	}
	if m.Err != nil {
		return skip("skipping a record that is not an alloc", "err", m.Err)
	}
	rec := m.Record
	switch {
	case rec.PoolID != id.Pool || rec.WorkerID != id.Worker:
		// On the shared alloc topic a worker of another pool may have
		// the same id (the key): like any foreign record, skipped
		// without a save.
		a.log.Debug("skipping an alloc of another worker", "alloc", rec.AllocID, "pool", rec.PoolID, "worker", rec.WorkerID, "offset", m.Offset)
		a.advance(id, m.Offset+1)
		return nil
	case a.started(rec.AllocID):
		return skip("skipping an alloc seen before", "alloc", rec.AllocID)
	case rec.Size > a.cfg.Capacity:
		return skip("skipping an alloc larger than the capacity", "alloc", rec.AllocID, "size", rec.Size)
	case expired(rec):
		return skip("skipping an alloc whose deadline passed before it could start; it will be retried",
			"alloc", rec.AllocID, "eval", rec.EvalID, "deadline", rec.Deadline)
	}
	r := &run{rec: rec}
	if err := a.gate.acquire(ctx, r); err != nil {
		return err // stopping: the alloc stays after the saved offset
	}
	if expired(rec) {
		a.gate.release(r)
		return skip("skipping an alloc whose deadline passed while it waited for capacity; it will be retried",
			"alloc", rec.AllocID, "eval", rec.EvalID, "deadline", rec.Deadline)
	}
	startErr := start(a.cfg.Command, a.cfg.Env, r, a.cfg.Output, &a.outMu)
	a.markStarted(rec.AllocID)
	if err := a.commit(id, m.Offset+1); err != nil {
		if startErr == nil {
			a.wg.Add(1)
			go a.finish(r, func() outcome { return wait(r) })
		} else {
			a.gate.release(r)
		}
		return err
	}
	a.wg.Add(1)
	if startErr != nil {
		a.log.Error("cannot start the command", "alloc", rec.AllocID, "eval", rec.EvalID, "err", startErr)
		go a.finish(r, func() outcome {
			return outcome{message: tailString("cannot start the command: "+startErr.Error(), MaxMessage)}
		})
		return nil
	}
	a.log.Info("alloc started", "alloc", rec.AllocID, "eval", rec.EvalID, "size", rec.Size,
		"attempt", rec.Attempt, "pid", r.cmd.Process.Pid)
	if time.Until(rec.Deadline) < 2*a.heartbeatInterval() {
		a.kickHeartbeat()
	}
	go a.finish(r, func() outcome { return wait(r) })
	if a.cfg.OnStarted != nil {
		a.cfg.OnStarted(rec)
	}
	return nil
}

func (a *agent) started(alloc string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen[alloc]
}

func (a *agent) markStarted(alloc string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seen == nil {
		a.seen = make(map[string]bool)
	}
	a.seen[alloc] = true
}

func (a *agent) kickHeartbeat() {
	a.mu.Lock()
	k := a.kick
	a.mu.Unlock()
	if k != nil {
		k()
	}
}

// advance moves the next offset to read to off without saving it.
func (a *agent) advance(id *Identity, off int64) {
	id.Offset = off
	a.mu.Lock()
	if a.id.Worker == id.Worker {
		a.id.Offset = off
	}
	a.mu.Unlock()
}

// commit saves off as the next offset to read.
func (a *agent) commit(id *Identity, off int64) error {
	id.Offset = off
	if err := a.state.save(*id); err != nil {
		return err
	}
	a.mu.Lock()
	if a.id.Worker == id.Worker {
		a.id.Offset = off
	}
	a.mu.Unlock()
	return nil
}

// finish waits for r's outcome, completes the alloc, then frees its
// capacity.
func (a *agent) finish(r *run, wait func() outcome) {
	defer a.wg.Done()
	defer a.gate.release(r)
	o := wait()
	a.complete(r, o)
}

// complete reports o to the server, retrying while it cannot be reached,
// until the drain ends.
func (a *agent) complete(r *run, o outcome) {
	rec := r.rec
	req := api.CompleteAllocRequest{Status: api.AllocStatusFailed, ExitCode: o.exitCode}
	if o.succeeded {
		req.Status = api.AllocStatusSucceeded
	}
	if o.message != "" {
		req.Message = &o.message
	}
	took := time.Duration(0)
	if !r.started.IsZero() {
		took = time.Since(r.started).Round(time.Millisecond)
	}
	exit := "-"
	if o.exitCode != nil {
		exit = fmt.Sprint(*o.exitCode)
	}
	err := a.retry(a.hard, "complete alloc "+rec.AllocID, func(ctx context.Context) error {
		_, err := a.cfg.Client.CompleteAlloc(ctx, rec.PoolID, rec.AllocID, req)
		return err
	})
	switch {
	case err == nil:
		a.log.Info("alloc completed", "alloc", rec.AllocID, "eval", rec.EvalID, "status", req.Status, "exit", exit, "took", took)
	case a.hard.Err() != nil:
		a.log.Warn("alloc not completed: the agent stopped; it will expire and be retried",
			"alloc", rec.AllocID, "eval", rec.EvalID, "status", req.Status, "exit", exit)
	case client.IsConflict(err) || client.IsNotFound(err):
		a.log.Warn("alloc ended on the server before its completion (expired: were heartbeats late?)",
			"alloc", rec.AllocID, "eval", rec.EvalID, "status", req.Status, "err", err)
	default:
		a.log.Error("complete alloc", "alloc", rec.AllocID, "eval", rec.EvalID, "err", err)
	}
}

// drain waits for the running allocs, up to the drain timeout or an abort;
// then it kills what still runs.
func (a *agent) drain(hardCancel context.CancelFunc) error {
	runs, used := a.gate.snapshot()
	if len(runs) == 0 {
		a.log.Info("stopped: no alloc running")
		return nil
	}
	a.log.Info("stopping: no new allocs; waiting for the running ones", "running", len(runs), "size", used,
		"drain_timeout", a.cfg.DrainTimeout)
	t := time.NewTimer(a.cfg.DrainTimeout)
	defer t.Stop()
	select {
	case <-a.gate.idle():
		a.log.Info("stopped: every running alloc finished and was completed")
		return nil
	case <-t.C:
	case <-a.cfg.Abort:
	}
	hardCancel()
	runs, _ = a.gate.snapshot()
	for _, r := range runs {
		if r.cmd != nil {
			killGroup(r.cmd)
		}
	}
	a.log.Warn("stopped: killed the allocs still running", "killed", len(runs))
	return fmt.Errorf("%d %w", len(runs), ErrDrainTimeout)
}

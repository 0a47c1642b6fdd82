// Package agent is line's worker agent (`line worker run`): it registers a
// worker in a pool (or re-attaches to the one it registered before), keeps
// it alive with heartbeats, reads the worker's alloc topic from Kafka and
// runs a command for every alloc, never more at once than the worker's
// capacity, then completes the alloc with the command's exit status and
// the tail of its output.
//
// # Identity and offsets
//
// The agent keeps a state file (StatePath: by default
// $XDG_STATE_HOME/line/worker-<pool>[-<worker-id>].json, locked while the
// agent runs) with the worker's pool, id, alloc topic and capacity, and the
// next offset of the alloc topic to read. It uses manual offsets, not a
// consumer group: the worker's partition is known (partition 0 of its own
// topic, or, in a pool with shared delivery, the partition of the shared
// alloc topic and the start offset the registration answered), the offset
// only means something together with the identity beside it, and a
// restarted agent starts reading at once, without waiting for a group to
// rebalance away from its previous incarnation. On the shared topic the
// records of other workers are skipped without saving the offset; the
// next save covers them.
//
// For each alloc, in offset order, the agent waits for free capacity,
// starts the command, and only then writes offset+1 to the state file
// (written to a temporary file, fsynced, renamed). So:
//
//   - an alloc that started is never started again by a restarted agent:
//     the restart reads from after it (the one exception is a crash in the
//     instant between starting the process and writing the file);
//   - an alloc that never started is not lost: a restart that re-attaches
//     reads it again; if the worker expired meanwhile, the scheduler
//     expires the alloc and requeues its eval on another worker.
//
// Records that are not allocs of this worker, repeated alloc ids, and
// allocs whose deadline passed before they could start (the scheduler has
// expired them, or is about to, and will retry them) are skipped; their
// offsets are saved like the others.
//
// On start, a saved identity of the same pool and capacity is re-attached
// when a heartbeat for it succeeds; a 404 (the worker expired) registers a
// new worker, with a server-generated id (the expired worker's topic is
// being deleted, so its id is not reused).
//
// # Stopping
//
// When the context of Run is cancelled (SIGTERM, Ctrl-C), the agent stops
// taking allocs and waits for the running ones to finish and be completed,
// heartbeating meanwhile, for at most Config.DrainTimeout. What is still
// running then is killed and not completed: its allocs expire and their
// evals are retried elsewhere. Allocs placed on the worker but not started
// stay on its topic for a restart, or are requeued when the worker
// expires.
//
// Commands run in their own process group (a Ctrl-C reaches the agent,
// not them) and, on Linux, die with the agent if it is killed.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/line-sched/line/api"
	"github.com/line-sched/line/client"
	"github.com/line-sched/line/events"
)

// Config configures an agent.
type Config struct {
	// Client calls the line server.
	Client *client.Client
	// Brokers are the Kafka brokers that carry the alloc topics.
	Brokers []string
	// KafkaOpts are extra franz-go options (TLS, SASL, ...).
	KafkaOpts []kgo.Opt
	// Pool to work in.
	Pool string
	// WorkerID is the id asked for at the first registration; empty lets
	// the server choose. It also names the state file.
	WorkerID string
	// Capacity is the worker's capacity: the sum of the sizes of the
	// allocs running at once never exceeds it.
	Capacity int64
	// Datasets the worker holds, reported with every heartbeat.
	Datasets []string
	// Command and its arguments, run for every alloc with LINE_ALLOC_ID,
	// LINE_EVAL_ID, LINE_POOL_ID, LINE_WORKER_ID, LINE_DATASET,
	// LINE_SIZE, LINE_ATTEMPT and LINE_PAYLOAD in its environment.
	Command []string
	// Env is the environment the command gets besides those; nil means
	// the agent's own.
	Env []string
	// StateDir holds the state file; empty means DefaultStateDir().
	StateDir string
	// Heartbeat is the interval between heartbeats; 0 means a third of
	// the worker TTL, as the server's answers imply.
	Heartbeat time.Duration
	// DrainTimeout bounds the wait for running allocs when stopping;
	// 0 means 1 minute.
	DrainTimeout time.Duration
	// Abort, if not nil, ends a drain at once when closed (a second
	// Ctrl-C): what runs is killed, as at the drain timeout.
	Abort <-chan struct{}
	// Output receives the commands' output, line by line, each line
	// prefixed with "[alloc id] "; nil discards it. The completion
	// carries the tail of it either way.
	Output io.Writer
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// OnStarted, if not nil, is called after an alloc's command started
	// and its offset was saved (tests use it).
	OnStarted func(events.AllocRecord)
}

// ErrDrainTimeout is returned by Run when allocs were still running at the
// end of the drain timeout (or at an abort) and were killed.
var ErrDrainTimeout = errors.New("allocs still running at the end of the drain were killed; they will expire and be retried")

// errWorkerLost ends a session whose worker the server no longer knows.
var errWorkerLost = errors.New("worker lost")

type agent struct {
	cfg   Config
	log   *slog.Logger
	state *stateFile
	gate  *gate
	outMu sync.Mutex
	// hard lives until the drain ends: completions and heartbeats use it.
	hard context.Context
	wg   sync.WaitGroup

	mu       sync.Mutex
	id       Identity
	seen     map[string]bool // alloc ids started under id
	interval time.Duration   // current heartbeat interval (for kicks)
	kick     func()          // asks the current Heartbeater for a heartbeat now
}

// Run runs the agent until ctx is cancelled and the drain is over. It
// returns nil after a clean drain, ErrDrainTimeout if allocs had to be
// killed, and other errors when it cannot work at all (no such pool, the
// state file is in use, ...).
func Run(ctx context.Context, cfg Config) error {
	if err := validate(&cfg); err != nil {
		return err
	}
	st, err := openState(StatePath(cfg.StateDir, cfg.Pool, cfg.WorkerID))
	if err != nil {
		return err
	}
	defer st.close()
	hard, hardCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hardCancel()
	a := &agent{cfg: cfg, log: cfg.Logger, state: st, gate: newGate(cfg.Capacity), hard: hard}
	if err := a.attach(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	// Heartbeats run until the drain is over, for whichever identity is
	// current.
	hbCtx, hbStop := context.WithCancel(hard)
	lost := make(chan error, 1)
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		a.heartbeat(hbCtx, lost)
	}()
	var runErr error
	for {
		err := a.consume(ctx, lost)
		if errors.Is(err, errWorkerLost) && ctx.Err() == nil {
			a.log.Warn("the server no longer knows this worker (it expired); registering a new one",
				"pool", cfg.Pool, "worker", a.identity().Worker)
			if err := a.register(ctx); err != nil {
				if ctx.Err() == nil {
					runErr = err
				}
				break
			}
			continue
		}
		if !errors.Is(err, errWorkerLost) {
			runErr = err
		}
		break
	}
	derr := a.drain(hardCancel)
	hbStop()
	<-hbDone
	a.wg.Wait()
	return errors.Join(runErr, derr)
}

func validate(cfg *Config) error {
	switch {
	case cfg.Client == nil:
		return errors.New("agent: no client")
	case len(cfg.Brokers) == 0:
		return errors.New("no Kafka brokers: set --brokers or LINE_KAFKA_BROKERS")
	case len(cfg.Command) == 0:
		return errors.New("no command to run: give it after --, e.g. line worker run --pool P --capacity 4 -- ./work.sh")
	case cfg.Capacity < 1 || cfg.Capacity > math.MaxInt32:
		return fmt.Errorf("capacity %d must be between 1 and %d", cfg.Capacity, math.MaxInt32)
	}
	if err := events.ValidateID(events.PoolID, cfg.Pool); err != nil {
		return err
	}
	if cfg.WorkerID != "" {
		if err := events.ValidateID(events.WorkerID, cfg.WorkerID); err != nil {
			return err
		}
	}
	for _, d := range cfg.Datasets {
		if err := events.ValidateID(events.DatasetID, d); err != nil {
			return err
		}
	}
	if cfg.StateDir == "" {
		cfg.StateDir = DefaultStateDir()
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = time.Minute
	}
	if cfg.Env == nil {
		cfg.Env = os.Environ()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return nil
}

// datasets is the datasets field of a heartbeat: absent without datasets.
func (a *agent) datasets() *[]string {
	if len(a.cfg.Datasets) == 0 {
		return nil
	}
	return &a.cfg.Datasets
}

func (a *agent) identity() Identity {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.id
}

func (a *agent) setIdentity(id Identity) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if id.Worker != a.id.Worker {
		a.seen = make(map[string]bool)
	}
	a.id = id
}

// retry calls f until it succeeds, fails for good, or ctx is done;
// temporary failures (no answer, 503) are logged and retried with backoff.
func (a *agent) retry(ctx context.Context, what string, f func(context.Context) error) error {
	backoff := 250 * time.Millisecond
	for {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := f(cctx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
		if !client.Temporary(err) && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		wait := backoff
		if e := client.AsError(err); e != nil && e.RetryAfter > wait {
			wait = e.RetryAfter
		}
		hint := ""
		if client.IsConnError(err) {
			hint = " (is the line server running? check --addr)"
		}
		a.log.Warn(what+" failed; retrying"+hint, "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// attach re-attaches the saved identity if the server still knows it, and
// registers a new worker otherwise.
func (a *agent) attach(ctx context.Context) error {
	saved, err := a.state.load()
	if err != nil {
		return err
	}
	if saved != nil && saved.Pool == a.cfg.Pool && saved.Capacity == a.cfg.Capacity && saved.Worker != "" {
		var res *api.HeartbeatAccepted
		err := a.retry(ctx, "heartbeat of the saved worker", func(ctx context.Context) error {
			var err error
			res, err = a.cfg.Client.Heartbeat(ctx, saved.Pool, saved.Worker, api.HeartbeatRequest{Datasets: a.datasets()})
			return err
		})
		switch {
		case err == nil:
			a.setIdentity(*saved)
			a.setInterval(time.Until(res.Deadline))
			a.log.Info("re-attached to the saved worker", "pool", saved.Pool, "worker", saved.Worker,
				"topic", saved.Topic, "partition", saved.Partition, "offset", saved.Offset, "state", a.state.path)
			return nil
		case client.CodeOf(err) == "worker_not_found":
			a.log.Info("the saved worker expired; registering a new one", "pool", saved.Pool, "worker", saved.Worker)
		default:
			return err
		}
	} else if saved != nil && saved.Worker != "" {
		a.log.Info("the saved worker does not match this pool or capacity; registering a new one",
			"saved_pool", saved.Pool, "saved_capacity", saved.Capacity, "worker", saved.Worker)
	}
	if saved != nil {
		a.setIdentity(Identity{Generated: saved.Generated || saved.Worker != ""})
	}
	return a.register(ctx)
}

// register registers a new worker and saves its identity.
func (a *agent) register(ctx context.Context) error {
	prev := a.identity()
	req := api.RegisterWorkerRequest{Capacity: a.cfg.Capacity}
	if len(a.cfg.Datasets) > 0 {
		req.Datasets = &a.cfg.Datasets
	}
	if a.cfg.WorkerID != "" && !prev.Generated && prev.Worker == "" {
		req.WorkerId = &a.cfg.WorkerID
	}
	var res *api.WorkerRegistered
	sent := time.Now()
	err := a.retry(ctx, "register worker", func(ctx context.Context) error {
		var err error
		sent = time.Now()
		res, err = a.cfg.Client.RegisterWorker(ctx, a.cfg.Pool, req)
		return err
	})
	if err != nil {
		if client.CodeOf(err) == "worker_exists" {
			return fmt.Errorf("%w\nanother agent runs this worker, or its state file is not in %s; choose another --worker-id or --state-dir", err, a.cfg.StateDir)
		}
		return err
	}
	id := Identity{Addr: a.cfg.Client.Addr(), Pool: res.PoolId, Worker: res.WorkerId, Topic: res.Topic,
		Partition: res.Partition, Offset: res.StartOffset, Delivery: a.delivery(ctx, res.PoolId, res.Position),
		Capacity: res.Capacity, Registered: time.Now().UTC(), Generated: true}
	if err := a.state.save(id); err != nil {
		return err
	}
	a.setIdentity(id)
	a.setInterval(res.Deadline.Sub(sent))
	a.log.Info("registered worker", "pool", id.Pool, "worker", id.Worker, "capacity", id.Capacity,
		"delivery", id.Delivery, "topic", id.Topic, "partition", id.Partition, "offset", id.Offset, "state", a.state.path)
	return nil
}

// delivery asks the server for the pool's delivery mode, from a view that
// has applied the registration at pos. It is informational (the
// registration says where the allocs arrive, and records of other workers
// are skipped in either mode): on failure it warns and answers "".
func (a *agent) delivery(ctx context.Context, pool, pos string) string {
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, _, err := a.cfg.Client.GetPool(qctx, pool, client.Q{Index: pos, Wait: 5 * time.Second})
	if err != nil {
		a.log.Warn("cannot read the pool's delivery mode; reading the alloc topic the registration named", "pool", pool, "err", err)
		return ""
	}
	return string(p.Delivery)
}

func (a *agent) setInterval(ttl time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cfg.Heartbeat > 0 {
		a.interval = a.cfg.Heartbeat
		return
	}
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	a.interval = max(ttl/3, client.MinHeartbeatInterval)
}

func (a *agent) heartbeatInterval() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.interval
}

// heartbeat keeps the current identity alive until ctx is done. When the
// server answers that the worker is gone, it reports on lost and waits for
// a new identity.
func (a *agent) heartbeat(ctx context.Context, lost chan<- error) {
	for ctx.Err() == nil {
		id := a.identity()
		hb := &client.Heartbeater{
			Client: a.cfg.Client, Pool: id.Pool, Worker: id.Worker,
			Interval: a.cfg.Heartbeat, TTL: 3 * a.heartbeatInterval(),
			Report: func() api.HeartbeatRequest {
				allocs := a.gate.allocs(id.Worker)
				return api.HeartbeatRequest{Datasets: a.datasets(), Allocs: &allocs}
			},
			OnResult: func(res *api.HeartbeatAccepted, err error) {
				if err != nil {
					if client.Temporary(err) || errors.Is(err, context.DeadlineExceeded) {
						a.log.Warn("heartbeat failed; retrying", "worker", id.Worker, "err", err)
					}
					return
				}
				a.log.Debug("heartbeat", "worker", id.Worker, "deadline", res.Deadline)
			},
		}
		a.mu.Lock()
		a.kick = hb.Kick
		a.mu.Unlock()
		err := hb.Run(ctx)
		if err == nil {
			return // ctx done
		}
		if client.CodeOf(err) == "worker_not_found" {
			err = errWorkerLost
		} else {
			err = fmt.Errorf("heartbeat of worker %s: %w", id.Worker, err)
		}
		select {
		case lost <- err:
		default:
		}
		// Wait for a new identity (or the end).
		for ctx.Err() == nil && a.identity().Worker == id.Worker {
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

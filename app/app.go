// Package app wires line's services together: the same code runs each one
// as its own process (cmd/ingest, cmd/scheduler, cmd/projector) or all of
// them in one process on an embedded broker (line dev, where ingest's
// commands and the projector's queries share one HTTP server).
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/line-sched/line/bootstrap"
	"github.com/line-sched/line/broker"
	"github.com/line-sched/line/config"
	"github.com/line-sched/line/httpapi"
	"github.com/line-sched/line/ingest"
	"github.com/line-sched/line/procprio"
	"github.com/line-sched/line/projections"
	"github.com/line-sched/line/schedloop"
)

// Ingest runs the HTTP ingest on ln until ctx is done: it makes sure the
// deployment's topics exist, replays the log into its live fold, then
// serves.
func Ingest(ctx context.Context, cfg config.Config, brokers []string, ln net.Listener, log *slog.Logger) error {
	if err := bootstrap.EnsureTopics(ctx, cfg, brokers); err != nil {
		return err
	}
	svc, err := ingest.New(ctx, ingest.Options{Config: cfg, Brokers: brokers, Logger: log})
	if err != nil {
		return err
	}
	defer svc.Close()
	e, err := httpapi.New(httpapi.Options{Ingest: svc, Logger: log, PlainHTTP: cfg.PlainHTTP})
	if err != nil {
		return err
	}
	log.Info("HTTP API ready", "addr", "http://"+ln.Addr().String())
	return httpapi.Serve(ctx, e, ln)
}

// DevAddrs are where line dev listens, once started.
type DevAddrs struct {
	Kafka []string
	HTTP  string
}

// Dev runs the whole system in one process: an embedded broker (unless
// cfg.Brokers names an external Kafka) and every service. ready, if not
// nil, receives the addresses once everything listens.
func Dev(ctx context.Context, cfg config.Config, log *slog.Logger, ready func(DevAddrs)) (err error) {
	brokers := cfg.Brokers
	if len(brokers) == 0 {
		emb, err := broker.StartEmbedded(broker.EmbeddedConfig{
			DataDir: cfg.DataDir, Addr: cfg.DevKafkaAddr, SyncWrites: cfg.DevSyncWrites,
			Logf: func(format string, args ...any) { log.Warn(fmt.Sprintf(format, args...), "component", "kafka") },
		})
		if err != nil {
			return err
		}
		defer func() {
			if cerr := emb.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("close embedded kafka: %w", cerr))
			}
		}()
		brokers = emb.Addrs()
		log.Info("embedded kafka ready", "addr", brokers[0], "data_dir", cfg.DataDir, "sync_writes", cfg.DevSyncWrites)
	} else {
		log.Info("using external kafka", "brokers", brokers)
	}
	ln, err := httpapi.Listen(cfg.HTTPAddr)
	if err != nil {
		return err
	}
	if ready != nil {
		ready(DevAddrs{Kafka: brokers, HTTP: ln.Addr().String()})
	}
	return runAll(ctx,
		func(ctx context.Context) error { return devAPI(ctx, cfg, brokers, ln, log) },
		func(ctx context.Context) error { return Scheduler(ctx, cfg, brokers, log) },
	)
}

// devAPI serves line dev's HTTP API on ln: ingest's commands and the
// projector's queries on one echo server. The views live in
// <DataDir>/views; views that cannot be resumed against the log are
// rebuilt.
func devAPI(ctx context.Context, cfg config.Config, brokers []string, ln net.Listener, log *slog.Logger) error {
	if err := bootstrap.EnsureTopics(ctx, cfg, brokers); err != nil {
		return err
	}
	svc, err := ingest.New(ctx, ingest.Options{Config: cfg, Brokers: brokers, Logger: log})
	if err != nil {
		return err
	}
	defer svc.Close()
	proj, err := projections.Open(ctx, projections.Options{Config: cfg, Brokers: brokers,
		Dir: filepath.Join(cfg.DataDir, "views"), RebuildIfStale: true, Logger: log})
	if err != nil {
		return err
	}
	defer proj.Close()
	e, err := httpapi.New(httpapi.Options{Ingest: svc, Queries: proj, Logger: log, PlainHTTP: cfg.PlainHTTP})
	if err != nil {
		return err
	}
	log.Info("HTTP API ready (commands and queries)", "addr", "http://"+ln.Addr().String())
	return runAll(ctx, proj.Run, func(ctx context.Context) error { return httpapi.Serve(ctx, e, ln) })
}

// ProjectorOptions configure the projector service.
type ProjectorOptions struct {
	// Dir holds the views; empty means cfg.ViewsDir() (LINE_VIEW_DIR).
	Dir string
	// Rebuild wipes the views and rebuilds them from offset 0.
	Rebuild bool
}

// Projector runs the projector until ctx is done: it folds the events
// topic (every partition) into its views in Pebble and serves the queries
// on ln (commands get 404 there: they go to ingest).
func Projector(ctx context.Context, cfg config.Config, brokers []string, ln net.Listener, log *slog.Logger, opts ProjectorOptions) error {
	if cfg.ProjectorNice != 0 {
		// Views are eventually consistent: on a shared machine, the
		// placement path gets the CPU first.
		if err := procprio.Renice(os.Getpid(), cfg.ProjectorNice); err != nil {
			log.Warn("cannot lower the projector's CPU priority; it competes with the other services on this machine (set LINE_PROJECTOR_NICE=0 to silence this)", "nice", cfg.ProjectorNice, "err", err)
		} else {
			log.Info("projector runs at a lower CPU priority", "nice", cfg.ProjectorNice)
		}
	}
	if err := bootstrap.EnsureTopics(ctx, cfg, brokers); err != nil {
		return err
	}
	dir := opts.Dir
	if dir == "" {
		dir = cfg.ViewsDir()
	}
	proj, err := projections.Open(ctx, projections.Options{Config: cfg, Brokers: brokers, Dir: dir,
		Rebuild: opts.Rebuild, Logger: log})
	if err != nil {
		return err
	}
	defer proj.Close()
	e, err := httpapi.New(httpapi.Options{Queries: proj, Logger: log})
	if err != nil {
		return err
	}
	log.Info("query API ready", "addr", "http://"+ln.Addr().String(), "views", dir)
	return runAll(ctx, proj.Run, func(ctx context.Context) error { return httpapi.Serve(ctx, e, ln) })
}

// runAll runs every service until ctx is done or one of them fails; then it
// stops the others and returns every error.
func runAll(ctx context.Context, services ...func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(services))
	for _, s := range services {
		go func() {
			err := s(ctx)
			cancel()
			errc <- err
		}()
	}
	var errs []error
	for range services {
		if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Scheduler runs one scheduler instance until ctx is done.
func Scheduler(ctx context.Context, cfg config.Config, brokers []string, log *slog.Logger) error {
	if err := bootstrap.EnsureTopics(ctx, cfg, brokers); err != nil {
		return err
	}
	log.Info("scheduler running", "group", cfg.Deployment+"-scheduler")
	// A loop whose transactional producer failed (franz-go's errors from
	// ending a transaction are final for that producer) is replaced by a
	// new one with the same id: it fences what is left of the old one,
	// rebuilds its partitions from the log and goes on. The log is the
	// truth, so nothing is lost or placed twice.
	for backoff := time.Second; ; backoff = min(2*backoff, 30*time.Second) {
		err := runSchedulerOnce(ctx, cfg, brokers, log)
		if ctx.Err() != nil {
			return nil
		}
		log.Error("scheduler loop failed; starting a new one", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}
}

// runSchedulerOnce runs one scheduler loop until ctx is done or it fails.
func runSchedulerOnce(ctx context.Context, cfg config.Config, brokers []string, log *slog.Logger) error {
	loop, err := schedloop.New(schedloop.Options{Config: cfg, Brokers: brokers, Logger: log})
	if err != nil {
		return err
	}
	defer loop.Close()
	if err := loop.Run(ctx); err != nil {
		return err
	}
	if ctx.Err() == nil {
		return errors.New("scheduler loop stopped")
	}
	return nil
}

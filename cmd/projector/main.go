// Command projector folds the events topic of an external Kafka
// (LINE_KAFKA_BROKERS) into views stored in Pebble (LINE_VIEW_DIR, default
// <LINE_DATA_DIR>/views) and serves the queries of the HTTP API on
// LINE_HTTP_ADDR. Every instance reads every partition and keeps views of
// its own; run as many as the queries need. --rebuild wipes the views and
// rebuilds them from offset 0. For a single-process setup on an embedded
// broker, use `line dev`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/line-sched/line/app"
	"github.com/line-sched/line/config"
	"github.com/line-sched/line/httpapi"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "projector:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("projector", flag.ContinueOnError)
	rebuild := fs.Bool("rebuild", false, "wipe the views and rebuild them from offset 0")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: projector [--rebuild]

Folds the events topic into views (Pebble) and serves the queries.

Environment:
  LINE_KAFKA_BROKERS   Kafka to read (required)
  LINE_VIEW_DIR        directory of the views (<LINE_DATA_DIR>/views)
  LINE_HTTP_ADDR       HTTP address of the queries (127.0.0.1:8080)
  LINE_DEPLOYMENT      topic prefix (line)

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (see --help)", fs.Args())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := config.FromEnv()
	if err != nil {
		return err
	}
	if len(cfg.Brokers) == 0 {
		return errors.New("LINE_KAFKA_BROKERS is not set: point it at Kafka (host:port,...), or run `line dev` for everything on an embedded broker")
	}
	ln, err := httpapi.Listen(cfg.HTTPAddr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	return app.Projector(ctx, cfg, cfg.Brokers, ln, log, app.ProjectorOptions{Rebuild: *rebuild})
}

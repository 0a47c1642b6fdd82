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

	"github.com/line-sched/line/app"
	"github.com/line-sched/line/config"
	"github.com/line-sched/line/httpapi"
)

func main() {
	rebuild, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "projector:", err)
		os.Exit(2)
	}
	app.Main("projector", func(ctx context.Context, cfg config.Config, log *slog.Logger) error {
		ln, err := httpapi.Listen(cfg.HTTPAddr)
		if err != nil {
			return err
		}
		return app.Projector(ctx, cfg, cfg.Brokers, ln, log, app.ProjectorOptions{Rebuild: rebuild})
	})
}

// parseFlags reads --rebuild; --help prints the usage and exits 0.
func parseFlags(args []string) (rebuild bool, err error) {
	fs := flag.NewFlagSet("projector", flag.ContinueOnError)
	fs.BoolVar(&rebuild, "rebuild", false, "wipe the views and rebuild them from offset 0")
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
			os.Exit(0)
		}
		return false, err
	}
	if fs.NArg() > 0 {
		return false, fmt.Errorf("unexpected arguments %q (see --help)", fs.Args())
	}
	return rebuild, nil
}

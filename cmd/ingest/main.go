// Command ingest serves line's HTTP commands and appends their events to an
// external Kafka (LINE_KAFKA_BROKERS). For a single-process setup on an
// embedded broker, use `line dev`.
package main

import (
	"context"
	"errors"
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
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ingest:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := config.FromEnv()
	if err != nil {
		return err
	}
	if len(cfg.Brokers) == 0 {
		return errors.New("LINE_KAFKA_BROKERS is not set: point it at Kafka (host:port,...), or run `line dev` for everything on an embedded broker")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ln, err := httpapi.Listen(cfg.HTTPAddr)
	if err != nil {
		return err
	}
	return app.Ingest(ctx, cfg, cfg.Brokers, ln, log)
}

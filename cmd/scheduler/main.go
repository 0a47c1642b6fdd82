// Command scheduler runs one scheduler instance against an external Kafka
// (LINE_KAFKA_BROKERS). Run several: they share the events partitions
// through a consumer group, and transactions fence any zombie. For a
// single-process setup on an embedded broker, use `line dev`.
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
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "scheduler:", err)
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
	return app.Scheduler(ctx, cfg, cfg.Brokers, slog.New(slog.NewTextHandler(os.Stderr, nil)))
}

package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/line-sched/line/config"
)

// Main runs one service as its own process: settings from the environment,
// an external Kafka (LINE_KAFKA_BROKERS) required, SIGINT or SIGTERM to
// stop. On an error it prints it prefixed with name and exits 1.
func Main(name string, run func(ctx context.Context, cfg config.Config, log *slog.Logger) error) {
	if err := serviceMain(run); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

func serviceMain(run func(ctx context.Context, cfg config.Config, log *slog.Logger) error) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := config.FromEnv()
	if err != nil {
		return err
	}
	if len(cfg.Brokers) == 0 {
		return errors.New("LINE_KAFKA_BROKERS is not set: point it at Kafka (host:port,...), or run `line dev` for everything on an embedded broker")
	}
	return run(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, nil)))
}

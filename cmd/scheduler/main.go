// Command scheduler runs one scheduler instance against an external Kafka
// (LINE_KAFKA_BROKERS). Run several, each with its own LINE_SCHEDULER_ID:
// they share the events partitions through a consumer group, and
// transactions fence any zombie. For a single-process setup on an embedded
// broker, use `line dev`.
package main

import (
	"context"
	"log/slog"

	"github.com/line-sched/line/app"
	"github.com/line-sched/line/config"
)

func main() {
	app.Main("scheduler", func(ctx context.Context, cfg config.Config, log *slog.Logger) error {
		return app.Scheduler(ctx, cfg, cfg.Brokers, log)
	})
}

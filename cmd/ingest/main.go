// Command ingest serves line's HTTP commands and appends their events to an
// external Kafka (LINE_KAFKA_BROKERS), on LINE_HTTP_ADDR. For a
// single-process setup on an embedded broker, use `line dev`.
package main

import (
	"context"
	"log/slog"

	"github.com/line-sched/line/app"
	"github.com/line-sched/line/config"
	"github.com/line-sched/line/httpapi"
)

func main() {
	app.Main("ingest", func(ctx context.Context, cfg config.Config, log *slog.Logger) error {
		ln, err := httpapi.Listen(cfg.HTTPAddr)
		if err != nil {
			return err
		}
		return app.Ingest(ctx, cfg, cfg.Brokers, ln, log)
	})
}

package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/line-sched/line/app"
	"github.com/line-sched/line/config"
)

func newDevCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "dev",
		Short: "Run the whole system in one process on an embedded Kafka broker",
		Long: `dev starts an embedded Kafka broker (data under LINE_DATA_DIR, default ./.line)
and every line service in one process. Settings come from the environment:

  LINE_DATA_DIR          where the broker keeps the log (./.line)
  LINE_DEV_KAFKA_ADDR    Kafka protocol address (127.0.0.1:9092)
  LINE_HTTP_ADDR         HTTP API address (127.0.0.1:8080)
  LINE_DEV_SYNC_WRITES   fsync every batch (false)
  LINE_KAFKA_BROKERS     use this Kafka instead of embedding one
  LINE_DEPLOYMENT        topic prefix (line)
  LINE_POOL_TTL, LINE_WORKER_TTL, LINE_REPLICA_TTL, LINE_ALLOC_TTL, LINE_MAX_RETRY`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.FromEnv()
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
			return app.Dev(cmd.Context(), cfg, log, func(a app.DevAddrs) {
				fmt.Fprintf(cmd.OutOrStdout(), "line dev: kafka listening on %s\n", a.Kafka[0])
				fmt.Fprintf(cmd.OutOrStdout(), "line dev: http listening on http://%s\n", a.HTTP)
			})
		},
	}
}

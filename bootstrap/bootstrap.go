// Package bootstrap connects a line service to its Kafka: it waits for the
// brokers and makes sure the deployment's topics exist.
package bootstrap

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/line-sched/line/broker"
	"github.com/line-sched/line/config"
)

// Topics are the deployment-wide topics every service relies on: the events
// topic (the history, never deleted by retention), the dead-letter topic and
// the quarantine for poison records. Worker alloc topics are created when a
// worker registers.
func Topics(cfg config.Config) []broker.TopicSpec {
	forever := "-1"
	keep := map[string]*string{"retention.ms": &forever}
	return []broker.TopicSpec{
		{Name: cfg.Topics.Events(), Partitions: cfg.EventsPartitions, Configs: keep},
		{Name: cfg.Topics.DeadEvals(), Partitions: 1, Configs: keep},
		{Name: cfg.Topics.Quarantine(), Partitions: 1, Configs: keep},
	}
}

// EnsureTopics waits until the brokers answer, then creates the deployment's
// topics that are missing, in one batch.
func EnsureTopics(ctx context.Context, cfg config.Config, brokers []string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return fmt.Errorf("connect to kafka: %w", err)
	}
	defer cl.Close()
	if err := broker.WaitReady(ctx, cl); err != nil {
		return err
	}
	if err := broker.EnsureTopics(ctx, kadm.NewClient(cl), Topics(cfg)...); err != nil {
		return fmt.Errorf("create the topics of deployment %q: %w", cfg.Deployment, err)
	}
	return nil
}

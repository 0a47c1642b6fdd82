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
// topic (the history, never deleted by retention), the dead-letter topic,
// the quarantine for poison records and the shared alloc topic of the pools
// with shared delivery (cfg.AllocsPartitions partitions, broker-default
// retention like the per-worker alloc topics). Per-worker alloc topics are
// created when a worker of a per-worker pool registers.
func Topics(cfg config.Config) []broker.TopicSpec {
	forever := "-1"
	keep := map[string]*string{"retention.ms": &forever}
	return []broker.TopicSpec{
		{Name: cfg.Topics.Events(), Partitions: cfg.EventsPartitions, Configs: keep},
		{Name: cfg.Topics.DeadEvals(), Partitions: 1, Configs: keep},
		{Name: cfg.Topics.Quarantine(), Partitions: 1, Configs: keep},
		{Name: cfg.Topics.SharedAllocs(), Partitions: cfg.AllocsPartitions},
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
	return checkSharedAllocs(ctx, kadm.NewClient(cl), cfg)
}

// checkSharedAllocs refuses a shared alloc topic whose partition count is
// not cfg.AllocsPartitions: the scheduler derives a worker's partition
// from that setting and the agent from the topic, so they must agree (and
// the count of an existing topic must never change, or workers' allocs
// would move to other partitions).
func checkSharedAllocs(ctx context.Context, adm *kadm.Client, cfg config.Config) error {
	name := cfg.Topics.SharedAllocs()
	tds, err := adm.ListTopics(ctx, name)
	if err != nil {
		return fmt.Errorf("describe topic %s: %w", name, err)
	}
	td, ok := tds[name]
	if !ok || td.Err != nil {
		return fmt.Errorf("describe topic %s: not found after creating it (%v)", name, td.Err)
	}
	if n := int32(len(td.Partitions)); n != cfg.AllocsPartitions {
		return fmt.Errorf("topic %s has %d partitions but LINE_ALLOCS_PARTITIONS is %d: set LINE_ALLOCS_PARTITIONS=%d (the partition count of the shared alloc topic cannot change once it exists)",
			name, n, cfg.AllocsPartitions, n)
	}
	return nil
}

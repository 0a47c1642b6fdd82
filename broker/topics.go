package broker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/go-multierror"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// TopicSpec describes a topic for EnsureTopics.
type TopicSpec struct {
	// Name is the topic name.
	Name string

	// Partitions is the number of partitions to create the topic with. A
	// value <= 0 uses the broker default (num.partitions). An existing
	// topic is left alone, whatever its partition count.
	Partitions int32

	// Configs holds topic configs to create the topic with, e.g.
	// "retention.ms": "-1" for a topic that must keep every event. A nil
	// value uses the broker default. Configs are only applied when the
	// topic is created; an existing topic's configs are not changed.
	Configs map[string]*string
}

// EnsureTopics creates every topic in specs that does not exist yet, with the
// broker's default replication factor. It is idempotent: a topic that already
// exists counts as success.
//
// Topics sharing a partition count and configs go to Kafka in one batched
// CreateTopics request; kadm can only express one partition count and one
// config set per request, so specs that differ in those are sent as one
// request per distinct combination (usually one or two).
//
// The returned error, if any, is a *multierror.Error holding one error per
// topic that could not be created, each naming the topic; use errors.Is with
// kerr errors to inspect causes.
func EnsureTopics(ctx context.Context, adm *kadm.Client, specs ...TopicSpec) error {
	var merr *multierror.Error

	type batch struct {
		partitions int32
		configs    map[string]*string
		names      []string
	}
	var (
		batches []*batch
		byKey   = make(map[string]*batch)
		seen    = make(map[string]TopicSpec)
	)
	for _, s := range specs {
		if s.Name == "" {
			merr = multierror.Append(merr, errors.New("ensuring topic: empty topic name"))
			continue
		}
		if s.Partitions <= 0 {
			s.Partitions = -1
		}
		if prev, ok := seen[s.Name]; ok {
			if prev.Partitions != s.Partitions || configsKey(prev.Configs) != configsKey(s.Configs) {
				merr = multierror.Append(merr, fmt.Errorf("ensuring topic %q: specified twice with different partitions or configs", s.Name))
			}
			continue
		}
		seen[s.Name] = s

		key := fmt.Sprintf("%d|%s", s.Partitions, configsKey(s.Configs))
		b, ok := byKey[key]
		if !ok {
			b = &batch{partitions: s.Partitions, configs: s.Configs}
			byKey[key] = b
			batches = append(batches, b)
		}
		b.names = append(b.names, s.Name)
	}

	for _, b := range batches {
		resps, err := adm.CreateTopics(ctx, b.partitions, -1, b.configs, b.names...)
		if err != nil {
			merr = multierror.Append(merr, fmt.Errorf("creating topics %s: %w", strings.Join(b.names, ", "), err))
			continue
		}
		for _, name := range b.names {
			r, ok := resps[name]
			switch {
			case !ok:
				merr = multierror.Append(merr, fmt.Errorf("creating topic %q: missing from the broker's response", name))
			case r.Err == nil, errors.Is(r.Err, kerr.TopicAlreadyExists):
			default:
				merr = multierror.Append(merr, fmt.Errorf("creating topic %q (%s): %w%s",
					name, describePartitions(b.partitions), r.Err, errMessage(r.ErrMessage)))
			}
		}
	}
	return merr.ErrorOrNil()
}

// DeleteTopics deletes the named topics in one request. It is idempotent: a
// topic that does not exist counts as success. The returned error, if any, is
// a *multierror.Error holding one error per topic that could not be deleted.
//
// Kafka deletes topics asynchronously; a topic may still be listed, and
// recreating it may fail with TopicAlreadyExists, for a short while after
// this returns.
func DeleteTopics(ctx context.Context, adm *kadm.Client, names ...string) error {
	var merr *multierror.Error
	uniq := make([]string, 0, len(names))
	for _, n := range names {
		if n == "" {
			merr = multierror.Append(merr, errors.New("deleting topic: empty topic name"))
			continue
		}
		if !slices.Contains(uniq, n) {
			uniq = append(uniq, n)
		}
	}
	if len(uniq) == 0 {
		return merr.ErrorOrNil()
	}

	resps, err := adm.DeleteTopics(ctx, uniq...)
	if err != nil {
		merr = multierror.Append(merr, fmt.Errorf("deleting topics %s: %w", strings.Join(uniq, ", "), err))
		return merr.ErrorOrNil()
	}
	for _, name := range uniq {
		r, ok := resps[name]
		switch {
		case !ok:
			merr = multierror.Append(merr, fmt.Errorf("deleting topic %q: missing from the broker's response", name))
		case r.Err == nil,
			errors.Is(r.Err, kerr.UnknownTopicOrPartition),
			errors.Is(r.Err, kerr.UnknownTopicID):
		default:
			merr = multierror.Append(merr, fmt.Errorf("deleting topic %q: %w%s", name, r.Err, errMessage(r.ErrMessage)))
		}
	}
	return merr.ErrorOrNil()
}

// configsKey returns a canonical string for a config map, so that specs with
// equal configs can share a CreateTopics request.
func configsKey(configs map[string]*string) string {
	var sb strings.Builder
	for _, k := range slices.Sorted(maps.Keys(configs)) {
		sb.WriteString(fmt.Sprintf("%q", k))
		if v := configs[k]; v != nil {
			sb.WriteString(fmt.Sprintf("=%q", *v))
		}
		sb.WriteByte(';')
	}
	return sb.String()
}

func describePartitions(p int32) string {
	if p < 0 {
		return "default partitions"
	}
	if p == 1 {
		return "1 partition"
	}
	return fmt.Sprintf("%d partitions", p)
}

func errMessage(msg string) string {
	if msg == "" {
		return ""
	}
	return " (" + msg + ")"
}

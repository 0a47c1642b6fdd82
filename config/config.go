// Package config reads line's settings from the environment. Every service
// takes the same Config so that one set of variables describes a deployment.
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/line-sched/line/events"
)

// Config holds every setting of a line deployment.
type Config struct {
	// Deployment prefixes every topic (LINE_DEPLOYMENT, default "line").
	Deployment string
	// Topics names the deployment's topics.
	Topics events.Topics
	// Brokers is the external Kafka (LINE_KAFKA_BROKERS, comma separated).
	// Empty means line dev embeds a broker.
	Brokers []string
	// DataDir is where line dev keeps the embedded broker's log and the
	// views (LINE_DATA_DIR, default ./.line).
	DataDir string
	// ViewDir is where the projector keeps its views (Pebble)
	// (LINE_VIEW_DIR; empty means <DataDir>/views, see ViewsDir). line dev
	// always uses <DataDir>/views.
	ViewDir string
	// DevKafkaAddr is where the embedded broker listens
	// (LINE_DEV_KAFKA_ADDR, default 127.0.0.1:9092).
	DevKafkaAddr string
	// DevSyncWrites fsyncs every batch of the embedded broker
	// (LINE_DEV_SYNC_WRITES).
	DevSyncWrites bool
	// HTTPAddr is where the HTTP API listens (LINE_HTTP_ADDR, default
	// 127.0.0.1:8080).
	HTTPAddr string
	// PlainHTTP serves every request with net/http and echo, turning off
	// the connection loop that answers plain single-eval submissions
	// itself (LINE_HTTP_PLAIN; default false).
	PlainHTTP bool
	// EventsPartitions is the partition count of a new events topic
	// (LINE_EVENTS_PARTITIONS, default 12).
	EventsPartitions int32
	// AllocsPartitions is the partition count of the shared alloc topic
	// <deployment>.allocs, which carries the allocs of the pools with
	// shared delivery (LINE_ALLOCS_PARTITIONS, default 32). It is fixed
	// once the topic exists: a worker's partition is derived from it, and
	// bootstrap refuses to start when the topic has another count.
	AllocsPartitions int32
	// PoolTTL is how long a disbanded pool lives (LINE_POOL_TTL, 1h).
	PoolTTL time.Duration
	// WorkerTTL is how long a worker lives without heartbeat
	// (LINE_WORKER_TTL, 30s).
	WorkerTTL time.Duration
	// ReplicaTTL is how long a replica lives without being reported
	// (LINE_REPLICA_TTL, 60s).
	ReplicaTTL time.Duration
	// AllocTTL is how long an alloc lives without heartbeat
	// (LINE_ALLOC_TTL, 60s).
	AllocTTL time.Duration
	// MaxRetry is how many placements an eval gets before it is
	// dead-lettered (LINE_MAX_RETRY, 3).
	MaxRetry int
	// SchedulerID names a scheduler instance (LINE_SCHEDULER_ID, default
	// the host name). It is part of the instance's transactional id: a
	// restarted instance with the same id fences its previous incarnation
	// at once, so give every concurrent instance its own id.
	SchedulerID string
	// GroupSessionTimeout is how long the group waits for a silent
	// scheduler before giving its partitions to another
	// (LINE_GROUP_SESSION_TIMEOUT, 10s).
	GroupSessionTimeout time.Duration
	// TxnTimeout bounds a scheduler transaction; an abandoned one is
	// aborted by the broker after it (LINE_TXN_TIMEOUT, 15s).
	TxnTimeout time.Duration
	// ProduceTimeout bounds how long a command waits for the broker's
	// acknowledgement before answering 503 (LINE_PRODUCE_TIMEOUT, 5s).
	ProduceTimeout time.Duration
	// ProjectorNice is the nice value a projector process (cmd/projector)
	// gives itself at start, 0 to 19 (LINE_PROJECTOR_NICE, default 10; 0
	// leaves it as started). On a machine the projector shares with the
	// scheduler and ingest, placement then gets the CPU first and the
	// views, eventually consistent anyway, are built from what is left; on
	// a machine of its own it changes nothing. Linux only; line dev, one
	// process, ignores it.
	ProjectorNice int
}

// Default returns the defaults of every setting.
func Default() Config {
	t, _ := events.NewTopics(events.DefaultDeployment)
	return Config{
		Deployment:          events.DefaultDeployment,
		Topics:              t,
		DataDir:             "./.line",
		DevKafkaAddr:        "127.0.0.1:9092",
		HTTPAddr:            "127.0.0.1:8080",
		EventsPartitions:    events.DefaultEventsPartitions,
		AllocsPartitions:    events.DefaultAllocsPartitions,
		PoolTTL:             time.Hour,
		WorkerTTL:           30 * time.Second,
		ReplicaTTL:          60 * time.Second,
		AllocTTL:            60 * time.Second,
		MaxRetry:            3,
		ProduceTimeout:      5 * time.Second,
		SchedulerID:         defaultSchedulerID(),
		GroupSessionTimeout: 10 * time.Second,
		TxnTimeout:          15 * time.Second,
		ProjectorNice:       10,
	}
}

// FromEnv returns the defaults overridden by LINE_* environment variables.
// Every invalid variable is reported, each with what it should look like.
func FromEnv() (Config, error) { return FromLookup(os.LookupEnv) }

// FromLookup is FromEnv with a custom variable lookup, for tests.
func FromLookup(lookup func(string) (string, bool)) (Config, error) {
	c := Default()
	var errs *multierror.Error
	str := func(name string, dst *string) {
		if v, ok := lookup(name); ok && v != "" {
			*dst = v
		}
	}
	dur := func(name string, dst *time.Duration) {
		if v, ok := lookup(name); ok && v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				errs = multierror.Append(errs, fmt.Errorf("%s=%q: want a positive duration such as 30s or 1h", name, v))
				return
			}
			*dst = d
		}
	}
	integer := func(name string, min int64, dst func(int64)) {
		if v, ok := lookup(name); ok && v != "" {
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil || n < min {
				errs = multierror.Append(errs, fmt.Errorf("%s=%q: want an integer >= %d", name, v, min))
				return
			}
			dst(n)
		}
	}
	str("LINE_DEPLOYMENT", &c.Deployment)
	str("LINE_DATA_DIR", &c.DataDir)
	str("LINE_VIEW_DIR", &c.ViewDir)
	str("LINE_DEV_KAFKA_ADDR", &c.DevKafkaAddr)
	str("LINE_HTTP_ADDR", &c.HTTPAddr)
	if v, ok := lookup("LINE_KAFKA_BROKERS"); ok {
		for _, b := range strings.Split(v, ",") {
			if b = strings.TrimSpace(b); b != "" {
				c.Brokers = append(c.Brokers, b)
			}
		}
	}
	if v, ok := lookup("LINE_HTTP_PLAIN"); ok && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = multierror.Append(errs, fmt.Errorf("LINE_HTTP_PLAIN=%q: want true or false", v))
		}
		c.PlainHTTP = b
	}
	if v, ok := lookup("LINE_DEV_SYNC_WRITES"); ok && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = multierror.Append(errs, fmt.Errorf("LINE_DEV_SYNC_WRITES=%q: want true or false", v))
		}
		c.DevSyncWrites = b
	}
	integer("LINE_EVENTS_PARTITIONS", 1, func(n int64) { c.EventsPartitions = int32(n) })
	integer("LINE_ALLOCS_PARTITIONS", 1, func(n int64) { c.AllocsPartitions = int32(n) })
	integer("LINE_MAX_RETRY", 1, func(n int64) { c.MaxRetry = int(n) })
	if v, ok := lookup("LINE_PROJECTOR_NICE"); ok && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 19 {
			errs = multierror.Append(errs, fmt.Errorf("LINE_PROJECTOR_NICE=%q: want an integer from 0 (as started) to 19 (lowest priority)", v))
		} else {
			c.ProjectorNice = n
		}
	}
	dur("LINE_POOL_TTL", &c.PoolTTL)
	dur("LINE_WORKER_TTL", &c.WorkerTTL)
	dur("LINE_REPLICA_TTL", &c.ReplicaTTL)
	dur("LINE_ALLOC_TTL", &c.AllocTTL)
	dur("LINE_PRODUCE_TIMEOUT", &c.ProduceTimeout)
	dur("LINE_GROUP_SESSION_TIMEOUT", &c.GroupSessionTimeout)
	dur("LINE_TXN_TIMEOUT", &c.TxnTimeout)
	str("LINE_SCHEDULER_ID", &c.SchedulerID)
	t, err := events.NewTopics(c.Deployment)
	if err != nil {
		errs = multierror.Append(errs, err)
	}
	c.Topics = t
	if err := errs.ErrorOrNil(); err != nil {
		return c, fmt.Errorf("invalid configuration: %w", err)
	}
	return c, nil
}

// ViewsDir is the projector's directory: ViewDir, or <DataDir>/views
// when it is empty.
func (c Config) ViewsDir() string {
	if c.ViewDir != "" {
		return c.ViewDir
	}
	return filepath.Join(c.DataDir, "views")
}

// defaultSchedulerID is the host name, made safe for a transactional id.
func defaultSchedulerID() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "scheduler"
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '-'
	}, h)
}

package events

import (
	"fmt"
	"regexp"
	"strings"
)

// DefaultDeployment is the topic prefix when LINE_DEPLOYMENT is unset.
const DefaultDeployment = "line"

// DefaultEventsPartitions is the partition count of a new events topic.
const DefaultEventsPartitions = 12

var deploymentRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// Topics names a deployment's topics. All names derive from one prefix so
// that several deployments can share a Kafka cluster.
type Topics struct {
	// Deployment is the prefix, e.g. "line".
	Deployment string
}

// NewTopics validates the deployment prefix and returns its topic names.
func NewTopics(deployment string) (Topics, error) {
	if !deploymentRe.MatchString(deployment) {
		return Topics{}, fmt.Errorf("invalid deployment %q: use 1-32 lowercase letters, digits, '_' or '-' (LINE_DEPLOYMENT)", deployment)
	}
	return Topics{Deployment: deployment}, nil
}

// Events is the history: every pool, worker, replica, eval and alloc event,
// keyed by pool id. It has no retention limit.
func (t Topics) Events() string { return t.Deployment + ".events" }

// DeadEvals receives a record for every dead-lettered eval.
func (t Topics) DeadEvals() string { return t.Deployment + ".evals.dead" }

// Quarantine receives copies of records that could not be decoded.
func (t Topics) Quarantine() string { return t.Deployment + ".events.quarantine" }

// WorkerAllocs is the topic on which a worker receives its allocs.
func (t Topics) WorkerAllocs(pool, worker string) string {
	return t.Deployment + ".allocs." + pool + "." + worker
}

// AllocsPrefix is the prefix shared by every worker alloc topic.
func (t Topics) AllocsPrefix() string { return t.Deployment + ".allocs." }

// ParseWorkerAllocs splits a worker alloc topic into pool and worker ids.
func (t Topics) ParseWorkerAllocs(topic string) (pool, worker string, ok bool) {
	rest, found := strings.CutPrefix(topic, t.AllocsPrefix())
	if !found {
		return "", "", false
	}
	pool, worker, ok = strings.Cut(rest, ".")
	if !ok || ValidateID(PoolID, pool) != nil || ValidateID(WorkerID, worker) != nil {
		return "", "", false
	}
	return pool, worker, true
}

package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-multierror"
)

// Topology is how the system under test runs in an end-to-end scenario.
type Topology string

// Topologies.
const (
	// TopologyDev is `line dev`: the embedded broker, ingest, projector and
	// scheduler in one process (one peak RSS for all of them).
	TopologyDev Topology = "dev"
	// TopologyServices runs each service as its own process, as a
	// deployment does (cmd/ingest, cmd/projector, cmd/scheduler) against
	// the embedded broker in a fourth process: every service gets its own
	// peak RSS and CPU.
	TopologyServices Topology = "services"
)

// ParseTopology checks a --topology value.
func ParseTopology(s string) (Topology, error) {
	switch Topology(s) {
	case TopologyDev, TopologyServices:
		return Topology(s), nil
	}
	return "", fmt.Errorf("unknown topology %q: use dev (line dev, one process) or services (broker, ingest, projector, scheduler)", s)
}

// system is a running system under test: its processes and where to reach
// them.
type system struct {
	topo Topology
	// log is the process that holds the log: the dev child or the broker.
	log *child
	// services are the line services' processes in a stable order: the dev
	// child alone, or ingest, projector, scheduler.
	services []*child
	// commands and queries are the HTTP base URLs of ingest and of the
	// projector (the same server under line dev).
	commands, queries string
	kafka             []string
}

// startSystem starts the system under test with its data in dir.
//
// memLimit, when not empty, is the GOMEMLIMIT of every line service's
// process (the Go runtime's soft memory limit, e.g. "900MiB", as
// docs/operations.md recommends for a service with a memory budget); the
// broker never gets one.
func startSystem(ctx context.Context, launch Launcher, topo Topology, dir, memLimit string) (_ *system, err error) {
	env := systemEnv(dir + "/data")
	var limit []string
	if memLimit != "" {
		limit = []string{"GOMEMLIMIT=" + memLimit}
	}
	if topo == TopologyDev || topo == "" {
		dev, err := startChild(ctx, launch, RoleDev, append(env, limit...), dir+"/line-dev.log")
		if err != nil {
			return nil, err
		}
		u := "http://" + dev.ready.HTTP
		return &system{topo: TopologyDev, log: dev, services: []*child{dev}, commands: u, queries: u, kafka: dev.ready.Kafka}, nil
	}
	brk, err := startChild(ctx, launch, RoleBroker, env, dir+"/broker.log")
	if err != nil {
		return nil, err
	}
	s := &system{topo: TopologyServices, log: brk, kafka: brk.ready.Kafka}
	defer func() {
		if err != nil {
			_ = s.stop(time.Minute)
		}
	}()
	env = append(append(env, "LINE_KAFKA_BROKERS="+strings.Join(brk.ready.Kafka, ","), "LINE_VIEW_DIR="+dir+"/views"), limit...)
	for _, role := range []Role{RoleIngest, RoleProjector, RoleScheduler} {
		c, err := startChild(ctx, launch, role, env, fmt.Sprintf("%s/%s.log", dir, role))
		if err != nil {
			return s, err
		}
		s.services = append(s.services, c)
		switch role {
		case RoleIngest:
			s.commands = "http://" + c.ready.HTTP
		case RoleProjector:
			s.queries = "http://" + c.ready.HTTP
		}
	}
	return s, nil
}

// name is how results label a service's process ("line dev" or its role).
func (c *child) name() string {
	if c.role == RoleDev {
		return "line dev"
	}
	return string(c.role)
}

// all is every process, the broker included.
func (s *system) all() []*child {
	if s.topo == TopologyDev {
		return s.services
	}
	return append([]*child{s.log}, s.services...)
}

// exited reports the first process that is gone.
func (s *system) exited() error {
	for _, c := range s.all() {
		if err := c.exited(); err != nil {
			return err
		}
	}
	return nil
}

// wrap adds to err how any process that is gone ended.
func (s *system) wrap(err error) error {
	for _, c := range s.all() {
		if c.exited() != nil {
			return c.wrap(err)
		}
	}
	return err
}

// startCPU starts a CPU profile in every process.
func (s *system) startCPU(ctx context.Context) error {
	for _, c := range s.all() {
		if err := c.startCPU(ctx); err != nil {
			return fmt.Errorf("%s: start CPU profile: %w", c.name(), err)
		}
	}
	return nil
}

// stopCPU writes each process's CPU profile to prefix.<role>.cpu.pprof and
// returns the paths by process name.
func (s *system) stopCPU(ctx context.Context, prefix string) (map[string]string, error) {
	paths := map[string]string{}
	for _, c := range s.all() {
		p := fmt.Sprintf("%s.%s.cpu.pprof", prefix, c.role)
		if err := c.stopCPU(ctx, p); err != nil {
			return paths, fmt.Errorf("%s: stop CPU profile: %w", c.name(), err)
		}
		paths[c.name()] = p
	}
	return paths, nil
}

// heap writes each process's heap profile to prefix.<role>.heap.pprof.
func (s *system) heap(ctx context.Context, prefix string) (map[string]string, error) {
	paths := map[string]string{}
	for _, c := range s.all() {
		p := fmt.Sprintf("%s.%s.heap.pprof", prefix, c.role)
		if err := c.heap(ctx, p); err != nil {
			return paths, fmt.Errorf("%s: heap profile: %w", c.name(), err)
		}
		paths[c.name()] = p
	}
	return paths, nil
}

// cpu is the CPU seconds each process used so far.
func (s *system) cpu(ctx context.Context) map[string]float64 {
	out := map[string]float64{}
	for _, c := range s.all() {
		out[c.name()] = childCPU(ctx, c)
	}
	return out
}

// stopServices stops the line services but leaves the process holding the
// log running (under line dev that is line dev itself), and returns it.
func (s *system) stopServices(timeout time.Duration) (*child, error) {
	if s.topo == TopologyDev {
		return s.log, nil
	}
	var errs *multierror.Error
	for i := len(s.services) - 1; i >= 0; i-- {
		if err := s.services[i].stop(timeout); err != nil {
			errs = multierror.Append(errs, fmt.Errorf("stop %s: %w", s.services[i].name(), err))
		}
	}
	s.services = nil
	return s.log, errs.ErrorOrNil()
}

// stop stops every process, the services first.
func (s *system) stop(timeout time.Duration) error {
	var errs *multierror.Error
	if _, err := s.stopServices(timeout); err != nil {
		errs = multierror.Append(errs, err)
	}
	if s.log != nil {
		if err := s.log.stop(timeout); err != nil {
			errs = multierror.Append(errs, fmt.Errorf("stop %s: %w", s.log.name(), err))
		}
	}
	return errs.ErrorOrNil()
}

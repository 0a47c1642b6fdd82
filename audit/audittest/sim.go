// Package audittest generates histories for tests of the audit: clean ones,
// written the way line writes them (ingest's commands interleaved with the
// scheduler's rounds, each decided by scheduler.Decide on the fold of the log
// and stamped with its basis), so that a test can check that the audit finds
// nothing wrong with them, and then break them.
//
// Like testkit, it is a regular package that only tests may import.
package audittest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/scheduler"
	"github.com/line-sched/line/state"
)

// Options tune Simulate. Zero fields take the defaults below.
type Options struct {
	// Seed makes the history; the same options give the same history
	// (event ids aside).
	Seed uint64
	// Pools are the pool ids (default p1, p2).
	Pools []string
	// Partitions is the partition count of the events topic: each pool's
	// events go to events.PartitionFor(pool, Partitions), with offsets
	// from 0 (default 1).
	Partitions int32
	// Steps is the number of foreign commands and clock steps (default
	// 200).
	Steps int
	// Delayed lets ingest append between a round's decision and its
	// commit, as on a busy log.
	Delayed bool
	// Start is the time of the first event (default 2026-11-26T19:00Z).
	Start time.Time
	// Disband lets pools be disbanded (and deleted) along the way.
	Disband bool
}

// Event is one event of a simulated history and where it sits.
type Event struct {
	events.Envelope
	Position events.Position
}

// Scheduler and TTL settings of the simulation.
const (
	WorkerTTL  = 3 * time.Second
	ReplicaTTL = 4 * time.Second
	AllocTTL   = 3 * time.Second
	MaxRetry   = 2
)

type round struct {
	at    time.Time
	basis int64
	d     scheduler.Decision
}

type sim struct {
	opts    Options
	rng     *rand.Rand
	st      *state.State
	now     time.Time
	next    map[int32]int64
	out     []Event
	pending map[string]*round
	seq     int
	err     error
}

// Simulate returns a clean history. Every event in it applies; an error
// means the simulation itself is broken.
func Simulate(opts Options) ([]Event, error) {
	if len(opts.Pools) == 0 {
		opts.Pools = []string{"p1", "p2"}
	}
	if opts.Partitions <= 0 {
		opts.Partitions = 1
	}
	if opts.Steps <= 0 {
		opts.Steps = 200
	}
	if opts.Start.IsZero() {
		opts.Start = time.Date(2026, 11, 26, 19, 0, 0, 0, time.UTC)
	}
	s := &sim{opts: opts, rng: rand.New(rand.NewPCG(opts.Seed, 0x11e)), st: state.New(), now: opts.Start,
		next: map[int32]int64{}, pending: map[string]*round{}}
	for _, p := range opts.Pools {
		strategy := events.Spread
		if s.rng.IntN(2) == 0 {
			strategy = events.Binpack
		}
		s.append(p, s.now, events.PoolCreatedData{Strategy: strategy, LocalityWaitMs: events.Millis(s.rng.IntN(3) * 1000)})
	}
	for range opts.Steps {
		s.now = s.now.Add(time.Duration(50+s.rng.IntN(600)) * time.Millisecond)
		s.foreign()
		s.rounds()
		if s.err != nil {
			return nil, s.err
		}
	}
	// Let everything run out.
	for range 12 {
		s.now = s.now.Add(2 * time.Second)
		s.rounds()
		s.flushAll()
		s.rounds()
		s.flushAll()
	}
	return s.out, s.err
}

func (s *sim) id(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s%d", prefix, s.seq)
}

// append folds one event and logs it.
func (s *sim) append(pool string, at time.Time, d events.Data) {
	if s.err != nil {
		return
	}
	e := events.New(pool, at, d)
	b, err := events.Marshal(e)
	if err == nil {
		e, err = events.Unmarshal(b)
	}
	if err != nil {
		s.err = fmt.Errorf("audittest: %s: %w", d.EventType(), err)
		return
	}
	part := events.PartitionFor(pool, s.opts.Partitions)
	pos := events.Position{Partition: part, Offset: s.next[part]}
	s.next[part]++
	if err := s.st.Apply(e, pos); err != nil {
		s.err = fmt.Errorf("audittest: simulated %s at %s does not apply: %w", d.EventType(), pos, err)
		return
	}
	s.out = append(s.out, Event{Envelope: e, Position: pos})
}

func (s *sim) pool(active bool) *state.Pool {
	var ps []*state.Pool
	for _, id := range s.opts.Pools {
		if p := s.st.Pool(id); p != nil && (!active || p.Status == state.PoolActive) {
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 {
		return nil
	}
	return ps[s.rng.IntN(len(ps))]
}

func (s *sim) datasets() []string {
	var out []string
	for _, d := range []string{"d1", "d2", "d3"} {
		if s.rng.IntN(3) == 0 {
			out = append(out, d)
		}
	}
	return out
}

// foreign appends one command as ingest would, validated against the fold.
func (s *sim) foreign() {
	p := s.pool(true)
	if p == nil {
		return
	}
	switch n := s.rng.IntN(20); {
	case n < 3:
		id := s.id("w")
		s.append(p.ID, s.now, events.WorkerRegisteredData{WorkerID: id, Capacity: int64(1 + s.rng.IntN(6)),
			Topic: "line.allocs." + p.ID + "." + id, Deadline: s.now.Add(WorkerTTL), Datasets: s.datasets(),
			ReplicaDeadline: s.now.Add(ReplicaTTL)})
	case n < 10:
		ws := p.Workers()
		if len(ws) == 0 {
			return
		}
		w := ws[s.rng.IntN(len(ws))]
		if s.rng.IntN(4) == 0 {
			return // let it starve now and then
		}
		var allocs []string
		for _, a := range w.RunningAllocs() {
			if s.rng.IntN(5) > 0 {
				allocs = append(allocs, a.ID)
			}
		}
		s.append(p.ID, s.now, events.WorkerHeartbeatData{WorkerID: w.ID, Deadline: s.now.Add(WorkerTTL),
			Datasets: s.datasets(), ReplicaDeadline: s.now.Add(ReplicaTTL), Allocs: allocs, AllocDeadline: s.now.Add(AllocTTL)})
	case n < 16:
		ds := ""
		if s.rng.IntN(2) == 0 {
			ds = []string{"d1", "d2", "d3"}[s.rng.IntN(3)]
		}
		s.append(p.ID, s.now, events.EvalSubmittedData{EvalID: s.id("e"), Size: int64(1 + s.rng.IntN(4)), DatasetID: ds})
	case n < 19:
		// Complete a running alloc that the pool's undelivered round does
		// not expire (that would be a race the audit flags).
		expiring := map[string]bool{}
		if r := s.pending[p.ID]; r != nil {
			for _, d := range r.d.Events {
				if x, ok := d.(events.AllocExpiredData); ok {
					expiring[x.AllocID] = true
				}
			}
		}
		var running []*state.Alloc
		for _, a := range p.Allocs() {
			if a.Status() == state.AllocRunning && !expiring[a.ID] {
				running = append(running, a)
			}
		}
		if len(running) == 0 {
			return
		}
		a := running[s.rng.IntN(len(running))]
		status := events.Succeeded
		if s.rng.IntN(4) == 0 {
			status = events.Failed
		}
		s.append(p.ID, s.now, events.AllocCompletedData{AllocID: a.ID, Status: status})
	default:
		if s.opts.Disband && s.rng.IntN(8) == 0 {
			s.append(p.ID, s.now, events.PoolDisbandedData{DeleteAt: s.now.Add(5 * time.Second)})
		}
	}
}

// rounds decides every pool without a round in flight, and delivers the
// rounds in flight (in delayed mode, each only now and then).
func (s *sim) rounds() {
	cfg := scheduler.Config{AllocTTL: AllocTTL, MaxRetry: MaxRetry, StarvationAge: 5 * time.Second}
	ids := slices.Clone(s.opts.Pools)
	s.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	for _, id := range ids {
		if r := s.pending[id]; r != nil {
			if s.opts.Delayed && s.rng.IntN(2) == 0 {
				continue
			}
			s.flush(id)
		}
		p := s.st.Pool(id)
		if p == nil {
			continue
		}
		d := scheduler.Decide(p, s.now, cfg)
		if len(d.Events) == 0 {
			continue
		}
		s.pending[id] = &round{at: s.now, basis: s.next[events.PartitionFor(id, s.opts.Partitions)], d: d}
		if !s.opts.Delayed {
			s.flush(id)
		}
	}
}

func (s *sim) flush(pool string) {
	r := s.pending[pool]
	delete(s.pending, pool)
	for _, d := range r.d.Events {
		if pl, ok := d.(events.AllocPlacedData); ok {
			pl.Basis = r.basis
			d = pl
		}
		s.append(pool, r.at, d)
	}
}

func (s *sim) flushAll() {
	for _, id := range s.opts.Pools {
		if s.pending[id] != nil {
			s.flush(id)
		}
	}
}

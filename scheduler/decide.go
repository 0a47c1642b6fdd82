package scheduler

import (
	"cmp"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/state"
)

// Default values of a zero Config field.
const (
	DefaultAllocTTL      = 60 * time.Second
	DefaultMaxRetry      = 3
	DefaultStarvationAge = 30 * time.Second
)

// Reasons written into the decisions.
const (
	// ReasonPoolDisbanded rejects the evals of a disbanded pool.
	ReasonPoolDisbanded = "pool disbanded"
	// ReasonNotHeartbeated expires an alloc whose deadline passed.
	ReasonNotHeartbeated = "not heartbeated"
	// ReasonWorkerExpired expires the allocs of a worker whose deadline
	// passed.
	ReasonWorkerExpired = "worker expired"
)

// Config tunes Decide. The zero value of a field means its default.
type Config struct {
	// AllocTTL is the lifetime of a new alloc: its deadline is now +
	// AllocTTL. Default 60s.
	AllocTTL time.Duration
	// MaxRetry is the number of placements an eval gets: once an eval with
	// that many attempts loses its alloc, it is dead-lettered. Default 3.
	MaxRetry int
	// ExpireFrom is the earliest time at which Decide expires anything. The
	// loop sets it to its takeover time + the worker TTL, so that a new
	// leader, whose state may lag the heartbeats, never expires the whole
	// fleet. Zero: no restriction.
	ExpireFrom time.Time
	// StarvationAge is how long an eval that fits nowhere waits before a
	// worker is reserved for it (see the package doc); it also bounds the
	// locality wait. Default 30s; negative disables the rule.
	StarvationAge time.Duration
	// MaxPlacements caps the placements of one round (the rest waits for
	// the next round), to bound the size of a round's transaction. Zero: no
	// cap.
	MaxPlacements int
}

func (c Config) withDefaults() Config {
	if c.AllocTTL <= 0 {
		c.AllocTTL = DefaultAllocTTL
	}
	if c.MaxRetry <= 0 {
		c.MaxRetry = DefaultMaxRetry
	}
	if c.StarvationAge == 0 {
		c.StarvationAge = DefaultStarvationAge
	}
	return c
}

// Decision is the outcome of one round for one pool.
type Decision struct {
	// Events are the decisions, in the order they must be appended; the
	// loop wraps each with events.New(pool, now, data).
	Events []events.Data
	// Deliveries has one record per alloc.placed, in the same order, for
	// the worker's alloc topic (AllocPlacedData.Topic), once committed.
	Deliveries []events.AllocRecord
	// DeadLetters has one record per eval.dead_lettered, for the dead-evals
	// topic.
	DeadLetters []events.DeadLetterRecord
	// TopicsToDelete are the alloc topics of workers expired in this round,
	// or of every worker of a pool deleted in this round, to delete once
	// the round is committed.
	TopicsToDelete []string
	// Reservation is the starvation reservation of this round, if any.
	Reservation *Reservation
	// Stats counts what the round did.
	Stats Stats
}

// Reservation is a worker kept free for a starving eval during one round.
type Reservation struct {
	// EvalID is the starving eval.
	EvalID string
	// WorkerID is the worker no other eval may use in this round.
	WorkerID string
	// Size is the eval's size; Free is the worker's free capacity at the
	// start of the round.
	Size, Free int64
}

// Stats counts what a round did, for metrics and tests.
type Stats struct {
	// Placed counts alloc.placed decisions; LocalityHits and
	// LocalityMisses split those that named a dataset.
	Placed, LocalityHits, LocalityMisses int
	// LocalityWaits counts evals skipped because they wait for a holder.
	LocalityWaits int
	// Visited counts the pending evals the placement stage examined.
	Visited int
	// Requeued, DeadLettered, Rejected count retry and disband decisions.
	Requeued, DeadLettered, Rejected int
	// AllocsExpired, WorkersExpired, ReplicasExpired count expiries.
	AllocsExpired, WorkersExpired, ReplicasExpired int
}

// Decide returns the decisions of one round for pool p at time now. It
// reads p and never changes it (p must not change during the call; several
// calls may read the same pool at once); see the package doc for the rules.
// A nil or deleted pool gives an empty Decision.
func Decide(p *state.Pool, now time.Time, cfg Config) Decision {
	var d Decision
	if p == nil || p.Status == state.PoolDeleted {
		return d
	}
	r := &round{p: p, now: events.Truncate(now), cfg: cfg.withDefaults(), d: &d}
	if p.Status == state.PoolDisbanded {
		r.disband()
		if !r.now.Before(p.DeleteAt) {
			r.d.Events = append(r.d.Events, events.PoolDeletedData{})
			for _, w := range p.Workers() {
				r.d.TopicsToDelete = append(r.d.TopicsToDelete, w.Topic)
			}
			return d
		}
		r.expire()
		return d
	}
	r.retry()
	r.expire()
	r.place()
	return d
}

// AllocID is the id of the alloc that places attempt of eval in pool: the
// first 26 characters of the lowercase base32 encoding of SHA-256(pool NUL
// eval NUL attempt), i.e. 130 bits. It is deterministic (a replayed or
// repeated decision names the same alloc) and unique per (pool, eval,
// attempt) for all practical purposes.
func AllocID(pool, eval string, attempt int) string {
	var out [allocIDLen]byte
	putAllocID(&out, pool, eval, attempt)
	return string(out[:])
}

// allocIDLen is the length of an alloc id.
const allocIDLen = 26

// putAllocID writes AllocID(pool, eval, attempt) into out.
func putAllocID(out *[allocIDLen]byte, pool, eval string, attempt int) {
	var buf [256]byte
	b := append(buf[:0], pool...)
	b = append(b, 0)
	b = append(b, eval...)
	b = append(b, 0)
	b = strconv.AppendInt(b, int64(attempt), 10)
	sum := sha256.Sum256(b)
	var enc [28]byte
	idEncoding.Encode(enc[:], sum[:17])
	copy(out[:], enc[:allocIDLen])
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// round is the scratch bookkeeping of one Decide call.
type round struct {
	p   *state.Pool
	now time.Time
	cfg Config
	d   *Decision

	// rank holds the live workers with room, by (free, id); its slots
	// (sorted by the state's free capacity and id: the start of the round)
	// track this round's placements.
	rank ranked
	// holders caches, per dataset, the live holders of this round.
	holders map[string][]holder
	// placed collects the round's placements in order; firstChunk is the
	// capacity of its first chunk.
	placed     placementList
	firstChunk int
}

type holder struct {
	w *state.Worker
	// s is the worker's slot, nil if it had no room at the start.
	s *slot
}

func (r *round) emit(data events.Data) { r.d.Events = append(r.d.Events, data) }

// disband rejects every pending eval and every eval awaiting retry.
func (r *round) disband() {
	r.p.Queue().Each(func(e *state.Eval) bool {
		r.emit(events.EvalRejectedData{EvalID: e.ID, Reason: ReasonPoolDisbanded})
		r.d.Stats.Rejected++
		return true
	})
	r.p.EachAwaitingRetry(func(e *state.Eval) bool {
		r.emit(events.EvalRejectedData{EvalID: e.ID, Reason: ReasonPoolDisbanded})
		r.d.Stats.Rejected++
		return true
	})
}

// retry decides requeue or dead letter for each eval awaiting retry.
func (r *round) retry() {
	r.p.EachAwaitingRetry(func(e *state.Eval) bool {
		why := "alloc expired"
		if a := r.p.Alloc(e.AllocID); a != nil && a.ExpiryReason() != "" {
			why += ": " + a.ExpiryReason()
		}
		if e.Attempts >= r.cfg.MaxRetry {
			reason := fmt.Sprintf("%s; %d of %d attempts used", why, e.Attempts, r.cfg.MaxRetry)
			r.emit(events.EvalDeadLetteredData{EvalID: e.ID, AllocID: e.AllocID, Attempts: e.Attempts, Reason: reason})
			r.d.DeadLetters = append(r.d.DeadLetters, events.DeadLetterRecord{PoolID: r.p.ID, EvalID: e.ID,
				DatasetID: e.DatasetID, Size: e.Size, Attempts: e.Attempts, Reason: reason, Payload: e.Payload(), At: r.now})
			r.d.Stats.DeadLettered++
			return true
		}
		r.emit(events.EvalRequeuedData{EvalID: e.ID, AllocID: e.AllocID, Attempt: e.Attempts + 1, Reason: why})
		r.d.Stats.Requeued++
		return true
	})
}

// expire decides the expiries that are due.
func (r *round) expire() {
	if r.now.Before(r.cfg.ExpireFrom) {
		return
	}
	var allocs []*state.Alloc
	var workers []*state.Worker
	var replicas []state.TTLEntry
	r.p.TTL().Due(r.now, func(e state.TTLEntry) bool {
		switch e.Kind {
		case state.TTLAlloc:
			allocs = append(allocs, e.Alloc)
		case state.TTLWorker:
			workers = append(workers, e.Worker)
		case state.TTLReplica:
			replicas = append(replicas, e)
		}
		return true
	})
	for _, a := range allocs {
		r.emit(events.AllocExpiredData{AllocID: a.ID, Reason: ReasonNotHeartbeated})
	}
	r.d.Stats.AllocsExpired += len(allocs)
	var gone map[*state.Worker]bool
	if len(workers) > 0 {
		gone = make(map[*state.Worker]bool, len(workers))
	}
	for _, w := range workers {
		gone[w] = true
		for _, a := range w.RunningAllocs() {
			if !a.Deadline().After(r.now) {
				continue // expired above
			}
			r.emit(events.AllocExpiredData{AllocID: a.ID, Reason: ReasonWorkerExpired})
			r.d.Stats.AllocsExpired++
		}
		r.emit(events.WorkerExpiredData{WorkerID: w.ID, Deadline: w.Deadline})
		r.d.TopicsToDelete = append(r.d.TopicsToDelete, w.Topic)
		r.d.Stats.WorkersExpired++
	}
	for _, e := range replicas {
		if gone[e.Worker] {
			continue
		}
		r.emit(events.ReplicaExpiredData{WorkerID: e.Worker.ID, DatasetID: e.Dataset, Deadline: e.Deadline})
		r.d.Stats.ReplicasExpired++
	}
}

// place decides the placements of the round.
func (r *round) place() {
	q := r.p.Queue()
	minSize, ok := q.MinSize()
	if !ok || minSize > r.p.Free().MaxFree() {
		return // nothing pending, or nothing fits even before the round
	}
	// The live workers with room, sorted by (free, id): the index's order.
	slots := make([]slot, 0, r.p.Free().Len())
	var total int64
	r.p.Free().Ascending(1, func(w *state.Worker) bool {
		if w.Deadline.After(r.now) {
			slots = append(slots, slot{w: w, free: w.Free()})
			total += w.Free()
		}
		return true
	})
	strategy := r.p.Strategy
	if !strategy.Valid() {
		strategy = events.Spread
	}
	r.rank.build(slots, strategy == events.Spread)
	r.reserve()
	maxFree := r.rank.maxFree()
	if maxFree < minSize {
		return
	}
	var h heads
	var sizes []int64
	q.Sizes(math.MinInt64, maxFree, func(size int64, _ int, first *state.Eval) bool {
		h.push(first)
		sizes = append(sizes, size)
		return true
	})
	r.rank.countFits(sizes)
	// At most this many placements (within reason: evals waiting for
	// locality may leave most of it unused).
	bound := min(int64(q.Len()), total/minSize, 1<<12)
	if r.cfg.MaxPlacements > 0 {
		bound = min(bound, int64(r.cfg.MaxPlacements))
	}
	r.firstChunk = int(bound)
	localityWait := r.p.LocalityWait
	if r.cfg.StarvationAge > 0 && r.cfg.StarvationAge < localityWait {
		localityWait = r.cfg.StarvationAge
	}
	for len(h) > 0 && r.rank.n > 0 {
		if r.cfg.MaxPlacements > 0 && r.placed.n >= r.cfg.MaxPlacements {
			break
		}
		e := h[0]
		if e.Size > r.rank.maxFree() {
			h.replaceTop(nil) // free capacity only shrinks: this size is done
			continue
		}
		r.d.Stats.Visited++
		r.placeOne(e, strategy, localityWait)
		h.replaceTop(q.NextOfSize(e))
	}
	r.emitPlacements(strategy)
}

// placeOne places e if it can, or leaves it waiting for locality.
func (r *round) placeOne(e *state.Eval, strategy events.Strategy, localityWait time.Duration) {
	var chosen *slot
	locality := localityNone
	if e.DatasetID != "" {
		locality = localityMiss
		eligible := 0
		for _, h := range r.holdersOf(e.DatasetID) {
			if h.w.Capacity < e.Size {
				continue
			}
			eligible++
			if s := h.s; s != nil && s.in && s.free >= e.Size && (chosen == nil || better(strategy, s, chosen)) {
				chosen = s
			}
		}
		switch {
		case chosen != nil:
			locality = localityHit
		case eligible > 0 && r.now.Sub(e.QueuedAt()) < localityWait:
			r.d.Stats.LocalityWaits++
			return
		}
	}
	candidates := r.rank.count(e.Size)
	var s *slot
	switch {
	case candidates == 0:
		return // cannot happen: the caller checked the size against the most free
	case chosen != nil:
		s = chosen
		r.rank.take(s, e.Size)
	case strategy == events.Spread:
		s = r.rank.mostFree()
		r.rank.take(s, e.Size)
	default:
		at, ok := r.rank.firstFit(e.Size)
		if !ok {
			return // as above
		}
		s = r.rank.slotAt(at)
		r.rank.takeAt(at, e.Size)
	}
	r.placed.add(placement{e: e, w: s.w, locality: locality, candidates: int32(candidates)}, r.firstChunk)
}

// emitPlacements turns the round's placements into events and deliveries,
// each output allocated once at its final size, in one pass that reads
// each eval once. The alloc ids share one string: a strings.Builder grown
// to its final size first never moves or changes what it already holds, so
// each id can be cut from it as soon as it is written.
func (r *round) emitPlacements(strategy events.Strategy) {
	n := r.placed.n
	if n == 0 {
		return
	}
	deadline := r.now.Add(r.cfg.AllocTTL)
	var ids strings.Builder
	ids.Grow(n * allocIDLen)
	r.d.Events = slices.Grow(r.d.Events, n)
	r.d.Deliveries = make([]events.AllocRecord, n)
	i := 0
	for _, c := range r.placed.chunks {
		for _, pl := range c {
			e, w := pl.e, pl.w
			var buf [allocIDLen]byte
			putAllocID(&buf, r.p.ID, e.ID, e.NextAttempt)
			ids.Write(buf[:])
			all := ids.String()
			id := all[len(all)-allocIDLen:]
			r.d.Events = append(r.d.Events, events.AllocPlacedData{AllocID: id, EvalID: e.ID, WorkerID: w.ID,
				DatasetID: e.DatasetID, Size: e.Size, Attempt: e.NextAttempt, Deadline: deadline, Topic: w.Topic,
				Strategy: strategy, Locality: localities[pl.locality], Candidates: int(pl.candidates),
				WaitedMs: events.ToMillis(max(r.now.Sub(e.QueuedAt()), 0))})
			r.d.Deliveries[i] = events.AllocRecord{AllocID: id, EvalID: e.ID, PoolID: r.p.ID, WorkerID: w.ID,
				DatasetID: e.DatasetID, Size: e.Size, Attempt: e.NextAttempt, Payload: e.Payload(), Deadline: deadline}
			switch pl.locality {
			case localityHit:
				r.d.Stats.LocalityHits++
			case localityMiss:
				r.d.Stats.LocalityMisses++
			}
			i++
		}
	}
	r.d.Stats.Placed = n
	r.placed = placementList{}
}

// better reports whether a ranks before b under the strategy (ties: the
// lower idx, see slot).
func better(strategy events.Strategy, a, b *slot) bool {
	if a.free != b.free {
		if strategy == events.Binpack {
			return a.free < b.free
		}
		return a.free > b.free
	}
	return a.idx < b.idx
}

// holdersOf returns the live holders of dataset (replica and worker
// deadlines after now), sorted by worker id, with their slots.
func (r *round) holdersOf(dataset string) []holder {
	if hs, ok := r.holders[dataset]; ok {
		return hs
	}
	if r.holders == nil {
		r.holders = make(map[string][]holder)
	}
	var hs []holder
	r.p.EachHolder(dataset, func(w *state.Worker) bool {
		if w.Replicas[dataset].After(r.now) && w.Deadline.After(r.now) {
			hs = append(hs, holder{w: w, s: r.slotOf(w)})
		}
		return true
	})
	slices.SortFunc(hs, func(a, b holder) int { return cmp.Compare(a.w.ID, b.w.ID) })
	r.holders[dataset] = hs
	return hs
}

// slotOf finds w's slot by binary search in the round's slot array, sorted
// by the state's free capacity and id, which the round never changes.
func (r *round) slotOf(w *state.Worker) *slot {
	free := w.Free()
	slots := r.rank.slots
	i, _ := slices.BinarySearchFunc(slots, w, func(s slot, w *state.Worker) int {
		if f := s.w.Free(); f != free {
			return cmp.Compare(f, free)
		}
		return cmp.Compare(s.w.ID, w.ID)
	})
	if i < len(slots) && slots[i].w == w {
		return &slots[i]
	}
	return nil
}

// reserve applies the starvation rule (see the package doc).
func (r *round) reserve() {
	age := r.cfg.StarvationAge
	if age < 0 {
		return
	}
	var cands []*state.Eval
	r.p.Queue().Sizes(r.rank.maxFree()+1, math.MaxInt64, func(_ int64, _ int, first *state.Eval) bool {
		if r.now.Sub(first.QueuedAt()) >= age {
			cands = append(cands, first)
		}
		return true
	})
	if len(cands) == 0 {
		return
	}
	slices.SortFunc(cands, func(a, b *state.Eval) int { return cmp.Compare(a.QueueSeq(), b.QueueSeq()) })
	var maxCap int64
	r.p.Free().Descending(math.MinInt64, func(w *state.Worker) bool {
		if w.Deadline.After(r.now) {
			maxCap = max(maxCap, w.Capacity)
		}
		return true
	})
	var starving *state.Eval
	for _, e := range cands {
		if e.Size <= maxCap {
			starving = e
			break
		}
	}
	if starving == nil {
		return
	}
	// The most free live worker that could ever fit it; lowest id among
	// equals. The index visits (free desc, id desc): keep going while the
	// free capacity is the same.
	var pick *state.Worker
	r.p.Free().Descending(math.MinInt64, func(w *state.Worker) bool {
		if pick != nil && w.Free() < pick.Free() {
			return false
		}
		if w.Deadline.After(r.now) && w.Capacity >= starving.Size {
			pick = w
		}
		return true
	})
	r.d.Reservation = &Reservation{EvalID: starving.ID, WorkerID: pick.ID, Size: starving.Size, Free: pick.Free()}
	if s := r.slotOf(pick); s != nil {
		r.rank.remove(s)
	}
}

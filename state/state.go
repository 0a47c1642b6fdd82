// Package state is the one fold of line: it defines what every event means.
// The scheduler decides from it, ingest validates commands against it, the
// projector materializes it and the audit replays it. Nothing else may
// interpret an event.
//
// The fold is pure and total: Apply never reads a clock, never fails on a
// well-formed event, and leaves the state untouched when an event does not
// apply (a completion of an unknown alloc, a placement that would overcommit
// a worker). Such an event is reported through a *Rejection so that callers
// can count it and the audit can flag it; applying it is a no-op, never a
// double release or an overcommit.
package state

import (
	"cmp"
	"encoding/json"
	"slices"
	"time"

	"github.com/line-sched/line/events"
)

// PoolStatus is the lifecycle stage of a pool.
type PoolStatus string

// Pool statuses.
const (
	PoolActive    PoolStatus = "active"
	PoolDisbanded PoolStatus = "disbanded"
	PoolDeleted   PoolStatus = "deleted"
)

// EvalStatus is where an eval stands. Every eval is in exactly one status.
type EvalStatus string

// Eval statuses.
const (
	// EvalPending evals wait in the pool's queue.
	EvalPending EvalStatus = "pending"
	// EvalPlaced evals have a running alloc, or an expired one whose retry
	// decision (requeue or dead letter) is still to come.
	EvalPlaced EvalStatus = "placed"
	// EvalCompleted evals ran to an end reported by their worker.
	EvalCompleted EvalStatus = "completed"
	// EvalRejected evals were ended without placement (pool disbanded).
	EvalRejected EvalStatus = "rejected"
	// EvalDeadLettered evals ran out of attempts.
	EvalDeadLettered EvalStatus = "dead_lettered"
)

// EvalStatuses lists every eval status.
var EvalStatuses = []EvalStatus{EvalPending, EvalPlaced, EvalCompleted, EvalRejected, EvalDeadLettered}

// AllocStatus is where an alloc stands.
type AllocStatus string

// Alloc statuses.
const (
	AllocRunning   AllocStatus = "running"
	AllocCompleted AllocStatus = "completed"
	AllocExpired   AllocStatus = "expired"
)

// State is the fold of a prefix of the events topic: every pool and what it
// holds.
type State struct {
	pools map[string]*Pool
	// Applied counts events applied (including rejected ones).
	Applied int64
	// Rejected counts events that did not apply.
	Rejected int64
	// expectFrom and expectTo are the counts of Applied between which
	// the events Expect announced come.
	expectFrom, expectTo int64
}

// New returns an empty state.
func New() *State { return &State{pools: make(map[string]*Pool)} }

// Expect tells the fold that about n more events are coming, as a consumer
// that knows where the log ends does before a replay (a rebuild, a bulk
// load). It only sizes memory: a pool whose evals or allocs grow many
// sizes their tables once for what the events to come will likely add, in
// the proportion seen so far, instead of growing them step by step. It
// changes no result; without it (or with a wrong n) the fold is the same.
func (s *State) Expect(n int64) {
	s.expectFrom, s.expectTo = s.Applied, s.Applied+min(max(n, 0), 1<<50)
}

// expecting reports whether events that Expect announced are still to come.
func (s *State) expecting() bool { return s.expectTo > s.Applied }

// presizeAt is the size at which a pool's table of evals or allocs is
// sized for the events that Expect announced: late enough that the
// proportion of such events is known, early enough that most growth is
// saved.
const presizeAt = 1 << 16

// maxPresize bounds the entries a table is sized for, whatever Expect
// announced.
const maxPresize = 1 << 24

// presized returns m, or a copy of it sized for what the expected events
// still to come will add if that is much more than m holds (presizeWant).
func presized[V any](s *State, m map[string]V, most int64) map[string]V {
	want := presizeWant(s, len(m), most)
	if want == 0 {
		return m
	}
	out := make(map[string]V, want)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// presizeWant returns how many entries to size a table holding n for, or
// zero if growing it as entries come costs as little. It got n entries
// from the events applied since Expect (at most: it may hold older ones),
// and each event to come is taken to add as many in proportion, with an
// eighth to spare, up to most entries if most is positive.
func presizeWant(s *State, n int, most int64) int {
	seen, left := s.Applied-s.expectFrom, s.expectTo-s.Applied
	if seen <= 0 || left <= 0 {
		return 0
	}
	have := int64(n)
	want := have + int64(min(float64(left)*float64(have)/float64(seen), float64(left)))
	want = min(want+want/8, maxPresize)
	if most > 0 {
		want = min(want, most)
	}
	if want < 2*have {
		return 0 // growing as it comes costs as little
	}
	return int(want)
}

// Pool returns the pool with the given id, or nil.
func (s *State) Pool(id string) *Pool { return s.pools[id] }

// Pools returns every pool sorted by id.
func (s *State) Pools() []*Pool {
	out := make([]*Pool, 0, len(s.pools))
	for _, p := range s.pools {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *Pool) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Pool is one pool's state: its workers, replicas, evals, allocs and queue.
type Pool struct {
	ID           string
	Strategy     events.Strategy
	LocalityWait time.Duration
	// Delivery is how allocs reach the pool's workers (never empty:
	// a pool.created without it means events.PerWorker).
	Delivery    events.Delivery
	Status      PoolStatus
	CreatedAt   time.Time
	DisbandedAt time.Time
	// DeleteAt is when a disbanded pool is deleted.
	DeleteAt time.Time
	// DeletedAt is when the pool was deleted.
	DeletedAt time.Time

	workers map[string]*Worker
	evals   map[string]*Eval
	allocs  map[string]*Alloc
	// evalOrder and allocOrder hold the same evals and allocs as evals
	// and allocs, in the order the fold inserted them, for listing them
	// by id without sorting them when that order is id order.
	evalOrder  idOrder[*Eval]
	allocOrder idOrder[*Alloc]
	// holders maps a dataset to the workers holding a replica of it.
	holders map[string]map[string]*Worker
	// queue holds pending evals in queue order.
	queue *Queue
	// free orders workers by free capacity.
	free *FreeIndex
	// ttl orders the deadlines of running allocs, workers and replicas.
	ttl *TTLIndex
	// retry holds the evals awaiting a retry decision, in expiry order.
	retry *evalSet
	// datasets interns the ids of datasets that workers reported, so that
	// evals, allocs and replicas naming one share a single string.
	datasets map[string]string
}

func newPool(id string, at time.Time, d events.PoolCreatedData) *Pool {
	return &Pool{
		ID:           id,
		Strategy:     d.Strategy,
		LocalityWait: d.LocalityWaitMs.Duration(),
		Delivery:     d.Delivery.OrDefault(),
		Status:       PoolActive,
		CreatedAt:    at,
		workers:      make(map[string]*Worker),
		evals:        make(map[string]*Eval),
		allocs:       make(map[string]*Alloc),
		holders:      make(map[string]map[string]*Worker),
		queue:        newQueue(),
		free:         newFreeIndex(),
		ttl:          newTTLIndex(),
		retry:        newEvalSet(),
		datasets:     make(map[string]string),
	}
}

// Worker returns the worker with the given id, or nil.
func (p *Pool) Worker(id string) *Worker { return p.workers[id] }

// Eval returns the eval with the given id, or nil.
func (p *Pool) Eval(id string) *Eval { return p.evals[id] }

// Alloc returns the alloc with the given id, or nil.
func (p *Pool) Alloc(id string) *Alloc { return p.allocs[id] }

// NumWorkers is the number of registered workers.
func (p *Pool) NumWorkers() int { return len(p.workers) }

// NumEvals is the number of evals the pool knows, in any status.
func (p *Pool) NumEvals() int { return len(p.evals) }

// EvalsByStatus counts the pool's evals by status, without the sorting
// of Evals.
func (p *Pool) EvalsByStatus() map[EvalStatus]int64 {
	out := make(map[EvalStatus]int64)
	for _, e := range p.evals {
		out[e.Status()]++
	}
	return out
}

// AllocsByStatus counts the pool's allocs by status, without the sorting
// of Allocs.
func (p *Pool) AllocsByStatus() map[AllocStatus]int64 {
	out := make(map[AllocStatus]int64)
	for _, a := range p.allocs {
		out[a.Status()]++
	}
	return out
}

// Workers returns the registered workers sorted by id.
func (p *Pool) Workers() []*Worker {
	out := make([]*Worker, 0, len(p.workers))
	for _, w := range p.workers {
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b *Worker) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Evals returns every eval sorted by id. When the evals were submitted in
// id order (as ingest's ids are) it costs a copy, not a sort.
func (p *Pool) Evals() []*Eval { return p.evalOrder.sorted((*Eval).id) }

// Allocs returns every alloc sorted by id.
func (p *Pool) Allocs() []*Alloc { return p.allocOrder.sorted((*Alloc).id) }

// Holders returns the workers holding a replica of dataset, sorted by id.
// Replicas past their deadline but not yet expired are included; callers
// that decide compare Replica deadlines with their decision time.
func (p *Pool) Holders(dataset string) []*Worker {
	m := p.holders[dataset]
	out := make([]*Worker, 0, len(m))
	for _, w := range m {
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b *Worker) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Queue returns the pool's pending evals in queue order.
func (p *Pool) Queue() *Queue { return p.queue }

// Free returns the index of workers by free capacity.
func (p *Pool) Free() *FreeIndex { return p.free }

// Worker is a registered worker.
type Worker struct {
	ID       string
	Capacity int64
	// Used is the total size of the worker's running allocs.
	Used     int64
	Deadline time.Time
	Topic    string
	// RegisteredAt is when the worker registered.
	RegisteredAt time.Time
	// Replicas maps each dataset the worker holds to its deadline.
	Replicas map[string]time.Time

	// running lists the worker's running allocs, in no order: each one's
	// slot is its index here. A list, not a map by id: a placement
	// appends to it and an alloc's end swaps the last one into its slot,
	// with no hashing and no table to grow or for the collector to scan.
	running []*Alloc

	// free is the worker's place in its pool's FreeIndex.
	free freeSlot
}

// NumRunning is the number of the worker's running allocs.
func (w *Worker) NumRunning() int { return len(w.running) }

// Runs reports whether a is one of the worker's running allocs.
func (w *Worker) Runs(a *Alloc) bool {
	i := int(a.slot)
	return i < len(w.running) && w.running[i] == a
}

// addRunning lists a, placed on the worker, as running.
func (w *Worker) addRunning(a *Alloc) {
	a.slot = int32(len(w.running))
	w.running = append(w.running, a)
}

// dropRunning takes a, one of the worker's running allocs, off the list:
// the last one takes its slot.
func (w *Worker) dropRunning(a *Alloc) {
	last := len(w.running) - 1
	moved := w.running[last]
	w.running[a.slot], moved.slot = moved, a.slot
	w.running[last] = nil
	w.running = w.running[:last]
}

// Free is the capacity not used by running allocs.
func (w *Worker) Free() int64 { return w.Capacity - w.Used }

// Datasets returns the datasets the worker holds, sorted.
func (w *Worker) Datasets() []string {
	out := make([]string, 0, len(w.Replicas))
	for d := range w.Replicas {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// RunningAllocs returns the worker's running allocs sorted by id.
func (w *Worker) RunningAllocs() []*Alloc {
	return sortedByID(w.running, (*Alloc).id)
}

// Eval is a scheduling request and where it stands. It is kept compact (the
// fold holds one per eval ever submitted): what is rarely set lives behind
// one pointer, times are stamps and the status is a code. The accessors give
// the values.
type Eval struct {
	ID        string
	DatasetID string
	Size      int64
	// Attempts counts placements so far.
	Attempts int
	// NextAttempt is the attempt number of the next placement.
	NextAttempt int
	// AllocID is the current (or last) alloc.
	AllocID string
	// Position is where the eval.submitted event sits on the log.
	Position events.Position

	submittedAt stamp
	queuedAt    stamp
	// qnode is the eval's node in its pool's queue while pending.
	qnode *queueNode
	// extra holds what most evals never set; nil until one is.
	extra  *evalExtra
	status evalCode
}

// evalExtra is the rarely set part of an eval.
type evalExtra struct {
	payload json.RawMessage
	endedAt stamp
	reason  string
	result  events.CompletionStatus
}

func (ev *Eval) more() *evalExtra {
	if ev.extra == nil {
		ev.extra = &evalExtra{endedAt: zeroStamp}
	}
	return ev.extra
}

// Status is where the eval stands.
func (ev *Eval) Status() EvalStatus { return ev.status.status() }

// Payload is the opaque payload the eval was submitted with.
func (ev *Eval) Payload() json.RawMessage {
	if ev.extra == nil {
		return nil
	}
	return ev.extra.payload
}

// SubmittedAt is when the eval was submitted.
func (ev *Eval) SubmittedAt() time.Time { return ev.submittedAt.time() }

// QueuedAt is when the eval last entered the queue.
func (ev *Eval) QueuedAt() time.Time { return ev.queuedAt.time() }

// EndedAt is when the eval reached a final status.
func (ev *Eval) EndedAt() time.Time {
	if ev.extra == nil {
		return time.Time{}
	}
	return ev.extra.endedAt.time()
}

// Reason says why the eval was rejected, requeued or dead-lettered.
func (ev *Eval) Reason() string {
	if ev.extra == nil {
		return ""
	}
	return ev.extra.reason
}

// Result is the completion status of a completed eval.
func (ev *Eval) Result() events.CompletionStatus {
	if ev.extra == nil {
		return ""
	}
	return ev.extra.result
}

// end moves ev to a final status at time at.
func (ev *Eval) end(status evalCode, at time.Time) {
	ev.status = status
	ev.more().endedAt = toStamp(at)
}

// setReason sets the reason (an empty one allocates nothing).
func (ev *Eval) setReason(reason string) {
	if reason != "" || ev.extra != nil {
		ev.more().reason = reason
	}
}

// evalCode is an EvalStatus in one byte; the zero code is the empty status
// of a zero Eval.
type evalCode uint8

const (
	evalNoCode evalCode = iota
	evalPendingCode
	evalPlacedCode
	evalCompletedCode
	evalRejectedCode
	evalDeadLetteredCode
)

func (c evalCode) status() EvalStatus {
	switch c {
	case evalPendingCode:
		return EvalPending
	case evalPlacedCode:
		return EvalPlaced
	case evalCompletedCode:
		return EvalCompleted
	case evalRejectedCode:
		return EvalRejected
	case evalDeadLetteredCode:
		return EvalDeadLettered
	}
	return ""
}

// Alloc is a placed eval. It is kept compact (the fold holds one per eval
// ever placed): what is rarely set lives behind one pointer, times are
// stamps, statuses and strategies are codes, and the worker id and topic
// come from the worker it was placed on. The accessors give the values.
type Alloc struct {
	ID        string
	EvalID    string
	DatasetID string
	Size      int64
	Attempt   int

	// worker is the worker the alloc was placed on (it may have expired
	// since, or been replaced by a namesake): its id and, unless the
	// placement named another one, its topic.
	worker         *Worker
	deadline       stamp
	placedAt       stamp
	placedDeadline stamp
	waitedMs       events.Millis
	basis          int64
	candidates     int32
	// slot is the alloc's index in its worker's list of running allocs
	// while it runs (see Worker.Runs), ttlSlot in its deadline's bucket
	// of the pool's TTLIndex.
	slot     int32
	ttlSlot  int32
	status   allocCode
	strategy strategyCode
	locality localityCode
	// extra holds what most allocs never set; nil until one is.
	extra *allocExtra
}

// allocExtra is the rarely set part of an alloc.
type allocExtra struct {
	endedAt      stamp
	completion   *events.AllocCompletedData
	expiryReason string
	// topic is set when the placement named a topic other than its
	// worker's.
	topic    string
	hasTopic bool
	// strategy and locality are set when their codes are unknown.
	strategy events.Strategy
	locality events.Locality
	// candidates is set when the count does not fit the int32.
	candidates int
}

func (a *Alloc) more() *allocExtra {
	if a.extra == nil {
		a.extra = &allocExtra{endedAt: zeroStamp}
	}
	return a.extra
}

// WorkerID is the worker the alloc was placed on.
func (a *Alloc) WorkerID() string { return a.worker.ID }

// Topic is the alloc topic the placement named.
func (a *Alloc) Topic() string {
	if a.extra != nil && a.extra.hasTopic {
		return a.extra.topic
	}
	return a.worker.Topic
}

// Deadline is when the alloc expires unless its worker heartbeats it.
func (a *Alloc) Deadline() time.Time { return a.deadline.time() }

// Status is where the alloc stands.
func (a *Alloc) Status() AllocStatus { return a.status.status() }

// PlacedAt is when the alloc was placed.
func (a *Alloc) PlacedAt() time.Time { return a.placedAt.time() }

// EndedAt is when the alloc completed or expired (zero while running).
func (a *Alloc) EndedAt() time.Time {
	if a.extra == nil {
		return time.Time{}
	}
	return a.extra.endedAt.time()
}

// Completion is set once the worker completed the alloc.
func (a *Alloc) Completion() *events.AllocCompletedData {
	if a.extra == nil {
		return nil
	}
	return a.extra.completion
}

// ExpiryReason is set once the alloc expired.
func (a *Alloc) ExpiryReason() string {
	if a.extra == nil {
		return ""
	}
	return a.extra.expiryReason
}

// Placement is what the alloc keeps of its decision record beyond its own
// fields: strategy, locality, candidates, wait, basis and the deadline it
// was placed with. PlacedData rebuilds the whole record.
func (a *Alloc) Placement() Placement {
	pl := Placement{Deadline: a.placedDeadline.time(), WaitedMs: a.waitedMs, Basis: a.basis,
		Candidates: int(a.candidates)}
	if a.candidates == candidatesElsewhere {
		pl.Candidates = a.extra.candidates
	}
	if pl.Strategy = a.strategy.strategy(); a.strategy == strategyOther {
		pl.Strategy = a.extra.strategy
	}
	if pl.Locality = a.locality.locality(); a.locality == localityOther {
		pl.Locality = a.extra.locality
	}
	return pl
}

// setPlacement stores pl in a's compact fields.
func (a *Alloc) setPlacement(pl Placement) {
	a.placedDeadline, a.waitedMs, a.basis = toStamp(pl.Deadline), pl.WaitedMs, pl.Basis
	if c := int32(pl.Candidates); int(c) == pl.Candidates && c != candidatesElsewhere {
		a.candidates = c
	} else {
		a.candidates = candidatesElsewhere
		a.more().candidates = pl.Candidates
	}
	if a.strategy = strategyCodeOf(pl.Strategy); a.strategy == strategyOther {
		a.more().strategy = pl.Strategy
	}
	if a.locality = localityCodeOf(pl.Locality); a.locality == localityOther {
		a.more().locality = pl.Locality
	}
}

// candidatesElsewhere marks a candidate count held in allocExtra.
const candidatesElsewhere = -1 << 31

// allocCode is an AllocStatus in one byte.
type allocCode uint8

const (
	allocRunningCode allocCode = iota
	allocCompletedCode
	allocExpiredCode
)

func (c allocCode) status() AllocStatus {
	switch c {
	case allocCompletedCode:
		return AllocCompleted
	case allocExpiredCode:
		return AllocExpired
	}
	return AllocRunning
}

// strategyCode is a placement's strategy in one byte; strategyOther means
// the string is in allocExtra.
type strategyCode uint8

const (
	strategyOther strategyCode = iota
	strategySpread
	strategyBinpack
)

func strategyCodeOf(s events.Strategy) strategyCode {
	switch s {
	case events.Spread:
		return strategySpread
	case events.Binpack:
		return strategyBinpack
	}
	return strategyOther
}

func (c strategyCode) strategy() events.Strategy {
	switch c {
	case strategySpread:
		return events.Spread
	case strategyBinpack:
		return events.Binpack
	}
	return ""
}

// localityCode is a placement's locality in one byte; localityOther means
// the string is in allocExtra.
type localityCode uint8

const (
	localityOther localityCode = iota
	localityNone
	localityHit
	localityMiss
)

func localityCodeOf(l events.Locality) localityCode {
	switch l {
	case events.LocalityNone:
		return localityNone
	case events.LocalityHit:
		return localityHit
	case events.LocalityMiss:
		return localityMiss
	}
	return localityOther
}

func (c localityCode) locality() events.Locality {
	switch c {
	case localityNone:
		return events.LocalityNone
	case localityHit:
		return events.LocalityHit
	case localityMiss:
		return events.LocalityMiss
	}
	return ""
}

// Placement is the part of an alloc.placed record beyond the alloc's ids,
// size, attempt and topic. Alloc.Placement builds it from the alloc's
// compact fields.
type Placement struct {
	// Deadline is the deadline the placement set; the alloc's Deadline
	// moves on with heartbeats.
	Deadline time.Time
	// Strategy is the pool strategy that ranked the candidates.
	Strategy events.Strategy
	// Locality tells whether a replica holder was chosen.
	Locality events.Locality
	// Candidates is how many feasible workers were considered.
	Candidates int
	// WaitedMs is how long the eval waited in the queue.
	WaitedMs events.Millis
	// Basis is the offset up to which the deciding scheduler had folded the
	// partition.
	Basis int64
}

// PlacedData rebuilds the alloc.placed record that placed a: the alloc's
// own fields as placed plus its Placement.
func (a *Alloc) PlacedData() events.AllocPlacedData {
	pl := a.Placement()
	return events.AllocPlacedData{AllocID: a.ID, EvalID: a.EvalID, WorkerID: a.WorkerID(), DatasetID: a.DatasetID,
		Size: a.Size, Attempt: a.Attempt, Deadline: pl.Deadline, Topic: a.Topic(), Strategy: pl.Strategy,
		Locality: pl.Locality, Candidates: pl.Candidates, WaitedMs: pl.WaitedMs, Basis: pl.Basis}
}

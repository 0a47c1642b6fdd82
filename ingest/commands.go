package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/line-sched/line/broker"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/state"
)

// MaxBatch is the largest number of evals one batch submission may carry.
const MaxBatch = 10000

// maxDatasets bounds the datasets of one registration or heartbeat.
const maxDatasets = 1000

// CreatePool is the command that opens a pool.
type CreatePool struct {
	// ID is optional; line generates one when empty.
	ID       string
	Strategy events.Strategy
	// LocalityWait is how long an eval waits for a replica holder.
	LocalityWait time.Duration
	// Delivery is how allocs reach the workers; empty means
	// events.PerWorker.
	Delivery events.Delivery
}

// PoolCreated answers CreatePool.
type PoolCreated struct {
	ID           string
	Strategy     events.Strategy
	LocalityWait time.Duration
	Delivery     events.Delivery
	Position     events.Position
}

// CreatePool opens a pool (409 if the id was ever used).
func (s *Service) CreatePool(ctx context.Context, c CreatePool) (PoolCreated, error) {
	now := s.clock()
	if c.ID == "" {
		c.ID = events.NewULID(now)
	} else if err := events.ValidateID(events.PoolID, c.ID); err != nil {
		return PoolCreated{}, badRequest("invalid_id", "%v", err)
	}
	if c.Strategy == "" {
		c.Strategy = events.Spread
	}
	if !c.Strategy.Valid() {
		return PoolCreated{}, badRequest("invalid_strategy", "strategy %q is not spread or binpack", c.Strategy)
	}
	if c.LocalityWait < 0 {
		return PoolCreated{}, badRequest("invalid_locality_wait", "locality_wait must not be negative")
	}
	if !c.Delivery.Valid() {
		return PoolCreated{}, badRequest("invalid_delivery", "delivery %q is not per-worker or shared", c.Delivery)
	}
	c.Delivery = c.Delivery.OrDefault()
	// The log leaves the default out (pool.created of per-worker pools
	// is the same as before delivery modes existed).
	logged := c.Delivery
	if logged == events.PerWorker {
		logged = ""
	}
	key := "pool/" + c.ID
	for {
		f, mine, err := s.begin(ctx, key)
		if err != nil {
			return PoolCreated{}, unavailable(err)
		}
		if !mine {
			continue
		}
		exists := false
		s.view.Read(func(st *state.State) { exists = st.Pool(c.ID) != nil })
		if exists {
			s.end(key, f, events.Position{}, errExists)
			return PoolCreated{}, conflict("pool_exists", "pool %s already exists; choose another pool_id or omit it", c.ID)
		}
		e := events.New(c.ID, now, events.PoolCreatedData{Strategy: c.Strategy, LocalityWaitMs: events.ToMillis(c.LocalityWait), Delivery: logged})
		pos, err := s.append(ctx, e)
		s.end(key, f, pos, err)
		if err != nil {
			return PoolCreated{}, err
		}
		// A pool's first commands (register workers, submit evals)
		// come at once: answer when this ingest's own view holds the
		// pool, so that they find it without a 404 however far the
		// view is behind (the pool exists in the log either way; the
		// wait is bounded).
		wctx, cancel := context.WithTimeout(ctx, createdWait)
		_ = s.view.WaitApplied(wctx, pos)
		cancel()
		return PoolCreated{ID: c.ID, Strategy: c.Strategy, LocalityWait: events.ToMillis(c.LocalityWait).Duration(),
			Delivery: c.Delivery, Position: pos}, nil
	}
}

var errExists = fmt.Errorf("exists")

// createdWait bounds how long CreatePool waits for the service's view to
// apply the new pool before it answers.
const createdWait = 10 * time.Second

// PoolDisbanded answers DisbandPool.
type PoolDisbanded struct {
	ID       string
	DeleteAt time.Time
	Position events.Position
}

// activePool checks that pool exists (404) and is active (409).
func activePool(st *state.State, pool string) (*state.Pool, error) {
	p := st.Pool(pool)
	if p == nil {
		return nil, notFound("pool_not_found", "pool %s does not exist; create it with POST /v1/pools", pool)
	}
	if p.Status != state.PoolActive {
		return nil, conflict("pool_"+string(p.Status), "pool %s is %s and accepts no new work; create a new pool", pool, p.Status)
	}
	return p, nil
}

// livePool checks that pool exists and is not deleted: running work of a
// disbanded pool may still heartbeat and complete.
func livePool(st *state.State, pool string) (*state.Pool, error) {
	p := st.Pool(pool)
	if p == nil {
		return nil, notFound("pool_not_found", "pool %s does not exist", pool)
	}
	if p.Status == state.PoolDeleted {
		return nil, conflict("pool_deleted", "pool %s was deleted", pool)
	}
	return p, nil
}

// DisbandPool stops scheduling on a pool; it is deleted after the pool TTL.
func (s *Service) DisbandPool(ctx context.Context, pool string) (PoolDisbanded, error) {
	if err := events.ValidateID(events.PoolID, pool); err != nil {
		return PoolDisbanded{}, badRequest("invalid_id", "%v", err)
	}
	key := "pool/" + pool
	for {
		f, mine, err := s.begin(ctx, key)
		if err != nil {
			return PoolDisbanded{}, unavailable(err)
		}
		if !mine {
			continue
		}
		err = s.read(ctx, pool, func(st *state.State) error {
			p := st.Pool(pool)
			if p == nil {
				return notFound("pool_not_found", "pool %s does not exist", pool)
			}
			if p.Status != state.PoolActive {
				return conflict("pool_"+string(p.Status), "pool %s is already %s", pool, p.Status)
			}
			return nil
		})
		if err != nil {
			s.end(key, f, events.Position{}, err)
			return PoolDisbanded{}, err
		}
		now := s.clock()
		d := events.PoolDisbandedData{DeleteAt: now.Add(s.cfg.PoolTTL)}
		pos, err := s.append(ctx, events.New(pool, now, d))
		s.end(key, f, pos, err)
		if err != nil {
			return PoolDisbanded{}, err
		}
		return PoolDisbanded{ID: pool, DeleteAt: d.DeleteAt, Position: pos}, nil
	}
}

// RegisterWorker is the command that adds a worker to a pool.
type RegisterWorker struct {
	// ID is optional; line generates one when empty.
	ID       string
	Capacity int64
	Datasets []string
}

// WorkerRegistered answers RegisterWorker.
type WorkerRegistered struct {
	Pool     string
	ID       string
	Capacity int64
	// Topic and Partition are where the worker's allocs arrive;
	// StartOffset is the first offset there that can hold one.
	Topic       string
	Partition   int32
	StartOffset int64
	Deadline    time.Time
	Position    events.Position
}

func validateCapacity(c int64) error {
	if c <= 0 || c > math.MaxInt32 {
		return badRequest("invalid_capacity", "capacity %d must be between 1 and %d", c, math.MaxInt32)
	}
	return nil
}

func validateIDs(kind events.IDKind, ids []string, max int) error {
	if len(ids) > max {
		return badRequest("too_many", "at most %d %ss, got %d", max, kind, len(ids))
	}
	for _, id := range ids {
		if err := events.ValidateID(kind, id); err != nil {
			return badRequest("invalid_id", "%v", err)
		}
	}
	return nil
}

// dedupe returns ids without repeats, in first-seen order.
func dedupe(ids []string) []string {
	if len(ids) < 2 {
		return ids
	}
	seen := make(map[string]struct{}, len(ids))
	out := ids[:0:0]
	for _, id := range ids {
		if _, ok := seen[id]; !ok {
			seen[id] = struct{}{}
			out = append(out, id)
		}
	}
	return out
}

// RegisterWorker creates the worker's alloc topic (per-worker delivery; a
// worker of a shared pool uses the shared alloc topic, created at start-up),
// then appends worker.registered.
func (s *Service) RegisterWorker(ctx context.Context, pool string, c RegisterWorker) (WorkerRegistered, error) {
	if err := events.ValidateID(events.PoolID, pool); err != nil {
		return WorkerRegistered{}, badRequest("invalid_id", "%v", err)
	}
	if err := validateCapacity(c.Capacity); err != nil {
		return WorkerRegistered{}, err
	}
	if err := validateIDs(events.DatasetID, c.Datasets, maxDatasets); err != nil {
		return WorkerRegistered{}, err
	}
	now := s.clock()
	if c.ID == "" {
		c.ID = events.NewULID(now)
	} else if err := events.ValidateID(events.WorkerID, c.ID); err != nil {
		return WorkerRegistered{}, badRequest("invalid_id", "%v", err)
	}
	key := "worker/" + pool + "/" + c.ID
	for {
		f, mine, err := s.begin(ctx, key)
		if err != nil {
			return WorkerRegistered{}, unavailable(err)
		}
		if !mine {
			continue
		}
		var delivery events.Delivery
		err = s.read(ctx, pool, func(st *state.State) error {
			p, err := activePool(st, pool)
			if err != nil {
				return err
			}
			if p.Worker(c.ID) != nil {
				return conflict("worker_exists", "worker %s is already registered in pool %s; heartbeat it or choose another worker_id", c.ID, pool)
			}
			delivery = p.Delivery
			return nil
		})
		if err != nil {
			s.end(key, f, events.Position{}, err)
			return WorkerRegistered{}, err
		}
		target := s.cfg.Topics.AllocTarget(delivery, pool, c.ID, s.cfg.AllocsPartitions)
		topic := target.Topic
		var start int64
		tctx, cancel := context.WithTimeout(ctx, s.cfg.ProduceTimeout)
		if delivery == events.Shared {
			// Every alloc of the worker is written after worker.registered,
			// hence after this end offset: the agent starts reading there.
			start, err = s.endOffset(tctx, target)
		} else {
			err = broker.EnsureTopics(tctx, s.adm, broker.TopicSpec{Name: topic, Partitions: 1})
		}
		cancel()
		if err != nil {
			s.end(key, f, events.Position{}, err)
			return WorkerRegistered{}, unavailable(fmt.Errorf("prepare alloc topic %s: %w", topic, err))
		}
		now = s.clock()
		d := events.WorkerRegisteredData{WorkerID: c.ID, Capacity: c.Capacity, Topic: topic,
			Deadline: now.Add(s.cfg.WorkerTTL), Datasets: dedupe(c.Datasets), ReplicaDeadline: now.Add(s.cfg.ReplicaTTL)}
		pos, err := s.append(ctx, events.New(pool, now, d))
		s.end(key, f, pos, err)
		if err != nil {
			return WorkerRegistered{}, err
		}
		return WorkerRegistered{Pool: pool, ID: c.ID, Capacity: c.Capacity, Topic: topic, Partition: target.Partition,
			StartOffset: start, Deadline: d.Deadline, Position: pos}, nil
	}
}

// endOffset is the end (high watermark) of t's partition.
func (s *Service) endOffset(ctx context.Context, t events.AllocTarget) (int64, error) {
	ends, err := s.adm.ListEndOffsets(ctx, t.Topic)
	if err != nil {
		return 0, fmt.Errorf("list end offsets: %w", err)
	}
	o, ok := ends.Lookup(t.Topic, t.Partition)
	if !ok {
		return 0, fmt.Errorf("partition %d not found (is LINE_ALLOCS_PARTITIONS the partition count of the topic?)", t.Partition)
	}
	if o.Err != nil {
		return 0, fmt.Errorf("partition %d: %w", t.Partition, o.Err)
	}
	return o.Offset, nil
}

// Heartbeat is the command that keeps a worker, its replicas and its allocs
// alive.
type Heartbeat struct {
	Allocs   []string
	Datasets []string
}

// HeartbeatAccepted answers Heartbeat.
type HeartbeatAccepted struct {
	Pool     string
	Worker   string
	Deadline time.Time
	Position events.Position
}

// Heartbeat pushes the deadlines of a worker, of the datasets it reports and
// of the allocs it runs.
func (s *Service) Heartbeat(ctx context.Context, pool, worker string, c Heartbeat) (HeartbeatAccepted, error) {
	if err := events.ValidateID(events.PoolID, pool); err != nil {
		return HeartbeatAccepted{}, badRequest("invalid_id", "%v", err)
	}
	if err := events.ValidateID(events.WorkerID, worker); err != nil {
		return HeartbeatAccepted{}, badRequest("invalid_id", "%v", err)
	}
	if err := validateIDs(events.DatasetID, c.Datasets, maxDatasets); err != nil {
		return HeartbeatAccepted{}, err
	}
	if err := validateIDs(events.AllocID, c.Allocs, 100000); err != nil {
		return HeartbeatAccepted{}, err
	}
	err := s.read(ctx, pool, func(st *state.State) error {
		p, err := livePool(st, pool)
		if err != nil {
			return err
		}
		if p.Worker(worker) == nil {
			return notFound("worker_not_found", "worker %s is not registered in pool %s (it may have expired); register it again", worker, pool)
		}
		return nil
	})
	if err != nil {
		return HeartbeatAccepted{}, err
	}
	now := s.clock()
	d := events.WorkerHeartbeatData{WorkerID: worker, Deadline: now.Add(s.cfg.WorkerTTL),
		Datasets: dedupe(c.Datasets), ReplicaDeadline: now.Add(s.cfg.ReplicaTTL),
		Allocs: dedupe(c.Allocs), AllocDeadline: now.Add(s.cfg.AllocTTL)}
	pos, err := s.append(ctx, events.New(pool, now, d))
	if err != nil {
		return HeartbeatAccepted{}, err
	}
	return HeartbeatAccepted{Pool: pool, Worker: worker, Deadline: d.Deadline, Position: pos}, nil
}

// SubmitEval is one eval to queue.
type SubmitEval struct {
	// ID is optional; a client-supplied id makes submission idempotent.
	ID        string
	DatasetID string
	// Size is the capacity needed; 0 means 1.
	Size    int64
	Payload json.RawMessage
}

// EvalAccepted answers one submitted eval.
type EvalAccepted struct {
	Pool string
	ID   string
	// Position is where eval.submitted sits (the original one for a
	// duplicate).
	Position events.Position
	// Duplicate is true when the id was already submitted: nothing was
	// appended.
	Duplicate bool
}

func (c *SubmitEval) normalize(now time.Time) error {
	if c.ID == "" {
		c.ID = events.NewULID(now)
	} else if err := events.ValidateID(events.EvalID, c.ID); err != nil {
		return badRequest("invalid_id", "%v", err)
	}
	if c.DatasetID != "" {
		if err := events.ValidateID(events.DatasetID, c.DatasetID); err != nil {
			return badRequest("invalid_id", "%v", err)
		}
	}
	if c.Size < 0 || c.Size > math.MaxInt32 {
		return badRequest("invalid_size", "size %d must be between 0 and %d (0 means 1)", c.Size, math.MaxInt32)
	}
	if c.Size == 0 {
		c.Size = 1
	}
	if len(c.Payload) > events.MaxPayloadBytes {
		return badRequest("payload_too_large", "payload is %d bytes; at most %d (64 KiB) are accepted", len(c.Payload), events.MaxPayloadBytes)
	}
	if len(c.Payload) > 0 && !json.Valid(c.Payload) {
		return badRequest("invalid_payload", "payload is not valid JSON")
	}
	return nil
}

// SubmitEval queues one eval. Submitting an id again answers the original
// eval with Duplicate set and appends nothing.
func (s *Service) SubmitEval(ctx context.Context, pool string, c SubmitEval) (EvalAccepted, error) {
	if err := events.ValidateID(events.PoolID, pool); err != nil {
		return EvalAccepted{}, badRequest("invalid_id", "%v", err)
	}
	now := s.clock()
	if err := c.normalize(now); err != nil {
		return EvalAccepted{}, err
	}
	key := "eval/" + pool + "/" + c.ID
	for {
		f, mine, err := s.begin(ctx, key)
		if err != nil {
			return EvalAccepted{}, unavailable(err)
		}
		if !mine {
			continue
		}
		var dup *EvalAccepted
		err = s.read(ctx, pool, func(st *state.State) error {
			p, err := activePool(st, pool)
			if err != nil {
				return err
			}
			if ev := p.Eval(c.ID); ev != nil {
				dup = &EvalAccepted{Pool: pool, ID: c.ID, Position: ev.Position, Duplicate: true}
			}
			return nil
		})
		if err != nil || dup != nil {
			s.end(key, f, events.Position{}, errExists)
			if err != nil {
				return EvalAccepted{}, err
			}
			return *dup, nil
		}
		d := events.EvalSubmittedData{EvalID: c.ID, DatasetID: c.DatasetID, Size: c.Size, Payload: c.Payload}
		pos, err := s.append(ctx, events.New(pool, now, d))
		s.end(key, f, pos, err)
		if err != nil {
			return EvalAccepted{}, err
		}
		return EvalAccepted{Pool: pool, ID: c.ID, Position: pos}, nil
	}
}

// SubmitEvals queues a batch of evals of one pool atomically: all new evals
// are appended in one transaction, or none is. Ids already submitted (or
// repeated within the batch) come back as duplicates.
func (s *Service) SubmitEvals(ctx context.Context, pool string, cs []SubmitEval) ([]EvalAccepted, error) {
	if err := events.ValidateID(events.PoolID, pool); err != nil {
		return nil, badRequest("invalid_id", "%v", err)
	}
	if len(cs) == 0 || len(cs) > MaxBatch {
		return nil, badRequest("invalid_batch", "a batch holds 1 to %d evals, got %d", MaxBatch, len(cs))
	}
	now := s.clock()
	for i := range cs {
		if err := cs[i].normalize(now); err != nil {
			e := AsError(err)
			e.Message = fmt.Sprintf("evals[%d]: %s", i, e.Message)
			return nil, e
		}
	}
	if err := s.read(ctx, pool, func(st *state.State) error { _, err := activePool(st, pool); return err }); err != nil {
		return nil, err
	}
	// Reserve every id of the batch; ids in flight elsewhere are waited
	// for, then found in the state as duplicates.
	type reserved struct {
		key string
		f   *flight
	}
	var held []reserved
	release := func(pos map[string]events.Position, err error) {
		for _, r := range held {
			p, ok := pos[r.key]
			if err == nil && !ok {
				// A held id that turned out to be known appended
				// nothing: there is no position to wait for.
				s.end(r.key, r.f, p, errExists)
				continue
			}
			s.end(r.key, r.f, p, err)
		}
	}
	out := make([]EvalAccepted, len(cs))
	firstOf := make(map[string]int, len(cs))
	var fresh []int
	for i, c := range cs {
		if j, ok := firstOf[c.ID]; ok {
			out[i] = EvalAccepted{Pool: pool, ID: c.ID, Duplicate: true, Position: events.Position{Partition: -1 - int32(j)}}
			continue
		}
		firstOf[c.ID] = i
		key := "eval/" + pool + "/" + c.ID
		for {
			f, mine, err := s.begin(ctx, key)
			if err != nil {
				release(nil, err)
				return nil, unavailable(err)
			}
			if mine {
				held = append(held, reserved{key, f})
				break
			}
		}
	}
	var err error
	s.view.Read(func(st *state.State) {
		p, perr := activePool(st, pool)
		if perr != nil {
			err = perr
			return
		}
		for i, c := range cs {
			if out[i].Duplicate {
				continue
			}
			if ev := p.Eval(c.ID); ev != nil {
				out[i] = EvalAccepted{Pool: pool, ID: c.ID, Position: ev.Position, Duplicate: true}
				continue
			}
			fresh = append(fresh, i)
		}
	})
	if err != nil {
		release(nil, err)
		return nil, err
	}
	positions := make(map[string]events.Position, len(fresh))
	if len(fresh) > 0 {
		es := make([]events.Envelope, len(fresh))
		for k, i := range fresh {
			c := cs[i]
			es[k] = events.New(pool, now, events.EvalSubmittedData{EvalID: c.ID, DatasetID: c.DatasetID, Size: c.Size, Payload: c.Payload})
		}
		pos, err := s.appendAtomically(ctx, es)
		if err != nil {
			release(nil, err)
			return nil, err
		}
		for k, i := range fresh {
			out[i] = EvalAccepted{Pool: pool, ID: cs[i].ID, Position: pos[k]}
			positions["eval/"+pool+"/"+cs[i].ID] = pos[k]
		}
	}
	release(positions, nil)
	// Repeats within the batch point at their first occurrence.
	for i := range out {
		if out[i].Duplicate && out[i].Position.Partition < 0 {
			out[i].Position = out[-1-int(out[i].Position.Partition)].Position
		}
	}
	return out, nil
}

// CompleteAlloc is the command that ends a running alloc.
type CompleteAlloc struct {
	Status   events.CompletionStatus
	ExitCode *int32
	Message  string
}

// AllocCompleted answers CompleteAlloc.
type AllocCompleted struct {
	Pool     string
	ID       string
	Status   events.CompletionStatus
	Position events.Position
}

// maxMessage bounds a completion message (the tail of a process's output).
const maxMessage = 4096

// CompleteAlloc ends a running alloc: 404 if unknown, 409 if already ended.
func (s *Service) CompleteAlloc(ctx context.Context, pool, alloc string, c CompleteAlloc) (AllocCompleted, error) {
	if err := events.ValidateID(events.PoolID, pool); err != nil {
		return AllocCompleted{}, badRequest("invalid_id", "%v", err)
	}
	if err := events.ValidateID(events.AllocID, alloc); err != nil {
		return AllocCompleted{}, badRequest("invalid_id", "%v", err)
	}
	if c.Status == "" {
		c.Status = events.Succeeded
	}
	if !c.Status.Valid() {
		return AllocCompleted{}, badRequest("invalid_status", "status %q must be succeeded or failed", c.Status)
	}
	if len(c.Message) > maxMessage {
		return AllocCompleted{}, badRequest("message_too_long", "message is %d bytes; at most %d", len(c.Message), maxMessage)
	}
	key := "complete/" + pool + "/" + alloc
	for {
		f, mine, err := s.begin(ctx, key)
		if err != nil {
			return AllocCompleted{}, unavailable(err)
		}
		if !mine {
			continue
		}
		err = s.read(ctx, pool, func(st *state.State) error {
			p, err := livePool(st, pool)
			if err != nil {
				return err
			}
			a := p.Alloc(alloc)
			if a == nil {
				return notFound("alloc_not_found", "alloc %s does not exist in pool %s", alloc, pool)
			}
			if a.Status() != state.AllocRunning {
				return conflict("alloc_"+string(a.Status()), "alloc %s is already %s; nothing to complete", alloc, a.Status())
			}
			return nil
		})
		if err != nil {
			s.end(key, f, events.Position{}, err)
			return AllocCompleted{}, err
		}
		d := events.AllocCompletedData{AllocID: alloc, Status: c.Status, ExitCode: c.ExitCode, Message: c.Message}
		pos, err := s.append(ctx, events.New(pool, s.clock(), d))
		s.end(key, f, pos, err)
		if err != nil {
			return AllocCompleted{}, err
		}
		return AllocCompleted{Pool: pool, ID: alloc, Status: c.Status, Position: pos}, nil
	}
}

// Health is the readiness of the service.
type Health struct {
	Ready   bool
	Kafka   error
	Applied map[int32]int64
	Poison  int64
}

// Health pings the broker and reports how far the live fold has applied.
func (s *Service) Health(ctx context.Context) Health {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	h := Health{Kafka: s.Ping(ctx), Applied: s.view.Applied(), Poison: s.view.Poison()}
	h.Ready = h.Kafka == nil
	return h
}

// SortedPartitions returns the keys of m in order.
func SortedPartitions(m map[int32]int64) []int32 {
	out := make([]int32, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

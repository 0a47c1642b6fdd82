// Package schedloop runs the scheduler's pure core (package scheduler)
// against Kafka with exactly-once semantics.
//
// A consumer group reads the events topic (read_committed). For each
// partition it owns, the loop folds the whole partition from offset 0 with
// the shared fold, so the state it decides from is exactly what the log
// implies. Each round's decisions (appended to the events topic), the alloc
// records on worker topics, dead-letter records and the consumed offsets
// commit in one transaction (franz-go's GroupTransactSession): a crashed or
// fenced instance leaves nothing half-written, and its successor rebuilds
// the same state from the log.
//
// Pipelining: a round that only places evals is applied to the state as
// soon as its transaction committed, at the offsets the broker gave its
// records, so that the pool is decided again at once instead of after the
// round was read back from the log. Read back, those records are skipped
// (not decoded again). Meanwhile the state is the fold of the log up to the
// partition's position plus these placements, which sit further on; the
// records in between (ingest's, folded when they arrive) are folded after
// them. That gives exactly the fold of the log, because every event ingest
// writes commutes with a placement: a placement needs a pending eval and a
// live worker with room, and ingest only adds evals, workers and pools,
// moves deadlines forward, returns capacity and disbands (a placement
// decided before the disband still applies). The two exceptions name an
// alloc, a heartbeat listing it or its completion, and cannot come from a
// well-behaved client before the alloc is committed (ingest completes only
// allocs on its fold; an agent learns an alloc from its worker topic). A
// record that does not provably commute (one of those, or any other type) is
// a conflict: the partition's state is folded again from offset 0 up to that
// record, the placements still unread become in flight, and the loop goes on
// exactly as without pipelining.
//
// Every other round (expiries, retries, disband rejections) is not applied
// ahead: its pool is decided again only once its events were read back, so
// the state only advances by folding the log, whatever ingest appended in
// between, and every decision is valid where it lands.
package schedloop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/line-sched/line/broker"
	"github.com/line-sched/line/config"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/scheduler"
	"github.com/line-sched/line/state"
)

// Options configure a Loop.
type Options struct {
	// Config is the deployment's configuration.
	Config config.Config
	// Brokers to connect to.
	Brokers []string
	// Group is the consumer group; default "<deployment>-scheduler".
	Group string
	// InstanceID names this instance in its transactional id; default
	// Config.SchedulerID. Concurrent instances need distinct ids; a
	// restart with the same id fences the previous incarnation at once.
	InstanceID string
	// Clock is the decision clock; nil means time.Now. It is read only
	// here, at the edge: the core gets the time as an argument.
	Clock func() time.Time
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Tick is how often deadlines are checked even without new events;
	// default 250ms (the issue asks for at least every second).
	Tick time.Duration
	// MaxPollRecords caps the records one round folds, so that a round
	// (and a shutdown, and a rebalance, which wait for it) stays short
	// while a partition is rebuilt; default 10,000.
	MaxPollRecords int
	// MaxRoundEvents caps the events one transaction carries, so that
	// transactions stay short under load; default 20,000.
	MaxRoundEvents int
	// MaxAheadEvents caps, per partition, the placements applied to the
	// state before they were read back: a pool with some of them is not
	// decided while the partition is at the cap; default 4 ×
	// MaxRoundEvents.
	MaxAheadEvents int
	// ClientOpts are extra franz-go options (tests use them for short
	// session timeouts) of the group's client; the reader that folds a
	// partition again after a conflict (see the package doc) does not get
	// them.
	ClientOpts []kgo.Opt
}

// Stats are counters of a running loop.
type Stats struct {
	Applied      int64
	Poison       int64
	Rejected     int64
	Transactions int64
	Aborted      int64
	Placed       int64
	Expired      int64
	DeadLettered int64
	// Refolds counts partitions folded again from offset 0 because a
	// record conflicted with placements applied ahead.
	Refolds int64
	// AheadRounds counts pool rounds decided from a state holding
	// placements of earlier rounds not read back yet (pipelined).
	AheadRounds int64
	// WarmedTopics counts the alloc topics whose metadata was loaded
	// ahead of the rounds delivering to them (see warmTopics).
	WarmedTopics int64
	// Predecoded counts records decoded on several cores ahead of their
	// fold while their partition was being rebuilt (see predecode).
	Predecoded int64
}

// Loop is one scheduler instance.
type Loop struct {
	opts  Options
	cfg   config.Config
	topic string
	now   func() time.Time
	log   *slog.Logger
	sess  *kgo.GroupTransactSession
	adm   *kadm.Client

	mu    sync.Mutex
	parts map[int32]*partition // owned partitions
	stats Stats

	deleteTopics chan []string
	// groupClient is the client the group callbacks get.
	groupClient *kgo.Client
	// unquarantined are quarantine copies of an aborted round, to write
	// in the next one (the poison records are not fetched again).
	unquarantined []quarantined
	// moreAtHand is set when the last round was cut short by the caps:
	// the next one polls barely waiting.
	moreAtHand bool
	// warm are alloc topics to load into the producer's metadata before
	// a round delivers to them; warmed are those loaded or asked for
	// (see warmTopics).
	warm     map[string]struct{}
	warmed   map[string]struct{}
	lastWarm time.Time
	// eventValues and deliveryValues hold the values of the records a
	// round encodes (see valueArena), records the records of its events
	// and deliveries (see recordArena); headers are the events' record
	// headers by type, shared by their records; targets are the alloc
	// targets of this round's deliveries, by pool and worker. All are
	// used under mu, by decideLocked.
	eventValues    valueArena
	deliveryValues valueArena
	records        recordArena
	headers        map[events.Type][]kgo.RecordHeader
	targets        map[allocTargetKey]events.AllocTarget
	// beforeProduce, if set (by tests, before Run), is called in each
	// round's transaction before its records are produced.
	beforeProduce func(recs []*kgo.Record)
}

// quarantined is a quarantine copy of a poison record of part.
type quarantined struct {
	part *partition
	rec  *kgo.Record
}

// partition is the fold of one owned partition and what the loop awaits.
type partition struct {
	id   int32
	st   *state.State
	next int64 // next offset to apply
	// ready: decisions wait until next >= ready, the high watermark
	// listed at assignment or after a round whose commit is not
	// confirmed (see endOffsets); negative while it is not known.
	ready int64
	since time.Time
	// pending counts, per pool, this instance's committed decision events
	// not yet read back; a pool is decided again only at zero.
	pending map[string]map[string]struct{}
	// dirty pools got events since they were last decided.
	dirty map[string]struct{}
	// quarantineFrom is the group's committed offset at assignment: the
	// poison records below it were copied to quarantine by a committed
	// round of an earlier owner, so a rebuild does not copy them again.
	quarantineFrom int64
	// ahead holds, by offset, this instance's committed placements that
	// were applied to st before being read back (see the package doc);
	// every offset in it is >= next.
	ahead map[int64]aheadEvent
	// aheadAllocs holds, per pool, the alloc ids of those placements, so
	// that a record folded after them can be checked for a conflict.
	aheadAllocs map[string]map[string]struct{}
	// warmed is set once the alloc topics of the partition's workers were
	// queued for warming, when it first caught up.
	warmed bool
}

// aheadEvent is a placement applied ahead of its read-back.
type aheadEvent struct {
	pool, id, alloc string
	// value is the record as produced: the one read back must equal it.
	value []byte
}

func newPartition(id int32, ready int64, since time.Time, quarantineFrom int64) *partition {
	return &partition{id: id, st: state.New(), ready: ready, since: since, quarantineFrom: quarantineFrom,
		pending: make(map[string]map[string]struct{}), dirty: make(map[string]struct{}),
		ahead: make(map[int64]aheadEvent), aheadAllocs: make(map[string]map[string]struct{})}
}

// New connects the loop to Kafka. Run starts it.
func New(opts Options) (*Loop, error) {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Tick <= 0 {
		opts.Tick = 250 * time.Millisecond
	}
	if opts.MaxPollRecords <= 0 {
		opts.MaxPollRecords = 10000
	}
	if opts.MaxRoundEvents <= 0 {
		opts.MaxRoundEvents = 20000
	}
	if opts.MaxAheadEvents <= 0 {
		opts.MaxAheadEvents = 4 * opts.MaxRoundEvents
	}
	cfg := opts.Config
	if opts.Group == "" {
		opts.Group = cfg.Deployment + "-scheduler"
	}
	if opts.InstanceID == "" {
		opts.InstanceID = cfg.SchedulerID
	}
	if opts.InstanceID == "" {
		opts.InstanceID = events.NewULID(opts.Clock())
	}
	l := &Loop{
		opts:         opts,
		cfg:          cfg,
		topic:        cfg.Topics.Events(),
		now:          opts.Clock,
		log:          opts.Logger.With("component", "scheduler", "instance", opts.InstanceID),
		parts:        make(map[int32]*partition),
		deleteTopics: make(chan []string, 1024),
		warm:         make(map[string]struct{}),
		warmed:       make(map[string]struct{}),
	}
	kopts := append([]kgo.Opt{
		kgo.SeedBrokers(opts.Brokers...),
		kgo.ConsumerGroup(opts.Group),
		kgo.ConsumeTopics(l.topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers come through (applyLocked skips them): a
		// partition whose committed end is a marker, as it is after any
		// transactional append, is caught up only once the marker is
		// seen.
		kgo.KeepControlRecords(),
		kgo.RequireStableFetchOffsets(),
		kgo.BlockRebalanceOnPoll(),
		kgo.TransactionalID(cfg.Deployment + "-scheduler-" + opts.InstanceID),
		kgo.TransactionTimeout(cfg.TxnTimeout),
		kgo.SessionTimeout(cfg.GroupSessionTimeout),
		// Heartbeat well within the session (franz-go's default, 3s,
		// exceeds a short session timeout and is refused).
		kgo.HeartbeatInterval(min(3*time.Second, max(cfg.GroupSessionTimeout/3, 10*time.Millisecond))),
		kgo.RebalanceTimeout(cfg.GroupSessionTimeout),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
		kgo.FetchMaxWait(100 * time.Millisecond),
		// A round that delivers to worker topics it has not produced to
		// yet waits for their metadata; the unknown topics of a round are
		// loaded in one request, and a short minimum age keeps the next
		// round's new topics from waiting franz-go's default 5s.
		kgo.MetadataMinAge(250 * time.Millisecond),
		kgo.AdjustFetchOffsetsFn(l.rewind),
		kgo.OnPartitionsAssigned(l.assigned),
		kgo.OnPartitionsRevoked(l.revoked),
		kgo.OnPartitionsLost(l.revoked),
	}, opts.ClientOpts...)
	sess, err := kgo.NewGroupTransactSession(kopts...)
	if err != nil {
		return nil, fmt.Errorf("scheduler: create transactional consumer: %w", err)
	}
	l.sess = sess
	l.adm = kadm.NewClient(sess.Client())
	return l, nil
}

// assigned only remembers the group's client: the partitions' state is
// made by rewind, which runs once the group's offsets are stable.
func (l *Loop) assigned(_ context.Context, cl *kgo.Client, as map[string][]int32) {
	ps := as[l.topic]
	if len(ps) == 0 {
		return
	}
	l.mu.Lock()
	l.groupClient = cl
	l.mu.Unlock()
	l.log.Info("partitions assigned; rebuilding their state from the log", "partitions", ps)
}

// rewind starts every newly assigned partition at offset 0: the state is
// rebuilt from the log, whatever offset was committed. The partition
// decides only once it has read up to the high watermark listed here (see
// endOffsets for why not the last stable offset). It runs after the
// group's committed offsets were fetched with RequireStableFetchOffsets,
// i.e. after any transaction of the previous owner that commits offsets
// of these partitions ended. (OnPartitionsAssigned runs before that
// fetch: end offsets listed there can miss the previous owner's last
// decisions, and the new owner would decide again what the old one had
// just decided.)
func (l *Loop) rewind(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	if len(offsets[l.topic]) == 0 {
		return offsets, nil
	}
	l.mu.Lock()
	cl := l.groupClient
	l.mu.Unlock()
	ps := make([]int32, 0, len(offsets[l.topic]))
	for p := range offsets[l.topic] {
		ps = append(ps, p)
	}
	ends, err := endOffsets(ctx, kadm.NewClient(cl), l.topic, ps)
	if err != nil {
		l.log.Warn("list end offsets on assignment; listing them again before deciding", "err", err)
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for p, o := range offsets[l.topic] {
		ready, ok := ends[p]
		if !ok {
			ready = -1
		}
		// o is the committed offset (negative without a commit).
		l.parts[p] = newPartition(p, ready, now, max(o.EpochOffset().Offset, 0))
		offsets[l.topic][p] = kgo.NewOffset().At(0).WithEpoch(-1)
	}
	return offsets, nil
}

// endOffsets lists the high watermarks of partitions ps of topic: the
// offset after the last record written, committed or not. A partition that
// has read (read_committed, markers included) up to its high watermark has
// seen the outcome of every transaction that had written to it when it was
// listed. The last stable offset is not enough: an open transaction of
// another producer (an ingest batch) holds it back before records that are
// already committed, such as a previous owner's decisions, and a partition
// deciding there would place their evals a second time.
func endOffsets(ctx context.Context, adm *kadm.Client, topic string, ps []int32) (map[int32]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	listed, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	out := make(map[int32]int64, len(ps))
	var errs []error
	for _, p := range ps {
		o, ok := listed.Lookup(topic, p)
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("no end offset listed for %s partition %d", topic, p))
		case o.Err != nil:
			errs = append(errs, fmt.Errorf("end offset of %s partition %d: %w", topic, p, o.Err))
		default:
			out[p] = o.Offset
		}
	}
	return out, errors.Join(errs...)
}

// listUnknownEnds lists the high watermark of every owned partition whose
// ready offset is not known (a listing failed).
func (l *Loop) listUnknownEnds(ctx context.Context) {
	l.mu.Lock()
	var ps []int32
	for _, part := range l.parts {
		if part.ready < 0 {
			ps = append(ps, part.id)
		}
	}
	l.mu.Unlock()
	if len(ps) == 0 {
		return
	}
	ends, err := endOffsets(ctx, l.adm, l.topic, ps)
	if err != nil {
		l.log.Warn("list end offsets; the partitions wait", "partitions", ps, "err", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for p, end := range ends {
		if part := l.parts[p]; part != nil && part.ready < 0 {
			part.ready = end
		}
	}
}

func (l *Loop) revoked(_ context.Context, _ *kgo.Client, rs map[string][]int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range rs[l.topic] {
		delete(l.parts, p)
	}
	if len(rs[l.topic]) > 0 {
		l.log.Info("partitions revoked", "partitions", rs[l.topic])
	}
}

// Stats returns a snapshot of the counters.
func (l *Loop) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// Close leaves the group and closes the client. Use it only after Run
// returned.
func (l *Loop) Close() { l.sess.Close() }

// Run decides until ctx is done.
func (l *Loop) Run(ctx context.Context) error {
	// Take over the transactional id now, which aborts a previous
	// incarnation's unfinished transaction at once. franz-go would do it
	// only before this instance's first write: until then that
	// transaction holds back every read_committed reader of what it wrote
	// to (and, if it had committed offsets, this instance's own
	// assignment), up to the broker's transaction timeout.
	if _, _, err := l.sess.Client().ProducerID(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("scheduler: initialize the transactional producer: %w", err)
	}
	go l.topicDeleter(ctx)
	for ctx.Err() == nil {
		if err := l.round(ctx); err != nil {
			if ctx.Err() != nil {
				break
			}
			return err
		}
	}
	return nil
}

// round polls what is there (waiting at most a tick, or not at all when the
// previous round left decisions at hand), folds it, decides for every pool
// that may decide, and commits the decisions in one transaction.
func (l *Loop) round(ctx context.Context) error {
	wait := l.opts.Tick
	if l.moreAtHand {
		// Take what is buffered, barely waiting. (Not a nil context,
		// which franz-go documents for that: when nothing is buffered,
		// PollRecords then returns without blocking rebalances, and a
		// partition could be revoked and handed to another instance
		// while this round decides and commits for it.)
		wait = time.Millisecond
	}
	pctx, cancel := context.WithTimeout(ctx, wait)
	fetches := l.sess.PollRecords(pctx, l.opts.MaxPollRecords)
	cancel()
	defer l.sess.AllowRebalance()
	if ctx.Err() != nil {
		return nil
	}
	l.listUnknownEnds(ctx)
	var quarantine []quarantined
	fetches.EachError(func(t string, p int32, err error) {
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			l.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
		}
	})
	decoded := l.predecode(fetches)
	l.mu.Lock()
	// Copies of an aborted round go again, for partitions still owned
	// (a new owner copies what was not committed itself).
	for _, q := range l.unquarantined {
		if l.parts[q.part.id] == q.part {
			quarantine = append(quarantine, q)
		}
	}
	l.unquarantined = nil
	var foldErr error
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		part := l.parts[fp.Partition]
		if part == nil || foldErr != nil {
			return
		}
		pre := decoded[fp.Partition]
		if pre != nil {
			l.stats.Predecoded += int64(len(pre))
		}
		for i, r := range fp.Records {
			var d *decodedRecord
			if pre != nil {
				d = &pre[i]
			}
			q, err := l.applyLocked(ctx, part, r, d)
			if err != nil {
				foldErr = err
				return
			}
			if q != nil {
				quarantine = append(quarantine, quarantined{part: part, rec: q})
			}
		}
	})
	if foldErr != nil {
		l.mu.Unlock()
		return foldErr
	}
	out, commitHooks, more := l.decideLocked()
	l.moreAtHand = more
	var warm []string
	if len(quarantine) == 0 {
		// (A warming transaction commits the consumed offsets: not past
		// a poison record whose quarantine copy is not committed yet.)
		warm = l.warmDueLocked()
	}
	l.mu.Unlock()

	if len(warm) > 0 {
		if err := l.warmTopics(ctx, warm); err != nil {
			return err
		}
	}
	if len(out) == 0 && len(quarantine) == 0 {
		return nil
	}
	for _, q := range quarantine {
		out = append(out, q.rec)
	}
	committed, err := l.commit(ctx, out, commitHooks)
	if !committed {
		l.unquarantined = quarantine
	}
	return err
}

// applyLocked folds one record into its partition. It returns a quarantine
// record for a record that cannot be decoded. It fails only if a conflict
// with placements applied ahead could not be resolved (see refoldLocked) or
// if a placement applied ahead is not on the log where it was committed.
func (l *Loop) applyLocked(ctx context.Context, part *partition, r *kgo.Record, pre *decodedRecord) (*kgo.Record, error) {
	if r.Offset < part.next {
		return nil, nil // re-delivered after an aborted transaction: already folded
	}
	if a, ok := part.ahead[r.Offset]; ok {
		if bytes.Equal(a.value, r.Value) {
			part.next = r.Offset + 1
			part.dropAhead(r.Offset, a)
			return nil, nil // our own placement, applied when its round committed
		}
		// The broker gave this offset to our record: a different record
		// there means nothing this instance holds can be trusted. Fail;
		// a new loop rebuilds every partition from the log.
		return nil, fmt.Errorf("scheduler: the record at %d:%d differs from the placement committed there and applied ahead",
			part.id, r.Offset)
	}
	part.next = r.Offset + 1
	if r.Attrs.IsControl() {
		return nil, nil // a transaction marker: it only moves the position
	}
	l.stats.Applied++
	pos := events.Position{Partition: r.Partition, Offset: r.Offset}
	var (
		e   events.Envelope
		err error
	)
	if pre != nil && pre.done {
		e, err = pre.e, pre.err
	} else {
		e, err = events.FromRecord(r)
	}
	if err != nil {
		l.stats.Poison++
		if r.Offset < part.quarantineFrom {
			l.log.Warn("skipping poison record, quarantined before", "partition", r.Partition, "offset", r.Offset, "err", err)
			return nil, nil
		}
		l.log.Error("skipping poison record; copied to quarantine", "partition", r.Partition, "offset", r.Offset, "err", err)
		return &kgo.Record{Topic: l.cfg.Topics.Quarantine(), Key: r.Key, Value: r.Value,
			Headers: append(append([]kgo.RecordHeader(nil), r.Headers...),
				kgo.RecordHeader{Key: "source", Value: []byte(pos.String())},
				kgo.RecordHeader{Key: "error", Value: []byte(err.Error())})}, nil
	}
	if allocs := part.aheadAllocs[e.Pool]; allocs != nil && !state.CommutesWithPlacements(e, allocs) {
		l.log.Warn("an event lands before placements applied ahead and does not provably commute with them; folding the partition again",
			"position", pos.String(), "type", e.Type, "id", e.ID)
		if err := l.refoldLocked(ctx, part, r.Offset); err != nil {
			return nil, err
		}
	}
	if ids := part.pending[e.Pool]; ids != nil {
		delete(ids, e.ID)
		if len(ids) == 0 {
			delete(part.pending, e.Pool)
		}
	}
	if err := part.st.Apply(e, pos); err != nil {
		l.stats.Rejected++
		l.log.Warn("event did not apply", "position", pos.String(), "id", e.ID, "err", err)
	} else if reg, ok := e.Data.(events.WorkerRegisteredData); ok && part.warmed {
		if p := part.st.Pool(e.Pool); p != nil {
			l.queueWarmLocked(p.Delivery, e.Pool, reg.WorkerID)
		}
	}
	part.dirty[e.Pool] = struct{}{}
	return nil, nil
}

// dropAhead forgets a placement applied ahead, once read back.
func (part *partition) dropAhead(off int64, a aheadEvent) {
	delete(part.ahead, off)
	if m := part.aheadAllocs[a.pool]; m != nil {
		delete(m, a.alloc)
		if len(m) == 0 {
			delete(part.aheadAllocs, a.pool)
		}
	}
}

// refoldLocked replaces the partition's state with the fold of its records
// below upTo, read again from offset 0, which undoes the placements applied
// ahead: they become in flight (pending) and are folded in log order when
// they are read back. It is the rare way out of a conflict (a record that
// does not commute with them). The records below upTo were all read
// read_committed already, so a fresh read_committed reader sees them too.
func (l *Loop) refoldLocked(ctx context.Context, part *partition, upTo int64) error {
	st, err := l.refold(ctx, part.id, upTo)
	if err != nil {
		return fmt.Errorf("scheduler: fold partition %d again up to offset %d: %w", part.id, upTo, err)
	}
	part.st = st
	for _, a := range part.ahead {
		ids := part.pending[a.pool]
		if ids == nil {
			ids = make(map[string]struct{})
			part.pending[a.pool] = ids
		}
		ids[a.id] = struct{}{}
		part.dirty[a.pool] = struct{}{}
	}
	clear(part.ahead)
	clear(part.aheadAllocs)
	l.stats.Refolds++
	return nil
}

// refold reads partition p of the events topic from offset 0 with a reader
// of its own and folds its records below upTo.
func (l *Loop) refold(ctx context.Context, p int32, upTo int64) (*state.State, error) {
	st := state.New()
	if upTo <= 0 {
		return st, nil
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(l.opts.Brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{l.topic: {p: kgo.NewOffset().At(0)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(100*time.Millisecond),
	)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var next int64
	for next < upTo {
		fs := cl.PollRecords(ctx, l.opts.MaxPollRecords)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var fetchErr error
		fs.EachError(func(_ string, _ int32, err error) { fetchErr = errors.Join(fetchErr, err) })
		if fetchErr != nil {
			return nil, fetchErr
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= upTo {
				// Reached (records of aborted transactions just
				// below it are never returned).
				next = upTo
				return
			}
			if r.Offset < next {
				return
			}
			next = r.Offset + 1
			if r.Attrs.IsControl() {
				return
			}
			e, err := events.FromRecord(r)
			if err != nil {
				return // poison: skipped (and reported) when first folded
			}
			_ = st.Apply(e, events.Position{Partition: p, Offset: r.Offset}) // a rejection leaves the state as it is
		})
	}
	return st, nil
}

// pendingRound is what a round decided for one pool, to be committed.
type pendingRound struct {
	part   *partition
	pool   string
	ids    map[string]struct{}
	delete []string
	// placements are the round's events if it only places evals (then it
	// is applied ahead once committed), nil otherwise.
	placements []decided
}

// decided is a decision and the record that carries it.
type decided struct {
	env   events.Envelope
	alloc string
	rec   *kgo.Record
}

// decideLocked runs the core for every pool that may decide: its partition
// caught up with the log, none of its decisions still in flight (placements
// applied ahead are not in flight: the state has them). more tells whether
// a round was cut short by the caps, i.e. more is to be decided at once.
func (l *Loop) decideLocked() (recs []*kgo.Record, rounds []pendingRound, more bool) {
	now := events.Truncate(l.now())
	// The previous round's transaction has ended and franz-go called
	// back each of its records: its delivery values are not read any
	// more.
	l.deliveryValues.recycle()
	l.records.recycle()
	clear(l.targets)
	for _, part := range l.parts {
		if part.ready < 0 || part.next < part.ready {
			continue
		}
		if !part.warmed {
			part.warmed = true
			// The events topic too: the consumer's metadata is not the
			// producer's.
			for _, t := range []string{l.topic, l.cfg.Topics.DeadEvals()} {
				if _, ok := l.warmed[t]; !ok {
					l.warm[t] = struct{}{}
				}
			}
			for _, p := range part.st.Pools() {
				if p.Status == state.PoolDeleted {
					continue
				}
				for _, w := range p.Workers() {
					l.queueWarmLocked(p.Delivery, p.ID, w.ID)
				}
			}
			l.lastWarm = time.Time{} // at once: the rebuilt partition may decide now
		}
		scfg := scheduler.Config{
			AllocTTL:   l.cfg.AllocTTL,
			MaxRetry:   l.cfg.MaxRetry,
			ExpireFrom: part.since.Add(l.cfg.WorkerTTL),
			// Leave room in the round's transaction for the deliveries.
			MaxPlacements: l.opts.MaxRoundEvents / 2,
		}
		aheadFull := len(part.ahead) >= l.opts.MaxAheadEvents
		for _, p := range part.st.Pools() {
			if part.pending[p.ID] != nil || p.Status == state.PoolDeleted {
				continue
			}
			if aheadFull && part.aheadAllocs[p.ID] != nil {
				continue // read back some of what was applied ahead first
			}
			if len(recs) >= l.opts.MaxRoundEvents {
				return recs, rounds, true
			}
			d := scheduler.Decide(p, now, scfg)
			delete(part.dirty, p.ID)
			if len(d.Events) == 0 {
				continue
			}
			if d.Stats.Placed >= scfg.MaxPlacements {
				more = true
			}
			r := pendingRound{part: part, pool: p.ID, ids: make(map[string]struct{}, len(d.Events)), delete: d.TopicsToDelete}
			// The pool's records, sized up front, in the arenas, with
			// one key for its events.
			l.records.reserve(len(d.Events) + len(d.Deliveries))
			recs = slices.Grow(recs, len(d.Events)+len(d.Deliveries)+len(d.DeadLetters))
			key := l.eventValues.bytes(p.ID)
			placementsOnly := true
			placements := make([]decided, 0, len(d.Events))
			for i, data := range d.Events {
				placed, isPlacement := data.(events.AllocPlacedData)
				if isPlacement {
					placed.Basis = part.next
					data = placed
				} else {
					placementsOnly = false
				}
				e := events.New(p.ID, now, data)
				l.eventValues.reserve(eventValueSize, (len(d.Events)-i)*eventValueSize)
				value, err := events.AppendMarshal(l.eventValues.tail(), e)
				if err != nil {
					l.log.Error("cannot encode a decision; skipping the pool this round", "pool", p.ID, "err", err)
					r.ids = nil
					break
				}
				rec := l.records.add(kgo.Record{Topic: l.topic, Partition: part.id, Key: key,
					Value: l.eventValues.cut(value), Headers: l.recordHeaders(e)})
				recs = append(recs, rec)
				r.ids[e.ID] = struct{}{}
				if placementsOnly {
					placements = append(placements, decided{env: e, alloc: placed.AllocID, rec: rec})
				}
			}
			if r.ids == nil {
				continue
			}
			if placementsOnly {
				r.placements = placements
			}
			for i, a := range d.Deliveries {
				recs = append(recs, l.records.add(l.deliveryRecord(p.Delivery, a, len(d.Deliveries)-i)))
			}
			for _, dl := range d.DeadLetters {
				recs = append(recs, l.deadLetterRecord(dl))
			}
			rounds = append(rounds, r)
			l.count(d)
			if part.aheadAllocs[p.ID] != nil {
				l.stats.AheadRounds++
			}
		}
	}
	return recs, rounds, more
}

func (l *Loop) count(d scheduler.Decision) {
	for _, data := range d.Events {
		switch data.(type) {
		case events.AllocPlacedData:
			l.stats.Placed++
		case events.AllocExpiredData:
			l.stats.Expired++
		case events.EvalDeadLetteredData:
			l.stats.DeadLettered++
		}
	}
}

// commit writes a round's records in one transaction with the consumed
// offsets. On success the rounds that only place are applied ahead and the
// others' pools await their events; otherwise they decide again once their
// partitions have read the log up to its end listed after the transaction
// ended (which shows the round if it landed after all).
func (l *Loop) commit(ctx context.Context, recs []*kgo.Record, rounds []pendingRound) (bool, error) {
	// A round that started finishes even if ctx is cancelled (SIGTERM):
	// a transaction abandoned half-way would hold back every
	// read_committed reader of its partitions until the broker times it
	// out.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(l.cfg.TxnTimeout, time.Second))
	defer cancel()
	if err := l.sess.Begin(); err != nil {
		return false, fmt.Errorf("scheduler: begin transaction: %w", err)
	}
	// Mark pools in flight before producing.
	l.mu.Lock()
	for _, r := range rounds {
		r.part.pending[r.pool] = r.ids
	}
	l.mu.Unlock()
	l.mu.Lock()
	for _, rec := range recs {
		l.warmed[rec.Topic] = struct{}{} // the producer learns every topic it produces to
	}
	l.mu.Unlock()
	if l.beforeProduce != nil {
		l.beforeProduce(recs)
	}
	var produceErr error
	var wg sync.WaitGroup
	var errMu sync.Mutex
	wg.Add(len(recs))
	for _, rec := range recs {
		l.sess.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				errMu.Lock()
				produceErr = errors.Join(produceErr, err)
				errMu.Unlock()
			}
		})
	}
	wg.Wait()
	try := kgo.TryCommit
	if produceErr != nil {
		l.log.Warn("produce failed; aborting the round", "err", produceErr)
		try = kgo.TryAbort
	}
	committed, err := l.sess.End(ctx, try)
	// Not committed may still mean committed: End reports false when
	// the commit's outcome is unknown (an EndTxn that timed out on this
	// side, or failed and was "retried as an abort" by reloading the
	// producer id after the broker had committed it). So the round's
	// partitions decide nothing until they have read the log up to its
	// end as listed now, after End: by then they have seen whatever the
	// transaction wrote if it committed, and a pool is never decided
	// again from memory.
	var ends map[int32]int64
	if !committed {
		var ps []int32
		for _, r := range rounds {
			if !slices.Contains(ps, r.part.id) {
				ps = append(ps, r.part.id)
			}
		}
		var lerr error
		if ends, lerr = endOffsets(ctx, l.adm, l.topic, ps); lerr != nil {
			l.log.Warn("round not committed; listing the end offsets again before its partitions decide", "err", lerr)
		}
	}
	l.mu.Lock()
	l.stats.Transactions++
	if !committed {
		l.stats.Aborted++
		for _, r := range rounds {
			if end, ok := ends[r.part.id]; ok {
				r.part.ready = max(r.part.ready, end)
			} else {
				r.part.ready = -1
			}
			if cur := r.part.pending[r.pool]; sameSet(cur, r.ids) {
				delete(r.part.pending, r.pool)
			}
		}
	} else if err == nil {
		for _, r := range rounds {
			if r.placements != nil && l.parts[r.part.id] == r.part {
				l.applyAheadLocked(r)
			}
		}
	}
	l.mu.Unlock()
	if err != nil {
		return committed, fmt.Errorf("scheduler: end transaction: %w", err)
	}
	if committed {
		for _, r := range rounds {
			if len(r.delete) > 0 {
				select {
				case l.deleteTopics <- r.delete:
				default:
					l.log.Warn("topic deletion backlog full; topics left for a later cleanup", "topics", r.delete)
				}
			}
		}
	}
	return committed, nil
}

// applyAheadLocked applies a committed round of placements to its
// partition's state at the offsets its records got, before they are read
// back (see the package doc). A placement that does not apply (it cannot
// happen: the round was decided from this state) stops it: that one and the
// rest stay in flight and are folded when read back, in log order.
func (l *Loop) applyAheadLocked(r pendingRound) {
	part := r.part
	if cur := part.pending[r.pool]; !sameSet(cur, r.ids) {
		return // cannot happen: nothing else decides the pool meanwhile
	}
	rest := make(map[string]struct{})
	stopped := false
	for _, d := range r.placements {
		off := d.rec.Offset
		if !stopped {
			if off < part.next {
				stopped = true // cannot happen: not read back before the commit returned
			} else if err := part.st.Apply(d.env, events.Position{Partition: part.id, Offset: off}); err != nil {
				l.log.Warn("a placement did not apply ahead; folding it and the rest of its round when read back",
					"pool", r.pool, "offset", off, "err", err)
				stopped = true
			}
		}
		if stopped {
			rest[d.env.ID] = struct{}{}
			continue
		}
		l.stats.Applied++
		part.ahead[off] = aheadEvent{pool: r.pool, id: d.env.ID, alloc: d.alloc, value: d.rec.Value}
		m := part.aheadAllocs[r.pool]
		if m == nil {
			m = make(map[string]struct{})
			part.aheadAllocs[r.pool] = m
		}
		m[d.alloc] = struct{}{}
	}
	if len(rest) > 0 {
		part.pending[r.pool] = rest
	} else {
		delete(part.pending, r.pool)
	}
}

func sameSet(a, b map[string]struct{}) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

// warmInterval spaces the transactions that warm topic metadata while
// workers register.
const warmInterval = time.Second

// queueWarmLocked queues the alloc topic of a worker for warming, unless
// the producer knows it or was asked for it already.
func (l *Loop) queueWarmLocked(d events.Delivery, pool, worker string) {
	t := l.cfg.Topics.AllocTarget(d, pool, worker, l.cfg.AllocsPartitions).Topic
	if _, ok := l.warmed[t]; !ok {
		l.warm[t] = struct{}{}
	}
}

// warmDueLocked takes the topics to warm now: all of them at most once per
// warmInterval (at once after a partition caught up).
func (l *Loop) warmDueLocked() []string {
	if len(l.warm) == 0 || time.Since(l.lastWarm) < warmInterval {
		return nil
	}
	l.lastWarm = time.Now()
	out := make([]string, 0, len(l.warm))
	for t := range l.warm {
		if _, ok := l.warmed[t]; !ok {
			out = append(out, t)
			l.warmed[t] = struct{}{}
		}
	}
	clear(l.warm)
	l.stats.WarmedTopics += int64(len(out))
	return out
}

// cancelledContext is done from the start.
var cancelledContext = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// warmTopics makes the transactional producer load the metadata of topics
// it has never produced to, all in one metadata request, so that the rounds
// delivering to them later do not wait for it. franz-go has no call for
// that: a producer learns a topic from the first record produced to it,
// which registers the topic, parks the record until the topic's partitions
// are loaded and asks for an immediate metadata update (of every topic it
// knows, in one request). Here each record has a context that is already
// done: it fails at once, is never partitioned, sent or part of the
// transaction, but the topic stays registered and is loaded by that
// update. It runs in a transaction of its own (a transactional producer
// only produces inside one), never with real records: a real record to a
// topic whose warming record is still parked would be failed with it.
// The transaction commits the consumed offsets, as every round does.
func (l *Loop) warmTopics(ctx context.Context, topics []string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(l.cfg.TxnTimeout, time.Second))
	defer cancel()
	if err := l.sess.Begin(); err != nil {
		return fmt.Errorf("scheduler: begin the transaction warming topic metadata: %w", err)
	}
	for _, t := range topics {
		l.sess.Produce(cancelledContext, &kgo.Record{Topic: t, Context: cancelledContext}, nil)
	}
	if _, err := l.sess.End(ctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("scheduler: end the transaction warming topic metadata: %w", err)
	}
	l.log.Debug("warmed topic metadata", "topics", len(topics))
	return nil
}

// topicDeleter deletes the alloc topics of expired workers and deleted
// pools, once the decision that ends them is committed. Only per-worker
// alloc topics are deleted: a worker of a shared pool names the shared
// alloc topic, which lives as long as the deployment.
func (l *Loop) topicDeleter(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case names := <-l.deleteTopics:
			names = slices.DeleteFunc(slices.Clone(names), func(n string) bool {
				_, _, ok := l.cfg.Topics.ParseWorkerAllocs(n)
				return !ok
			})
			if len(names) == 0 {
				continue
			}
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := broker.DeleteTopics(dctx, l.adm, names...); err != nil {
				l.log.Warn("delete alloc topics", "topics", names, "err", err)
			}
			cancel()
		}
	}
}

// eventValueSize is about the most an event's value takes (an alloc.placed
// takes some 450 bytes), the room reserved for each in the arena.
const eventValueSize = 640

// deliveryValueSize is the room reserved for an alloc record beyond its
// payload.
const deliveryValueSize = 384

// recordHeaders returns the headers of e's record, shared by the records
// of its type.
func (l *Loop) recordHeaders(e events.Envelope) []kgo.RecordHeader {
	if e.V != events.SchemaVersion {
		return events.RecordHeaders(e.Type, e.V)
	}
	h, ok := l.headers[e.Type]
	if !ok {
		if l.headers == nil {
			l.headers = make(map[events.Type][]kgo.RecordHeader)
		}
		h = events.RecordHeaders(e.Type, e.V)
		l.headers[e.Type] = h
	}
	return h
}

// allocTargetKey names a worker's alloc target within a round.
type allocTargetKey struct {
	delivery     events.Delivery
	pool, worker string
}

// deliveryRecord is the alloc record of a, on the topic and partition that
// events.Topics.AllocTarget gives for the pool's delivery mode (the
// client's partitioner is manual), keyed by worker id. Its key and value
// are in the deliveries' arena; left is how many deliveries the round has
// still to encode, this one included (to size the arena).
func (l *Loop) deliveryRecord(d events.Delivery, a events.AllocRecord, left int) kgo.Record {
	l.deliveryValues.reserve(deliveryValueSize+len(a.Payload), left*(deliveryValueSize+len(a.Payload)))
	v, err := events.AppendAllocRecord(l.deliveryValues.tail(), a)
	if err != nil {
		// Cannot happen: the payload was checked when its eval was
		// submitted. The record goes as it always did, without value.
		l.log.Error("cannot encode an alloc record", "pool", a.PoolID, "alloc", a.AllocID, "err", err)
	}
	value := l.deliveryValues.cut(v)
	if err != nil {
		value = nil
	}
	k := allocTargetKey{delivery: d, pool: a.PoolID, worker: a.WorkerID}
	t, ok := l.targets[k]
	if !ok {
		if l.targets == nil {
			l.targets = make(map[allocTargetKey]events.AllocTarget)
		}
		t = l.cfg.Topics.AllocTarget(d, a.PoolID, a.WorkerID, l.cfg.AllocsPartitions)
		l.targets[k] = t
	}
	return kgo.Record{Topic: t.Topic, Partition: t.Partition, Key: l.deliveryValues.bytes(a.WorkerID), Value: value}
}

func (l *Loop) deadLetterRecord(d events.DeadLetterRecord) *kgo.Record {
	v, _ := events.MarshalDeadLetterRecord(d) // plain struct: cannot fail
	return &kgo.Record{Topic: l.cfg.Topics.DeadEvals(), Partition: 0, Key: []byte(d.PoolID), Value: v}
}

// decodedRecord is a record decoded ahead of its fold (done when it was).
type decodedRecord struct {
	e    events.Envelope
	err  error
	done bool
}

// predecodeMin is the smallest batch of a rebuilding partition worth
// decoding on several cores.
const predecodeMin = 512

// predecode decodes, on every core, the records of the partitions that are
// still being rebuilt (a takeover's catch-up reads up to a whole history in
// batches of MaxPollRecords), so that the fold that follows, which must run
// in log order on one goroutine, only applies. Other partitions' records
// are decoded where they are folded: most of them are this instance's own
// placements, compared byte for byte and never decoded. It returns, by
// partition, one slot per fetched record, nil for partitions it left alone.
// Decoding is pure, so doing it early changes nothing but when.
func (l *Loop) predecode(fetches kgo.Fetches) map[int32][]decodedRecord {
	var todo []kgo.FetchTopicPartition
	l.mu.Lock()
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		part := l.parts[fp.Partition]
		if part != nil && len(fp.Records) >= predecodeMin && (part.ready < 0 || part.next < part.ready) {
			todo = append(todo, fp)
		}
	})
	l.mu.Unlock()
	if len(todo) == 0 {
		return nil
	}
	out := make(map[int32][]decodedRecord, len(todo))
	for _, fp := range todo {
		slots := make([]decodedRecord, len(fp.Records))
		out[fp.Partition] = slots
		events.DecodeChunks(len(fp.Records), runtime.GOMAXPROCS(0), 1, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				if r := fp.Records[i]; !r.Attrs.IsControl() {
					slots[i].e, slots[i].err = events.FromRecord(r)
					slots[i].done = true
				}
			}
		})
	}
	return out
}

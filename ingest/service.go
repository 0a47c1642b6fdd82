// Package ingest turns commands into events. Each accepted command appends
// exactly one event (a batch: one per eval) to the events topic and answers
// only once the broker acknowledged it, with the event's position. Commands
// are validated against a live fold of the log (package livestate): ingest
// knows which pools, workers, evals and allocs exist from the log itself.
// Bad input never reaches the log.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/line-sched/line/broker"
	"github.com/line-sched/line/config"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/livestate"
	"github.com/line-sched/line/state"
)

// Options configure a Service.
type Options struct {
	// Config is the deployment's configuration (topics, TTLs, timeouts).
	Config config.Config
	// Brokers to connect to.
	Brokers []string
	// Clock returns the time written into events; nil means time.Now.
	Clock func() time.Time
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// BatchProducers is how many batches may be in flight at once
	// (each on its own transactional producer); default 4.
	BatchProducers int
}

// Service accepts commands and appends their events.
type Service struct {
	cfg    config.Config
	topic  string
	now    func() time.Time
	log    *slog.Logger
	prod   *kgo.Client
	adm    *kadm.Client
	view   *livestate.Follower
	nparts int32

	brokers  []string
	instance string
	txns     chan *txnProducer
	txnMu    sync.Mutex
	txnFree  []int // numbers of transactional ids not in use

	deadline atomic.Pointer[sharedDeadline] // see produceContext

	flightMu sync.Mutex
	flights  map[string]*flight
	// settling holds finished flights whose event is not applied yet;
	// the settler forgets each once the view shows its event.
	settling   []settlingFlight
	settleKick chan struct{}
	stop       chan struct{}
	stopped    chan struct{}
}

// settlingFlight is a flight that appended its event at pos and keeps its
// key until the view has applied it.
type settlingFlight struct {
	key   string
	f     *flight
	pos   events.Position
	since time.Time
}

// flight is a command in progress that others with the same key wait for.
type flight struct {
	done chan struct{}
	pos  events.Position
	err  error
}

// missWait bounds how long a command waits for the view to catch up before
// answering 404 for something it does not know yet.
const missWait = 3 * time.Second

// New connects to Kafka, starts the live fold and waits until it has caught
// up with the log, so that the first command is validated against the whole
// history.
func New(ctx context.Context, opts Options) (*Service, error) {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.BatchProducers <= 0 {
		opts.BatchProducers = 4
	}
	cfg := opts.Config
	s := &Service{
		cfg:      cfg,
		topic:    cfg.Topics.Events(),
		now:      opts.Clock,
		log:      opts.Logger,
		brokers:  opts.Brokers,
		instance: events.NewULID(opts.Clock()),
		txns:     make(chan *txnProducer, opts.BatchProducers),
		flights:  make(map[string]*flight),

		settleKick: make(chan struct{}, 1),
		stop:       make(chan struct{}),
		stopped:    make(chan struct{}),
	}
	for n := opts.BatchProducers; n >= 1; n-- {
		s.txnFree = append(s.txnFree, n)
	}
	prod, err := kgo.NewClient(
		kgo.SeedBrokers(opts.Brokers...),
		kgo.DefaultProduceTopic(s.topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.RecordDeliveryTimeout(cfg.ProduceTimeout),
		kgo.RetryBackoffFn(retryBackoff),
		kgo.MetadataMinAge(metadataMinAge),
		// Without this, a record written to a connection the broker
		// dropped waits for the broker to come back, however long,
		// and the command never answers 503 as it must. With it, the
		// record fails at ProduceTimeout and is never sent again (the
		// producer bumps its epoch); only a broker that wrote it just
		// before failing keeps it, which a retry with the same eval_id
		// finds as a duplicate.
		kgo.AllowIdempotentProduceCancellation(),
		// Batches stay at franz-go's default size (about 1 MB), under
		// the broker's message.max.bytes (Kafka's default 1 MiB):
		// a larger batch, easily reached by concurrent commands or
		// one batch submission, is refused whole as MESSAGE_TOO_LARGE.
		// A transaction spans as many batches as it needs.
	)
	if err != nil {
		return nil, fmt.Errorf("ingest: create producer: %w", err)
	}
	s.prod = prod
	s.adm = kadm.NewClient(prod)
	if err := broker.WaitReady(ctx, prod); err != nil {
		prod.Close()
		return nil, fmt.Errorf("ingest: %w", err)
	}
	topics, err := s.adm.ListTopics(ctx, s.topic)
	if err != nil || topics.Error() != nil || len(topics[s.topic].Partitions) == 0 {
		prod.Close()
		return nil, fmt.Errorf("ingest: events topic %s not found (run line dev, or create the topics first): %w", s.topic, errors.Join(err, topics.Error()))
	}
	s.nparts = int32(len(topics[s.topic].Partitions))
	view, err := livestate.Start(livestate.Options{Brokers: opts.Brokers, Topic: s.topic, Logger: opts.Logger,
		ClientOpts: []kgo.Opt{kgo.RetryBackoffFn(retryBackoff)}})
	if err != nil {
		prod.Close()
		return nil, fmt.Errorf("ingest: %w", err)
	}
	s.view = view
	go s.settle()
	if err := view.CatchUp(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("ingest: replay the events topic: %w", err)
	}
	return s, nil
}

// Retries of requests to Kafka. A producer gives up a record whose timeout
// passed only when it next tries to send it, and after a connection error it
// first waits for a metadata refresh: with franz-go's defaults (metadata at
// most every 5s, backoff growing to 5s), a command answered 503 up to 5s
// after ProduceTimeout, and ingest noticed a restarted broker as late.

// metadataMinAge is the shortest interval between metadata refreshes.
const metadataMinAge = 250 * time.Millisecond

// retryBackoff is the wait between retries: 250ms, then 500ms at most.
func retryBackoff(fails int) time.Duration {
	d := time.Duration(fails+1) * 250 * time.Millisecond
	return min(d, 500*time.Millisecond) + rand.N(25*time.Millisecond)
}

// Close stops the service.
func (s *Service) Close() {
	if s.view != nil {
		close(s.stop)
		<-s.stopped
		s.view.Close()
	}
	if d := s.deadline.Load(); d != nil {
		d.cancel()
	}
	close(s.txns)
	for p := range s.txns {
		p.cl.Close()
	}
	s.prod.Close()
}

// View returns the live fold the service validates against.
func (s *Service) View() *livestate.Follower { return s.view }

// Ping checks that the broker answers.
func (s *Service) Ping(ctx context.Context) error { return s.prod.Ping(ctx) }

// partition returns the events partition of a pool.
func (s *Service) partition(pool string) int32 { return events.PartitionFor(pool, s.nparts) }

// clock returns the time for new events, truncated to log precision.
func (s *Service) clock() time.Time { return events.Truncate(s.now()) }

// read runs check against the live state; if check reports a 404 (the thing
// may just not be applied yet), it waits until the view reflects everything
// committed on the pool's partition and checks again.
func (s *Service) read(ctx context.Context, pool string, check func(*state.State) error) error {
	var err error
	s.view.Read(func(st *state.State) { err = check(st) })
	if e := AsError(err); e == nil || e.Status != 404 {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, missWait)
	defer cancel()
	if cerr := s.view.CatchUp(wctx, s.partition(pool)); cerr != nil {
		if ctx.Err() == nil && wctx.Err() == nil {
			return unavailable(cerr)
		}
		return err
	}
	s.view.Read(func(st *state.State) { err = check(st) })
	return err
}

// begin reserves key for a command in progress. If another command holds
// it, begin waits for that one to be applied and returns false: the caller
// re-checks the state.
func (s *Service) begin(ctx context.Context, key string) (*flight, bool, error) {
	s.flightMu.Lock()
	if f := s.flights[key]; f != nil {
		s.flightMu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
		if f.err == nil {
			wctx, cancel := context.WithTimeout(ctx, missWait)
			defer cancel()
			if s.view.WaitApplied(wctx, f.pos) == nil {
				// The state shows the command's event: the key
				// is free (without this, callers would spin on a
				// finished flight until end's goroutine runs).
				s.forget(key, f)
			}
		}
		return nil, false, nil
	}
	f := &flight{done: make(chan struct{})}
	s.flights[key] = f
	s.flightMu.Unlock()
	return f, true, nil
}

// end releases key once the command's event is applied (at once if it
// failed: nothing was appended).
func (s *Service) end(key string, f *flight, pos events.Position, err error) {
	f.pos, f.err = pos, err
	if err != nil {
		s.forget(key, f)
		close(f.done)
		return
	}
	close(f.done)
	s.flightMu.Lock()
	first := len(s.settling) == 0
	s.settling = append(s.settling, settlingFlight{key: key, f: f, pos: pos, since: time.Now()})
	s.flightMu.Unlock()
	// The settler takes every settling flight each time it wakes: only
	// the first flight since it last did needs to wake it.
	if first {
		select {
		case s.settleKick <- struct{}{}:
		default:
		}
	}
}

// settleTimeout is how long a finished flight keeps its key at most while
// its event is not applied (the view is stuck or far behind).
const settleTimeout = 30 * time.Second

// settle forgets finished flights once the view applied their events: one
// goroutine for all of them, woken by end and by the view's progress.
func (s *Service) settle() {
	defer close(s.stopped)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var waiting []settlingFlight
	for {
		s.flightMu.Lock()
		waiting = append(waiting, s.settling...)
		clear(s.settling)
		s.settling = s.settling[:0]
		s.flightMu.Unlock()
		// Take the channel before reading the offsets: a change after
		// the read closes it.
		var changed <-chan struct{}
		if len(waiting) > 0 {
			changed = s.view.Changed()
			waiting = s.forgetApplied(waiting)
		}
		select {
		case <-s.stop:
			return
		case <-s.settleKick:
		case <-changed:
		case <-tick.C:
		}
	}
}

// forgetApplied forgets the flights whose events the view has applied (or
// that waited longer than settleTimeout) and returns the others.
func (s *Service) forgetApplied(waiting []settlingFlight) []settlingFlight {
	applied := s.view.Applied()
	now := time.Now()
	kept := waiting[:0]
	s.flightMu.Lock()
	for _, w := range waiting {
		if applied[w.pos.Partition] > w.pos.Offset || now.Sub(w.since) > settleTimeout {
			if s.flights[w.key] == w.f {
				delete(s.flights, w.key)
			}
			continue
		}
		kept = append(kept, w)
	}
	s.flightMu.Unlock()
	clear(waiting[len(kept):])
	return kept
}

// forget removes flight f of key, unless a newer flight took the key.
func (s *Service) forget(key string, f *flight) {
	s.flightMu.Lock()
	if s.flights[key] == f {
		delete(s.flights, key)
	}
	s.flightMu.Unlock()
}

// append writes one event and waits for the broker's acknowledgement.
func (s *Service) append(ctx context.Context, e events.Envelope) (events.Position, error) {
	rec, err := events.Record(s.topic, e)
	if err != nil {
		return events.Position{}, fmt.Errorf("ingest: encode %s: %w", e.Type, err)
	}
	rec.Partition = s.partition(e.Pool)
	ctx, cancel := s.produceContext(ctx)
	defer cancel()
	r, err := s.prod.ProduceSync(ctx, rec).First()
	if err != nil {
		return events.Position{}, unavailable(err)
	}
	return events.Position{Partition: r.Partition, Offset: r.Offset}, nil
}

// deadlineStep is how finely produceContext's shared deadlines are spaced.
const deadlineStep = 10 * time.Millisecond

// sharedDeadline is a context that ends ProduceTimeout after the end of
// one deadlineStep: every append that starts within that step uses it.
type sharedDeadline struct {
	ctx    context.Context
	step   int64 // start of the step, in deadlineSteps since the epoch
	cancel context.CancelFunc
}

// produceContext bounds a produce by ProduceTimeout. Commands whose own
// context never ends (the connection loop's) share one context per
// deadlineStep, ending between ProduceTimeout and ProduceTimeout plus a
// step after they start: a timer per step instead of one per command.
func (s *Service) produceContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx.Done() != nil {
		return context.WithTimeout(ctx, s.cfg.ProduceTimeout)
	}
	now := time.Now()
	step := now.UnixNano() / int64(deadlineStep)
	if d := s.deadline.Load(); d != nil && d.step == step {
		return d.ctx, func() {}
	}
	// now.Add keeps the monotonic clock: the deadline does not move
	// with the wall clock.
	end := now.Add(s.cfg.ProduceTimeout + time.Duration((step+1)*int64(deadlineStep)-now.UnixNano()))
	// The context ends by itself at its deadline, which releases it;
	// nothing cancels it sooner, since later commands share it (Close
	// cancels the last one).
	shared, cancel := context.WithDeadline(context.Background(), end)
	s.deadline.Store(&sharedDeadline{ctx: shared, step: step, cancel: cancel})
	return shared, func() {}
}

// appendAtomically writes events of one pool in one transaction, so that a
// batch is either all on the log or not at all.
func (s *Service) appendAtomically(ctx context.Context, es []events.Envelope) ([]events.Position, error) {
	recs := make([]*kgo.Record, len(es))
	for i, e := range es {
		rec, err := events.Record(s.topic, e)
		if err != nil {
			return nil, fmt.Errorf("ingest: encode %s: %w", e.Type, err)
		}
		rec.Partition = s.partition(e.Pool)
		recs[i] = rec
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProduceTimeout)
	defer cancel()
	p, err := s.txnClient(ctx)
	if err != nil {
		return nil, unavailable(err)
	}
	// A transactional producer does not give up records it wrote to a
	// connection the broker dropped: it waits for the broker, however
	// long. Wait for it only until the timeout.
	type result struct {
		pos []events.Position
		err error
	}
	done := make(chan result, 1)
	go func() {
		pos, err := s.produceTxn(ctx, p.cl, recs)
		done <- result{pos, err}
	}()
	var r result
	closed := false
	select {
	case r = <-done:
	case <-ctx.Done():
		// Closing the producer fails what it has not sent; a
		// transaction it did not commit is aborted by the broker, at
		// the latest when this transactional id is initialized again.
		// It may have committed just before: then the batch is in.
		p.cl.Close()
		r = <-done
		closed = true
	}
	if r.err != nil || closed {
		// A producer whose transaction failed may be in an unknown
		// state: replace it.
		if closed {
			p.cl = nil
		}
		s.dropTxnClient(p)
		if r.err != nil {
			return nil, unavailable(r.err)
		}
		return r.pos, nil
	}
	s.txns <- p
	return r.pos, nil
}

func (s *Service) produceTxn(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) ([]events.Position, error) {
	if err := cl.BeginTransaction(); err != nil {
		return nil, fmt.Errorf("begin transaction: %w", err)
	}
	results := cl.ProduceSync(ctx, recs...)
	commit := kgo.TryCommit
	if results.FirstErr() != nil {
		commit = kgo.TryAbort
	}
	if err := cl.EndTransaction(ctx, commit); err != nil {
		return nil, fmt.Errorf("end transaction: %w", errors.Join(err, results.FirstErr()))
	}
	if err := results.FirstErr(); err != nil {
		return nil, fmt.Errorf("produce batch (aborted): %w", err)
	}
	pos := make([]events.Position, len(results))
	for i, r := range results {
		pos[i] = events.Position{Partition: r.Record.Partition, Offset: r.Record.Offset}
	}
	return pos, nil
}

// txnProducer is a transactional producer and the number in its
// transactional id.
type txnProducer struct {
	cl *kgo.Client
	n  int
}

// txnClient takes a transactional producer from the pool, making one if
// fewer than BatchProducers exist.
func (s *Service) txnClient(ctx context.Context) (*txnProducer, error) {
	select {
	case p := <-s.txns:
		return p, nil
	default:
	}
	s.txnMu.Lock()
	if k := len(s.txnFree); k > 0 {
		// Transactional ids are reused, never shared: a new producer
		// with the id of a live one would fence it, and one with the
		// id of a dropped one aborts what that one left open.
		n := s.txnFree[k-1]
		s.txnFree = s.txnFree[:k-1]
		s.txnMu.Unlock()
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(s.brokers...),
			kgo.DefaultProduceTopic(s.topic),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.TransactionalID(fmt.Sprintf("%s-ingest-%s-%d", s.cfg.Deployment, s.instance, n)),
			kgo.TransactionTimeout(s.cfg.ProduceTimeout+10*time.Second),
			kgo.ProducerLinger(0),
			kgo.RecordDeliveryTimeout(s.cfg.ProduceTimeout),
			kgo.RetryBackoffFn(retryBackoff),
			kgo.MetadataMinAge(metadataMinAge),
		)
		if err != nil {
			s.dropTxnClient(&txnProducer{n: n})
			return nil, fmt.Errorf("create transactional producer: %w", err)
		}
		return &txnProducer{cl: cl, n: n}, nil
	}
	s.txnMu.Unlock()
	select {
	case p := <-s.txns:
		return p, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// dropTxnClient closes p and frees its transactional id.
func (s *Service) dropTxnClient(p *txnProducer) {
	if p.cl != nil {
		p.cl.Close()
	}
	s.txnMu.Lock()
	s.txnFree = append(s.txnFree, p.n)
	s.txnMu.Unlock()
}

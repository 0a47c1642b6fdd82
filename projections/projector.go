package projections

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/line-sched/line/broker"
	"github.com/line-sched/line/config"
	"github.com/line-sched/line/events"
)

// Options configure a Projector.
type Options struct {
	// Config names the events topic (Config.Topics).
	Config config.Config
	// Brokers to connect to.
	Brokers []string
	// Dir is the Pebble directory of the views; created if missing.
	Dir string
	// Rebuild wipes the views first: they are rebuilt from offset 0.
	Rebuild bool
	// RebuildIfStale rebuilds views that cannot be resumed (another
	// layout, another topic, or ahead of the log) instead of failing.
	// line dev sets it: its views are derived data next to its log.
	RebuildIfStale bool
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// MaxBatchRecords caps the records one Pebble batch reflects; default
	// 20,000. A batch takes what the consumer has buffered, up to this
	// cap: small when the view keeps up with the log, large while it
	// catches up (a rebuild), where fewer, larger batches write each row
	// once for many events.
	MaxBatchRecords int
	// MaxBulkRecords caps the records a bulk load reflects (0:
	// DefaultMaxBulkRecords); negative: no bulk load, views that hold no
	// row are written batch by batch like the others. While the views hold
	// no row (a rebuild, new views), the backlog is folded into memory
	// first and written at once, in key order, by one Pebble ingestion
	// (see bulk.go), once the projector has folded the log up to its
	// committed end as it was when the load began, or this many records.
	MaxBulkRecords int
	// NoSync commits batches without waiting for the disk. A crash of the
	// machine (not of the process) may then lose the latest batches; the
	// view stays a fold of a committed prefix and resumes from there.
	// (While catching up, batches are large, so syncing each costs little.)
	NoSync bool
	// OnCommit, if set, is called on the projector's goroutine after each
	// batch is committed (tests, metrics). It must not block for long.
	OnCommit func(Commit)
	// ClientOpts are extra franz-go options.
	ClientOpts []kgo.Opt
}

// Commit describes one committed batch.
type Commit struct {
	// From is, per partition the batch wrote, the first offset it
	// reflects; To is the new checkpoint (the next offset to apply).
	From, To map[int32]int64
	// Records counts the records (events, undecodable records and
	// transaction markers) the batch reflects.
	Records int
	// Rows counts the rows written or deleted, index entries excluded.
	Rows int
}

// Stats are counters of a projector since it was opened.
type Stats struct {
	// Replayed counts records folded into memory only, because the view
	// already reflected them (below the checkpoint found at open).
	Replayed int64
	// Applied counts records applied and written.
	Applied int64
	// Rejected counts events that did not apply (the fold left the state
	// unchanged).
	Rejected int64
	// Poison counts records that could not be decoded (skipped).
	Poison int64
	// Batches counts committed batches.
	Batches int64
}

// DefaultMaxBatchRecords is the default of Options.MaxBatchRecords. A
// batch's rows are held in memory until written: at c1m scale, batches of
// 100,000 records took ~150 MB more of the projector's heap than batches
// of 20,000 (its peak RSS went past 1 GiB).
const DefaultMaxBatchRecords = 20_000

// ErrStopped is returned by waits once the projector stopped.
var ErrStopped = errors.New("projections: the projector stopped")

// Projector folds the events topic into views stored in Pebble.
type Projector struct {
	opts   Options
	topic  string
	log    *slog.Logger
	db     *pebble.DB
	popts  *pebble.Options
	cl     *kgo.Client
	adm    *kadm.Client
	nparts int32
	noSync bool

	// Owned by Run's goroutine.
	f    *fold
	next map[int32]int64 // next offset folded into memory
	// touched is the rows named by the batch being folded; its maps are
	// cleared and reused from batch to batch.
	touched *touched
	// spare holds the slices of folded polls for the reader's next ones
	// (*[]decoded).
	spare sync.Pool
	// reading is set while the reader decodes a poll not yet queued.
	reading atomic.Bool
	// resumed is the checkpoint found at open: records below it are
	// already in the view and are folded into memory only.
	resumed map[int32]int64

	mu       sync.RWMutex
	ckpt     map[int32]int64 // next offset the view reflects, as committed
	changed  chan struct{}   // closed and replaced when ckpt advances
	stats    Stats
	caughtUp bool

	// rmu guards closing; readers counts open snapshots, which Close
	// waits for before it closes Pebble.
	rmu     sync.RWMutex
	closing bool
	readers sync.WaitGroup

	started   atomic.Bool
	quit      chan struct{} // closed by Close
	done      chan struct{} // closed when Run returns
	stopped   chan struct{} // closed when Run returns or Close is called
	stopOnce  sync.Once
	closeOnce sync.Once
	closeErr  error
}

// Open opens (or creates) the views in opts.Dir, checks them against the
// log and connects to Kafka. Run starts folding.
func Open(ctx context.Context, opts Options) (*Projector, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxBatchRecords <= 0 {
		opts.MaxBatchRecords = DefaultMaxBatchRecords
	}
	if opts.MaxBulkRecords == 0 {
		opts.MaxBulkRecords = DefaultMaxBulkRecords
	}
	if opts.Dir == "" {
		return nil, errors.New("projections: no directory for the views (LINE_VIEW_DIR)")
	}
	p := &Projector{
		opts:    opts,
		topic:   opts.Config.Topics.Events(),
		log:     opts.Logger.With("component", "projector"),
		noSync:  opts.NoSync,
		f:       newFold(),
		next:    make(map[int32]int64),
		resumed: make(map[int32]int64),
		ckpt:    make(map[int32]int64),
		changed: make(chan struct{}),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	p.popts = pebbleOptions(p.log)
	db, err := pebble.Open(opts.Dir, p.popts)
	if err != nil {
		return nil, fmt.Errorf("projections: open the views in %s: %w", opts.Dir, err)
	}
	p.db = db
	if opts.Rebuild {
		if err := p.wipe(); err != nil {
			_ = db.Close()
			return nil, err
		}
	}
	if err := p.openViews(); err != nil {
		if !p.rebuildStale(err) {
			_ = db.Close()
			return nil, err
		}
		if err := p.openViews(); err != nil {
			_ = db.Close()
			return nil, err
		}
	}
	kopts := append([]kgo.Opt{
		kgo.SeedBrokers(opts.Brokers...),
		kgo.ConsumeTopics(p.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers advance the checkpoint: without them a
		// partition whose last record is a marker never looks caught up.
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(100 * time.Millisecond),
		kgo.MetadataMinAge(250 * time.Millisecond),
		// Large fetches while catching up: the default 1 MiB per
		// partition is ~3,000 events, and a batch takes what is buffered.
		kgo.FetchMaxBytes(fetchMaxBytes),
		kgo.FetchMaxPartitionBytes(fetchMaxBytes),
		// The slices of fetched records are used again once folded (Run
		// recycles them), not left to the collector.
		kgo.WithPools(events.NewReadPools()),
	}, opts.ClientOpts...)
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("projections: create consumer: %w", err)
	}
	p.cl, p.adm = cl, kadm.NewClient(cl)
	if err := p.checkLog(ctx); err != nil {
		if !p.rebuildStale(err) {
			cl.Close()
			_ = db.Close()
			return nil, err
		}
		if err := p.openViews(); err != nil {
			cl.Close()
			_ = db.Close()
			return nil, err
		}
	}
	return p, nil
}

// staleError is views that cannot be resumed against this log.
type staleError struct{ msg string }

func (e *staleError) Error() string { return e.msg }

func stale(format string, args ...any) error { return &staleError{msg: fmt.Sprintf(format, args...)} }

// rebuildStale wipes stale views if the options allow it, and reports
// whether it did.
func (p *Projector) rebuildStale(err error) bool {
	var se *staleError
	if !p.opts.RebuildIfStale || !errors.As(err, &se) {
		return false
	}
	p.log.Warn("the views cannot be resumed; rebuilding them from offset 0", "reason", err)
	if werr := p.wipe(); werr != nil {
		p.log.Error("wiping the stale views failed", "err", werr)
		return false
	}
	clear(p.resumed)
	clear(p.ckpt)
	return true
}

// wipe deletes every key of the views.
func (p *Projector) wipe() error {
	b := p.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange([]byte{0}, []byte{0xff}, nil); err != nil {
		return fmt.Errorf("projections: wipe the views: %w", err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("projections: wipe the views: %w", err)
	}
	if err := p.db.Compact(context.Background(), []byte{0}, []byte{0xff}, true); err != nil {
		p.log.Warn("compacting the wiped views failed; the space is reclaimed later", "err", err)
	}
	p.log.Info("views wiped; rebuilding from offset 0", "dir", p.opts.Dir)
	return nil
}

// openViews checks the layout of the views (initializing empty ones) and
// reads the checkpoint.
func (p *Projector) openViews() error {
	format, err := p.get(keyMetaFormat)
	if err != nil {
		return err
	}
	if format == nil {
		empty, err := p.isEmpty()
		if err != nil {
			return err
		}
		if !empty {
			return fmt.Errorf("projections: %s holds data that is not line's views; point LINE_VIEW_DIR elsewhere or run with --rebuild", p.opts.Dir)
		}
		b := p.db.NewBatch()
		_ = b.Set([]byte(keyMetaFormat), []byte(layoutFormat), nil)
		_ = b.Set([]byte(keyMetaTopic), []byte(p.topic), nil)
		if err := b.Commit(pebble.Sync); err != nil {
			return fmt.Errorf("projections: initialize the views: %w", err)
		}
		return nil
	}
	if string(format) != layoutFormat {
		return stale("projections: the views in %s have layout %q, this version writes %q: run with --rebuild", p.opts.Dir, format, layoutFormat)
	}
	topic, err := p.get(keyMetaTopic)
	if err != nil {
		return err
	}
	if string(topic) != p.topic {
		return stale("projections: the views in %s are of topic %q, not %q: point LINE_VIEW_DIR elsewhere or run with --rebuild", p.opts.Dir, topic, p.topic)
	}
	offs, err := readOffsets(p.db)
	if err != nil {
		return err
	}
	for part, o := range offs {
		p.resumed[part], p.ckpt[part] = o, o
	}
	return nil
}

func (p *Projector) get(key string) ([]byte, error) {
	v, closer, err := p.db.Get([]byte(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("projections: read %s: %w", key, err)
	}
	defer closer.Close()
	return bytes.Clone(v), nil
}

func (p *Projector) isEmpty() (bool, error) {
	it, err := p.db.NewIter(nil)
	if err != nil {
		return false, err
	}
	defer it.Close()
	return !it.First(), it.Error()
}

// reader is what Pebble reads from: the DB, a snapshot or a batch.
type reader interface {
	Get(key []byte) ([]byte, io.Closer, error)
	NewIter(*pebble.IterOptions) (*pebble.Iterator, error)
}

// readOffsets reads the checkpoint: per partition, the next offset to apply.
func readOffsets(r reader) (map[int32]int64, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte(prefixOffset), UpperBound: prefixEnd(prefixOffset)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	out := make(map[int32]int64)
	for ok := it.First(); ok; ok = it.Next() {
		part, err := strconv.ParseInt(strings.TrimPrefix(string(it.Key()), prefixOffset), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("projections: bad checkpoint key %q", it.Key())
		}
		off, err := strconv.ParseInt(string(it.Value()), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("projections: bad checkpoint %q of partition %d", it.Value(), part)
		}
		out[int32(part)] = off
	}
	return out, it.Error()
}

// checkLog waits for Kafka, reads the topic's partition count and refuses a
// view that is ahead of the log (another cluster, or a recreated topic).
func (p *Projector) checkLog(ctx context.Context) error {
	if err := broker.WaitReady(ctx, p.cl); err != nil {
		return fmt.Errorf("projections: %w", err)
	}
	topics, err := p.adm.ListTopics(ctx, p.topic)
	if err == nil {
		err = topics.Error()
	}
	if err != nil || len(topics[p.topic].Partitions) == 0 {
		return fmt.Errorf("projections: events topic %s not found (run line dev, or create the topics first): %w", p.topic, err)
	}
	p.nparts = int32(len(topics[p.topic].Partitions))
	ends, err := p.adm.ListCommittedOffsets(ctx, p.topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("projections: list the end offsets of %s: %w", p.topic, err)
	}
	for part, next := range p.resumed {
		end := int64(0)
		if o, ok := ends.Lookup(p.topic, part); ok {
			end = o.Offset
		}
		if next > end {
			return stale("projections: the views in %s reflect partition %d up to offset %d but the log ends at %d: they belong to another log; run with --rebuild",
				p.opts.Dir, part, next, end)
		}
	}
	return nil
}

// Partitions is the partition count of the events topic.
func (p *Projector) Partitions() int32 { return p.nparts }

// Topic is the events topic.
func (p *Projector) Topic() string { return p.topic }

// Resumed returns the checkpoint found at open: per partition, the offset
// from which the projector writes (records below it are only folded into
// memory). It is empty after a rebuild.
func (p *Projector) Resumed() map[int32]int64 { return clone(p.resumed) }

// Run folds the events topic into the views until ctx is done or Close is
// called. It returns nil then, or the error that stopped it (the views
// could not be written). Call it once.
func (p *Projector) Run(ctx context.Context) error {
	if !p.started.CompareAndSwap(false, true) {
		return errors.New("projections: Run called twice")
	}
	defer close(p.done)
	defer p.stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	go p.watchCatchUp(ctx)
	p.log.Info("projector running", "topic", p.topic, "dir", p.opts.Dir, "resumed", p.resumed)
	// A reader goroutine polls and decodes while this one folds and
	// writes: on two cores, decoding the next records overlaps folding
	// and writing the previous ones.
	polls := make(chan poll, pollQueue)
	var reading sync.WaitGroup
	reading.Add(1)
	go func() {
		defer reading.Done()
		p.read(ctx, polls)
	}()
	defer reading.Wait()
	defer cancel()
	for {
		// One batch: the polls decoded so far, and while they come in
		// full (a backlog), the next ones, up to the cap.
		bt := p.newBatch()
		bt.started = time.Now()
		limit := p.opts.MaxBatchRecords
		// A bulk load folds until the log's committed end as it is now
		// (if it can be read; else until a poll comes in short).
		var ends map[int32]int64
		restoreGC := func() {}
		if bt.bulk = p.bulk(); bt.bulk {
			limit = p.opts.MaxBulkRecords
			ends = p.committedEnds(ctx)
			p.expect(ends)
			restoreGC = raiseGC()
		}
		for polled := false; bt.records < limit; polled = true {
			if polled && ends != nil && p.reached(ends) {
				break
			}
			var pl poll
			var ok bool
			select {
			case pl, ok = <-polls:
			default:
				switch {
				case polled && ends != nil:
					// More is committed: wait for it, within reason.
					select {
					case pl, ok = <-polls:
					case <-time.After(bulkWait):
					}
				case polled && !p.reading.Load() && p.cl.BufferedFetchRecords() == 0:
					// Nothing more on its way: write now.
				default:
					pl, ok = <-polls
				}
			}
			if !ok {
				break
			}
			p.fold(pl, bt)
			n := len(pl.recs)
			p.release(pl)
			if ends == nil && n < p.pollSize() {
				break // caught up with what was fetched
			}
		}
		if ctx.Err() != nil {
			restoreGC()
			return nil
		}
		err := p.write(bt)
		restoreGC()
		if err != nil {
			p.log.Error("projector stopped: cannot write the views", "err", err)
			return err
		}
	}
}

// bulkWait is how long a bulk load waits for the next poll before it
// writes what it folded.
const bulkWait = 5 * time.Second

// committedEnds returns, per partition, the committed end of the events
// topic, or nil if it cannot be read.
func (p *Projector) committedEnds(ctx context.Context) map[int32]int64 {
	ends, err := p.adm.ListCommittedOffsets(ctx, p.topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		p.log.Warn("cannot read the end of the events topic; the bulk load ends at the first short poll", "err", err)
		return nil
	}
	out := make(map[int32]int64)
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// expect tells the fold how many records lie between what it folded and
// ends, so that it sizes its tables once for them (it changes no result).
func (p *Projector) expect(ends map[int32]int64) {
	var n int64
	for part, end := range ends {
		n += max(end-p.next[part], 0)
	}
	p.f.st.Expect(n)
}

// reached reports whether every record below ends was folded.
func (p *Projector) reached(ends map[int32]int64) bool {
	for part, end := range ends {
		if p.next[part] < end {
			return false
		}
	}
	return true
}

// pollRecords caps the records of one poll; pollQueue bounds the decoded
// polls waiting to be folded.
const (
	pollRecords = 10_000
	pollQueue   = 4
)

// pollSize is the most records of one poll.
func (p *Projector) pollSize() int { return min(pollRecords, p.opts.MaxBatchRecords) }

// poll is one poll's records, decoded.
type poll struct {
	recs []decoded
}

// decoded is one record and its decoding (control records are not
// decoded).
type decoded struct {
	r   *kgo.Record
	e   events.Envelope
	err error
}

// read polls the events topic and decodes the records into polls until
// ctx is done; then it closes polls.
func (p *Projector) read(ctx context.Context, polls chan<- poll) {
	defer close(polls)
	for {
		fs := p.cl.PollRecords(ctx, p.pollSize())
		if ctx.Err() != nil {
			return
		}
		p.reading.Store(true)
		fs.EachError(func(t string, part int32, err error) {
			if !errors.Is(err, context.Canceled) {
				p.log.Warn("fetch error", "topic", t, "partition", part, "err", err)
			}
		})
		pl := poll{recs: p.recsOf(fs.NumRecords())}
		fs.EachRecord(func(r *kgo.Record) { pl.recs = append(pl.recs, decoded{r: r}) })
		p.decode(pl.recs)
		if len(pl.recs) == 0 {
			p.reading.Store(false)
			continue
		}
		select {
		case polls <- pl:
			p.reading.Store(false)
		case <-ctx.Done():
			return
		}
	}
}

// recsOf returns an empty slice for n decoded records: one that a folded
// poll left (release), if it has the room.
func (p *Projector) recsOf(n int) []decoded {
	if v, ok := p.spare.Get().(*[]decoded); ok && cap(*v) >= n {
		return (*v)[:0]
	}
	return make([]decoded, 0, n)
}

// release recycles the records of a folded poll and keeps its slice for
// the next: the fold holds nothing of either (the decoded events copy
// every string and payload out of the records' bytes).
func (p *Projector) release(pl poll) {
	for i := range pl.recs {
		pl.recs[i].r.Recycle()
	}
	clear(pl.recs)
	recs := pl.recs[:0]
	p.spare.Put(&recs)
}

// decodeChunk is the fewest records a decoding goroutine takes: below
// twice that, a poll is decoded on the reader's goroutine alone.
const decodeChunk = 1024

// decode decodes the records of one poll in place, on up to GOMAXPROCS
// goroutines, each a contiguous chunk of the poll: the fold still applies
// them strictly in log order, and on two cores, while the fold applies one
// poll, both cores decode the next ones whenever the fold waits.
func (p *Projector) decode(recs []decoded) {
	events.DecodeChunks(len(recs), runtime.GOMAXPROCS(0), decodeChunk, func(lo, hi int) { p.decodeRange(recs[lo:hi]) })
}

// decodeRange decodes the events of recs (control records and records of
// other topics are not decoded).
func (p *Projector) decodeRange(recs []decoded) {
	for i := range recs {
		d := &recs[i]
		if d.r.Topic == p.topic && !d.r.Attrs.IsControl() {
			d.e, d.err = events.FromRecord(d.r)
		}
	}
}

// fetchMaxBytes bounds one fetch (and one partition's part of it).
const fetchMaxBytes = 8 << 20

// pebbleOptions are the options of the views' Pebble: a larger memtable
// and L0 than the defaults, since a batch of a catch-up writes tens of
// megabytes of rows at once.
//
// Every batch rewrites rows across the whole key space (the pool's and
// workers' rows, the free-capacity index, each worker's running allocs),
// so every file flushed to L0 overlaps most of the base level, and each
// compaction out of L0 rewrites that level: the fewer such compactions per
// byte flushed, the less compaction work. Compacting L0 once it holds 32
// sublevels instead of 8 cut the bytes compactions wrote by more than half
// and the live path's CPU per event by about a quarter (BenchmarkLive at
// 600,000 evals), with the same memtables. Larger memtables did as much
// but take memory outside the Go heap, on top of GOMEMLIMIT; larger
// memtables in fewer of them (the same memory) did nothing. The price is
// read amplification: a point read may look into up to that many L0
// files. Compression stays on: without it the compactions wrote three
// times the bytes for the same CPU, and a bulk load's files without it
// (three times the bytes, written 4 KiB at a time then) took as much CPU
// as with it.
//
// The tables stay in Pebble's default format (row blocks) and Snappy.
// Format v6 (columnar blocks), which MinLZ needs, was measured for the
// bulk load of 1M evals (BenchmarkMaterialize): MinLZ encoded the rows in
// ~45 % less CPU than Snappy, to the same size, but writing columnar
// blocks cost about as much more (sizing a block at every key): the
// write phase's CPU showed no clear gain (paired medians within 5 %, in
// either direction), not worth a format change, which ratchets the
// views' directory for good.
func pebbleOptions(log *slog.Logger) *pebble.Options {
	o := &pebble.Options{
		Logger:                      pebbleLogger{log},
		MemTableSize:                16 << 20,
		MemTableStopWritesThreshold: 4,
		L0CompactionThreshold:       32,
		L0StopWritesThreshold:       64,
		LBaseMaxBytes:               256 << 20,
	}
	if tunePebble != nil {
		tunePebble(o)
	}
	o.EnsureDefaults()
	return o
}

// tunePebble, if set, adjusts the options (benchmarks).
var tunePebble func(*pebble.Options)

// watchCatchUp records when the view first caught up with the log as it was
// when Run started (for health checks).
func (p *Projector) watchCatchUp(ctx context.Context) {
	for ctx.Err() == nil {
		if err := p.CatchUp(ctx); err == nil {
			p.mu.Lock()
			p.caughtUp = true
			p.mu.Unlock()
			p.log.Info("views caught up with the log", "applied", p.Applied())
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// bulk reports whether the next batch is a bulk load: the views hold no
// row yet (no checkpoint was ever committed).
func (p *Projector) bulk() bool {
	if p.opts.MaxBulkRecords < 0 {
		return false
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	return len(p.ckpt) == 0
}

// batch is what the polls of one Pebble batch folded.
type batch struct {
	// bulk: the batch is a bulk load, which writes every row of the fold
	// (t stays empty).
	bulk    bool
	started time.Time // when the batch began to fold (logs)
	t       *touched
	from    map[int32]int64 // per partition, the first offset written
	st      Stats
	records int // records fetched (folded or written)
	written int // records the batch reflects beyond the resumed checkpoint
}

func (p *Projector) newBatch() *batch {
	if p.touched == nil {
		p.touched = newTouched()
	} else {
		// The previous batch is written: its maps, grown to a batch's
		// size, serve the next one.
		p.touched.clear()
	}
	return &batch{t: p.touched, from: make(map[int32]int64)}
}

// fold folds one poll's records into memory and names in bt the rows they
// changed.
func (p *Projector) fold(pl poll, bt *batch) {
	for _, d := range pl.recs {
		r := d.r
		if r.Topic != p.topic || r.Offset < p.next[r.Partition] {
			continue
		}
		bt.records++
		part := r.Partition
		p.next[part] = r.Offset + 1
		write := r.Offset >= p.resumed[part]
		if write {
			bt.written++
			if _, ok := bt.from[part]; !ok {
				bt.from[part] = r.Offset
			}
		}
		if r.Attrs.IsControl() {
			continue
		}
		pos := events.Position{Partition: part, Offset: r.Offset}
		if d.err != nil {
			bt.st.Poison++
			p.log.Warn("skipping undecodable record", "position", pos.String(), "err", d.err)
			continue
		}
		var tt *touched
		if write {
			if !bt.bulk {
				tt = bt.t
			}
			bt.st.Applied++
		} else {
			bt.st.Replayed++
		}
		if err := p.f.apply(d.e, pos, tt); err != nil {
			bt.st.Rejected++
		}
	}
}

// write writes what bt changed, with the new checkpoint, in one Pebble
// batch.
func (p *Projector) write(bt *batch) error {
	p.mu.Lock()
	p.stats.Replayed += bt.st.Replayed
	p.stats.Applied += bt.st.Applied
	p.stats.Rejected += bt.st.Rejected
	p.stats.Poison += bt.st.Poison
	p.mu.Unlock()
	if len(bt.from) == 0 {
		return nil
	}
	to := make(map[int32]int64, len(bt.from))
	for part := range bt.from {
		to[part] = p.next[part]
	}
	var n int
	var err error
	if bt.bulk {
		folded := time.Now()
		n, err = p.writeBulk(to)
		if err == nil {
			p.log.Info("bulk load written", "records", bt.written, "rows", n, "checkpoint", to,
				"fold", folded.Sub(bt.started).Round(time.Millisecond), "write", time.Since(folded).Round(time.Millisecond))
		}
	} else {
		n, err = p.writeBatch(bt, to)
	}
	if err != nil {
		return err
	}
	p.mu.Lock()
	for part, o := range to {
		p.ckpt[part] = o
	}
	p.stats.Batches++
	ch := p.changed
	p.changed = make(chan struct{})
	p.mu.Unlock()
	close(ch)
	if p.opts.OnCommit != nil {
		p.opts.OnCommit(Commit{From: bt.from, To: to, Records: bt.written, Rows: n})
	}
	return nil
}

// writeBatch writes the rows bt touched and the checkpoint to in one
// Pebble batch, and returns the number of rows written or deleted.
func (p *Projector) writeBatch(bt *batch, to map[int32]int64) (int, error) {
	b := p.db.NewBatch()
	defer b.Close()
	n := 0
	err := p.f.eachRow(bt.t, func(r row) error {
		changed, err := writeRow(b, r)
		if changed {
			n++
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	for part, next := range to {
		if err := b.Set([]byte(offsetKey(part)), []byte(strconv.FormatInt(next, 10)), nil); err != nil {
			return 0, err
		}
	}
	wopts := pebble.Sync
	if p.noSync {
		wopts = pebble.NoSync
	}
	if err := b.Commit(wopts); err != nil {
		return 0, fmt.Errorf("commit a batch of the views: %w", err)
	}
	return n, nil
}

// writeRow writes one row and its index entries in b, after deleting the
// index entries of the row it replaces (known from the fold, not read
// back: the view is the fold of the log up to the checkpoint). It reports
// whether the row was written or deleted.
func writeRow(b *pebble.Batch, r row) (bool, error) {
	if r.value == nil && !r.old.exists {
		return false, nil
	}
	for _, k := range r.old.index {
		if r.value != nil && slices.Contains(r.index, k) {
			continue
		}
		if err := deleteKey(b, k); err != nil {
			return false, err
		}
	}
	if r.value == nil {
		return true, b.Delete(r.key, nil)
	}
	if err := b.Set(r.key, r.value, nil); err != nil {
		return false, err
	}
	for _, k := range r.index {
		if r.old.exists && slices.Contains(r.old.index, k) {
			continue
		}
		if err := setKey(b, k); err != nil {
			return false, err
		}
	}
	return true, nil
}

// setKey sets index entry k (an empty value) in b, copying k into the
// batch without converting it to a byte slice first.
func setKey(b *pebble.Batch, k string) error {
	op := b.SetDeferred(len(k), 0)
	copy(op.Key, k)
	return op.Finish()
}

// deleteKey deletes index entry k in b, like setKey.
func deleteKey(b *pebble.Batch, k string) error {
	op := b.DeleteDeferred(len(k))
	copy(op.Key, k)
	return op.Finish()
}

func getCopy(r reader, key []byte) ([]byte, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	return bytes.Clone(v), nil
}

// Applied returns, per partition, the next offset the view will apply:
// every record below it is reflected in the views on disk.
func (p *Projector) Applied() map[int32]int64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return clone(p.ckpt)
}

// Stats returns the counters.
func (p *Projector) Stats() Stats {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.stats
}

// CaughtUp reports whether the view has once reached the end of the log as
// it was when Run started.
func (p *Projector) CaughtUp() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.caughtUp
}

// WaitApplied waits until the view reflects the record at pos.
func (p *Projector) WaitApplied(ctx context.Context, pos events.Position) error {
	return p.waitFor(ctx, map[int32]int64{pos.Partition: pos.Offset + 1})
}

// CatchUp waits until the view reflects everything committed on the events
// topic when it is called.
func (p *Projector) CatchUp(ctx context.Context) error {
	ends, err := p.adm.ListCommittedOffsets(ctx, p.topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("projections: list the end offsets of %s: %w", p.topic, err)
	}
	want := make(map[int32]int64)
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	return p.waitFor(ctx, want)
}

func (p *Projector) waitFor(ctx context.Context, want map[int32]int64) error {
	for {
		p.mu.RLock()
		ok := true
		for part, o := range want {
			if p.ckpt[part] < o {
				ok = false
				break
			}
		}
		ch := p.changed
		p.mu.RUnlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.stopped:
			return ErrStopped
		case <-ch:
		}
	}
}

// Ping checks that Kafka answers.
func (p *Projector) Ping(ctx context.Context) error { return p.cl.Ping(ctx) }

// Done is closed once the projector stops (Run returned or Close was
// called): long-lived readers, such as event streams, end then.
func (p *Projector) Done() <-chan struct{} { return p.stopped }

func (p *Projector) stop() { p.stopOnce.Do(func() { close(p.stopped) }) }

// Close stops Run (if it runs), then closes the Kafka client and the views.
// Nothing is lost: every committed batch is on disk.
func (p *Projector) Close() error {
	p.closeOnce.Do(func() {
		close(p.quit)
		p.stop()
		if p.started.Load() {
			<-p.done
		}
		p.cl.Close()
		p.rmu.Lock()
		p.closing = true
		p.rmu.Unlock()
		p.readers.Wait()
		p.closeErr = p.db.Close()
	})
	return p.closeErr
}

// Dump returns every row of the views (index entries included, checkpoint
// and layout excluded) as "key<TAB>value" lines in key order: two views
// are equal when their dumps are. For tests.
func (p *Projector) Dump() ([]byte, error) {
	s, err := p.Snapshot()
	if err != nil {
		return nil, err
	}
	defer s.Close()
	it, err := s.s.NewIter(nil)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var buf bytes.Buffer
	for ok := it.First(); ok; ok = it.Next() {
		if bytes.HasPrefix(it.Key(), []byte(prefixMeta)) {
			continue
		}
		buf.Write(it.Key())
		buf.WriteByte('\t')
		buf.Write(it.Value())
		buf.WriteByte('\n')
	}
	return buf.Bytes(), it.Error()
}

func clone(m map[int32]int64) map[int32]int64 {
	out := make(map[int32]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// FormatIndex formats applied offsets (next offset per partition) as the
// X-Line-Index header does: "partition:offset" of the last record applied,
// sorted by partition, partitions with nothing applied left out.
func FormatIndex(next map[int32]int64) string {
	parts := make([]int32, 0, len(next))
	for part, o := range next {
		if o > 0 {
			parts = append(parts, part)
		}
	}
	slices.Sort(parts)
	var b strings.Builder
	for i, part := range parts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(events.Position{Partition: part, Offset: next[part] - 1}.String())
	}
	return b.String()
}

// pebbleLogger sends Pebble's messages to slog: information at debug
// level, errors as warnings.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Warn(fmt.Sprintf(format, args...), "component", "pebble")
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error(msg, "component", "pebble")
	panic("pebble: " + msg)
}

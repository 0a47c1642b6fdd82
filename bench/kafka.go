package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/line-sched/line/events"
)

// allocWatcher reads every worker topic of the bench deployment as a worker
// does (read_committed) and counts the alloc records; it remembers when
// each eval's alloc was first readable if asked to.
type allocWatcher struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}

	count atomic.Int64
	dups  atomic.Int64
	last  atomic.Int64 // unix nanos of the last record

	mu      sync.Mutex
	changed chan struct{}
	seen    map[uint64]struct{}
	seed    maphash.Seed
	// evals maps eval id -> first time readable (when tracking).
	evals map[string]time.Time
	track bool
	// placed: count alloc.placed events (events topic), not alloc records.
	placed bool
}

// watchAllocs starts reading the worker topics and the shared alloc topic:
// from the start, or from the given offsets (ConsumePartitions) when from
// is not nil.
func watchAllocs(brokers []string, topics events.Topics, from map[string]map[int32]kgo.Offset, track bool) (*allocWatcher, error) {
	return watch(brokers, topics, from, track, false)
}

// watchPlaced reads the events topic from the start (read_committed) and
// counts the alloc.placed events. The scheduler commits each alloc.placed
// and the alloc's record on its worker topic in one transaction, so both
// become readable at once; reading one partition is much lighter for the
// broker than fetching thousands of worker topics while it is measured.
func watchPlaced(brokers []string, topics events.Topics) (*allocWatcher, error) {
	return watch(brokers, topics, nil, false, true)
}

func watch(brokers []string, topics events.Topics, from map[string]map[int32]kgo.Offset, track, placed bool) (*allocWatcher, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(50 * time.Millisecond),
		kgo.MetadataMinAge(250 * time.Millisecond),
		kgo.FetchMaxPartitionBytes(1 << 20),
	}
	switch {
	case placed:
		opts = append(opts, kgo.ConsumeTopics(topics.Events()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	case from != nil:
		opts = append(opts, kgo.ConsumePartitions(from))
	default:
		// The worker topics and the shared alloc topic.
		opts = append(opts, kgo.ConsumeRegex(), kgo.ConsumeTopics("^"+regexp.QuoteMeta(topics.AllocsPrefix())+".*",
			"^"+regexp.QuoteMeta(topics.SharedAllocs())+"$"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &allocWatcher{cl: cl, cancel: cancel, done: make(chan struct{}), changed: make(chan struct{}),
		seen: make(map[uint64]struct{}), seed: maphash.MakeSeed(), track: track, placed: placed}
	if track {
		w.evals = make(map[string]time.Time)
	}
	go w.run(ctx)
	return w, nil
}

var (
	allocIDKey = []byte(`"alloc_id":"`)
	evalIDKey  = []byte(`"eval_id":"`)
)

// field returns the string value of a top-level key written as `"k":"`.
func field(v, key []byte) []byte {
	i := bytes.Index(v, key)
	if i < 0 {
		return nil
	}
	v = v[i+len(key):]
	j := bytes.IndexByte(v, '"')
	if j < 0 {
		return nil
	}
	return v[:j]
}

func (w *allocWatcher) run(ctx context.Context) {
	defer close(w.done)
	for {
		fs := w.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		now := time.Now()
		n := 0
		w.mu.Lock()
		fs.EachRecord(func(r *kgo.Record) {
			if w.placed && !isType(r, events.AllocPlaced) {
				return
			}
			h := maphash.Bytes(w.seed, field(r.Value, allocIDKey))
			if _, ok := w.seen[h]; ok {
				w.dups.Add(1)
				return
			}
			w.seen[h] = struct{}{}
			n++
			if w.track {
				id := string(field(r.Value, evalIDKey))
				if _, ok := w.evals[id]; !ok {
					w.evals[id] = now
				}
			}
		})
		if n > 0 {
			w.count.Add(int64(n))
			w.last.Store(now.UnixNano())
			close(w.changed)
			w.changed = make(chan struct{})
		}
		w.mu.Unlock()
	}
}

func isType(r *kgo.Record, t events.Type) bool {
	for _, h := range r.Headers {
		if h.Key == "type" {
			return string(h.Value) == string(t)
		}
	}
	return false
}

// waitCount waits until n distinct allocs were read; it returns when the
// n-th was first readable.
func (w *allocWatcher) waitCount(ctx context.Context, n int64, progress func(int64)) (time.Time, error) {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		w.mu.Lock()
		ch := w.changed
		w.mu.Unlock()
		if w.count.Load() >= n {
			return time.Unix(0, w.last.Load()), nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("%d of %d allocs readable: %w", w.count.Load(), n, ctx.Err())
		case <-ch:
		case <-tick.C:
			if progress != nil {
				progress(w.count.Load())
			}
		}
	}
}

// seenAt returns when eval's alloc was first readable.
func (w *allocWatcher) seenAt(eval string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.evals[eval]
	return t, ok
}

func (w *allocWatcher) close() {
	w.cancel()
	<-w.done
	w.cl.Close()
}

// workerTopicEnds returns the end offsets of every worker topic and of
// the shared alloc topic, to watch only what comes next.
func workerTopicEnds(ctx context.Context, brokers []string, topics events.Topics) (map[string]map[int32]kgo.Offset, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	tds, err := adm.ListTopics(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, t := range tds.Names() {
		if strings.HasPrefix(t, topics.AllocsPrefix()) || t == topics.SharedAllocs() {
			names = append(names, t)
		}
	}
	ends, err := adm.ListEndOffsets(ctx, names...)
	if err != nil {
		return nil, err
	}
	if err := ends.Error(); err != nil {
		return nil, err
	}
	out := make(map[string]map[int32]kgo.Offset)
	ends.Each(func(o kadm.ListedOffset) {
		if out[o.Topic] == nil {
			out[o.Topic] = make(map[int32]kgo.Offset)
		}
		out[o.Topic][o.Partition] = kgo.NewOffset().At(o.Offset)
	})
	return out, nil
}

// committedEnd returns the committed end offset of each partition of topic.
func committedEnd(ctx context.Context, brokers []string, topic string) (map[int32]int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	los, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = los.Error()
	}
	if err != nil {
		return nil, err
	}
	out := make(map[int32]int64)
	los.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, nil
}

// appendEvent appends one event to the events topic where line puts it (the
// pool's partition), as ingest does, and returns its position.
func appendEvent(ctx context.Context, brokers []string, topics events.Topics, nparts int32, e events.Envelope) (events.Position, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		return events.Position{}, err
	}
	defer cl.Close()
	rec, err := events.Record(topics.Events(), e)
	if err != nil {
		return events.Position{}, err
	}
	rec.Partition = events.PartitionFor(e.Pool, nparts)
	r, err := cl.ProduceSync(ctx, rec).First()
	if err != nil {
		return events.Position{}, err
	}
	return events.Position{Partition: r.Partition, Offset: r.Offset}, nil
}

// copyResult is the broker limit: a transactional copy of n records.
type copyResult struct {
	Records      int
	Fill, Copy   time.Duration
	Transactions int
}

// brokerCopy measures the broker limit on brokers: it fills a new
// one-partition topic with n eval.submitted records (as ingest encodes
// them) in transactions of fillTxn records, then copies them to another
// one-partition topic read_committed, in transactions of at most copyTxn
// records that also commit the consumed offsets (a GroupTransactSession,
// as the scheduler's loop) — one read and one write per record.
func brokerCopy(ctx context.Context, brokers []string, n, fillTxn, copyTxn int) (copyResult, error) {
	res := copyResult{Records: n}
	suffix := fmt.Sprintf("%d", time.Now().UnixNano())
	src, dst := "bench-copy-src-"+suffix, "bench-copy-dst-"+suffix
	admCl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return res, err
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	if _, err := adm.CreateTopics(ctx, 1, -1, nil, src, dst); err != nil {
		return res, fmt.Errorf("create copy topics: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = adm.DeleteTopics(dctx, src, dst)
	}()

	// Fill: as ingest's batch endpoint writes.
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(src),
		kgo.TransactionalID("bench-copy-fill-"+suffix), kgo.ProducerLinger(0),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return res, err
	}
	defer prod.Close()
	gen := newEvalGen("copy-", 1000, 0)
	now := events.Truncate(time.Now())
	start := time.Now()
	for done := 0; done < n; {
		k := min(fillTxn, n-done)
		recs := make([]*kgo.Record, k)
		for i := range recs {
			e := gen.next()
			rec, err := events.Record(src, events.New("copy", now, events.EvalSubmittedData{EvalID: e.ID, DatasetID: e.Dataset, Size: e.Size}))
			if err != nil {
				return res, err
			}
			recs[i] = rec
		}
		if err := prod.BeginTransaction(); err != nil {
			return res, err
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			_ = prod.EndTransaction(ctx, kgo.TryAbort)
			return res, fmt.Errorf("fill: %w", err)
		}
		if err := prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
			return res, fmt.Errorf("fill commit: %w", err)
		}
		done += k
	}
	res.Fill = time.Since(start)

	// Copy: consume-transform-produce, exactly once.
	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumerGroup("bench-copy-"+suffix),
		kgo.ConsumeTopics(src),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.TransactionalID("bench-copy-"+suffix),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.SessionTimeout(10*time.Second),
		kgo.HeartbeatInterval(3*time.Second),
	)
	if err != nil {
		return res, err
	}
	defer sess.Close()
	copied := 0
	start = time.Now()
	for copied < n {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		fs := sess.PollRecords(ctx, copyTxn)
		for _, fe := range fs.Errors() {
			if !errors.Is(fe.Err, context.Canceled) {
				return res, fmt.Errorf("copy fetch: %w", fe.Err)
			}
		}
		recs := fs.Records()
		if len(recs) == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			return res, err
		}
		var wg sync.WaitGroup
		var perr atomic.Value
		wg.Add(len(recs))
		for _, r := range recs {
			out := &kgo.Record{Topic: dst, Partition: 0, Key: r.Key, Value: r.Value, Headers: r.Headers}
			sess.Produce(ctx, out, func(_ *kgo.Record, err error) {
				if err != nil {
					perr.Store(err)
				}
				wg.Done()
			})
		}
		wg.Wait()
		try := kgo.TryCommit
		if perr.Load() != nil {
			try = kgo.TryAbort
		}
		committed, err := sess.End(ctx, try)
		if err != nil {
			return res, fmt.Errorf("copy commit: %w", err)
		}
		if committed {
			copied += len(recs)
			res.Transactions++
		}
	}
	res.Copy = time.Since(start)
	return res, nil
}

// sharedCheck is what readShared found on the shared alloc topic.
type sharedCheck struct {
	partitions                               int32
	distinct, evals, dups, misplaced, badKey int64
}

// readShared reads every partition of the shared alloc topic from the
// start (read_committed) until want distinct allocs were read and a second
// passed without a new record, checking each record's key and partition.
func readShared(ctx context.Context, brokers []string, topics events.Topics, want int) (sharedCheck, error) {
	var chk sharedCheck
	topic := topics.SharedAllocs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return chk, err
	}
	defer cl.Close()
	tds, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		return chk, err
	}
	td, ok := tds[topic]
	if !ok || td.Err != nil {
		return chk, fmt.Errorf("describe %s: %v", topic, td.Err)
	}
	chk.partitions = int32(len(td.Partitions))
	seen := make(map[string]struct{}, want)
	evals := make(map[string]struct{}, want)
	quiet := time.Time{}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	for {
		pctx, pcancel := context.WithTimeout(rctx, time.Second)
		fs := cl.PollFetches(pctx)
		pcancel()
		if rctx.Err() != nil {
			return chk, fmt.Errorf("%d of %d allocs read: %w", len(seen), want, rctx.Err())
		}
		got := 0
		fs.EachRecord(func(r *kgo.Record) {
			got++
			var a events.AllocRecord
			if err := json.Unmarshal(r.Value, &a); err != nil || a.AllocID == "" {
				chk.badKey++
				return
			}
			if string(r.Key) != a.WorkerID {
				chk.badKey++
			}
			if t := topics.AllocTarget(events.Shared, a.PoolID, a.WorkerID, chk.partitions); t.Partition != r.Partition {
				chk.misplaced++
			}
			if _, ok := seen[a.AllocID]; ok {
				chk.dups++
				return
			}
			seen[a.AllocID] = struct{}{}
			evals[a.EvalID] = struct{}{}
		})
		chk.distinct, chk.evals = int64(len(seen)), int64(len(evals))
		switch {
		case got > 0:
			quiet = time.Time{}
		case len(seen) >= want && quiet.IsZero():
			quiet = time.Now()
		case len(seen) >= want && time.Since(quiet) >= time.Second:
			return chk, nil
		}
	}
}

package audit

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/line-sched/line/broker"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/state"
)

// Cut is where a replay stops: at a time (each partition is cut at its first
// event with at > Time) or at a position (its partition after that record,
// every other partition at that event's time). The zero Cut replays up to
// the committed end that the replay finds when it starts.
type Cut struct {
	Time     time.Time
	Position *events.Position
}

// IsZero reports whether c cuts nothing.
func (c Cut) IsZero() bool { return c.Time.IsZero() && c.Position == nil }

func (c Cut) String() string {
	switch {
	case c.Position != nil:
		return c.Position.String()
	case !c.Time.IsZero():
		return events.FormatTime(c.Time)
	}
	return "end"
}

var cutLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", "2006-01-02"}

// ParseCut parses a time (RFC 3339, e.g. 2026-11-26T19:38:45Z; without a zone
// it is UTC) or a position ("partition:offset", e.g. 3:1042).
func ParseCut(s string) (Cut, error) {
	s = strings.TrimSpace(s)
	if !strings.ContainsAny(s, "-T ") {
		if p, err := events.ParsePosition(s); err == nil {
			return Cut{Position: &p}, nil
		}
	}
	for _, l := range cutLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return Cut{Time: t.UTC()}, nil
		}
	}
	return Cut{}, fmt.Errorf("invalid cut %q: want a time (RFC 3339, e.g. 2026-11-26T19:38:45Z) or a position (partition:offset, e.g. 3:1042)", s)
}

// Options configure Replay.
type Options struct {
	// Brokers to connect to.
	Brokers []string
	// Deployment names the topics; the replay reads <deployment>.events.
	Deployment string
	// Until cuts the replay (zero: up to the committed end at start).
	Until Cut
	// Pools, if set, restricts the replay to the partitions holding these
	// pools (every event of those partitions is still checked).
	Pools []string
	// ConnectTimeout bounds the wait for Kafka to answer (default 10s).
	ConnectTimeout time.Duration
	// Progress, if set, is called every ProgressEvery (default 200ms)
	// while reading and once at the end.
	Progress      func(Progress)
	ProgressEvery time.Duration
	// Visit, if set, is called for every record in replay order, after it
	// was checked.
	Visit func(Step)
	// MaxViolations bounds the violations kept in the report (default
	// 10,000); the summary counts them all.
	MaxViolations int
	// ClientOpts are extra franz-go options.
	ClientOpts []kgo.Opt
}

// Progress reports how far a replay got.
type Progress struct {
	// Read and Total count offsets, of every partition, read and to read.
	Read, Total int64
	// Events counts the records replayed.
	Events  int64
	Elapsed time.Duration
	// Rate is offsets read per second; ETA the time left at that rate
	// (negative if unknown).
	Rate float64
	ETA  time.Duration
	// Done is set on the last call.
	Done bool
}

// Step is one record of a replay, after it was checked.
type Step struct {
	Envelope events.Envelope
	Position events.Position
	// Poison is the decode error of an undecodable record (Envelope then
	// holds what could be read).
	Poison error
	// Rejected is the fold's *state.Rejection if the event did not apply.
	Rejected error
	// Violations found at this record.
	Violations []Violation
	// State is the fold after the record. Do not change it.
	State *state.State
}

// PartitionRange is what a replay read of one partition.
type PartitionRange struct {
	Partition int32 `json:"partition"`
	// Start is the first offset; End the offset where the replay stopped
	// (exclusive): the committed end, or the cut.
	Start int64 `json:"start"`
	End   int64 `json:"end"`
	// Cut tells that the partition was cut before its committed end.
	Cut bool `json:"cut"`
}

// Report is the outcome of a replay.
type Report struct {
	Topic      string           `json:"topic"`
	Until      string           `json:"until"`
	Partitions []PartitionRange `json:"partitions"`
	Summary    Summary          `json:"summary"`
	// Violations in replay order (end-of-replay ones last), at most
	// Options.MaxViolations.
	Violations []Violation `json:"violations"`
	// Truncated tells that violations were left out of the list.
	Truncated bool          `json:"violations_truncated"`
	Elapsed   time.Duration `json:"-"`
	// CutTime is the time the state describes: the cut's time (for a
	// position, its event's time), else the time of the last event.
	CutTime time.Time `json:"-"`
	// State is the fold at the end of the replay.
	State *state.State `json:"-"`
}

// ErrNoTopic means the deployment has no events topic.
var ErrNoTopic = errors.New("no events topic")

// Replay reads the deployment's events topic from the start of every
// partition (read_committed) up to the committed end found at start, or up
// to opts.Until, checks every record with a Checker, and returns the report.
// Violations are not errors: an error means the replay could not be done.
func Replay(ctx context.Context, opts Options) (*Report, error) {
	start := time.Now()
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 10 * time.Second
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = 200 * time.Millisecond
	}
	if opts.MaxViolations <= 0 {
		opts.MaxViolations = 10_000
	}
	topics, err := events.NewTopics(opts.Deployment)
	if err != nil {
		return nil, err
	}
	topic := topics.Events()
	if len(opts.Brokers) == 0 {
		return nil, errors.New("no Kafka brokers given: set --brokers or LINE_KAFKA_BROKERS")
	}
	base := append([]kgo.Opt{kgo.SeedBrokers(opts.Brokers...), kgo.DialTimeout(opts.ConnectTimeout)}, opts.ClientOpts...)
	cl, err := kgo.NewClient(base...)
	if err != nil {
		return nil, fmt.Errorf("kafka client for %s: %w", strings.Join(opts.Brokers, ","), err)
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, opts.ConnectTimeout)
	err = broker.WaitReady(pctx, cl)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("cannot reach Kafka at %s: is `line dev` running? set --brokers (or LINE_KAFKA_BROKERS): %w",
			strings.Join(opts.Brokers, ","), err)
	}
	rd, err := plan(ctx, kadm.NewClient(cl), topic, opts)
	if err != nil {
		return nil, err
	}
	if opts.Until.Position != nil {
		at, err := eventTime(ctx, base, topic, *opts.Until.Position)
		if err != nil {
			return nil, err
		}
		rd.cutTime = at
	}
	rep := &Report{Topic: topic, Until: opts.Until.String(), CutTime: rd.cutTime}
	c := NewChecker()
	emit := func(r *rec) {
		var vs []Violation
		if r.err != nil {
			vs = c.Poison(r.pos, r.key, r.err)
		} else {
			vs = c.Check(r.env, r.pos)
		}
		rep.add(vs, opts.MaxViolations)
		if opts.Visit != nil {
			st := Step{Envelope: r.env, Position: r.pos, Poison: r.err, Violations: vs, State: c.st}
			if r.err == nil {
				st.Rejected = c.lastErr
			}
			opts.Visit(st)
		}
	}
	if err := rd.run(ctx, base, opts, emit, c); err != nil {
		return nil, err
	}
	rep.add(c.Finish(), opts.MaxViolations)
	rep.Summary = c.Summary()
	rep.State = c.st
	for _, p := range rd.parts {
		rep.Partitions = append(rep.Partitions, PartitionRange{Partition: p.id, Start: p.start, End: p.end, Cut: p.cut})
	}
	if rep.CutTime.IsZero() && rep.Summary.Last != nil {
		rep.CutTime = *rep.Summary.Last
	}
	rep.Elapsed = time.Since(start)
	return rep, nil
}

func (r *Report) add(vs []Violation, max int) {
	for _, v := range vs {
		if len(r.Violations) >= max {
			r.Truncated = true
			return
		}
		r.Violations = append(r.Violations, v)
	}
}

// rec is one record read, waiting for the merge.
type rec struct {
	pos events.Position
	env events.Envelope
	err error
	key string
	at  time.Time // the event's time; for poison, its predecessor's
}

// part is the reading of one partition.
type part struct {
	id         int32
	start, end int64 // offsets to read: [start, end)
	next       int64 // every offset below next was read
	cut        bool  // stopped before the committed end
	done       bool  // nothing more to read
	buf        []rec
	head       int
	lastAt     time.Time
	paused     bool
}

func (p *part) pending() int { return len(p.buf) - p.head }

type reader struct {
	topic string
	parts []*part
	byID  map[int32]*part
	// cutTime cuts every partition but posPart, which a position cuts
	// (-1: none).
	cutTime time.Time
	posPart int32
}

// plan lists the partitions to read and their offsets.
func plan(ctx context.Context, adm *kadm.Client, topic string, opts Options) (*reader, error) {
	tds, err := adm.ListTopics(ctx, topic)
	if err == nil {
		err = tds.Error()
	}
	td, ok := tds[topic]
	if errors.Is(err, kerr.UnknownTopicOrPartition) || (err == nil && (!ok || len(td.Partitions) == 0)) {
		return nil, fmt.Errorf("%w %s on %s: check --deployment (LINE_DEPLOYMENT), or start `line dev` to create it",
			ErrNoTopic, topic, strings.Join(opts.Brokers, ","))
	}
	if err != nil {
		return nil, fmt.Errorf("describe topic %s: %w", topic, err)
	}
	n := int32(len(td.Partitions))
	want := map[int32]bool{}
	if len(opts.Pools) > 0 {
		for _, pool := range opts.Pools {
			want[events.PartitionFor(pool, n)] = true
		}
	} else {
		for i := range n {
			want[i] = true
		}
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list committed end offsets of %s: %w", topic, err)
	}
	rd := &reader{topic: topic, byID: map[int32]*part{}, cutTime: opts.Until.Time, posPart: -1}
	for id := range n {
		if !want[id] {
			continue
		}
		p := &part{id: id}
		if o, ok := starts.Lookup(topic, id); ok {
			p.start = o.Offset
		}
		if o, ok := ends.Lookup(topic, id); ok {
			p.end = o.Offset
		}
		p.next = p.start
		rd.parts = append(rd.parts, p)
		rd.byID[id] = p
	}
	if pos := opts.Until.Position; pos != nil {
		if pos.Partition < 0 || pos.Partition >= n {
			return nil, fmt.Errorf("position %s: topic %s has partitions 0 to %d", pos, topic, n-1)
		}
		o, _ := ends.Lookup(topic, pos.Partition)
		s, _ := starts.Lookup(topic, pos.Partition)
		if pos.Offset >= o.Offset || pos.Offset < s.Offset {
			return nil, fmt.Errorf("position %s: partition %d holds committed offsets %d to %d", pos, pos.Partition, s.Offset, o.Offset-1)
		}
		rd.posPart = pos.Partition
		if p := rd.byID[pos.Partition]; p != nil {
			p.end, p.cut = pos.Offset+1, p.end > pos.Offset+1
		}
	}
	for _, p := range rd.parts {
		p.done = p.next >= p.end
	}
	return rd, nil
}

// eventTime reads the event at pos and returns its time.
func eventTime(ctx context.Context, base []kgo.Opt, topic string, pos events.Position) (time.Time, error) {
	cl, err := kgo.NewClient(append(slices.Clone(base),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {pos.Partition: kgo.NewOffset().At(pos.Offset)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords(), kgo.FetchMaxWait(100*time.Millisecond))...)
	if err != nil {
		return time.Time{}, err
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return time.Time{}, err
		}
		if err := fetchErr(fs); err != nil {
			return time.Time{}, err
		}
		var out time.Time
		var bad error
		found := false
		fs.EachRecord(func(r *kgo.Record) {
			if found || bad != nil || r.Offset < pos.Offset {
				return
			}
			found = true
			if r.Offset != pos.Offset || r.Attrs.IsControl() {
				bad = fmt.Errorf("no event at %s (a transaction marker or an aborted record): pick another position", pos)
				return
			}
			e, err := events.FromRecord(r)
			if err != nil {
				bad = fmt.Errorf("the record at %s is not an event (%v): pick another position", pos, err)
				return
			}
			out = e.At
		})
		if bad != nil {
			return time.Time{}, bad
		}
		if found {
			return out, nil
		}
	}
}

func fetchErr(fs kgo.Fetches) error {
	var errs []error
	fs.EachError(func(t string, p int32, err error) {
		errs = append(errs, fmt.Errorf("read %s partition %d: %w", t, p, err))
	})
	return errors.Join(errs...)
}

// Buffering bounds: a partition whose buffer holds more than maxBuffered
// records is paused until the merge drained it below resumeBuffered.
const (
	maxBuffered    = 20_000
	resumeBuffered = 2_000
)

// run reads the partitions and emits their records, merged by time.
func (rd *reader) run(ctx context.Context, base []kgo.Opt, opts Options, emit func(*rec), c *Checker) error {
	from := map[int32]kgo.Offset{}
	for _, p := range rd.parts {
		if !p.done {
			from[p.id] = kgo.NewOffset().At(p.start)
		}
	}
	started := time.Now()
	lastProgress := started
	progress := func(done bool) {
		if opts.Progress == nil {
			return
		}
		var read, total int64
		for _, p := range rd.parts {
			total += p.end - p.start
			read += min(p.next, p.end) - p.start
		}
		el := time.Since(started)
		pr := Progress{Read: read, Total: total, Events: c.sum.events, Elapsed: el, ETA: -1, Done: done}
		if s := el.Seconds(); s > 0 {
			pr.Rate = float64(read) / s
		}
		if pr.Rate > 0 {
			pr.ETA = time.Duration(float64(total-read) / pr.Rate * float64(time.Second))
		}
		opts.Progress(pr)
	}
	if len(from) == 0 {
		progress(true)
		return nil
	}
	cl, err := kgo.NewClient(append(slices.Clone(base),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{rd.topic: from}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords(),
		kgo.FetchMaxWait(100*time.Millisecond),
		// Large fetches: the default 1 MiB per partition is ~3,000 events.
		kgo.FetchMaxBytes(fetchMaxBytes), kgo.FetchMaxPartitionBytes(fetchMaxBytes),
		// The slices of fetched records are used again once taken
		// (below), not left to the collector.
		kgo.WithPools(events.NewReadPools()))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	// A reader goroutine polls and decodes (each poll on every core, see
	// decode) while this one merges and checks in log order: decoding
	// the next records overlaps checking the previous ones.
	rctx, stop := context.WithCancel(ctx)
	polls := make(chan fetched, pollQueue)
	readErr := make(chan error, 1)
	go func() { readErr <- rd.read(rctx, cl, polls) }()
	defer func() {
		stop()
		for range polls { // let the reader end
		}
	}()
	for {
		rd.merge(emit)
		if time.Since(lastProgress) >= opts.ProgressEvery {
			progress(false)
			lastProgress = time.Now()
		}
		if rd.finished() {
			break
		}
		rd.flow(cl)
		f, ok := <-polls
		if !ok {
			if err := ctx.Err(); err != nil {
				return err
			}
			return <-readErr
		}
		for _, d := range f {
			rd.take(d)
			// take keeps copies: the decoded envelope holds none of
			// the record's bytes.
			d.r.Recycle()
		}
	}
	progress(true)
	return nil
}

// Reading: fetchMaxBytes bounds one fetch (and one partition's part of
// it); pollQueue bounds the decoded polls waiting to be merged.
const (
	fetchMaxBytes = 8 << 20
	pollQueue     = 4
)

// fetched is one poll's records, decoded.
type fetched []decodedRecord

// decodedRecord is a record and its decoding (control records and
// records of other partitions are not decoded).
type decodedRecord struct {
	r   *kgo.Record
	env events.Envelope
	err error
}

// read polls and decodes into polls until ctx is done or a fetch fails
// (the error is returned); then it closes polls.
func (rd *reader) read(ctx context.Context, cl *kgo.Client, polls chan<- fetched) error {
	defer close(polls)
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fetchErr(fs); err != nil {
			return err
		}
		f := make(fetched, 0, fs.NumRecords())
		fs.EachRecord(func(r *kgo.Record) { f = append(f, decodedRecord{r: r}) })
		if len(f) == 0 {
			continue
		}
		rd.decode(f, decoders())
		select {
		case polls <- f:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// decodeChunkMin is the fewest records worth handing to another
// goroutine to decode.
var decodeChunkMin = 512

// decoders is how many goroutines decode one poll: every core. While they
// decode a poll, the merge applies the previous ones, so decoding takes
// the cores the fold leaves idle, as the scheduler's takeover does.
var decoders = func() int { return max(runtime.GOMAXPROCS(0), 1) }

// decode decodes the records of f that the replay reads (control records
// and records of other partitions are left alone), in chunks of at least
// decodeChunkMin records on up to workers goroutines. Decoding is pure:
// each record's slot gets the same envelope or error whichever goroutine
// decodes it, and f keeps its order, so the merge sees what one goroutine
// would have produced.
func (rd *reader) decode(f fetched, workers int) {
	one := func(part fetched) {
		for i := range part {
			d := &part[i]
			if rd.byID[d.r.Partition] != nil && !d.r.Attrs.IsControl() {
				d.env, d.err = events.FromRecord(d.r)
			}
		}
	}
	events.DecodeChunks(len(f), workers, decodeChunkMin, func(lo, hi int) { one(f[lo:hi]) })
}

// take files one fetched record with its partition.
func (rd *reader) take(d decodedRecord) {
	r := d.r
	p := rd.byID[r.Partition]
	if p == nil || p.done || r.Offset < p.next {
		return
	}
	if r.Offset >= p.end {
		p.next, p.done = p.end, true
		return
	}
	p.next = r.Offset + 1
	defer func() { p.done = p.done || p.next >= p.end }()
	if r.Attrs.IsControl() {
		return
	}
	pos := events.Position{Partition: r.Partition, Offset: r.Offset}
	e, err := d.env, d.err
	if err != nil {
		p.buf = append(p.buf, rec{pos: pos, env: e, err: err, key: string(r.Key), at: p.lastAt})
		return
	}
	if !rd.cutTime.IsZero() && p.id != rd.posPart && e.At.After(rd.cutTime) {
		// The partition ends before its first event after the cut.
		p.end, p.next, p.cut, p.done = r.Offset, r.Offset, true, true
		return
	}
	p.lastAt = e.At
	p.buf = append(p.buf, rec{pos: pos, env: e, at: e.At})
}

// merge emits buffered records in time order (each partition's order kept)
// as long as every partition still being read has one buffered.
func (rd *reader) merge(emit func(*rec)) {
	for {
		var best *part
		for _, p := range rd.parts {
			if p.pending() == 0 {
				if !p.done {
					return // must know its next record first
				}
				continue
			}
			if best == nil {
				best = p
				continue
			}
			a, b := p.buf[p.head], best.buf[best.head]
			if a.at.Before(b.at) || (a.at.Equal(b.at) && p.id < best.id) {
				best = p
			}
		}
		if best == nil {
			return
		}
		r := &best.buf[best.head]
		emit(r)
		*r = rec{}
		best.head++
		if best.head == len(best.buf) {
			best.buf, best.head = best.buf[:0], 0
		}
	}
}

func (rd *reader) finished() bool {
	for _, p := range rd.parts {
		if !p.done || p.pending() > 0 {
			return false
		}
	}
	return true
}

// flow pauses partitions that are done or buffer too much, and resumes the
// others.
func (rd *reader) flow(cl *kgo.Client) {
	var pause, resume []int32
	for _, p := range rd.parts {
		switch {
		case !p.paused && (p.done || p.pending() > maxBuffered):
			p.paused = true
			pause = append(pause, p.id)
		case p.paused && !p.done && p.pending() < resumeBuffered:
			p.paused = false
			resume = append(resume, p.id)
		}
	}
	if len(pause) > 0 {
		cl.PauseFetchPartitions(map[string][]int32{rd.topic: pause})
	}
	if len(resume) > 0 {
		cl.ResumeFetchPartitions(map[string][]int32{rd.topic: resume})
	}
}

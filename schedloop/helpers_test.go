package schedloop_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/line-sched/line/config"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/ingest"
	"github.com/line-sched/line/schedloop"
	"github.com/line-sched/line/state"
	"github.com/line-sched/line/testkit"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testkit.RemoveSchedulerBinary()
	os.Exit(code)
}

// env is one test's deployment: an embedded broker, a configuration and an
// ingest service serving the HTTP API.
type env struct {
	t       *testing.T
	brokers []string
	cfg     config.Config
	base    string
	svc     *ingest.Service
}

// newEnv starts a broker (with brokerConfigs overrides, if any) and an
// ingest service for a configuration that mutate adjusts.
func newEnv(t *testing.T, brokerConfigs map[string]string, mutate func(*config.Config)) *env {
	t.Helper()
	emb := testkit.StartBrokerWith(t, brokerConfigs)
	cfg := testkit.Config(t)
	if mutate != nil {
		mutate(&cfg)
	}
	base, svc := testkit.StartIngest(t, cfg, emb.Addrs())
	return &env{t: t, brokers: emb.Addrs(), cfg: cfg, base: base, svc: svc}
}

// longTTLs makes sure nothing expires during a test.
func longTTLs(c *config.Config) {
	c.WorkerTTL, c.ReplicaTTL, c.AllocTTL, c.PoolTTL = time.Hour, time.Hour, time.Hour, time.Hour
}

func (e *env) do(method, path string, body any, want int) testkit.Response {
	e.t.Helper()
	r := testkit.Do(e.t, method, e.base+path, body)
	if r.Status != want {
		e.t.Fatalf("%s %s: %s, want status %d", method, path, r, want)
	}
	return r
}

func (e *env) createPool(id string, strategy events.Strategy, localityWait time.Duration) {
	e.t.Helper()
	e.do("POST", "/v1/pools", map[string]any{"pool_id": id, "strategy": string(strategy),
		"locality_wait": localityWait.String()}, 201)
}

// registerWorker registers a worker and returns its alloc topic.
func (e *env) registerWorker(pool, id string, capacity int64, datasets ...string) string {
	e.t.Helper()
	body := map[string]any{"worker_id": id, "capacity": capacity}
	if len(datasets) > 0 {
		body["datasets"] = datasets
	}
	r := e.do("POST", "/v1/pools/"+pool+"/workers", body, 201)
	if topic := r.Str("topic"); topic != e.cfg.Topics.WorkerAllocs(pool, id) {
		e.t.Fatalf("register %s: topic %q, want %q", id, topic, e.cfg.Topics.WorkerAllocs(pool, id))
	}
	return e.cfg.Topics.WorkerAllocs(pool, id)
}

// heartbeat sends a heartbeat; it returns the status (202, or 404 once the
// worker expired).
func (e *env) heartbeat(pool, worker string, allocs []string, datasets []string) int {
	e.t.Helper()
	body := map[string]any{}
	if allocs != nil {
		body["allocs"] = allocs
	}
	if datasets != nil {
		body["datasets"] = datasets
	}
	r, err := testkit.Send(context.Background(), "POST", e.base+"/v1/pools/"+pool+"/workers/"+worker+"/heartbeat", body)
	if err != nil {
		e.t.Errorf("heartbeat %s: %v", worker, err)
		return 0
	}
	if r.Status != 202 && r.Status != 404 {
		e.t.Errorf("heartbeat %s: %s", worker, r)
	}
	return r.Status
}

// evalReq is one eval as sent: Payload is put into the request verbatim.
type evalReq struct {
	ID      string
	Dataset string
	Size    int64
	Payload string
}

// body renders the eval as the JSON object of the API, byte for byte: the
// payload sits in it exactly as given.
func (r evalReq) body() string {
	var b strings.Builder
	b.WriteString(`{"eval_id":`)
	id, _ := json.Marshal(r.ID)
	b.Write(id)
	if r.Dataset != "" {
		ds, _ := json.Marshal(r.Dataset)
		b.WriteString(`,"dataset_id":`)
		b.Write(ds)
	}
	if r.Size != 0 {
		fmt.Fprintf(&b, `,"size":%d`, r.Size)
	}
	if r.Payload != "" {
		b.WriteString(`,"payload":`)
		b.WriteString(r.Payload)
	}
	b.WriteString("}")
	return b.String()
}

func (e *env) submit(pool string, ev evalReq) {
	e.t.Helper()
	e.do("POST", "/v1/pools/"+pool+"/evals", ev.body(), 202)
}

func batchBody(evs []evalReq) string {
	parts := make([]string, len(evs))
	for i, ev := range evs {
		parts[i] = ev.body()
	}
	return `{"evals":[` + strings.Join(parts, ",") + `]}`
}

// submitBatch submits evs in one batch, retrying on 503 (a busy broker).
func (e *env) submitBatch(pool string, evs []evalReq) error {
	body := batchBody(evs)
	var last testkit.Response
	for attempt := 0; attempt < 20; attempt++ {
		r, err := testkit.Send(context.Background(), "POST", e.base+"/v1/pools/"+pool+"/evals/batch", body)
		if err != nil {
			return err
		}
		if r.Status == 202 {
			if r.JSON["count"] != json.Number(fmt.Sprint(len(evs))) {
				return fmt.Errorf("batch answer %s: count is not %d", r, len(evs))
			}
			return nil
		}
		last = r
		if r.Status != 503 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("submit batch to %s: %s", pool, last)
}

// view runs fn on ingest's live fold (it tails the events topic with
// read_committed).
func (e *env) view(fn func(*state.State)) { e.svc.View().Read(fn) }

// waitView waits until cond holds on ingest's live fold.
func (e *env) waitView(timeout time.Duration, msg string, cond func(*state.State) bool) {
	e.t.Helper()
	testkit.WaitFor(e.t, timeout, msg, func() bool {
		ok := false
		e.view(func(st *state.State) { ok = cond(st) })
		return ok
	})
}

// countEvals counts a pool's evals by status on ingest's live fold.
func (e *env) countEvals(pool string) map[state.EvalStatus]int {
	out := map[state.EvalStatus]int{}
	e.view(func(st *state.State) {
		if p := st.Pool(pool); p != nil {
			for _, ev := range p.Evals() {
				out[ev.Status()]++
			}
		}
	})
	return out
}

// startLoop runs an in-process scheduler instance until the test ends or
// stop is called.
func startLoop(t *testing.T, cfg config.Config, brokers []string, id string) (l *schedloop.Loop, stop func()) {
	t.Helper()
	return startLoopWith(t, cfg, brokers, id)
}

// startLoopWith is startLoop with extra franz-go options.
func startLoopWith(t *testing.T, cfg config.Config, brokers []string, id string, clientOpts ...kgo.Opt) (l *schedloop.Loop, stop func()) {
	t.Helper()
	l, err := schedloop.New(schedloop.Options{Config: cfg, Brokers: brokers, InstanceID: id, Logger: testkit.Logger(t), ClientOpts: clientOpts})
	if err != nil {
		t.Fatalf("schedloop.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("scheduler %s: Run: %v", id, err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("scheduler %s: Run did not return 30s after cancel", id)
			}
			l.Close()
		})
	}
	t.Cleanup(stop)
	// A loop that fails on its own fails the test at once.
	go func() {
		select {
		case err := <-done:
			if err != nil && ctx.Err() == nil {
				t.Errorf("scheduler %s stopped on its own: %v", id, err)
			}
			done <- err
		case <-ctx.Done():
		}
	}()
	return l, stop
}

// keepAlive heartbeats worker every 250ms until the test ends or stop is
// called; with allocs, each heartbeat lists the worker's running allocs
// (as ingest's live fold knows them), as a worker running them would.
func (e *env) keepAlive(pool, worker string, allocs bool) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			var ids []string
			if allocs {
				e.view(func(st *state.State) {
					if p := st.Pool(pool); p != nil && p.Worker(worker) != nil {
						for _, a := range p.Worker(worker).RunningAllocs() {
							ids = append(ids, a.ID)
						}
					}
				})
			}
			e.heartbeat(pool, worker, ids, nil)
			select {
			case <-done:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	})
	var once sync.Once
	stop = func() { once.Do(func() { close(done); wg.Wait() }) }
	e.t.Cleanup(stop)
	return stop
}

// topicExists reports whether topic exists.
func topicExists(t *testing.T, adm *kadm.Client, topic string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tds, err := adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatalf("list topic %s: %v", topic, err)
	}
	td, ok := tds[topic]
	return ok && td.Err == nil
}

// folded is the fold of a log, event by event, with what did not apply.
type folded struct {
	st       *state.State
	rejected []string
	// placedOK maps eval id to the alloc.placed events that applied.
	placedOK map[string][]events.AllocPlacedData
}

// fold folds log with state.New()/Apply and checks, after every event,
// that no worker of the event's pool holds more than its capacity. check,
// if not nil, is called before each event is applied, with the state of
// the prefix before it.
func fold(t *testing.T, log testkit.Log, check func(st *state.State, ev testkit.Event)) folded {
	t.Helper()
	f := folded{st: state.New(), placedOK: map[string][]events.AllocPlacedData{}}
	for _, ev := range log {
		if check != nil {
			check(f.st, ev)
		}
		err := f.st.Apply(ev.Envelope, ev.Position)
		var rej *state.Rejection
		switch {
		case err == nil:
			if d, ok := ev.Data.(events.AllocPlacedData); ok {
				f.placedOK[d.EvalID] = append(f.placedOK[d.EvalID], d)
			}
		case errors.As(err, &rej):
			f.rejected = append(f.rejected, fmt.Sprintf("%s %s: %v", ev.Position, ev.Type, err))
		default:
			t.Fatalf("apply %s: unexpected error %v", ev.Position, err)
		}
		if p := f.st.Pool(ev.Pool); p != nil {
			for _, w := range p.Workers() {
				if w.Used > w.Capacity || w.Used < 0 {
					t.Fatalf("after %s (%s): worker %s holds %d of capacity %d", ev.Position, ev.Type, w.ID, w.Used, w.Capacity)
				}
			}
		}
	}
	if err := f.st.Check(); err != nil {
		t.Errorf("fold invariants: %v", err)
	}
	return f
}

// allocRecords reads a worker topic with read_committed and decodes every
// record as an events.AllocRecord.
func allocRecords(t *testing.T, brokers []string, topic string) ([]events.AllocRecord, []*kgo.Record) {
	t.Helper()
	recs := testkit.ReadRecords(t, brokers, topic)
	out := make([]events.AllocRecord, len(recs))
	for i, r := range recs {
		dec := json.NewDecoder(strings.NewReader(string(r.Value)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&out[i]); err != nil {
			t.Fatalf("record %d of %s is not an AllocRecord: %v: %s", r.Offset, topic, err, r.Value)
		}
	}
	return out, recs
}

// readEvents is testkit.ReadEvents, decoding on every CPU: the big logs of
// the stream tests take long to decode under -race.
func readEvents(t *testing.T, brokers []string, topic string) testkit.Log {
	t.Helper()
	recs := testkit.ReadRecords(t, brokers, topic)
	out := make(testkit.Log, len(recs))
	errs := make([]error, len(recs))
	var wg sync.WaitGroup
	n := runtime.GOMAXPROCS(0)
	for w := range n {
		wg.Go(func() {
			for i := w; i < len(recs); i += n {
				r := recs[i]
				pos := events.Position{Partition: r.Partition, Offset: r.Offset}
				env, err := events.FromRecord(r)
				errs[i] = err
				out[i] = testkit.Event{Envelope: env, Position: pos, Record: r}
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("record %s of %s: %v", out[i].Position, topic, err)
		}
	}
	return out
}

// poolOn returns a pool id starting with prefix whose events land on
// partition p of an events topic of n partitions.
func poolOn(prefix string, p, n int32) string {
	for i := 0; ; i++ {
		id := fmt.Sprintf("%s-%d", prefix, i)
		if events.PartitionFor(id, n) == p {
			return id
		}
	}
}

// evalOf returns eval id of pool in st, or an empty eval if the fold does
// not know it (yet).
func evalOf(st *state.State, pool, id string) *state.Eval {
	if p := st.Pool(pool); p != nil {
		if ev := p.Eval(id); ev != nil {
			return ev
		}
	}
	return &state.Eval{}
}

// countAllRecords counts, per event type (the "type" header), the records
// of topic up to its high watermarks read with read_uncommitted: those of
// aborted transactions included, markers left out. Compared with the
// committed log it tells how many decisions were aborted.
func countAllRecords(t *testing.T, brokers []string, topic string) map[string]int {
	t.Helper()
	ends := testkit.EndOffsets(t, brokers, topic)
	from := map[int32]kgo.Offset{}
	for p, end := range ends {
		if end > 0 {
			from[p] = kgo.NewOffset().At(0)
		}
	}
	out := map[string]int{}
	if len(from) == 0 {
		return out
	}
	cl := testkit.Client(t, brokers,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
		kgo.KeepControlRecords(),
	)
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	next := map[int32]int64{}
	for {
		done := true
		for p, end := range ends {
			if next[p] < end {
				done = false
			}
		}
		if done {
			return out
		}
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s up to %v: got to %v", topic, ends, next)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= ends[r.Partition] {
				return
			}
			next[r.Partition] = r.Offset + 1
			if r.Attrs.IsControl() {
				return
			}
			for _, h := range r.Headers {
				if h.Key == "type" {
					out[string(h.Value)]++
				}
			}
		})
	}
}

// describeGroup describes a consumer group, for failure messages.
func describeGroup(t *testing.T, adm *kadm.Client, group string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	gs, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return err.Error()
	}
	g := gs[group]
	var b strings.Builder
	fmt.Fprintf(&b, "state %s protocol %s/%s err %v", g.State, g.ProtocolType, g.Protocol, g.Err)
	for _, m := range g.Members {
		ca, _ := m.Assigned.AsConsumer()
		var parts []int32
		if ca != nil {
			for _, tp := range ca.Topics {
				parts = append(parts, tp.Partitions...)
			}
		}
		fmt.Fprintf(&b, "; member %s (%s) assigned %v", m.MemberID, m.ClientHost, parts)
	}
	return b.String()
}

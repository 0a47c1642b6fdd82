package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/line-sched/line/audit"
	"github.com/line-sched/line/audit/audittest"
	"github.com/line-sched/line/bootstrap"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/scheduler"
	"github.com/line-sched/line/testkit"
)

// auditEnv is a scratch deployment on an embedded broker.
type auditEnv struct {
	t          *testing.T
	brokers    []string
	deployment string
	topic      string
	// next is, per partition, the offset the next appended record gets.
	next map[int32]int64
}

func newAuditEnv(t *testing.T) *auditEnv {
	t.Helper()
	emb := testkit.StartBroker(t)
	cfg := testkit.Config(t)
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	if err := bootstrap.EnsureTopics(ctx, cfg, emb.Addrs()); err != nil {
		t.Fatal(err)
	}
	return &auditEnv{t: t, brokers: emb.Addrs(), deployment: cfg.Deployment, topic: cfg.Topics.Events(), next: map[int32]int64{}}
}

// append writes envelopes and returns their positions.
func (a *auditEnv) append(envs ...events.Envelope) []events.Position {
	a.t.Helper()
	pos := testkit.Append(a.t, a.brokers, a.topic, envs...)
	for _, p := range pos {
		a.next[p.Partition] = p.Offset + 1
	}
	return pos
}

// basis is the basis of a scheduler that folded everything appended so far
// to pool's partition.
func (a *auditEnv) basis(pool string) int64 {
	return a.next[events.PartitionFor(pool, testkit.EventsPartitions)]
}

// poison writes an undecodable record to pool's partition.
func (a *auditEnv) poison(pool string) events.Position {
	a.t.Helper()
	cl := testkit.Client(a.t, a.brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	r := &kgo.Record{Topic: a.topic, Key: []byte(pool), Value: []byte(`{"not":"an event"`),
		Partition: events.PartitionFor(pool, testkit.EventsPartitions)}
	if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		a.t.Fatal(err)
	}
	a.next[r.Partition] = r.Offset + 1
	return events.Position{Partition: r.Partition, Offset: r.Offset}
}

// run runs `line audit` in process with the env's brokers and deployment.
func (a *auditEnv) run(args ...string) (stdout, stderr string, err error) {
	a.t.Helper()
	return runLineInProcess(append([]string{"audit", "--brokers", strings.Join(a.brokers, ","), "--deployment", a.deployment}, args...)...)
}

func runLineInProcess(args ...string) (stdout, stderr string, err error) {
	root := newRoot()
	root.SetArgs(args)
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = root.ExecuteContext(ctx)
	return out.String(), errb.String(), err
}

var auditT0 = time.Date(2026, 11, 26, 19, 0, 0, 0, time.UTC)

func auditSec(s float64) time.Time { return auditT0.Add(time.Duration(s * float64(time.Second))) }

func auditEv(pool string, s float64, d events.Data) events.Envelope {
	return events.New(pool, auditSec(s), d)
}

func auditWorker(id string, capacity int64, datasets ...string) events.WorkerRegisteredData {
	return events.WorkerRegisteredData{WorkerID: id, Capacity: capacity, Topic: "t." + id, Deadline: auditSec(1000),
		Datasets: datasets, ReplicaDeadline: auditSec(1000)}
}

func auditPlace(alloc, eval, w string, size int64, dataset string, loc events.Locality, basis int64) events.AllocPlacedData {
	return events.AllocPlacedData{AllocID: alloc, EvalID: eval, WorkerID: w, DatasetID: dataset, Size: size, Attempt: 1,
		Deadline: auditSec(1000), Topic: "t." + w, Strategy: events.Spread, Locality: loc, Candidates: 2, WaitedMs: 120, Basis: basis}
}

// forge appends a history of pool p1 with four violations and a poison
// record, and returns the positions of the offending records.
func (a *auditEnv) forge() map[string]events.Position {
	a.t.Helper()
	a.append(auditEv("p1", 0, events.PoolCreatedData{Strategy: events.Spread}),
		auditEv("p1", 0.1, auditWorker("w1", 2, "d1")),
		auditEv("p1", 0.2, auditWorker("w2", 4)),
		auditEv("p1", 1, events.EvalSubmittedData{EvalID: "e1", Size: 2, DatasetID: "d1"}))
	a.append(auditEv("p1", 1.1, auditPlace("a1", "e1", "w1", 2, "d1", events.LocalityHit, a.basis("p1"))),
		auditEv("p1", 2, events.EvalSubmittedData{EvalID: "e2", Size: 1}))
	out := map[string]events.Position{}
	out["overcommit"] = a.append(auditEv("p1", 2.1, auditPlace("a2", "e2", "w1", 1, "", events.LocalityNone, a.basis("p1"))))[0]
	out["unknown_alloc"] = a.append(auditEv("p1", 3, events.AllocCompletedData{AllocID: "nope", Status: events.Succeeded}))[0]
	a.append(auditEv("p1", 4, events.AllocCompletedData{AllocID: "a1", Status: events.Succeeded}))
	out["alloc_not_live"] = a.append(auditEv("p1", 5, events.AllocExpiredData{AllocID: "a1", Reason: "not heartbeated"}))[0]
	out["poison"] = a.poison("p1")
	a.append(auditEv("p1", 6, events.EvalSubmittedData{EvalID: "e3", Size: 1, DatasetID: "d1"}))
	out["locality"] = a.append(auditEv("p1", 6.1, auditPlace("a3", "e3", "w2", 1, "d1", events.LocalityMiss, a.basis("p1"))))[0]
	return out
}

func TestAuditReportsForgedViolations(t *testing.T) {
	a := newAuditEnv(t)
	bad := a.forge()
	stdout, _, err := a.run()
	var ve *auditViolationsError
	if !errors.As(err, &ve) || ve.n != int64(len(bad)) {
		t.Fatalf("err %v, want %d violations; stdout:\n%s", err, len(bad), stdout)
	}
	lines := strings.Split(stdout, "\n")
	for kind, pos := range bad {
		found := false
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) >= 5 && f[0] == pos.String() && slices.Contains(f, kind) {
				found = true
			}
		}
		if !found {
			t.Errorf("no %s violation at %s in:\n%s", kind, pos, stdout)
		}
	}
	for _, want := range []string{"events      13 (1 poison, 3 rejected)", "violations  5 (poison 1, overcommit 1, locality 1, unknown_alloc 1, alloc_not_live 1)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout)
		}
	}

	// --json parses and says the same.
	stdout, _, err = a.run("--json")
	if !errors.As(err, &ve) {
		t.Fatalf("--json: err %v", err)
	}
	var rep audit.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, stdout)
	}
	got := map[string]string{}
	for _, v := range rep.Violations {
		got[string(v.Kind)] = v.Position.String()
	}
	for kind, pos := range bad {
		if got[kind] != pos.String() {
			t.Errorf("--json: %s at %q, want %s", kind, got[kind], pos)
		}
	}
	if rep.Summary.Events != 13 || rep.Summary.Violations != 5 || rep.Summary.Poison != 1 {
		t.Errorf("--json summary %+v", rep.Summary)
	}

	// The binary exits non-zero and says why.
	cmd := exec.Command(lineBin, "audit", "--brokers", strings.Join(a.brokers, ","), "--deployment", a.deployment)
	var eb bytes.Buffer
	cmd.Stderr = &eb
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(eb.String(), "line: audit found 5 violations") {
		t.Errorf("binary: %v, stderr %q", err, eb.String())
	}
}

// A history written the way line writes it passes, with the right counts.
func TestAuditCleanHistoryPasses(t *testing.T) {
	a := newAuditEnv(t)
	hist, err := audittest.Simulate(audittest.Options{Seed: 3, Partitions: testkit.EventsPartitions, Delayed: true,
		Pools: []string{"p1", "p2", "p3"}, Steps: 150})
	if err != nil {
		t.Fatal(err)
	}
	// One partition at a time: testkit.Append returns the positions in the
	// order the produce requests completed, which is the order of the
	// envelopes only within a partition.
	for part := range int32(testkit.EventsPartitions) {
		var envs []events.Envelope
		var want []events.Position
		for _, e := range hist {
			if e.Position.Partition == part {
				envs = append(envs, e.Envelope)
				want = append(want, e.Position)
			}
		}
		if len(envs) == 0 {
			continue
		}
		for i, p := range a.append(envs...) {
			if p != want[i] {
				t.Fatalf("event %d of partition %d landed at %s, simulated at %s", i, part, p, want[i])
			}
		}
	}
	// What the counts must be, from the history itself.
	byType := map[events.Type]int64{}
	for _, e := range hist {
		byType[e.Type]++
	}
	stdout, stderr, err := a.run("--json", "--progress")
	if err != nil {
		t.Fatalf("clean history: %v\n%s", err, stdout)
	}
	var rep audit.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	s := rep.Summary
	if s.Events != int64(len(hist)) || s.Violations != 0 || len(rep.Violations) != 0 || s.Rejected != 0 || s.Poison != 0 {
		t.Errorf("summary %+v", s)
	}
	if s.EvalsTotal() != byType[events.EvalSubmitted] || s.AllocsTotal() != byType[events.AllocPlaced] ||
		s.PoolsTotal() != byType[events.PoolCreated] || s.Allocs["completed"] != byType[events.AllocCompleted] ||
		s.Allocs["expired"] != byType[events.AllocExpired] || s.Evals["dead_lettered"] != byType[events.EvalDeadLettered] {
		t.Errorf("summary %+v, history %v", s, byType)
	}
	for typ, n := range byType {
		if s.ByType[typ] != n {
			t.Errorf("%s: %d, want %d", typ, s.ByType[typ], n)
		}
	}
	if len(rep.Partitions) != testkit.EventsPartitions {
		t.Errorf("partitions %+v", rep.Partitions)
	}
	if !strings.Contains(stderr, "audit: read ") || !strings.Contains(stderr, "100%") {
		t.Errorf("no progress on stderr: %q", stderr)
	}
	// --until a position: its partition up to it, every other partition up
	// to its first event after that event's time.
	mid := hist[len(hist)/2]
	want := int64(0)
	cutAt := map[int32]bool{}
	for _, e := range hist {
		p := e.Position.Partition
		switch {
		case p == mid.Position.Partition:
			if e.Position.Offset <= mid.Position.Offset {
				want++
			}
		case !cutAt[p] && e.At.After(mid.At):
			cutAt[p] = true
		case !cutAt[p]:
			want++
		}
	}
	stdout, _, err = a.run("--json", "--until", mid.Position.String())
	var cut audit.Report
	if err := json.Unmarshal([]byte(stdout), &cut); err != nil {
		t.Fatalf("--until %s: %v\n%s", mid.Position, err, stdout)
	}
	if cut.Summary.Events != want || cut.Summary.Events >= int64(len(hist)) || cut.Until != mid.Position.String() {
		t.Errorf("--until %s: %d events, want %d of %d", mid.Position, cut.Summary.Events, want, len(hist))
	}
	if err != nil {
		// A cut history may end with evals in any status, but must hold
		// no violation.
		t.Errorf("--until %s: %v", mid.Position, err)
	}

	// --what-if re-decides the same commands beside the recorded run.
	stdout, _, err = a.run("--what-if", "strategy=binpack,locality_wait=0s", "--json")
	if err != nil {
		t.Fatalf("--what-if: %v", err)
	}
	var wi struct {
		Recorded audit.Metrics `json:"recorded"`
		Rerun    audit.Metrics `json:"what_if_run"`
	}
	if err := json.Unmarshal([]byte(stdout), &wi); err != nil {
		t.Fatal(err)
	}
	if wi.Recorded.Placements != byType[events.AllocPlaced] || wi.Recorded.Completed != byType[events.AllocCompleted] ||
		wi.Rerun.Placements == 0 || wi.Rerun.Utilization <= 0 {
		t.Errorf("--what-if %+v", wi)
	}
	stdout, _, err = a.run("--what-if", "strategy=binpack")
	if err != nil || !strings.Contains(stdout, "locality hit rate") || !strings.Contains(stdout, "RECORDED") {
		t.Errorf("--what-if (%v):\n%s", err, stdout)
	}
	for _, bad := range []string{"strategy=fast", "nokey", "max_retry=0", "color=red"} {
		if _, _, err := a.run("--what-if", bad); err == nil || !strings.Contains(err.Error(), "--what-if") {
			t.Errorf("--what-if %s: %v", bad, err)
		}
	}
	// The human summary too.
	stdout, _, err = a.run()
	if err != nil || !strings.Contains(stdout, "violations  0: the history is valid") ||
		!strings.Contains(stdout, fmt.Sprintf("events      %d (0 poison, 0 rejected)", len(hist))) {
		t.Errorf("human summary (%v):\n%s", err, stdout)
	}
}

// history of pool p1: w1 runs e1 (size 2), which completes.
func (a *auditEnv) small() (placed, completed events.Position) {
	a.append(auditEv("p1", 0, events.PoolCreatedData{Strategy: events.Spread, LocalityWaitMs: 2000}),
		auditEv("p1", 0.1, auditWorker("w1", 4, "d1")),
		auditEv("p1", 1, events.EvalSubmittedData{EvalID: "e1", Size: 2, DatasetID: "d1"}),
		auditEv("p1", 1.5, events.EvalSubmittedData{EvalID: "e2", Size: 8}))
	placed = a.append(auditEv("p1", 2, auditPlace("a1", "e1", "w1", 2, "d1", events.LocalityHit, a.basis("p1"))))[0]
	a.append(auditEv("p1", 3, events.WorkerHeartbeatData{WorkerID: "w1", Deadline: auditSec(1000), ReplicaDeadline: auditSec(1000),
		Allocs: []string{"a1"}, AllocDeadline: auditSec(1000)}))
	completed = a.append(auditEv("p1", 4, events.AllocCompletedData{AllocID: "a1", Status: events.Succeeded}))[0]
	return placed, completed
}

type auditAtJSON struct {
	Until string         `json:"until"`
	State audit.PoolView `json:"state"`
}

func (a *auditEnv) at(cut string) audit.PoolView {
	a.t.Helper()
	stdout, _, err := a.run("--at", cut, "--pool", "p1", "--json")
	if err != nil {
		a.t.Fatalf("--at %s: %v", cut, err)
	}
	var v auditAtJSON
	if err := json.Unmarshal([]byte(stdout), &v); err != nil {
		a.t.Fatalf("--at %s: %v\n%s", cut, err, stdout)
	}
	return v.State
}

func TestAuditAtShowsPastState(t *testing.T) {
	a := newAuditEnv(t)
	placed, completed := a.small()
	for _, c := range []struct {
		cut     string
		used    int64
		running int
		queue   int
	}{
		{placed.String(), 2, 1, 1},
		{events.FormatTime(auditSec(3.5)), 2, 1, 1},
		{completed.String(), 0, 0, 1},
		{events.FormatTime(auditSec(1.2)), 0, 0, 1},
		{events.FormatTime(auditSec(1.7)), 0, 0, 2},
	} {
		v := a.at(c.cut)
		if len(v.Workers) != 1 || v.Workers[0].Used != c.used || len(v.Running) != c.running || len(v.Queue) != c.queue {
			t.Errorf("--at %s: %+v", c.cut, v)
		}
	}
	// Human form.
	stdout, _, err := a.run("--at", placed.String(), "--pool", "p1")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"pool p1 at 2026-11-26T19:00:02.000Z", "WORKER  CAPACITY  USED  FREE", "w1      4         2     2",
		"QUEUE (1)", "RUNNING ALLOCS (1)", "a1     e1    w1      2     1        hit"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--at output lacks %q:\n%s", want, stdout)
		}
	}
	if _, _, err := a.run("--at", "0:0"); err == nil || !strings.Contains(err.Error(), "--pool") {
		t.Errorf("--at without --pool: %v", err)
	}
	if _, _, err := a.run("--at", events.FormatTime(auditSec(-10)), "--pool", "p1"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("--at before the pool: %v", err)
	}
}

func TestAuditHistory(t *testing.T) {
	a := newAuditEnv(t)
	placed, completed := a.small()
	stdout, _, err := a.run("--eval", "e1")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"eval e1 in pool p1: 3 events",
		"eval.submitted   eval e1 submitted (size 2, dataset d1)",
		placed.String() + "  ",
		"eval e1 placed on w1 as alloc a1, attempt 1 (spread, locality hit, 2 candidates, waited 120ms)",
		completed.String() + "  ",
		"alloc a1 (eval e1 on w1) completed: succeeded",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--eval output lacks %q:\n%s", want, stdout)
		}
	}
	// The alloc's history includes the heartbeat that kept it alive.
	stdout, _, err = a.run("--alloc", "a1", "--pool", "p1", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Entity  audit.Entity  `json:"entity"`
		History []audit.Entry `json:"history"`
	}
	if err := json.Unmarshal([]byte(stdout), &h); err != nil {
		t.Fatal(err)
	}
	var types []events.Type
	for _, e := range h.History {
		types = append(types, e.Type)
	}
	if fmt.Sprint(types) != "[alloc.placed worker.heartbeat alloc.completed]" || h.Entity.ID != "a1" || h.History[0].Pos != placed.String() {
		t.Errorf("--alloc history %+v", h)
	}
	stdout, _, err = a.run("--worker", "w1")
	if err != nil || !strings.Contains(stdout, "worker w1 in pool p1: 4 events") {
		t.Errorf("--worker (%v):\n%s", err, stdout)
	}
	if _, _, err := a.run("--eval", "nope"); err == nil || !strings.Contains(err.Error(), "no eval nope in any pool") {
		t.Errorf("unknown eval: %v", err)
	}
	if _, _, err := a.run("--eval", "e1", "--pool", "p2"); err == nil || !strings.Contains(err.Error(), "in pool p2") {
		t.Errorf("eval in the wrong pool: %v", err)
	}
	if _, _, err := a.run("--eval", "e1", "--alloc", "a1"); err == nil {
		t.Error("--eval with --alloc accepted")
	}
	// A violation shows in the history of what it touched.
	a.append(auditEv("p1", 5, events.AllocCompletedData{AllocID: "a1", Status: events.Failed}))
	stdout, stderr, err := a.run("--alloc", "a1")
	if err != nil || !strings.Contains(stdout, "(did not apply: alloc a1 is completed)]") ||
		!strings.Contains(stdout, "[violation alloc_not_live:") || !strings.Contains(stderr, "the replay found 1 violations") {
		t.Errorf("--alloc after a double completion (%v):\n%s\n%s", err, stdout, stderr)
	}
}

func TestAuditUntilCuts(t *testing.T) {
	a := newAuditEnv(t)
	_, completed := a.small()
	bad := a.append(auditEv("p1", 10, events.AllocCompletedData{AllocID: "a1", Status: events.Succeeded}))[0]
	if _, _, err := a.run(); err == nil {
		t.Fatal("the double completion was not reported")
	}
	for _, cut := range []string{completed.String(), events.FormatTime(auditSec(9.999)), "2026-11-26T19:00:09"} {
		stdout, _, err := a.run("--until", cut, "--json")
		if err != nil {
			t.Errorf("--until %s: %v", cut, err)
			continue
		}
		var rep audit.Report
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Summary.Events != 7 || rep.Until == "end" {
			t.Errorf("--until %s: %+v", cut, rep.Summary)
		}
		cutPart := false
		for _, p := range rep.Partitions {
			if p.Partition == bad.Partition {
				cutPart = p.Cut && p.End == bad.Offset
			}
		}
		if !cutPart {
			t.Errorf("--until %s: partitions %+v", cut, rep.Partitions)
		}
	}
	if _, _, err := a.run("--until", bad.String()); err == nil {
		t.Error("--until the bad event passed")
	}
	for _, c := range []struct{ cut, want string }{
		{"yesterday", "want a time"},
		{fmt.Sprintf("%d:%d", bad.Partition, bad.Offset+5), "holds committed offsets"},
		{"9:0", "has partitions 0 to 2"},
	} {
		if _, _, err := a.run("--until", c.cut); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--until %s: %v, want %q", c.cut, err, c.want)
		}
	}
}

func TestAuditConnectionErrors(t *testing.T) {
	_, _, err := runLineInProcess("audit", "--brokers", "127.0.0.1:1", "--connect-timeout", "300ms")
	if err == nil || !strings.Contains(err.Error(), "is `line dev` running? set --brokers") {
		t.Errorf("unreachable Kafka: %v", err)
	}
	a := newAuditEnv(t)
	_, _, err = runLineInProcess("audit", "--brokers", strings.Join(a.brokers, ","), "--deployment", "nosuch")
	if !errors.Is(err, audit.ErrNoTopic) || !strings.Contains(err.Error(), "--deployment") {
		t.Errorf("missing topic: %v", err)
	}
	// An empty deployment is a valid, empty history.
	stdout, _, err := a.run()
	if err != nil || !strings.Contains(stdout, "events      0 (0 poison, 0 rejected)") {
		t.Errorf("empty history (%v):\n%s", err, stdout)
	}
}

// Against a real `line dev`, what its scheduler decided passes the audit.
func TestAuditLineDev(t *testing.T) {
	p := startDev(t, t.TempDir())
	waitHealthy(t, p.http)
	must := func(url, body string, want int) {
		t.Helper()
		if code, b := post(t, p.http+url, body); code != want {
			t.Fatalf("POST %s: %d %s", url, code, b)
		}
	}
	must("/v1/pools", `{"pool_id":"p1","locality_wait":"1s"}`, 201)
	must("/v1/pools/p1/workers", `{"worker_id":"w1","capacity":2,"datasets":["d1"]}`, 201)
	must("/v1/pools/p1/workers", `{"worker_id":"w2","capacity":4}`, 201)
	for i := range 6 {
		ds := ""
		if i%2 == 0 {
			ds = `,"dataset_id":"d1"`
		}
		must("/v1/pools/p1/evals", fmt.Sprintf(`{"eval_id":"e%d","size":1%s}`, i, ds), 202)
	}
	// Complete each alloc as soon as it exists.
	done := map[int]bool{}
	deadline := time.Now().Add(30 * time.Second)
	for len(done) < 6 && time.Now().Before(deadline) {
		for i := range 6 {
			if done[i] {
				continue
			}
			id := scheduler.AllocID("p1", fmt.Sprintf("e%d", i), 1)
			if code, _ := post(t, p.http+"/v1/pools/p1/allocs/"+id+"/complete", `{"status":"succeeded"}`); code == 202 {
				done[i] = true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(done) < 6 {
		t.Fatalf("only %d allocs completed", len(done))
	}
	cmd := exec.Command(lineBin, "audit", "--brokers", p.kafka, "--json")
	cmd.Env = append(os.Environ(), "LINE_DEPLOYMENT=line", "LINE_KAFKA_BROKERS=")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("audit of line dev: %v\n%s", err, out)
	}
	var rep audit.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatal(err)
	}
	s := rep.Summary
	if s.Violations != 0 || s.ByType[events.AllocPlaced] != 6 || s.Evals["completed"] != 6 || s.Unjudged != 0 {
		t.Errorf("summary %+v", s)
	}
}

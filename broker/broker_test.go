package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-multierror"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// start starts an embedded broker on dir and closes it when the test ends.
func start(t *testing.T, dir, addr string) *Embedded {
	t.Helper()
	e, err := StartEmbedded(EmbeddedConfig{DataDir: dir, Addr: addr, Logf: t.Logf})
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

// client returns a kgo client and an admin client for e, closed at test end
// (before e, since cleanups run last-in first-out).
func client(t *testing.T, e *Embedded, opts ...kgo.Opt) (*kgo.Client, *kadm.Client) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(e.Addrs()...)}, opts...)...)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl, kadm.NewClient(cl)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestRestartKeepsLog(t *testing.T) {
	dir := t.TempDir()
	const topic = "events"
	want := make([]string, 10)
	for i := range want {
		want[i] = "record-" + strconv.Itoa(i)
	}

	// First run: create the topic and produce.
	e1, err := StartEmbedded(EmbeddedConfig{DataDir: dir, Addr: "127.0.0.1:0", Logf: t.Logf})
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	addr1 := e1.Addrs()
	if len(addr1) != 1 || strings.HasSuffix(addr1[0], ":0") || !strings.HasPrefix(addr1[0], "127.0.0.1:") {
		t.Fatalf("Addrs = %v, want one 127.0.0.1 address with a real port", addr1)
	}
	func() {
		ctx := testCtx(t)
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr1...), kgo.DefaultProduceTopic(topic))
		if err != nil {
			t.Fatalf("kgo.NewClient: %v", err)
		}
		defer cl.Close()
		if err := EnsureTopics(ctx, kadm.NewClient(cl), TopicSpec{Name: topic, Partitions: 3}); err != nil {
			t.Fatalf("EnsureTopics: %v", err)
		}
		for i, v := range want {
			r := &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte(v)}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("produce %d: %v", i, err)
			}
		}
	}()
	if err := e1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := e1.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "kafka")); err != nil {
		t.Fatalf("kafka data dir: %v", err)
	}

	// Second run on the same dir: everything is still there.
	e2 := start(t, dir, "127.0.0.1:0")
	cl, adm := client(t, e2, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx := testCtx(t)

	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("ListEndOffsets: %v", err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total != int64(len(want)) {
		t.Fatalf("end offsets sum to %d after restart, want %d", total, len(want))
	}

	var got []string
	for len(got) < len(want) {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records before timeout: %v", len(got), len(want), err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s[%d]: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	slices.Sort(got)
	wantSorted := slices.Clone(want)
	slices.Sort(wantSorted)
	if !slices.Equal(got, wantSorted) {
		t.Fatalf("records after restart = %v, want %v", got, wantSorted)
	}
}

func TestDataDirLock(t *testing.T) {
	dir := t.TempDir()
	e1, err := StartEmbedded(EmbeddedConfig{DataDir: dir, Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	pidFile, err := os.ReadFile(filepath.Join(dir, "LOCK.pid"))
	if err != nil || strings.TrimSpace(string(pidFile)) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("LOCK.pid = %q, %v; want our pid %d", pidFile, err, os.Getpid())
	}

	e2, err := StartEmbedded(EmbeddedConfig{DataDir: dir, Addr: "127.0.0.1:0"})
	if err == nil {
		e2.Close()
		e1.Close()
		t.Fatal("second StartEmbedded on a locked dir succeeded")
	}
	if !errors.Is(err, ErrDataDirLocked) {
		t.Errorf("error %v does not wrap ErrDataDirLocked", err)
	}
	for _, want := range []string{strconv.Quote(dir), "pid " + strconv.Itoa(os.Getpid()), "LINE_DATA_DIR"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	if err := e1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "LOCK.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LOCK.pid still present after Close: %v", err)
	}
	start(t, dir, "127.0.0.1:0") // fails the test if still locked
}

func TestPortInUseReleasesLock(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().String()

	dir := t.TempDir()
	e, err := StartEmbedded(EmbeddedConfig{DataDir: dir, Addr: busy})
	if err == nil {
		e.Close()
		t.Fatalf("StartEmbedded on busy address %s succeeded", busy)
	}
	if errors.Is(err, ErrDataDirLocked) {
		t.Fatalf("busy port reported as locked data dir: %v", err)
	}
	for _, want := range []string{busy, "LINE_DEV_KAFKA_ADDR", "in use"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	start(t, dir, "127.0.0.1:0") // the failed start must have released the lock
}

func TestWildcardAddrAdvertisesLoopback(t *testing.T) {
	e := start(t, t.TempDir(), "0.0.0.0:0")
	addrs := e.Addrs()
	if len(addrs) != 1 || !strings.HasPrefix(addrs[0], "127.0.0.1:") {
		t.Fatalf("Addrs = %v, want 127.0.0.1:<port>", addrs)
	}
	_, adm := client(t, e)
	brokers, err := adm.ListBrokers(testCtx(t))
	if err != nil {
		t.Fatalf("ListBrokers: %v", err)
	}
	if len(brokers) != 1 || net.JoinHostPort(brokers[0].Host, strconv.Itoa(int(brokers[0].Port))) != addrs[0] {
		t.Fatalf("advertised brokers = %+v, want %s", brokers, addrs[0])
	}
}

func TestEnsureTopics(t *testing.T) {
	e := start(t, t.TempDir(), "127.0.0.1:0")
	_, adm := client(t, e)
	ctx := testCtx(t)

	specs := []TopicSpec{
		{Name: "one", Partitions: 1},
		{Name: "three-a", Partitions: 3},
		{Name: "three-b", Partitions: 3},
		{Name: "forever", Partitions: 5, Configs: map[string]*string{"retention.ms": kadm.StringPtr("-1")}},
	}
	for i := range 2 {
		if err := EnsureTopics(ctx, adm, specs...); err != nil {
			t.Fatalf("EnsureTopics call %d: %v", i+1, err)
		}
	}

	details, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatalf("ListTopics: %v", err)
	}
	for _, s := range specs {
		d, ok := details[s.Name]
		if !ok {
			t.Errorf("topic %q not created", s.Name)
			continue
		}
		if got := int32(len(d.Partitions)); got != s.Partitions {
			t.Errorf("topic %q has %d partitions, want %d", s.Name, got, s.Partitions)
		}
	}

	rcs, err := adm.DescribeTopicConfigs(ctx, "forever")
	if err != nil {
		t.Fatalf("DescribeTopicConfigs: %v", err)
	}
	rc, err := rcs.On("forever", nil)
	if err != nil {
		t.Fatalf("DescribeTopicConfigs: %v", err)
	}
	var retention string
	for _, c := range rc.Configs {
		if c.Key == "retention.ms" {
			retention = c.MaybeValue()
		}
	}
	if retention != "-1" {
		t.Errorf("forever retention.ms = %q, want -1", retention)
	}
}

func TestEnsureTopicsReportsFailures(t *testing.T) {
	e := start(t, t.TempDir(), "127.0.0.1:0")
	_, adm := client(t, e)
	ctx := testCtx(t)

	if err := EnsureTopics(ctx, adm, TopicSpec{Name: "a.b", Partitions: 1}); err != nil {
		t.Fatalf("EnsureTopics: %v", err)
	}
	// Kafka rejects a.b and a_b coexisting (their metric names collide);
	// the good topic in the same call must still be created.
	err := EnsureTopics(ctx, adm,
		TopicSpec{Name: "a_b", Partitions: 1},
		TopicSpec{Name: "good", Partitions: 2},
		TopicSpec{Name: ""},
	)
	var merr *multierror.Error
	if !errors.As(err, &merr) {
		t.Fatalf("EnsureTopics error = %v, want a *multierror.Error", err)
	}
	if len(merr.Errors) != 2 {
		t.Fatalf("got %d errors, want 2 (collision, empty name): %v", len(merr.Errors), err)
	}
	if !errors.Is(err, kerr.InvalidTopicException) || !strings.Contains(err.Error(), `"a_b"`) {
		t.Errorf("error %v does not report InvalidTopicException for a_b", err)
	}
	details, lerr := adm.ListTopics(ctx, "good")
	if lerr != nil || !details.Has("good") || len(details["good"].Partitions) != 2 {
		t.Errorf("topic good not created with 2 partitions: %v %v", details, lerr)
	}
}

func TestDeleteTopics(t *testing.T) {
	e := start(t, t.TempDir(), "127.0.0.1:0")
	_, adm := client(t, e)
	ctx := testCtx(t)

	if err := EnsureTopics(ctx, adm, TopicSpec{Name: "doomed", Partitions: 2}, TopicSpec{Name: "kept", Partitions: 1}); err != nil {
		t.Fatalf("EnsureTopics: %v", err)
	}
	for i := range 2 {
		if err := DeleteTopics(ctx, adm, "doomed", "never-existed"); err != nil {
			t.Fatalf("DeleteTopics call %d: %v", i+1, err)
		}
	}
	if err := DeleteTopics(ctx, adm); err != nil {
		t.Fatalf("DeleteTopics with no names: %v", err)
	}
	details, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatalf("ListTopics: %v", err)
	}
	if details.Has("doomed") {
		t.Errorf("doomed still listed after DeleteTopics")
	}
	if !details.Has("kept") {
		t.Errorf("kept was deleted too")
	}
}

func TestWaitReady(t *testing.T) {
	e := start(t, t.TempDir(), "127.0.0.1:0")
	cl, _ := client(t, e)
	if err := WaitReady(testCtx(t), cl); err != nil {
		t.Fatalf("WaitReady on a running broker: %v", err)
	}

	// A port that accepts connections and never answers: held for the
	// whole test, so that no other test's broker can take it (a closed
	// port was, now and then, reused by a broker of a package tested at
	// the same time, and WaitReady then rightly succeeded).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dead := ln.Addr().String()
	dcl, err := kgo.NewClient(kgo.SeedBrokers(dead))
	if err != nil {
		t.Fatal(err)
	}
	defer dcl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	err = WaitReady(ctx, dcl)
	if err == nil {
		t.Fatal("WaitReady on a dead address succeeded")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
	}
	for _, want := range []string{dead, "LINE_KAFKA_BROKERS"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestBrokers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"   ", nil},
		{",, ,", nil},
		{"localhost:9092", []string{"localhost:9092"}},
		{"a:1,b:2", []string{"a:1", "b:2"}},
		{" a:1 , ,b:2 ,", []string{"a:1", "b:2"}},
		{"\ta:1\n,[::1]:9092", []string{"a:1", "[::1]:9092"}},
	} {
		t.Run(fmt.Sprintf("%q", tc.in), func(t *testing.T) {
			if got := Brokers(tc.in); !slices.Equal(got, tc.want) {
				t.Errorf("Brokers(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

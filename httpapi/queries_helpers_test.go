package httpapi_test

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/line-sched/line/api"
	"github.com/line-sched/line/bootstrap"
	"github.com/line-sched/line/config"
	"github.com/line-sched/line/events"
	"github.com/line-sched/line/httpapi"
	"github.com/line-sched/line/ingest"
	"github.com/line-sched/line/projections"
	"github.com/line-sched/line/testkit"
)

// qenv is line dev's HTTP API in a test: an embedded broker, ingest and a
// projector serving commands and queries on one echo server.
type qenv struct {
	t       *testing.T
	brokers []string
	cfg     config.Config
	base    string
	views   *projections.Projector
	router  routers.Router
}

// newQueryEnv starts the broker and serves both ingest (unless
// queriesOnly) and the projector's queries.
func newQueryEnv(t *testing.T, queriesOnly bool) *qenv {
	t.Helper()
	emb := testkit.StartBroker(t)
	cfg := testkit.Config(t)
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	if err := bootstrap.EnsureTopics(ctx, cfg, emb.Addrs()); err != nil {
		t.Fatal(err)
	}
	log := testkit.Logger(t)
	var svc *ingest.Service
	if !queriesOnly {
		var err error
		if svc, err = ingest.New(ctx, ingest.Options{Config: cfg, Brokers: emb.Addrs(), Logger: log}); err != nil {
			t.Fatal(err)
		}
	}
	views, err := projections.Open(ctx, projections.Options{Config: cfg, Brokers: emb.Addrs(),
		Dir: filepath.Join(t.TempDir(), "views"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	runDone := make(chan error, 1)
	go func() { runDone <- views.Run(context.Background()) }()
	e, err := httpapi.New(httpapi.Options{Ingest: svc, Queries: views, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- httpapi.Serve(sctx, e, ln) }()
	t.Cleanup(func() {
		// As app does: the projector stops with the server, which ends
		// the event streams, so that the shutdown is quick.
		stop()
		_ = views.Close()
		if err := <-served; err != nil {
			t.Errorf("http server: %v", err)
		}
		if err := <-runDone; err != nil {
			t.Errorf("projector: %v", err)
		}
		if svc != nil {
			svc.Close()
		}
	})
	spec, err := api.GetSwagger()
	if err != nil {
		t.Fatal(err)
	}
	router, err := gorillamux.NewRouter(spec)
	if err != nil {
		t.Fatal(err)
	}
	return &qenv{t: t, brokers: emb.Addrs(), cfg: cfg, base: "http://" + ln.Addr().String(), views: views, router: router}
}

func (q *qenv) do(method, path string, body any, want int) testkit.Response {
	q.t.Helper()
	r := testkit.Do(q.t, method, q.base+path, body)
	if r.Status != want {
		q.t.Fatalf("%s %s: %s, want status %d", method, path, r, want)
	}
	return r
}

var indexHeaderRe = regexp.MustCompile(`^([0-9]+:[0-9]+(,[0-9]+:[0-9]+)*)?$`)

// get sends a query and checks what every query answer must be: the
// X-Line-Index header, and a body that the spec allows for the status.
func (q *qenv) get(path string) testkit.Response {
	q.t.Helper()
	r := testkit.Do(q.t, http.MethodGet, q.base+path, nil)
	q.check(path, r)
	return r
}

func (q *qenv) check(path string, r testkit.Response) {
	q.t.Helper()
	if r.Status == http.StatusOK || r.Status == http.StatusNotFound || r.Status == http.StatusGatewayTimeout {
		h, ok := r.Header[http.CanonicalHeaderKey(httpapi.IndexHeader)]
		if (r.Status != http.StatusNotFound || strings.Contains(string(r.Body), "_not_found")) && (!ok || len(h) != 1 || !indexHeaderRe.MatchString(h[0])) {
			q.t.Errorf("GET %s: %d with X-Line-Index %q", path, r.Status, h)
		}
	}
	req := httptest.NewRequest(http.MethodGet, path, nil)
	route, params, err := q.router.FindRoute(req)
	if err != nil {
		q.t.Errorf("GET %s: no route in the spec: %v", path, err)
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 r.Status, Header: r.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}
	in.SetBodyBytes(r.Body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		q.t.Errorf("GET %s: answer %s does not match the spec: %v", path, r, err)
	}
}

// index parses the X-Line-Index header of r.
func index(t *testing.T, r testkit.Response) map[int32]int64 {
	t.Helper()
	out := map[int32]int64{}
	h := r.Header.Get(httpapi.IndexHeader)
	if h == "" {
		return out
	}
	for _, s := range strings.Split(h, ",") {
		p, err := events.ParsePosition(s)
		if err != nil {
			t.Fatalf("X-Line-Index %q: %v", h, err)
		}
		out[p.Partition] = p.Offset
	}
	return out
}

// items decodes a list answer.
func items[T any](t *testing.T, r testkit.Response) ([]T, string) {
	t.Helper()
	var page struct {
		Items      []T     `json:"items"`
		NextCursor *string `json:"next_cursor"`
	}
	r.Decode(t, &page)
	if page.Items == nil {
		t.Errorf("list without items: %s", r)
	}
	next := ""
	if page.NextCursor != nil {
		next = *page.NextCursor
		if next == "" {
			t.Errorf("empty next_cursor: %s", r)
		}
	}
	return page.Items, next
}

// sseEvent is one Server-Sent Event.
type sseEvent struct{ id, typ, data string }

// stream opens an event stream; events arrive on the channel until ctx is
// done or the stream ends.
func (q *qenv) stream(ctx context.Context, path string, header http.Header) (*http.Response, <-chan sseEvent) {
	q.t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, q.base+path, nil)
	if err != nil {
		q.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		q.t.Fatal(err)
	}
	ch := make(chan sseEvent, 1024)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.data != "" {
					ch <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.typ = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[6:]
			}
		}
	}()
	return resp, ch
}

func next(t *testing.T, ch <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("event stream ended")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return sseEvent{}
}

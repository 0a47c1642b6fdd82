package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/line-sched/line/httpapi"
	"github.com/line-sched/line/testkit"
)

// rawAnswer is a response read off a raw connection, reduced to what must
// not differ between the connection loop and net/http: generated ids and
// positions differ, and so may the Date header and header order.
type rawAnswer struct {
	Status      int
	ContentType string
	Close       bool
	RetryAfter  string
	ErrorCode   string
	Keys        string
	Duplicate   any
	Pool        any
}

func readAnswer(t *testing.T, r *bufio.Reader) rawAnswer {
	t.Helper()
	resp, err := http.ReadResponse(r, nil)
	for err == nil && resp.StatusCode < 200 { // 100 Continue
		resp, err = http.ReadResponse(r, nil)
	}
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	a := rawAnswer{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Close: resp.Close,
		RetryAfter: resp.Header.Get("Retry-After")}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		// net/http's own refusals are plain text.
		a.ErrorCode = "text: " + string(b)
		return a
	}
	if e, ok := m["error"].(map[string]any); ok {
		a.ErrorCode, _ = e["code"].(string)
		return a
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	a.Keys = strings.Join(sortStrings(keys), ",")
	a.Duplicate, a.Pool = m["duplicate"], m["pool_id"]
	return a
}

func sortStrings(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

// send writes raw on a new connection to addr and reads n answers.
func send(t *testing.T, addr, raw string, n int) []rawAnswer {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(testkit.Timeout))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	out := make([]rawAnswer, n)
	for i := range out {
		out[i] = readAnswer(t, r)
	}
	return out
}

// plainServer serves the same ingest with net/http alone (no connection
// loop) and returns its address.
func plainServer(t *testing.T, e *env) string {
	t.Helper()
	srv, err := httpapi.New(httpapi.Options{Ingest: e.svc, Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	return ln.Addr().String()
}

// startServe runs Serve, as the ingest does, on a new broker and ingest;
// plain sets Options.PlainHTTP. cancel ends Serve, whose result arrives on
// done.
func startServe(t *testing.T, plain bool) (addr string, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	emb := testkit.StartBroker(t)
	cfg := testkit.Config(t)
	_, svc := testkit.StartIngest(t, cfg, emb.Addrs())
	srv, err := httpapi.New(httpapi.Options{Ingest: svc, Logger: testkit.Logger(t), PlainHTTP: plain})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- httpapi.Serve(ctx, srv, ln) }()
	return ln.Addr().String(), cancel, errc
}

// TestFastConnAgreesWithNetHTTP sends a corpus of raw requests, most of
// them to the hot route, to the server as Serve runs it (the connection
// loop first) and to the same ingest behind net/http alone: the answers
// agree on status, content type, connection close, the error code or the
// members of the answer. Only the plainest valid submissions are answered
// by the loop; it hands everything else to net/http.
func TestFastConnAgreesWithNetHTTP(t *testing.T) {
	e := errEnv(t)
	fast := strings.TrimPrefix(e.base, "http://")
	slow := plainServer(t, e)
	post := func(path, headers, body string) string {
		return "POST " + path + " HTTP/1.1\r\nHost: localhost\r\n" + headers +
			fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)) + body
	}
	const ct = "Content-Type: application/json\r\n"
	cases := []struct {
		name    string
		raw     string
		answers int
		loop    int // of them answered by the connection loop
	}{
		{"plain", post("/v1/pools/act/evals", ct, `{"size":1}`), 1, 1},
		{"empty object", post("/v1/pools/act/evals", ct, `{}`), 1, 1},
		{"every member", post("/v1/pools/act/evals", ct, `{"eval_id":"{id}-a","dataset_id":"d1","size":2,"payload":{"k":[1,"<x>"]}}`), 1, 1},
		{"duplicate", post("/v1/pools/act/evals", ct, `{"eval_id":"{id}-a"}`), 1, 1},
		{"charset", post("/v1/pools/act/evals", "Content-Type: application/json; charset=utf-8\r\n", `{"size":1}`), 1, 1},
		{"lower-case names", "POST /v1/pools/act/evals HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}", 1, 1},
		{"connection close", post("/v1/pools/act/evals", ct+"Connection: close\r\n", `{}`), 1, 1},
		{"keep-alive", post("/v1/pools/act/evals", ct+"Connection: keep-alive\r\n", `{}`), 1, 1},
		{"pipelined", post("/v1/pools/act/evals", ct, `{}`) + post("/v1/pools/act/evals", ct, `{"size":3}`), 2, 2},
		{"then another route", post("/v1/pools/act/evals", ct, `{}`) + "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + post("/v1/pools/act/evals", ct, `{}`), 3, 1},
		{"pretty", post("/v1/pools/act/evals?pretty", ct, `{}`), 1, 0},
		{"HTTP/1.0", "POST /v1/pools/act/evals HTTP/1.0\r\nHost: x\r\n" + ct + "Content-Length: 2\r\n\r\n{}", 1, 0},
		{"chunked", "POST /v1/pools/act/evals HTTP/1.1\r\nHost: x\r\n" + ct + "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 1, 0},
		{"expect continue", post("/v1/pools/act/evals", ct+"Expect: 100-continue\r\n", `{}`), 1, 0},
		{"no host", "POST /v1/pools/act/evals HTTP/1.1\r\n" + ct + "Content-Length: 2\r\n\r\n{}", 1, 0},
		{"two hosts", "POST /v1/pools/act/evals HTTP/1.1\r\nHost: a\r\nHost: b\r\n" + ct + "Content-Length: 2\r\n\r\n{}", 1, 0},
		{"bad host", "POST /v1/pools/act/evals HTTP/1.1\r\nHost: a b\r\n" + ct + "Content-Length: 2\r\n\r\n{}", 1, 0},
		{"two lengths", "POST /v1/pools/act/evals HTTP/1.1\r\nHost: x\r\n" + ct + "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 1, 0},
		{"bad header name", post("/v1/pools/act/evals", ct+"Bad Name: x\r\n", `{}`), 1, 0},
		{"control in value", post("/v1/pools/act/evals", ct+"X-A: a\x01b\r\n", `{}`), 1, 0},
		{"no content type", post("/v1/pools/act/evals", "", `{}`), 1, 0},
		{"text content type", post("/v1/pools/act/evals", "Content-Type: text/plain\r\n", `{}`), 1, 0},
		{"invalid JSON", post("/v1/pools/act/evals", ct, `{"size":`), 1, 0},
		{"negative size", post("/v1/pools/act/evals", ct, `{"size":-1}`), 1, 0},
		{"size as float", post("/v1/pools/act/evals", ct, `{"size":1.0}`), 1, 0},
		{"unknown member", post("/v1/pools/act/evals", ct, `{"sise":1}`), 1, 0},
		{"escaped id", post("/v1/pools/act/evals", ct, `{"eval_id":"{id}-\u0062"}`), 1, 0},
		{"bad eval id", post("/v1/pools/act/evals", ct, `{"eval_id":"-x"}`), 1, 0},
		{"unknown pool", post("/v1/pools/nope/evals", ct, `{}`), 1, 1},
		{"disbanded pool", post("/v1/pools/gone/evals", ct, `{}`), 1, 1},
		{"bad pool id", post("/v1/pools/Act/evals", ct, `{}`), 1, 0},
		{"escaped path", post("/v1/pools/a%63t/evals", ct, `{}`), 1, 0},
		{"body over 1 MiB", "POST /v1/pools/act/evals HTTP/1.1\r\nHost: x\r\n" + ct + "Content-Length: 2000000\r\n\r\n{}", 1, 0},
		{"bare LF", "POST /v1/pools/act/evals HTTP/1.1\nHost: x\n" + "Content-Type: application/json\nContent-Length: 2\n\n{}", 1, 0},
		{"GET", "GET /v1/pools/act/evals HTTP/1.1\r\nHost: x\r\n\r\n", 1, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := send(t, slow, strings.ReplaceAll(c.raw, "{id}", "slow"), c.answers)
			served := httpapi.FastServed()
			got := send(t, fast, strings.ReplaceAll(c.raw, "{id}", "fast"), c.answers)
			if n := httpapi.FastServed() - served; n != int64(c.loop) {
				t.Errorf("the connection loop answered %d requests, want %d", n, c.loop)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("answer %d: loop %+v, net/http %+v", i, got[i], want[i])
				}
			}
		})
	}
}

// TestFastConnShutdown checks that Serve returns promptly with idle
// connections open on the loop, and that it answered on them before.
func TestFastConnShutdown(t *testing.T) {
	addr, cancel, done := startServe(t, false)
	send(t, addr, "POST /v1/pools HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"pool_id\":\"sd\"}\n", 1)
	var conns []net.Conn
	for range 3 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(testkit.Timeout))
		if _, err := io.WriteString(conn, "POST /v1/pools/sd/evals HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"); err != nil {
			t.Fatal(err)
		}
		if a := readAnswer(t, bufio.NewReader(conn)); a.Status != http.StatusAccepted {
			t.Fatalf("answer %+v, want 202", a)
		}
		conns = append(conns, conn)
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return within 5s of its context's end with idle connections open")
	}
	t.Logf("Serve returned %s after its context ended", time.Since(start).Round(time.Millisecond))
	for _, c := range conns {
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("an idle connection still open after Serve returned")
		}
	}
}

// TestFastConnSplitRequest sends a submission in pieces, the way a slow
// network delivers it: the loop waits for the whole request and answers it.
func TestFastConnSplitRequest(t *testing.T) {
	e := errEnv(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(testkit.Timeout))
	served := httpapi.FastServed()
	r := bufio.NewReader(conn)
	for _, pieces := range [][]string{
		{"POST /v1/pools/act/ev", "als HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r", "\n", `{"size":1}`},
		{"POST /v1/pools/act/evals HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{\"si", `ze":2}`},
	} {
		for _, p := range pieces {
			if _, err := io.WriteString(conn, p); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if a := readAnswer(t, r); a.Status != http.StatusAccepted {
			t.Fatalf("answer %+v, want 202", a)
		}
	}
	if n := httpapi.FastServed() - served; n != 2 {
		t.Errorf("the connection loop answered %d requests, want 2", n)
	}
}

// TestPlainHTTPTurnsTheLoopOff checks that with PlainHTTP every request,
// the plainest submission included, is answered by net/http.
func TestPlainHTTPTurnsTheLoopOff(t *testing.T) {
	addr, cancel, done := startServe(t, true)
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	send(t, addr, "POST /v1/pools HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"pool_id\":\"pl\"}\n", 1)
	before := httpapi.FastServed()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(testkit.Timeout))
	r := bufio.NewReader(conn)
	for range 3 {
		if _, err := io.WriteString(conn, "POST /v1/pools/pl/evals HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"); err != nil {
			t.Fatal(err)
		}
		if a := readAnswer(t, r); a.Status != http.StatusAccepted {
			t.Fatalf("answer %+v, want 202", a)
		}
	}
	if n := httpapi.FastServed() - before; n != 0 {
		t.Errorf("the connection loop answered %d requests with PlainHTTP set, want 0", n)
	}
}

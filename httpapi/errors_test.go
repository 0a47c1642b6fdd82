package httpapi_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/line-sched/line/httpapi"
	"github.com/line-sched/line/testkit"
)

// badCase is one refused request.
type badCase struct {
	name   string
	method string
	path   string
	body   any
	status int
	code   string // "" = any code
}

// runBad sends each case and checks the status, the JSON error and that the
// events topic did not move, nor any worker topic appear.
func runBad(t *testing.T, e *env, cases []badCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			topicsBefore := topicCount(t, e)
			before := e.ends()
			r := testkit.Do(t, c.method, e.base+c.path, c.body)
			testkit.ExpectError(t, r, c.status, c.code)
			e.nothingAppended(before, c.method+" "+c.path)
			if n := topicCount(t, e); n != topicsBefore {
				t.Errorf("%d topics after the request, %d before", n, topicsBefore)
			}
		})
	}
}

func topicCount(t *testing.T, e *env) int {
	t.Helper()
	tds, err := testkit.Admin(t, e.brokers).ListTopics(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return len(tds)
}

// errEnv is an env with an active pool "act" holding worker "w1" and a
// disbanded pool "gone".
func errEnv(t *testing.T) *env {
	e := newEnv(t)
	e.createPool("act")
	e.registerWorker("act", "w1", 4)
	e.createPool("gone")
	e.registerWorker("gone", "w0", 4)
	e.disband("gone")
	return e
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	e := errEnv(t)
	long := strings.Repeat("a", 65)
	longWide := strings.Repeat("a", 129)
	const post = http.MethodPost
	overPayload := `{"payload":"` + strings.Repeat("x", 65535) + `"}` // 65,537 bytes of payload
	var tooMany bytes.Buffer
	tooMany.WriteString(`{"evals":[`)
	for i := range 10001 {
		if i > 0 {
			tooMany.WriteByte(',')
		}
		tooMany.WriteString(`{}`)
	}
	tooMany.WriteString(`]}`)

	runBad(t, e, []badCase{
		// Malformed JSON.
		{"malformed create", post, "/v1/pools", `{"pool_id":`, 400, ""},
		{"malformed eval", post, "/v1/pools/act/evals", `{"eval_id":"x",}`, 400, ""},
		{"malformed batch", post, "/v1/pools/act/evals/batch", `{"evals":[{]}`, 400, ""},
		{"malformed worker", post, "/v1/pools/act/workers", `{capacity:1}`, 400, ""},
		{"malformed heartbeat", post, "/v1/pools/act/workers/w1/heartbeat", `[`, 400, ""},
		{"malformed complete", post, "/v1/pools/act/allocs/a1/complete", `{"status":"succeeded"`, 400, ""},
		{"malformed legacy", post, "/ScheduleEval", `{"pool_id":"act"`, 400, ""},
		{"trailing data", post, "/v1/pools/act/evals", `{"size":1} {"size":2}`, 400, ""},
		{"array for object", post, "/v1/pools/act/evals", `[]`, 400, ""},
		{"string for object", post, "/v1/pools/act/workers", `"w"`, 400, ""},

		// Unknown fields.
		{"unknown field create", post, "/v1/pools", `{"pool_id":"new","colour":"red"}`, 400, ""},
		{"unknown field eval", post, "/v1/pools/act/evals", `{"eval_id":"x","sise":2}`, 400, ""},
		{"unknown field batch", post, "/v1/pools/act/evals/batch", `{"evals":[{}],"atomic":true}`, 400, ""},
		{"unknown field in batch eval", post, "/v1/pools/act/evals/batch", `{"evals":[{},{"priority":1}]}`, 400, ""},
		{"unknown field worker", post, "/v1/pools/act/workers", `{"worker_id":"w9","capacity":1,"zone":"eu"}`, 400, ""},
		{"unknown field heartbeat", post, "/v1/pools/act/workers/w1/heartbeat", `{"load":0.5}`, 400, ""},
		{"unknown field complete", post, "/v1/pools/act/allocs/a1/complete", `{"status":"succeeded","why":"x"}`, 400, ""},
		{"unknown field legacy create", post, "/CreatePool", `{"pool_id":"x"}`, 400, ""},
		{"unknown field legacy register", post, "/RegisterWorker", `{"pool_id":"act","capacity":1,"worker_id":"w9"}`, 400, ""},
		{"unknown field legacy eval", post, "/ScheduleEval", `{"pool_id":"act","payload":{}}`, 400, ""},

		// Invalid ids.
		{"uppercase pool id", post, "/v1/pools", `{"pool_id":"Pool1"}`, 400, ""},
		{"dotted pool id", post, "/v1/pools", `{"pool_id":"a.b"}`, 400, ""},
		{"pool id too long", post, "/v1/pools", `{"pool_id":"` + long + `"}`, 400, ""},
		{"pool id leading dash", post, "/v1/pools", `{"pool_id":"-p"}`, 400, ""},
		{"empty pool id", post, "/v1/pools", `{"pool_id":""}`, 400, ""},
		{"uppercase pool in path", post, "/v1/pools/ACT/evals", `{}`, 400, ""},
		{"dotted pool in path", post, "/v1/pools/a.b/workers", `{"capacity":1}`, 400, ""},
		{"long pool in path", post, "/v1/pools/" + long + "/evals/batch", `{"evals":[{}]}`, 400, ""},
		{"uppercase pool disband", http.MethodDelete, "/v1/pools/Act", nil, 400, ""},
		{"uppercase worker id", post, "/v1/pools/act/workers", `{"worker_id":"W2","capacity":1}`, 400, ""},
		{"dotted worker id", post, "/v1/pools/act/workers", `{"worker_id":"w.2","capacity":1}`, 400, ""},
		{"worker id too long", post, "/v1/pools/act/workers", `{"worker_id":"` + long + `","capacity":1}`, 400, ""},
		{"uppercase worker in path", post, "/v1/pools/act/workers/W1/heartbeat", `{}`, 400, ""},
		{"dotted worker in path", post, "/v1/pools/act/workers/w.1/heartbeat", `{}`, 400, ""},
		{"eval id too long", post, "/v1/pools/act/evals", `{"eval_id":"` + longWide + `"}`, 400, ""},
		{"eval id with slash", post, "/v1/pools/act/evals", `{"eval_id":"a/b"}`, 400, ""},
		{"bad eval id in batch", post, "/v1/pools/act/evals/batch", `{"evals":[{"eval_id":"ok"},{"eval_id":"_no"}]}`, 400, ""},
		{"bad dataset id", post, "/v1/pools/act/evals", `{"dataset_id":"ds 1"}`, 400, ""},
		{"bad dataset in registration", post, "/v1/pools/act/workers", `{"capacity":1,"datasets":[".x"]}`, 400, ""},
		{"bad dataset in heartbeat", post, "/v1/pools/act/workers/w1/heartbeat", `{"datasets":["a b"]}`, 400, ""},
		{"bad alloc in heartbeat", post, "/v1/pools/act/workers/w1/heartbeat", `{"allocs":["a/1"]}`, 400, ""},
		{"bad alloc in path", post, "/v1/pools/act/allocs/-a1/complete", `{"status":"succeeded"}`, 400, ""},
		{"uppercase pool legacy", post, "/RegisterWorker", `{"pool_id":"ACT","capacity":1}`, 400, ""},
		{"bad worker legacy", post, "/SendHeartbeat", `{"pool_id":"act","worker_id":"W1"}`, 400, ""},
		{"bad alloc legacy", post, "/CompleteAlloc", `{"pool_id":"act","alloc_id":"a b"}`, 400, ""},

		// Sizes and capacities.
		{"negative size", post, "/v1/pools/act/evals", `{"size":-1}`, 400, ""},
		{"negative size in batch", post, "/v1/pools/act/evals/batch", `{"evals":[{"size":1},{"size":-5}]}`, 400, ""},
		{"negative size legacy", post, "/ScheduleEval", `{"pool_id":"act","size":-1}`, 400, ""},
		{"size above int32", post, "/v1/pools/act/evals", `{"size":2147483648}`, 400, ""},
		{"size above int32 in batch", post, "/v1/pools/act/evals/batch", `{"evals":[{"size":2147483648}]}`, 400, ""},
		{"size above int32 legacy", post, "/ScheduleEval", `{"pool_id":"act","size":2147483648}`, 400, ""},
		{"fractional size", post, "/v1/pools/act/evals", `{"size":1.5}`, 400, ""},
		{"string size", post, "/v1/pools/act/evals", `{"size":"1"}`, 400, ""},
		{"capacity above int32", post, "/v1/pools/act/workers", `{"capacity":2147483648}`, 400, ""},
		{"capacity above int32 legacy", post, "/RegisterWorker", `{"pool_id":"act","capacity":2147483648}`, 400, ""},
		{"zero capacity", post, "/v1/pools/act/workers", `{"worker_id":"w9","capacity":0}`, 400, ""},
		{"negative capacity", post, "/v1/pools/act/workers", `{"worker_id":"w9","capacity":-1}`, 400, ""},
		{"zero capacity legacy", post, "/RegisterWorker", `{"pool_id":"act","capacity":0}`, 400, ""},
		{"missing capacity", post, "/v1/pools/act/workers", `{"worker_id":"w9"}`, 400, ""},

		// Payloads: over 64 KiB, in a body well under 1 MiB.
		{"payload over 64 KiB", post, "/v1/pools/act/evals", overPayload, 400, "payload_too_large"},
		{"payload over 64 KiB in batch", post, "/v1/pools/act/evals/batch", `{"evals":[{},` + overPayload + `]}`, 400, "payload_too_large"},

		// Batches.
		{"batch over 10000 evals", post, "/v1/pools/act/evals/batch", tooMany.Bytes(), 400, ""},
		{"empty batch", post, "/v1/pools/act/evals/batch", `{"evals":[]}`, 400, ""},
		{"batch without evals", post, "/v1/pools/act/evals/batch", `{}`, 400, ""},

		// Other values.
		{"unknown strategy", post, "/v1/pools", `{"pool_id":"new","strategy":"random"}`, 400, ""},
		{"bad locality wait", post, "/v1/pools", `{"pool_id":"new","locality_wait":"5 parsecs"}`, 400, ""},
		{"negative locality wait", post, "/v1/pools", `{"pool_id":"new","locality_wait":"-1s"}`, 400, ""},
		{"unknown completion status", post, "/v1/pools/act/allocs/a1/complete", `{"status":"done"}`, 400, ""},
		{"missing completion status", post, "/v1/pools/act/allocs/a1/complete", `{}`, 400, ""},
		{"completion message too long", post, "/v1/pools/act/allocs/a1/complete", `{"status":"failed","message":"` + strings.Repeat("m", 4097) + `"}`, 400, ""},
		{"missing body", post, "/v1/pools/act/evals", nil, 400, ""},
		{"legacy without pool", post, "/ScheduleEval", `{}`, 400, ""},

		// Routes that do not exist.
		{"unknown route", post, "/v1/queues", `{}`, 404, "no_such_route"},
		{"unknown method", http.MethodPut, "/v1/pools/act", `{}`, 405, "no_such_route"},
	})
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	e := errEnv(t)
	const post = http.MethodPost
	runBad(t, e, []badCase{
		{"eval in unknown pool", post, "/v1/pools/nope/evals", `{}`, 404, "pool_not_found"},
		{"batch in unknown pool", post, "/v1/pools/nope/evals/batch", `{"evals":[{}]}`, 404, "pool_not_found"},
		{"worker in unknown pool", post, "/v1/pools/nope/workers", `{"worker_id":"w","capacity":1}`, 404, "pool_not_found"},
		{"heartbeat in unknown pool", post, "/v1/pools/nope/workers/w1/heartbeat", `{}`, 404, "pool_not_found"},
		{"heartbeat of unknown worker", post, "/v1/pools/act/workers/nobody/heartbeat", `{}`, 404, "worker_not_found"},
		{"disband unknown pool", http.MethodDelete, "/v1/pools/nope", nil, 404, "pool_not_found"},
		{"complete in unknown pool", post, "/v1/pools/nope/allocs/a1/complete", `{"status":"succeeded"}`, 404, "pool_not_found"},
		{"complete unknown alloc", post, "/v1/pools/act/allocs/a1/complete", `{"status":"succeeded"}`, 404, "alloc_not_found"},
		{"legacy register in unknown pool", post, "/RegisterWorker", `{"pool_id":"nope","capacity":1}`, 404, "pool_not_found"},
		{"legacy eval in unknown pool", post, "/ScheduleEval", `{"pool_id":"nope"}`, 404, "pool_not_found"},
		{"legacy disband unknown pool", post, "/DisbandPool", `{"pool_id":"nope"}`, 404, "pool_not_found"},
		{"legacy heartbeat of unknown worker", post, "/SendHeartbeat", `{"pool_id":"act","worker_id":"nobody"}`, 404, "worker_not_found"},
		{"legacy complete unknown alloc", post, "/CompleteAlloc", `{"pool_id":"act","alloc_id":"a1"}`, 404, "alloc_not_found"},
	})
}

func TestConflict(t *testing.T) {
	t.Parallel()
	e := errEnv(t)
	const post = http.MethodPost
	runBad(t, e, []badCase{
		{"existing pool id", post, "/v1/pools", `{"pool_id":"act"}`, 409, "pool_exists"},
		{"disbanded pool id", post, "/v1/pools", `{"pool_id":"gone","strategy":"binpack"}`, 409, "pool_exists"},
		{"eval in disbanded pool", post, "/v1/pools/gone/evals", `{"eval_id":"e"}`, 409, "pool_disbanded"},
		{"batch in disbanded pool", post, "/v1/pools/gone/evals/batch", `{"evals":[{"eval_id":"e"}]}`, 409, "pool_disbanded"},
		{"worker in disbanded pool", post, "/v1/pools/gone/workers", `{"worker_id":"w9","capacity":1}`, 409, "pool_disbanded"},
		{"disband twice", http.MethodDelete, "/v1/pools/gone", nil, 409, "pool_disbanded"},
		{"existing worker id", post, "/v1/pools/act/workers", `{"worker_id":"w1","capacity":2}`, 409, "worker_exists"},
		{"legacy worker in disbanded pool", post, "/RegisterWorker", `{"pool_id":"gone","capacity":1}`, 409, "pool_disbanded"},
		{"legacy eval in disbanded pool", post, "/ScheduleEval", `{"pool_id":"gone"}`, 409, "pool_disbanded"},
		{"legacy disband twice", post, "/DisbandPool", `{"pool_id":"gone"}`, 409, "pool_disbanded"},
	})
}

// padded returns a JSON body of exactly n bytes: prefix, then spaces, then
// suffix.
func padded(n int, prefix, suffix string) []byte {
	b := make([]byte, 0, n)
	b = append(b, prefix...)
	b = append(b, bytes.Repeat([]byte(" "), n-len(prefix)-len(suffix))...)
	return append(b, suffix...)
}

func TestBodyLimits(t *testing.T) {
	t.Parallel()
	e := errEnv(t)
	const post = http.MethodPost
	over := httpapi.MaxBody + 1
	overBatch := httpapi.MaxBatchBody + 1
	heartbeat := `{"allocs":[` + strings.Repeat(`"a-123456789",`, over/14) + `"a"]}`
	runBad(t, e, []badCase{
		{"eval over 1 MiB", post, "/v1/pools/act/evals", padded(over, `{"eval_id":"e"`, `}`), 413, "body_too_large"},
		{"eval over 1 MiB chunked", post, "/v1/pools/act/evals", bytes.NewReader(padded(over, `{"eval_id":"e"`, `}`)), 413, "body_too_large"},
		{"create over 1 MiB", post, "/v1/pools", padded(over, `{"pool_id":"big"`, `}`), 413, "body_too_large"},
		{"worker over 1 MiB", post, "/v1/pools/act/workers", padded(over, `{"capacity":1`, `}`), 413, "body_too_large"},
		{"heartbeat over 1 MiB", post, "/v1/pools/act/workers/w1/heartbeat", heartbeat, 413, "body_too_large"},
		{"legacy over 1 MiB", post, "/ScheduleEval", padded(over, `{"pool_id":"act"`, `}`), 413, "body_too_large"},
		{"batch over 16 MiB", post, "/v1/pools/act/evals/batch", padded(overBatch, `{"evals":[{}]`, `}`), 413, "body_too_large"},
		{"batch over 16 MiB chunked", post, "/v1/pools/act/evals/batch", bytes.NewReader(padded(overBatch, `{"evals":[{}]`, `}`)), 413, "body_too_large"},

		// At the limits, bodies are read and refused for what they say.
		{"eval of exactly 1 MiB", post, "/v1/pools/act/evals", padded(httpapi.MaxBody, `{"payload":"`+strings.Repeat("x", 70000)+`"`, `}`), 400, "payload_too_large"},
		// (Bodies that fail at their first byte: parsing megabytes of
		// JSON is slow with the race detector. TestSubmitEvalBatchLarge
		// has a real 15 MiB batch.)
		{"batch of 15 MiB", post, "/v1/pools/act/evals/batch", padded(15<<20, `x`, ``), 400, "invalid_request"},
		{"batch of exactly 16 MiB", post, "/v1/pools/act/evals/batch", bytes.NewReader(padded(httpapi.MaxBatchBody, `x`, ``)), 400, "invalid_request"},
	})
}

// TestTruncatedBody sends a submission whose body stops short of its
// Content-Length (the client's side of the connection closes): the eval
// is not submitted, whatever the bytes that did arrive say, and the client
// gets a 400 if it still listens.
func TestTruncatedBody(t *testing.T) {
	e := errEnv(t)
	before := e.ends()
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"size":1}`
	req := "POST /v1/pools/act/evals HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
		"Content-Length: 100\r\n\r\n" + body
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(testkit.Timeout))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), `"unreadable_body"`) {
		t.Errorf("answered %d %s, want 400 unreadable_body", resp.StatusCode, b)
	}
	e.nothingAppended(before, "a truncated submission")
}

// Package client is the Go client of line: typed calls for the whole HTTP
// API (api/openapi.yaml) on top of the generated api.ClientWithResponses,
// errors decoded from the server's JSON error body, a helper for blocking
// queries, and the worker side: reading a worker's alloc topic from Kafka
// (AllocConsumer) and keeping a worker alive (Heartbeater).
//
//	c, err := client.New("http://127.0.0.1:8080", client.WithToken(tok))
//	p, err := c.CreatePool(ctx, api.CreatePoolRequest{})
//	_, err = c.SubmitEval(ctx, p.PoolId, api.EvalRequest{Size: ptr(int64(2))})
//	if client.IsNotFound(err) { ... }
//
// Every call that gets an answer other than success returns an *Error
// (status, code, message); a call that gets no answer returns a
// *ConnError. Calls never retry on their own: Temporary tells which
// failures are worth retrying.
package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/line-sched/line/api"
)

// DefaultAddr is where `line dev` serves the HTTP API.
const DefaultAddr = "http://127.0.0.1:8080"

// Client calls one line server. It is safe for concurrent use.
type Client struct {
	addr  string
	base  *url.URL
	http  *http.Client
	token string
	ua    string
	api   *api.ClientWithResponses
}

// Option configures a Client.
type Option func(*Client)

// WithToken sends every request with "Authorization: Bearer <token>".
// An empty token sends no header.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTPClient uses hc for every request. The client must not have a
// Timeout shorter than the blocking queries and event streams it serves;
// bound calls with their context instead.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.ua = ua } }

// New returns a client for the server at addr, e.g. "http://127.0.0.1:8080"
// ("127.0.0.1:8080" is taken as http://).
func New(addr string, opts ...Option) (*Client, error) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		addr = DefaultAddr
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("invalid address %q: want http://host:port", addr)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	c := &Client{addr: u.String(), base: u, ua: "line-client"}
	for _, o := range opts {
		o(c)
	}
	if c.http == nil {
		c.http = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	c.api, err = api.NewClientWithResponses(c.addr,
		api.WithHTTPClient(c.http), api.WithRequestEditorFn(c.editRequest))
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Addr is the server's base URL.
func (c *Client) Addr() string { return c.addr }

// API returns the generated client, for calls this package does not wrap.
// It sends the token like every other call.
func (c *Client) API() *api.ClientWithResponses { return c.api }

func (c *Client) editRequest(_ context.Context, req *http.Request) error {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.ua != "" {
		req.Header.Set("User-Agent", c.ua)
	}
	return nil
}

// connErr wraps the error of a request that got no answer (or whose answer
// could not be read).
func (c *Client) connErr(method, path string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return &ConnError{Addr: c.addr, Method: method, Path: path, Err: err}
	}
	// The generated parser failed on a body: an answer, but not one of
	// the spec.
	return fmt.Errorf("%s %s: unreadable answer: %w", method, path, err)
}

// result returns v if the answer is a success that carried it, and the
// decoded *Error otherwise.
func result[T any](v *T, method, path string, resp *http.Response, body []byte) (*T, error) {
	if v != nil && resp != nil && resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return v, nil
	}
	return nil, decodeError(method, path, resp, body)
}

func esc(s string) string { return url.PathEscape(s) }

// Health returns the server's health. A server that is up but not ready
// (503) returns its Health and an *Error.
func (c *Client) Health(ctx context.Context) (*api.Health, error) {
	const m, p = http.MethodGet, "/healthz"
	r, err := c.api.GetHealthWithResponse(ctx)
	if err != nil {
		return nil, c.connErr(m, p, err)
	}
	if r.JSON200 != nil {
		return r.JSON200, nil
	}
	e := decodeError(m, p, r.HTTPResponse, r.Body)
	if r.JSON503 != nil {
		e.Code, e.Message = "not_ready", "line is not ready: kafka "+r.JSON503.Kafka
		if r.JSON503.Detail != nil {
			e.Message += " (" + *r.JSON503.Detail + ")"
		}
		return r.JSON503, e
	}
	return nil, e
}

// CreatePool creates a pool (201). An empty request creates one with a
// generated id and the default settings.
func (c *Client) CreatePool(ctx context.Context, req api.CreatePoolRequest) (*api.PoolCreated, error) {
	const m, p = http.MethodPost, "/v1/pools"
	r, err := c.api.CreatePoolWithResponse(ctx, req)
	if err != nil {
		return nil, c.connErr(m, p, err)
	}
	return result(r.JSON201, m, p, r.HTTPResponse, r.Body)
}

// DisbandPool disbands a pool (202).
func (c *Client) DisbandPool(ctx context.Context, pool string) (*api.PoolDisbanded, error) {
	m, p := http.MethodDelete, "/v1/pools/"+esc(pool)
	r, err := c.api.DisbandPoolWithResponse(ctx, pool)
	if err != nil {
		return nil, c.connErr(m, p, err)
	}
	return result(r.JSON202, m, p, r.HTTPResponse, r.Body)
}

// RegisterWorker registers a worker in pool (201). The answer names the
// worker's alloc topic and the deadline of its first heartbeat.
func (c *Client) RegisterWorker(ctx context.Context, pool string, req api.RegisterWorkerRequest) (*api.WorkerRegistered, error) {
	m, p := http.MethodPost, "/v1/pools/"+esc(pool)+"/workers"
	r, err := c.api.RegisterWorkerWithResponse(ctx, pool, req)
	if err != nil {
		return nil, c.connErr(m, p, err)
	}
	return result(r.JSON201, m, p, r.HTTPResponse, r.Body)
}

// Heartbeat keeps a worker, the datasets it reports and the allocs it
// lists alive (202).
func (c *Client) Heartbeat(ctx context.Context, pool, worker string, req api.HeartbeatRequest) (*api.HeartbeatAccepted, error) {
	m, p := http.MethodPost, "/v1/pools/"+esc(pool)+"/workers/"+esc(worker)+"/heartbeat"
	r, err := c.api.HeartbeatWithResponse(ctx, pool, worker, req)
	if err != nil {
		return nil, c.connErr(m, p, err)
	}
	return result(r.JSON202, m, p, r.HTTPResponse, r.Body)
}

// SubmitEval submits one eval: 202 when queued, 200 with Duplicate set when
// the pool already knows its eval_id.
func (c *Client) SubmitEval(ctx context.Context, pool string, req api.EvalRequest) (*api.EvalAccepted, error) {
	m, p := http.MethodPost, "/v1/pools/"+esc(pool)+"/evals"
	r, err := c.api.SubmitEvalWithResponse(ctx, pool, req)
	if err != nil {
		return nil, c.connErr(m, p, err)
	}
	if r.JSON200 != nil {
		return result(r.JSON200, m, p, r.HTTPResponse, r.Body)
	}
	return result(r.JSON202, m, p, r.HTTPResponse, r.Body)
}

// MaxBatch is the largest batch SubmitEvals sends in one request.
const MaxBatch = 10000

// SubmitEvals submits 1 to MaxBatch evals in one all-or-nothing request.
func (c *Client) SubmitEvals(ctx context.Context, pool string, evals []api.EvalRequest) (*api.EvalBatchAccepted, error) {
	m, p := http.MethodPost, "/v1/pools/"+esc(pool)+"/evals/batch"
	r, err := c.api.SubmitEvalBatchWithResponse(ctx, pool, api.EvalBatchRequest{Evals: evals})
	if err != nil {
		return nil, c.connErr(m, p, err)
	}
	return result(r.JSON202, m, p, r.HTTPResponse, r.Body)
}

// CompleteAlloc reports the end of an alloc (202): 404 if the server does
// not know it, 409 if it already ended (completed or expired).
func (c *Client) CompleteAlloc(ctx context.Context, pool, alloc string, req api.CompleteAllocRequest) (*api.AllocCompleted, error) {
	m, p := http.MethodPost, "/v1/pools/"+esc(pool)+"/allocs/"+esc(alloc)+"/complete"
	r, err := c.api.CompleteAllocWithResponse(ctx, pool, alloc, req)
	if err != nil {
		return nil, c.connErr(m, p, err)
	}
	return result(r.JSON202, m, p, r.HTTPResponse, r.Body)
}

// The original system's calls (the "legacy" tag of the spec).

// LegacyCreatePool is POST /CreatePool.
func (c *Client) LegacyCreatePool(ctx context.Context) (*api.LegacyPool, error) {
	const m, p = http.MethodPost, "/CreatePool"
	r, err := c.api.LegacyCreatePoolWithResponse(ctx, api.LegacyCreatePoolRequest{})
	if err != nil {
		return nil, c.connErr(m, p, err)
	}
	return result(r.JSON200, m, p, r.HTTPResponse, r.Body)
}

// LegacyRegisterWorker is POST /RegisterWorker.
func (c *Client) LegacyRegisterWorker(ctx context.Context, req api.LegacyRegisterWorkerRequest) (*api.LegacyWorker, error) {
	const m, p = http.MethodPost, "/RegisterWorker"
	r, err := c.api.LegacyRegisterWorkerWithResponse(ctx, req)
	if err != nil {
		return nil, c.connErr(m, p, err)
	}
	return result(r.JSON200, m, p, r.HTTPResponse, r.Body)
}

// LegacyDisbandPool is POST /DisbandPool.
func (c *Client) LegacyDisbandPool(ctx context.Context, pool string) (*api.LegacyAck, error) {
	const m, p = http.MethodPost, "/DisbandPool"
	r, err := c.api.LegacyDisbandPoolWithResponse(ctx, api.LegacyDisbandPoolRequest{PoolId: pool})
	if err != nil {
		return nil, c.connErr(m, p, err)
	}
	return result(r.JSON200, m, p, r.HTTPResponse, r.Body)
}

// LegacySendHeartbeat is POST /SendHeartbeat.
func (c *Client) LegacySendHeartbeat(ctx context.Context, req api.LegacySendHeartbeatRequest) (*api.LegacyAck, error) {
	const m, p = http.MethodPost, "/SendHeartbeat"
	r, err := c.api.LegacySendHeartbeatWithResponse(ctx, req)
	if err != nil {
		return nil, c.connErr(m, p, err)
	}
	return result(r.JSON200, m, p, r.HTTPResponse, r.Body)
}

// LegacyScheduleEval is POST /ScheduleEval.
func (c *Client) LegacyScheduleEval(ctx context.Context, req api.LegacyScheduleEvalRequest) (*api.LegacyEval, error) {
	const m, p = http.MethodPost, "/ScheduleEval"
	r, err := c.api.LegacyScheduleEvalWithResponse(ctx, req)
	if err != nil {
		return nil, c.connErr(m, p, err)
	}
	return result(r.JSON200, m, p, r.HTTPResponse, r.Body)
}

// LegacyCompleteAlloc is POST /CompleteAlloc.
func (c *Client) LegacyCompleteAlloc(ctx context.Context, pool, alloc string) (*api.LegacyAck, error) {
	const m, p = http.MethodPost, "/CompleteAlloc"
	r, err := c.api.LegacyCompleteAllocWithResponse(ctx, api.LegacyCompleteAllocRequest{PoolId: pool, AllocId: alloc})
	if err != nil {
		return nil, c.connErr(m, p, err)
	}
	return result(r.JSON200, m, p, r.HTTPResponse, r.Body)
}

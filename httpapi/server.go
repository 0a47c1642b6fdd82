// Package httpapi serves line's HTTP API (api/openapi.yaml) with echo: every
// request is checked against the spec before a handler sees it, bodies are
// bounded, and every error is JSON of the form
// {"error": {"code": "...", "message": "..."}}. The hot route, single-eval
// submission, is checked by hand-written checks derived from the spec when
// they can prove the request valid, by the OpenAPI validator otherwise
// (fastpath.go). Serve puts a small HTTP/1.1 loop in front of net/http that
// answers the plainest valid submissions itself and hands a connection to
// net/http at its first other request (fastconn.go).
package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/labstack/echo/v4"
	oapimw "github.com/oapi-codegen/echo-middleware"

	"github.com/line-sched/line/api"
	"github.com/line-sched/line/ingest"
	"github.com/line-sched/line/projections"
)

// Body limits: 1 MiB for a command, 16 MiB for a batch of evals.
const (
	MaxBody      = 1 << 20
	MaxBatchBody = 16 << 20
)

// Options configure the HTTP server.
type Options struct {
	// Ingest handles commands; nil for a server that only answers queries
	// (commands then get 404 no_such_route).
	Ingest *ingest.Service
	// Queries answers the queries from the projector's views; nil for a
	// server that does not serve them (queries then get 404
	// no_such_route).
	Queries *projections.Projector
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// PlainHTTP turns off the connection loop of fastconn.go: Serve then
	// serves every request with net/http and echo.
	PlainHTTP bool
}

// New returns an echo server with the whole API registered: the commands
// (served by opts.Ingest) and the queries (served by opts.Queries).
func New(opts Options) (*echo.Echo, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	spec, err := api.GetSwagger()
	if err != nil {
		return nil, fmt.Errorf("httpapi: load embedded OpenAPI spec: %w", err)
	}
	spec.Servers = nil
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(opts.Logger)
	e.Use(limitBody)
	if opts.Ingest == nil {
		e.Use(queriesOnly)
	}
	h := &handlers{svc: opts.Ingest, views: opts.Queries}
	if opts.Ingest != nil {
		e.Use(fastSubmitEval(h))
		if !opts.PlainHTTP {
			fastLoops.Store(e, fastEntry{h: h, log: opts.Logger})
		}
	}
	e.Use(validator(spec))
	api.RegisterHandlers(e, h)
	return e, nil
}

// limitBody reads the body up front, bounded: 413 past the limit. The
// validator and the handler then read it from memory.
func limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if req.Body == nil || req.Method == http.MethodGet {
			return next(c)
		}
		limit := int64(MaxBody)
		if strings.HasSuffix(req.URL.Path, "/evals/batch") {
			limit = MaxBatchBody
		}
		if req.ContentLength > limit {
			return tooLarge(limit)
		}
		body, err := readBody(req, limit)
		if err != nil {
			return apiError(http.StatusBadRequest, "unreadable_body", "could not read the request body: "+err.Error())
		}
		if int64(len(body)) > limit {
			return tooLarge(limit)
		}
		req.Body = memBody{Reader: bytes.NewReader(body), b: body}
		req.ContentLength = int64(len(body))
		return next(c)
	}
}

// readBody reads up to limit+1 bytes of req's body. A body of known
// length, the usual case, is read into a buffer of exactly that size (plus
// the byte that tells a body longer than announced): io.ReadAll would start
// at 512 bytes and grow.
func readBody(req *http.Request, limit int64) ([]byte, error) {
	if req.ContentLength < 0 {
		return io.ReadAll(io.LimitReader(req.Body, limit+1))
	}
	buf := make([]byte, req.ContentLength+1)
	n := 0
	for n < len(buf) {
		k, err := req.Body.Read(buf[n:])
		n += k
		if err == io.EOF {
			return buf[:n], nil
		}
		if err != nil {
			return nil, err
		}
	}
	// More than announced: net/http does not let that happen, but a
	// wrapped body might; read on to the limit like ReadAll would.
	rest, err := io.ReadAll(io.LimitReader(req.Body, limit+1-int64(n)))
	return append(buf, rest...), err
}

func tooLarge(limit int64) error {
	return apiError(http.StatusRequestEntityTooLarge, "body_too_large",
		fmt.Sprintf("the request body is larger than %d MiB; split it into smaller requests", limit>>20))
}

// validator checks requests against the spec; violations are 400s.
func validator(spec *openapi3.T) echo.MiddlewareFunc {
	return oapimw.OapiRequestValidatorWithOptions(spec, &oapimw.Options{
		SilenceServersWarning: true,
		Options: openapi3filter.Options{
			MultiError:         false,
			AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
		},
		ErrorHandler: func(c echo.Context, err *echo.HTTPError) error {
			if err.Code == http.StatusNotFound || err.Code == http.StatusMethodNotAllowed {
				return apiError(err.Code, "no_such_route", fmt.Sprintf("%s %s is not part of the API; see api/openapi.yaml", c.Request().Method, c.Request().URL.Path))
			}
			return apiError(http.StatusBadRequest, "invalid_request", cleanValidation(fmt.Sprint(err.Message)))
		},
	})
}

// cleanValidation shortens kin-openapi's messages to their first line.
func cleanValidation(msg string) string {
	msg = strings.TrimSpace(msg)
	if i := strings.Index(msg, "\nSchema:"); i > 0 {
		msg = msg[:i]
	}
	if i := strings.Index(msg, "\nValue:"); i > 0 {
		msg = msg[:i]
	}
	return strings.ReplaceAll(msg, "\n", " ")
}

// httpError is an error with its HTTP status and JSON body.
type httpError struct {
	status     int
	body       api.Error
	retryAfter int
}

func (e *httpError) Error() string { return e.body.Error.Code + ": " + e.body.Error.Message }

func apiError(status int, code, msg string) error {
	return &httpError{status: status, body: api.Error{Error: api.ErrorDetail{Code: code, Message: msg}}}
}

// errorHandler renders every error as the API's JSON error.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		he := toHTTPError(err)
		if he.status >= 500 {
			log.Warn("request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "status", he.status, "err", err)
		}
		if he.retryAfter > 0 {
			c.Response().Header().Set("Retry-After", strconv.Itoa(he.retryAfter))
		}
		_ = c.JSON(he.status, he.body)
	}
}

func toHTTPError(err error) *httpError {
	var he *httpError
	if errors.As(err, &he) {
		return he
	}
	if ie := ingest.AsError(err); ie != nil {
		return &httpError{status: ie.Status, body: api.Error{Error: api.ErrorDetail{Code: ie.Code, Message: ie.Message}}, retryAfter: ie.RetryAfter}
	}
	var ee *echo.HTTPError
	if errors.As(err, &ee) {
		switch ee.Code {
		case http.StatusNotFound, http.StatusMethodNotAllowed:
			return &httpError{status: ee.Code, body: api.Error{Error: api.ErrorDetail{Code: "no_such_route", Message: "no such route; see api/openapi.yaml"}}}
		case http.StatusRequestEntityTooLarge:
			return tooLarge(MaxBody).(*httpError)
		}
		if ee.Code >= 400 && ee.Code < 500 {
			return &httpError{status: ee.Code, body: api.Error{Error: api.ErrorDetail{Code: "invalid_request", Message: fmt.Sprint(ee.Message)}}}
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return &httpError{status: http.StatusServiceUnavailable, retryAfter: 1,
			body: api.Error{Error: api.ErrorDetail{Code: "timeout", Message: "the request timed out; retry later"}}}
	}
	return &httpError{status: http.StatusInternalServerError, body: api.Error{Error: api.ErrorDetail{Code: "internal", Message: err.Error()}}}
}

// fastLoops holds, for each server New made with an ingest (and without
// PlainHTTP), what Serve needs to run the connection loop of fastconn.go
// in front of it; Serve takes the entry out.
var fastLoops sync.Map // *echo.Echo -> fastEntry

type fastEntry struct {
	h   *handlers
	log *slog.Logger
}

// Serve serves e on ln until ctx is done, then shuts down gracefully. A
// server with commands starts each connection on the single-eval loop of
// fastconn.go, which hands it to net/http at its first other request.
func Serve(ctx context.Context, e *echo.Echo, ln net.Listener) error {
	srv := &http.Server{Handler: e, ReadHeaderTimeout: idleTimeout}
	v, ok := fastLoops.LoadAndDelete(e)
	if !ok {
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ln) }()
		select {
		case err := <-errc:
			return fmt.Errorf("http server on %s: %w", ln.Addr(), err)
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		}
	}
	entry := v.(fastEntry)
	fs := newFastServer(entry.h, entry.log, ln)
	errc := make(chan error, 2)
	go func() { errc <- fs.serve() }()
	go func() { errc <- srv.Serve(fs.http) }()
	var err error
	select {
	case err = <-errc:
		err = fmt.Errorf("http server on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(err, ln.Close(), fs.shutdown(sctx), srv.Shutdown(sctx))
}

// Listen opens addr for Serve, with an error that says what to do if the
// address is taken.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for HTTP on %s: %w (set LINE_HTTP_ADDR to a free host:port)", addr, err)
	}
	return ln, nil
}

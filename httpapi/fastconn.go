package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/line-sched/line/api"
	"github.com/line-sched/line/ingest"
)

// Connections start on a small HTTP/1.1 loop that serves single-eval
// submissions itself, without net/http and echo: per request it reads the
// connection once, runs the hand checks of fastpath.go and the command,
// and writes the answer once. The first request it does not fully
// understand, or cannot prove valid, hands the connection to net/http with
// every byte it has read put back in front: from then on net/http serves
// that connection exactly as it would have from the start (the validator,
// the errors, every other route). So the loop only ever answers requests
// that net/http and the validator would have accepted, and answers them as
// the handler does (TestFastConnAgreesWithNetHTTP).

// fastBufSize is the read buffer of a connection on the loop: a request
// whose head and body do not fit goes to net/http.
const fastBufSize = 16 << 10

// idleTimeout closes a connection that sends no complete request for this
// long: net/http's ReadHeaderTimeout, which it also uses between requests.
const idleTimeout = 10 * time.Second

// fastServed counts the requests the loop answered (for tests).
var fastServed atomic.Int64

// fastServer runs the loop for the connections of one listener.
type fastServer struct {
	h    *handlers
	log  *slog.Logger
	ln   net.Listener
	http *handoffListener

	mu      sync.Mutex
	conns   map[*fastConn]struct{}
	closing bool
	wg      sync.WaitGroup
}

// fastConn is one connection on the loop.
type fastConn struct {
	net.Conn
	r        *bufio.Reader
	out      []byte // the response being written
	body     []byte // its body
	deadline time.Time
	closing  atomic.Bool
}

func newFastServer(h *handlers, log *slog.Logger, ln net.Listener) *fastServer {
	return &fastServer{h: h, log: log, ln: ln, http: newHandoffListener(ln.Addr()), conns: make(map[*fastConn]struct{})}
}

// serve accepts connections until the listener is closed.
func (s *fastServer) serve() error {
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Like net/http: back off on other errors (too many
			// open files) and go on.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			time.Sleep(delay)
			continue
		}
		delay = 0
		fc := &fastConn{Conn: c, r: bufio.NewReaderSize(c, fastBufSize)}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			c.Close()
			continue
		}
		s.conns[fc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(fc)
	}
}

// shutdown stops accepting, makes idle connections close and waits for
// the others to finish their request, until ctx is done.
func (s *fastServer) shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for c := range s.conns {
		c.closing.Store(true)
		// A connection waiting for its next request stops waiting;
		// one running a command answers it first.
		_ = c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}

func (s *fastServer) forget(c *fastConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// serveConn serves c until it closes or is handed to net/http.
func (s *fastServer) serveConn(c *fastConn) {
	handedOff := false
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("http: panic serving a submission", "remote", c.RemoteAddr().String(), "panic", fmt.Sprint(p))
		}
		if !handedOff {
			c.Close()
		}
		s.forget(c)
	}()
	for !c.closing.Load() {
		req, ok, err := c.next()
		if err != nil && !c.partial(err) {
			return
		}
		if !ok {
			// Not ours: net/http serves the connection from the
			// first unanswered byte on.
			if c.SetReadDeadline(time.Time{}) != nil || !s.http.handoff(&replayConn{Conn: c.Conn, r: c.r}) {
				return
			}
			handedOff = true
			return
		}
		if !s.answer(c, req) {
			return
		}
	}
}

// partial reports whether the client stopped sending (err) in the middle
// of a request: net/http then answers what it received as it would have.
func (c *fastConn) partial(err error) bool {
	var ne net.Error
	return c.r.Buffered() > 0 && !c.closing.Load() && !(errors.As(err, &ne) && ne.Timeout())
}

// fastRequest is a single-eval submission the loop serves.
type fastRequest struct {
	pool  string
	body  api.EvalRequest
	close bool // the client asked to close the connection after it
}

// next waits for the next request and returns it (consumed from the
// buffer) with true when it is a valid single-eval submission; false
// leaves every byte in the buffer for net/http.
func (c *fastConn) next() (fastRequest, bool, error) {
	if c.r.Buffered() == 0 {
		// Push the deadline only now and then: setting it costs a
		// timer update, and it only needs to stay near idleTimeout.
		if now := time.Now(); c.deadline.Sub(now) < idleTimeout-time.Second {
			c.deadline = now.Add(idleTimeout)
			if err := c.SetReadDeadline(c.deadline); err != nil {
				return fastRequest{}, false, err
			}
			// A shutdown that set its own deadline before this one
			// would otherwise wait for this connection's timeout.
			if c.closing.Load() {
				return fastRequest{}, false, net.ErrClosed
			}
		}
	}
	// Read until the buffer holds the whole head.
	var head int
	for {
		buf, err := c.r.Peek(max(c.r.Buffered(), 1))
		if err != nil {
			return fastRequest{}, false, err
		}
		if end := headEnd(buf); end > 0 {
			head = end
			break
		}
		if len(buf) >= fastBufSize {
			return fastRequest{}, false, nil
		}
		if _, err := c.r.Peek(len(buf) + 1); err != nil {
			return fastRequest{}, false, err
		}
	}
	buf, _ := c.r.Peek(head)
	h, ok := parseSubmitHead(buf)
	if !ok || head+h.length > fastBufSize {
		return fastRequest{}, false, nil
	}
	all, err := c.r.Peek(head + h.length)
	if err != nil {
		return fastRequest{}, false, err
	}
	r, ok := checkSubmitEval(h.pool, h.contentType, all[head:])
	if !ok {
		return fastRequest{}, false, nil
	}
	// checkSubmitEval copied the strings; the payload still points
	// into the buffer, which the next read overwrites.
	if r.Payload != nil {
		r.Payload = bytes.Clone(r.Payload)
	}
	_, _ = c.r.Discard(head + h.length)
	return fastRequest{pool: h.pool, body: r, close: h.close}, true, nil
}

// headEnd returns the length of the request head at the start of b (up to
// its empty line, which net/http also accepts as a bare LF), or 0 if b
// does not hold all of it.
func headEnd(b []byte) int {
	for i := 0; ; {
		k := bytes.IndexByte(b[i:], '\n')
		if k < 0 {
			return 0
		}
		i += k + 1
		switch {
		case i < len(b) && b[i] == '\n':
			return i + 1
		case i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n':
			return i + 2
		}
	}
}

// answer runs the submission and writes the response; false closes the
// connection.
func (s *fastServer) answer(c *fastConn, req fastRequest) bool {
	res, err := s.h.svc.SubmitEval(context.Background(), req.pool, evalCommand(req.body))
	var status, retryAfter int
	var body []byte
	if err != nil {
		he := toHTTPError(err)
		if he.status >= 500 {
			s.log.Warn("request failed", "method", http.MethodPost, "path", "/v1/pools/"+req.pool+"/evals", "status", he.status, "err", err)
		}
		status, retryAfter = he.status, he.retryAfter
		body, err = encodeJSON(he.body)
	} else {
		status = http.StatusAccepted
		if res.Duplicate {
			status = http.StatusOK
		}
		body, err = c.appendAccepted(res)
	}
	if err != nil {
		s.log.Error("http: encode a submission's answer", "err", err)
		return false
	}
	out := c.out[:0]
	out = append(out, "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(status), 10)
	out = append(out, ' ')
	out = append(out, http.StatusText(status)...)
	out = append(out, "\r\nContent-Type: application/json\r\n"...)
	if retryAfter > 0 {
		out = append(out, "Retry-After: "...)
		out = strconv.AppendInt(out, int64(retryAfter), 10)
		out = append(out, "\r\n"...)
	}
	if req.close {
		out = append(out, "Connection: close\r\n"...)
	}
	out = append(out, "Date: "...)
	out = appendDate(out)
	out = append(out, "\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(len(body)), 10)
	out = append(out, "\r\n\r\n"...)
	out = append(out, body...)
	c.out = out
	fastServed.Add(1)
	if _, err := c.Write(out); err != nil {
		return false
	}
	return !req.close
}

// appendAccepted returns the body c.JSON writes for a, in the
// connection's scratch buffer (valid until the next call).
func (c *fastConn) appendAccepted(a ingest.EvalAccepted) ([]byte, error) {
	if !plainJSON(a.ID) || !plainJSON(a.Pool) {
		return encodeJSON(evalAccepted(a))
	}
	buf := c.body[:0]
	buf = append(buf, `{"duplicate":`...)
	buf = strconv.AppendBool(buf, a.Duplicate)
	buf = append(buf, `,"eval_id":"`...)
	buf = append(buf, a.ID...)
	buf = append(buf, `","pool_id":"`...)
	buf = append(buf, a.Pool...)
	buf = append(buf, `","position":"`...)
	buf = strconv.AppendInt(buf, int64(a.Position.Partition), 10) // as Position.String
	buf = append(buf, ':')
	buf = strconv.AppendInt(buf, a.Position.Offset, 10)
	buf = append(buf, "\"}\n"...)
	c.body = buf
	return buf, nil
}

// encodeJSON encodes v as echo's c.JSON does (encoding/json, HTML-safe, a
// newline at the end).
func encodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// dateCache holds the Date header of the current second.
var dateCache atomic.Pointer[cachedDate]

type cachedDate struct {
	sec  int64
	text []byte
}

func appendDate(out []byte) []byte {
	now := time.Now()
	d := dateCache.Load()
	if d == nil || d.sec != now.Unix() {
		d = &cachedDate{sec: now.Unix(), text: now.UTC().AppendFormat(nil, http.TimeFormat)}
		dateCache.Store(d)
	}
	return append(out, d.text...)
}

// submitHead is what the loop needs from a request head.
type submitHead struct {
	pool        string
	contentType string
	length      int
	close       bool
}

// parseSubmitHead parses a request head (up to and including the empty
// line) and returns true only for the plainest form of the hot route:
// "POST /v1/pools/{pool}/evals HTTP/1.1" with no query, CRLF line ends,
// one Host, one Content-Length within MaxBody, at most one Content-Type,
// no Transfer-Encoding, Expect, Upgrade or Trailer, a Connection header
// that says keep-alive or close if any, and well-formed header lines.
// Anything else is net/http's to serve (or refuse).
func parseSubmitHead(b []byte) (submitHead, bool) {
	var h submitHead
	line, rest, ok := cutLine(b)
	if !ok {
		return h, false
	}
	const prefix, suffix = "POST /v1/pools/", "/evals HTTP/1.1"
	if len(line) <= len(prefix)+len(suffix) || string(line[:len(prefix)]) != prefix || string(line[len(line)-len(suffix):]) != suffix {
		return h, false
	}
	pool := line[len(prefix) : len(line)-len(suffix)]
	if !validPoolID(string(pool)) {
		return h, false
	}
	h.pool = string(pool)
	hosts, lengths, types := 0, 0, 0
	for {
		line, rest, ok = cutLine(rest)
		if !ok {
			return h, false
		}
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !validHeaderName(line[:colon]) {
			return h, false
		}
		name, value := line[:colon], bytes.Trim(line[colon+1:], " \t")
		if !validHeaderValue(value) {
			return h, false
		}
		switch {
		case equalFold(name, "Host"):
			if !validHost(value) {
				return h, false
			}
			hosts++
		case equalFold(name, "Content-Length"):
			lengths++
			n, ok := parseLength(value)
			if !ok || n > MaxBody {
				return h, false
			}
			h.length = n
		case equalFold(name, "Content-Type"):
			types++
			// Only the JSON types the spec certainly accepts: the
			// others go to net/http anyway (checkSubmitEval).
			if !jsonContentType(string(value)) {
				return h, false
			}
			h.contentType = echo.MIMEApplicationJSON
		case equalFold(name, "Connection"):
			switch {
			case equalFold(value, "close"):
				h.close = true
			case equalFold(value, "keep-alive"):
			default:
				return h, false
			}
		case equalFold(name, "Transfer-Encoding"), equalFold(name, "Expect"), equalFold(name, "Upgrade"), equalFold(name, "Trailer"):
			return h, false
		}
	}
	return h, len(rest) == 0 && hosts == 1 && lengths == 1 && types <= 1
}

// cutLine returns the line before the first CRLF and what follows it;
// false for a line without one or with a bare CR or LF in it.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return nil, nil, false
	}
	line = b[:i-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, nil, false
	}
	return line, b[i+1:], true
}

// validHeaderName accepts RFC 9110 tokens.
func validHeaderName(b []byte) bool {
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue accepts visible ASCII, spaces and tabs.
func validHeaderValue(b []byte) bool {
	for _, c := range b {
		if (c < 0x20 && c != '\t') || c >= 0x7f {
			return false
		}
	}
	return true
}

// equalFold compares b with s ignoring ASCII case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		if lowerASCII(b[i]) != lowerASCII(s[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// validHost accepts the host[:port] forms of names and IP addresses
// (a subset of what net/http accepts).
func validHost(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '-', c == ':', c == '[', c == ']', c == '_':
		default:
			return false
		}
	}
	return true
}

// parseLength parses a Content-Length of plain digits.
func parseLength(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// replayConn is a connection handed to net/http: it reads what the loop
// had buffered first.
type replayConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *replayConn) Read(p []byte) (int, error) {
	if c.r.Buffered() > 0 {
		return c.r.Read(p)
	}
	return c.Conn.Read(p)
}

// handoffListener is the listener net/http serves: it accepts the
// connections the loop hands over.
type handoffListener struct {
	addr   net.Addr
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

// handoff gives c to net/http; false if the server is closed.
func (l *handoffListener) handoff(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.closed:
		return false
	}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }

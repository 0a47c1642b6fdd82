package client

import (
	"context"
	"sync"
	"time"

	"github.com/line-sched/line/api"
)

// MinHeartbeatInterval bounds how often a Heartbeater sends.
const MinHeartbeatInterval = 50 * time.Millisecond

// Heartbeater keeps one worker alive: it sends a heartbeat every Interval,
// or, when Interval is 0, at a third of the worker TTL that the server's
// answers imply (deadline minus the time of sending).
type Heartbeater struct {
	Client       *Client
	Pool, Worker string
	// Interval between heartbeats; 0 means a third of the TTL.
	Interval time.Duration
	// TTL is the first estimate of the worker TTL when Interval is 0,
	// e.g. the deadline of the registration minus its time. Every
	// answer refines it. 0 means 30s, the server's default.
	TTL time.Duration
	// Report returns the body of the next heartbeat: the datasets the
	// worker holds and the allocs it runs. Nil sends an empty body.
	Report func() api.HeartbeatRequest
	// OnResult, if not nil, sees every answer or error.
	OnResult func(res *api.HeartbeatAccepted, err error)

	once sync.Once
	kick chan struct{}
}

func (h *Heartbeater) init() {
	h.once.Do(func() { h.kick = make(chan struct{}, 1) })
}

// Kick asks for a heartbeat now (at most one is pending at a time), e.g.
// after an alloc started whose deadline comes before the next heartbeat.
// It is safe to call from any goroutine.
func (h *Heartbeater) Kick() {
	h.init()
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// interval is the wait between heartbeats for a worker TTL of ttl.
func (h *Heartbeater) interval(ttl time.Duration) time.Duration {
	d := h.Interval
	if d <= 0 {
		d = ttl / 3
	}
	return max(d, MinHeartbeatInterval)
}

// Run heartbeats until ctx is done (it then returns nil) or an answer says
// that heartbeats cannot succeed any more: a 4xx other than 429, e.g. 404
// worker_not_found once the worker expired, which Run returns. Temporary
// failures are retried sooner than the interval.
func (h *Heartbeater) Run(ctx context.Context) error {
	h.init()
	ttl := h.TTL
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-h.kick:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		}
		var req api.HeartbeatRequest
		if h.Report != nil {
			req = h.Report()
		}
		sent := time.Now()
		// A heartbeat that takes longer than the TTL is of no use.
		cctx, cancel := context.WithTimeout(ctx, max(ttl, time.Second))
		res, err := h.Client.Heartbeat(cctx, h.Pool, h.Worker, req)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if h.OnResult != nil {
			h.OnResult(res, err)
		}
		next := h.interval(ttl)
		switch {
		case err == nil:
			if d := res.Deadline.Sub(sent); d > 0 {
				ttl = d
			}
			next = h.interval(ttl)
		case Temporary(err):
			next = min(next/2, time.Second)
			if e := AsError(err); e != nil && e.RetryAfter > 0 {
				next = min(next, e.RetryAfter)
			}
		default:
			if e := AsError(err); e != nil && e.Status >= 400 && e.Status < 500 {
				return err
			}
			next = min(next/2, time.Second)
		}
		t.Reset(max(next, MinHeartbeatInterval))
	}
}

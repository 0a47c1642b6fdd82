package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/line-sched/line/events"
)

// MaxMessage is the most output an alloc's completion carries: the tail of
// what the command wrote to stdout and stderr.
const MaxMessage = 4096

// run is one alloc in progress: its process runs, or it ended and its
// completion is not acknowledged yet. Either way it holds its size.
type run struct {
	rec     events.AllocRecord
	cmd     *exec.Cmd
	tail    *tailBuffer
	out     *lineWriter
	started time.Time
}

// outcome is how an alloc's command ended.
type outcome struct {
	succeeded bool
	exitCode  *int32
	message   string
}

// gate holds the capacity: the sum of the sizes of the runs never exceeds
// it.
type gate struct {
	capacity int64

	mu      sync.Mutex
	used    int64
	runs    map[string]*run
	changed chan struct{} // closed and replaced on every release
}

func newGate(capacity int64) *gate {
	return &gate{capacity: capacity, runs: make(map[string]*run), changed: make(chan struct{})}
}

// acquire waits until size fits, then holds it for r.
func (g *gate) acquire(ctx context.Context, r *run) error {
	for {
		g.mu.Lock()
		if g.used+r.rec.Size <= g.capacity {
			g.used += r.rec.Size
			g.runs[r.rec.AllocID] = r
			g.mu.Unlock()
			return nil
		}
		ch := g.changed
		g.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// release gives r's size back.
func (g *gate) release(r *run) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.runs[r.rec.AllocID] != r {
		return
	}
	delete(g.runs, r.rec.AllocID)
	g.used -= r.rec.Size
	close(g.changed)
	g.changed = make(chan struct{})
}

// allocs returns the ids of the runs of worker, sorted.
func (g *gate) allocs(worker string) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]string, 0, len(g.runs))
	for id, r := range g.runs {
		if r.rec.WorkerID == worker {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// snapshot returns the runs in progress and the capacity they hold.
func (g *gate) snapshot() ([]*run, int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]*run, 0, len(g.runs))
	for _, r := range g.runs {
		out = append(out, r)
	}
	return out, g.used
}

// idle returns a channel closed once no run is in progress.
func (g *gate) idle() <-chan struct{} {
	done := make(chan struct{})
	go func() {
		for {
			g.mu.Lock()
			n, ch := len(g.runs), g.changed
			g.mu.Unlock()
			if n == 0 {
				close(done)
				return
			}
			<-ch
		}
	}()
	return done
}

// allocEnv is the environment of an alloc's command.
func allocEnv(base []string, rec events.AllocRecord) []string {
	env := slices.Clone(base)
	payload := ""
	if len(rec.Payload) > 0 && !bytes.Equal(rec.Payload, []byte("null")) {
		payload = string(rec.Payload)
	}
	return append(env,
		"LINE_ALLOC_ID="+rec.AllocID,
		"LINE_EVAL_ID="+rec.EvalID,
		"LINE_POOL_ID="+rec.PoolID,
		"LINE_WORKER_ID="+rec.WorkerID,
		"LINE_DATASET="+rec.DatasetID,
		"LINE_SIZE="+strconv.FormatInt(rec.Size, 10),
		"LINE_ATTEMPT="+strconv.Itoa(rec.Attempt),
		"LINE_PAYLOAD="+payload,
	)
}

// start starts the command of r. Output goes to r's tail and, if out is
// not nil, to out line by line, each line prefixed with the alloc id.
func start(command, env []string, r *run, out io.Writer, outMu *sync.Mutex) error {
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Env = allocEnv(env, r.rec)
	cmd.Stdin = nil
	r.tail = &tailBuffer{max: 2 * MaxMessage}
	var w io.Writer = r.tail
	if out != nil {
		r.out = &lineWriter{mu: outMu, out: out, prefix: "[" + r.rec.AllocID + "] "}
		w = io.MultiWriter(r.tail, r.out)
	}
	cmd.Stdout, cmd.Stderr = w, w
	// A command that leaves a background process holding its output
	// open does not hold the alloc for longer than this after it exits.
	cmd.WaitDelay = 2 * time.Second
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return err
	}
	r.cmd, r.started = cmd, time.Now()
	return nil
}

// wait waits for r's command and tells how it ended.
func wait(r *run) outcome {
	err := r.cmd.Wait()
	if r.out != nil {
		r.out.flush()
	}
	ps := r.cmd.ProcessState
	o := outcome{}
	var head string
	switch {
	case ps == nil:
		head = fmt.Sprintf("could not wait for the command: %v", err)
	case signaled(ps):
		head = ps.String() // "signal: killed"
	default:
		code := int32(ps.ExitCode())
		o.exitCode = &code
		o.succeeded = code == 0
		if err != nil && code == 0 {
			// ErrWaitDelay: the command exited 0, but something it
			// started kept its output open.
			head = err.Error()
		}
	}
	o.message = message(head, r.tail.Bytes(), ps)
	return o
}

// message is the completion message: head (if any) and the tail of the
// output, at most MaxMessage bytes of valid UTF-8. Without output it is
// the process state ("exit status 3").
func message(head string, output []byte, ps *os.ProcessState) string {
	out := strings.ToValidUTF8(string(output), "?")
	if head != "" {
		head += "\n"
	}
	if out == "" && head == "" && ps != nil && !ps.Success() {
		return ps.String()
	}
	return head + tailString(out, MaxMessage-len(head))
}

// tailString returns the last at most n bytes of s, starting on a rune
// boundary.
func tailString(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	for len(s) > 0 && !utf8.RuneStart(s[0]) {
		s = s[1:]
	}
	return s
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) >= t.max {
		t.b = append(t.b[:0], p[len(p)-t.max:]...)
		return n, nil
	}
	if over := len(t.b) + len(p) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	t.b = append(t.b, p...)
	return n, nil
}

// Bytes returns a copy of what the buffer holds.
func (t *tailBuffer) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.b)
}

// lineWriter writes whole lines to out, each with prefix, under mu (shared
// by the lineWriters of every alloc, so that lines never interleave).
type lineWriter struct {
	mu     *sync.Mutex
	out    io.Writer
	prefix string
	buf    []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(w.buf[:i+1])
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 64<<10 { // a very long line: write what we have
		w.emit(append(w.buf, '\n'))
		w.buf = nil
	}
	return len(p), nil
}

func (w *lineWriter) emit(line []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, _ = io.WriteString(w.out, w.prefix)
	_, _ = w.out.Write(line)
}

func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.emit(append(w.buf, '\n'))
		w.buf = nil
	}
}

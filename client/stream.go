package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/line-sched/line/api"
	"github.com/line-sched/line/events"
)

// Event is one event of a pool's stream (Server-Sent Events).
type Event struct {
	// ID is the event's position, "partition:offset" (the SSE id).
	ID string
	// Type is the event type, e.g. "alloc.placed" (the SSE event name).
	Type string
	// Data is the envelope, as JSON on one line.
	Data json.RawMessage
}

// Envelope decodes the event strictly, as every reader of the log does.
func (e Event) Envelope() (events.Envelope, error) { return events.Unmarshal(e.Data) }

// Position parses ID.
func (e Event) Position() (events.Position, error) { return events.ParsePosition(e.ID) }

// StreamFrom says where a stream starts.
type StreamFrom struct {
	// Offset of the pool's partition to start at (0: the pool's whole
	// history). Used unless After is set.
	Offset int64
	// After, a position ("partition:offset", e.g. the ID of the last
	// event seen), resumes after it (sent as Last-Event-ID).
	After string
}

// StreamEvents streams pool's events in log order and calls fn for each,
// until ctx is done (it then returns ctx's error), fn fails (its error),
// or the stream ends (the server stopped: io.ErrUnexpectedEOF, or a
// *ConnError). To resume, call it again with After set to the ID of the
// last event fn saw.
func (c *Client) StreamEvents(ctx context.Context, pool string, from StreamFrom, fn func(Event) error) error {
	m, p := http.MethodGet, "/v1/pools/"+esc(pool)+"/events"
	prm := &api.StreamPoolEventsParams{}
	if from.After != "" {
		after := from.After
		prm.LastEventID = &after
	} else {
		off := max(from.Offset, 0)
		prm.From = &off
	}
	resp, err := c.api.ClientInterface.StreamPoolEvents(ctx, pool, prm, func(_ context.Context, req *http.Request) error {
		req.Header.Set("Accept", "text/event-stream")
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return c.connErr(m, p, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return decodeError(m, p, resp, body)
	}
	err = readSSE(resp.Body, fn)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err == nil || errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	var fnErr *callbackError
	if errors.As(err, &fnErr) {
		return fnErr.err
	}
	return &ConnError{Addr: c.addr, Method: m, Path: p, Err: err}
}

type callbackError struct{ err error }

func (e *callbackError) Error() string { return e.err.Error() }

// readSSE parses a text/event-stream body and calls fn for every event.
func readSSE(r io.Reader, fn func(Event) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var ev Event
	var data strings.Builder
	hasData := false
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if hasData {
				ev.Data = json.RawMessage(data.String())
				if err := fn(ev); err != nil {
					return &callbackError{err}
				}
			}
			ev, hasData = Event{}, false
			data.Reset()
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue // comment (keepalive)
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.ID = value
		case "event":
			ev.Type = value
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.WriteString(value)
			hasData = true
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("event stream: %w", err)
	}
	return io.EOF
}

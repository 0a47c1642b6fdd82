package httpapi

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"testing"
	"testing/iotest"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/ingest"
)

// TestReadBody pins what limitBody reads: the whole body whatever its
// announced length, never a body cut short by a broken connection (that is
// an error, answered 400, and nothing is submitted), and at most limit+1
// bytes (the caller answers 413 past limit).
func TestReadBody(t *testing.T) {
	body := []byte(`{"size":1}`)
	cases := []struct {
		name    string
		length  int64
		body    io.Reader
		want    []byte
		wantErr bool
	}{
		{"exact length", int64(len(body)), bytes.NewReader(body), body, false},
		{"one byte at a time", int64(len(body)), iotest.OneByteReader(bytes.NewReader(body)), body, false},
		{"data with EOF", int64(len(body)), iotest.DataErrReader(bytes.NewReader(body)), body, false},
		{"unknown length", -1, bytes.NewReader(body), body, false},
		{"empty", 0, bytes.NewReader(nil), []byte{}, false},
		{"shorter than announced", 100, bytes.NewReader(body), body, false},
		{"longer than announced", 4, bytes.NewReader(body), body, false},
		{"connection broken", 100, io.MultiReader(bytes.NewReader(body), iotest.ErrReader(io.ErrUnexpectedEOF)), nil, true},
		{"connection broken, unknown length", -1, io.MultiReader(bytes.NewReader(body), iotest.ErrReader(io.ErrUnexpectedEOF)), nil, true},
		{"past the limit", 4, bytes.NewReader(bytes.Repeat([]byte("x"), 100)), bytes.Repeat([]byte("x"), 33), false},
		{"past the limit, unknown length", -1, bytes.NewReader(bytes.Repeat([]byte("x"), 100)), bytes.Repeat([]byte("x"), 33), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := &http.Request{Method: http.MethodPost, ContentLength: c.length, Body: io.NopCloser(c.body)}
			got, err := readBody(req, 32)
			if c.wantErr {
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("got %q, %v; want the read error", got, err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, c.want) {
				t.Fatalf("got %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

// TestAppendAcceptedMatchesJSON pins that the loop writes a submission's
// answer as c.JSON writes the handler's.
func TestAppendAcceptedMatchesJSON(t *testing.T) {
	c := &fastConn{}
	for _, a := range []ingest.EvalAccepted{
		{Pool: "p", ID: "01jf3k6v9x8y7z6a5b4c3d2e1f", Position: events.Position{Partition: 3, Offset: 123456789}},
		{Pool: "pool-1", ID: "job:42.a_b-c", Position: events.Position{Partition: 0, Offset: 0}, Duplicate: true},
		{Pool: "p", ID: "a<b>&c", Position: events.Position{Partition: 11, Offset: 7}},
		{Pool: "p", ID: "quote\"", Position: events.Position{Partition: 1, Offset: 2}},
	} {
		want, err := encodeJSON(evalAccepted(a))
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.appendAccepted(a)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("wrote %q, %v; c.JSON writes %q", got, err, want)
		}
	}
}

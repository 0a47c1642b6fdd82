package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/line-sched/line/config"
)

// TestProduceContext pins the bound of a produce: ProduceTimeout after the
// command started, plus at most one deadlineStep for commands that share
// a deadline, and the caller's own end for a caller that has one.
func TestProduceContext(t *testing.T) {
	s := &Service{cfg: config.Config{ProduceTimeout: 2 * time.Second}}
	defer func() {
		if d := s.deadline.Load(); d != nil {
			d.cancel()
		}
	}()
	for range 50 {
		start := time.Now()
		ctx, cancel := s.produceContext(context.Background())
		end := time.Now()
		dl, ok := ctx.Deadline()
		cancel()
		if !ok {
			t.Fatal("no deadline")
		}
		if dl.Before(start.Add(s.cfg.ProduceTimeout)) || dl.After(end.Add(s.cfg.ProduceTimeout+deadlineStep)) {
			t.Fatalf("deadline %s after the start, want %s to %s", dl.Sub(start), s.cfg.ProduceTimeout, s.cfg.ProduceTimeout+deadlineStep)
		}
		if ctx.Err() != nil {
			t.Fatalf("a shared context ended when one command's cancel was called: %v", ctx.Err())
		}
		time.Sleep(time.Millisecond)
	}
	// Commands within a step share one context.
	a, _ := s.produceContext(context.Background())
	b, _ := s.produceContext(context.Background())
	c, _ := s.produceContext(context.Background())
	if a != b && b != c {
		t.Error("three commands in a row got three contexts")
	}
	// A caller that can end gets its own context, ended with it.
	parent, stop := context.WithCancel(context.Background())
	ctx, cancel := s.produceContext(parent)
	defer cancel()
	stop()
	if ctx.Err() == nil {
		t.Error("the produce context outlived its caller's")
	}
	// A shared context ends at its deadline.
	s.cfg.ProduceTimeout = 20 * time.Millisecond
	time.Sleep(2 * deadlineStep)
	short, _ := s.produceContext(context.Background())
	select {
	case <-short.Done():
	case <-time.After(time.Second):
		t.Error("a shared context did not end at its deadline")
	}
}

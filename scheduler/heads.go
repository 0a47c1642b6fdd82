package scheduler

import "github.com/line-sched/line/state"

// heads merges the queue's per-size lists back into queue order: a min-heap
// of the next eval of each size still in play, keyed by QueueSeq.
type heads []*state.Eval

func (h heads) less(i, j int) bool { return h[i].QueueSeq() < h[j].QueueSeq() }

func (h *heads) push(e *state.Eval) {
	*h = append(*h, e)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s.less(i, p) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

// replaceTop replaces the first eval by e (the next of its size), or drops
// it when e is nil.
func (h *heads) replaceTop(e *state.Eval) {
	s := *h
	if e != nil {
		s[0] = e
	} else {
		last := len(s) - 1
		s[0] = s[last]
		s[last] = nil
		s = s[:last]
		*h = s
	}
	for i := 0; ; {
		l := 2*i + 1
		if l >= len(s) {
			return
		}
		m := l
		if r := l + 1; r < len(s) && s.less(r, l) {
			m = r
		}
		if !s.less(m, i) {
			return
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
}

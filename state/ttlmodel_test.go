package state

import (
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestTTLIndexMatchesASortedList drives a TTLIndex with random puts,
// removes and moves of allocs, workers and replicas (each owner indexed at
// most once, as the fold does), and after every step compares Each, Due at
// random instants, Next and Len with a plain list sorted by the order
// spelled out with the ids (lessTTLByIDs).
func TestTTLIndexMatchesASortedList(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	rapid.Check(t, func(rt *rapid.T) {
		ids := []string{"a", "b", "ab", "abcdefgh1", "abcdefgh2", "abcdefgh", "z", "\x00", "w-1", "w-10"}
		allocs := make([]*Alloc, len(ids))
		workers := make([]*Worker, len(ids))
		for i, id := range ids {
			allocs[i] = &Alloc{ID: id}
			workers[i] = &Worker{ID: id, Replicas: map[string]time.Time{}}
		}
		datasets := []string{"d1", "d2", ""}
		ix := newTTLIndex()
		// model holds each indexed owner's entry by key.
		model := map[string]TTLEntry{}
		deadline := func(rt *rapid.T, label string) time.Time {
			// Few instants, so that entries share them, some a nanosecond apart.
			return t0.Add(time.Duration(rapid.IntRange(0, 4).Draw(rt, label)) * time.Second).
				Add(time.Duration(rapid.IntRange(0, 1).Draw(rt, label+"ns")))
		}
		keyOf := func(e TTLEntry) string {
			switch e.Kind {
			case TTLAlloc:
				return "a/" + e.Alloc.ID
			case TTLWorker:
				return "w/" + e.Worker.ID
			}
			return "r/" + e.Worker.ID + "/" + e.Dataset
		}
		// set makes e's owner hold e's deadline, as the fold does.
		set := func(e TTLEntry) {
			switch e.Kind {
			case TTLAlloc:
				e.Alloc.deadline = toStamp(e.Deadline)
			case TTLWorker:
				e.Worker.Deadline = e.Deadline
			case TTLReplica:
				e.Worker.Replicas[e.Dataset] = e.Deadline
			}
		}
		for step := range rapid.IntRange(1, 60).Draw(rt, "steps") {
			i := rapid.IntRange(0, len(ids)-1).Draw(rt, "owner")
			var e TTLEntry
			switch rapid.IntRange(0, 2).Draw(rt, "kind") {
			case 0:
				e = TTLEntry{Kind: TTLAlloc, Alloc: allocs[i]}
			case 1:
				e = TTLEntry{Kind: TTLWorker, Worker: workers[i]}
			default:
				e = TTLEntry{Kind: TTLReplica, Worker: workers[i], Dataset: rapid.SampledFrom(datasets).Draw(rt, "dataset")}
			}
			old, indexed := model[keyOf(e)]
			switch {
			case !indexed:
				e.Deadline = deadline(rt, "put")
				set(e)
				ix.put(e)
				model[keyOf(e)] = e
			case rapid.Bool().Draw(rt, "remove"):
				ix.remove(old)
				delete(model, keyOf(e))
			default:
				d := deadline(rt, "move")
				ix.move(old, d)
				old.Deadline = d
				set(old)
				model[keyOf(old)] = old
			}
			want := make([]ttlItem, 0, len(model))
			for _, e := range model {
				want = append(want, itemOf(e))
			}
			sortedByIDs(want)
			show := func(its []ttlItem) string {
				var s []string
				for _, it := range its {
					s = append(s, fmt.Sprintf("%s:%s/%s@%d.%d", it.kind, toID(it), it.datasetID(), it.sec, it.nsec))
				}
				return fmt.Sprint(s)
			}
			var got []ttlItem
			ix.Each(func(e TTLEntry) bool { got = append(got, itemOf(e)); return true })
			if show(got) != show(want) || ix.Len() != len(want) {
				rt.Fatalf("step %d: Each lists %s (Len %d), want %s", step, show(got), ix.Len(), show(want))
			}
			now := deadline(rt, "now")
			var due []ttlItem
			ix.Due(now, func(e TTLEntry) bool { due = append(due, itemOf(e)); return true })
			n := 0
			for n < len(want) && !want[n].after(now) {
				n++
			}
			if show(due) != show(want[:n]) {
				rt.Fatalf("step %d: Due(%v) lists %s, want %s", step, now, show(due), show(want[:n]))
			}
			// Stopping early stops.
			if len(want) > 1 {
				k := 0
				ix.Each(func(TTLEntry) bool { k++; return k < 2 })
				if k != 2 {
					rt.Fatalf("step %d: Each went on after fn returned false (%d calls)", step, k)
				}
			}
			next, ok := ix.Next()
			if ok != (len(want) > 0) || ok && (next.Unix() != want[0].sec || int32(next.Nanosecond()) != want[0].nsec) {
				rt.Fatalf("step %d: Next = %v, %v; want the deadline of %s", step, next, ok, show(want[:min(1, len(want))]))
			}
		}
	})
}

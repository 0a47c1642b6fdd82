package schedloop

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/line-sched/line/state"
)

// SetBeforeProduce makes commit call fn in each round's transaction before
// the round's records are produced. Call it before Run.
func (l *Loop) SetBeforeProduce(fn func(recs []*kgo.Record)) { l.beforeProduce = fn }

// PartitionDump returns state.Dump of the state of owned partition p, the
// next offset it will fold and how many placements it holds applied ahead
// of their read-back; ok is false if p is not owned.
func (l *Loop) PartitionDump(p int32) (dump []byte, next int64, ahead int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	part := l.parts[p]
	if part == nil {
		return nil, 0, 0, false
	}
	return state.Dump(part.st), part.next, len(part.ahead), true
}

package projections

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/line-sched/line/events"
	"github.com/line-sched/line/state"
)

// Model is the projector's memory folded from records, for tests.
type Model struct{ f *fold }

// FoldRecords folds records (of the events topic, in log order) the way
// the projector does.
func FoldRecords(recs []*kgo.Record) *Model {
	f := newFold()
	for _, r := range recs {
		if r.Attrs.IsControl() {
			continue
		}
		e, err := events.FromRecord(r)
		if err != nil {
			continue
		}
		_ = f.apply(e, events.Position{Partition: r.Partition, Offset: r.Offset}, nil)
	}
	return &Model{f: f}
}

// State is the fold.
func (m *Model) State() *state.State { return m.f.st }

// Dump materializes every row of the model at once, in the format of
// (*Projector).Dump: what an incremental view must equal.
func (m *Model) Dump() []byte {
	rows, err := m.f.rows(m.f.all())
	if err != nil {
		panic(err)
	}
	kv := map[string][]byte{}
	for _, r := range rows {
		if r.value == nil {
			continue
		}
		kv[string(r.key)] = r.value
		for _, k := range r.index {
			kv[k] = nil
		}
	}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b bytes.Buffer
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte('\t')
		b.Write(kv[k])
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// IndexFromState lists the TTL and free-capacity index keys that the
// state's own indexes (state.TTLIndex, state.FreeIndex) imply, computed
// independently of the rows.
func (m *Model) IndexFromState() []string {
	var out []string
	for _, p := range m.f.st.Pools() {
		p.TTL().Each(func(e state.TTLEntry) bool {
			switch e.Kind {
			case state.TTLAlloc:
				out = append(out, ttlKey(p.ID, e.Deadline, "alloc", e.Alloc.ID))
			case state.TTLWorker:
				out = append(out, ttlKey(p.ID, e.Deadline, "worker", e.Worker.ID))
			case state.TTLReplica:
				out = append(out, ttlKey(p.ID, e.Deadline, "replica", e.Worker.ID, e.Dataset))
			}
			return true
		})
		p.Free().Ascending(0, func(w *state.Worker) bool {
			out = append(out, freeKey(p.ID, w.Free(), w.ID))
			return true
		})
	}
	slices.Sort(out)
	return out
}

// IndexKeys picks the TTL and free-capacity index keys out of a dump.
func IndexKeys(dump []byte) []string {
	var out []string
	for _, line := range strings.Split(string(dump), "\n") {
		k, _, _ := strings.Cut(line, "\t")
		if strings.HasPrefix(k, prefixTTL) || strings.HasPrefix(k, prefixFree) {
			out = append(out, k)
		}
	}
	return out
}

// PoolCounters returns the events and rejected counters of a pool's row
// in a dump.
func PoolCounters(dump []byte, pool string) (events, rejected int64, ok bool) {
	prefix := poolKey(pool) + "\t"
	for _, line := range strings.Split(string(dump), "\n") {
		if v, found := strings.CutPrefix(line, prefix); found {
			var pv PoolView
			if err := json.Unmarshal([]byte(v), &pv); err != nil {
				return 0, 0, false
			}
			return pv.Events, pv.Rejected, true
		}
	}
	return 0, 0, false
}

// NewModel is an empty fold, for tests that apply events one by one.
func NewModel() *Model { return &Model{f: newFold()} }

// Apply folds one event as the projector does.
func (m *Model) Apply(e events.Envelope, pos events.Position) { _ = m.f.apply(e, pos, nil) }

// Workers returns a pool's workers as queries must return them, computed
// from the fold (running allocs from state.Worker.RunningAllocs), by id.
func (m *Model) Workers(pool string) []WorkerView {
	p := m.f.st.Pool(pool)
	if p == nil {
		return nil
	}
	var out []WorkerView
	for _, w := range p.Workers() { // by id
		out = append(out, workerView(pool, w))
	}
	return out
}

// WriteWork returns what Pebble wrote so far: bytes written by
// compactions, by flushes (ingestions excluded) and by batches.
func WriteWork(p *Projector) (compacted, flushed, batches uint64) {
	m := p.db.Metrics()
	for _, l := range m.Levels {
		compacted += l.TableBytesCompacted
		flushed += l.TableBytesFlushed
	}
	return compacted, flushed, m.WAL.BytesIn
}

// MemTableBytes is the memory Pebble's memtables and large (flushable)
// batches take now.
func MemTableBytes(p *Projector) uint64 {
	p.rmu.RLock()
	defer p.rmu.RUnlock()
	if p.closing {
		return 0
	}
	return p.db.Metrics().MemTable.Size
}

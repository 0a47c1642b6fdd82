package projections

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-multierror"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/line-sched/line/state"
)

// A bulk load writes the views of a rebuild (or of views that hold no row
// yet) in one go. While the views hold nothing, the projector folds the
// backlog into memory without writing (as it does below a checkpoint),
// until it has caught up with what was fetched or folded
// Options.MaxBulkRecords records; then it writes the full materialization
// of the fold, every key once and in key order, into sstables, and
// ingests them with the checkpoint in one Pebble ingestion: atomic and
// durable like a batch, and, the views being empty, placed in the bottom
// level, so that nothing of it is ever compacted again. Batches that write
// rows one by one into the memtable wrote each row of a rebuild several
// times (a flush, then compactions level after level).
//
// The materialization is the one the tests compare incremental views with
// (every row of fold.all, with its index entries), generated one key family
// (prefix) at a time so that only one family's keys are in memory at once.

// DefaultMaxBulkRecords is the default of Options.MaxBulkRecords.
const DefaultMaxBulkRecords = 20_000_000

// bulkFileBytes is the size at which a bulk load starts its next sstable.
const bulkFileBytes = 32 << 20

// bulkDir is the directory, inside the views' directory, where a bulk load
// writes its sstables before Pebble takes them.
const bulkDir = "bulk"

// bulkWriter writes keys in increasing order into sstables of about
// bulkFileBytes each, named <dir>/<name>-<n>.sst.
type bulkWriter struct {
	dir, name string
	opts      sstable.WriterOptions
	w         *sstable.Writer
	paths     []string
	kbuf      []byte
}

func (b *bulkWriter) set(key string, value []byte) error {
	if b.w == nil {
		path := filepath.Join(b.dir, fmt.Sprintf("%s-%06d.sst", b.name, len(b.paths)))
		f, err := vfs.Default.Create(path, vfs.WriteCategoryUnspecified)
		if err != nil {
			return fmt.Errorf("projections: create %s: %w", path, err)
		}
		b.paths = append(b.paths, path)
		b.w = sstable.NewWriter(objstorageprovider.NewFileWritable(f), b.opts)
	}
	b.kbuf = append(b.kbuf[:0], key...)
	if err := b.w.Set(b.kbuf, value); err != nil {
		return fmt.Errorf("projections: bulk load: write %q: %w", key, err)
	}
	if b.w.Raw().EstimatedSize() >= bulkFileBytes {
		return b.cut()
	}
	return nil
}

// cut ends the current sstable (its file is synced: Pebble requires it).
func (b *bulkWriter) cut() error {
	if b.w == nil {
		return nil
	}
	w := b.w
	b.w = nil
	if err := w.Close(); err != nil {
		return fmt.Errorf("projections: bulk load: finish %s: %w", b.paths[len(b.paths)-1], err)
	}
	return nil
}

// discard closes the current sstable after a failure.
func (b *bulkWriter) discard() {
	if b != nil && b.w != nil {
		_ = b.w.Close()
		b.w = nil
	}
}

// keyed is one row of a family, named by its key.
type keyed[T any] struct {
	key  string
	pool string
	v    T
}

func sortKeyed[T any](items []keyed[T]) {
	cmp := func(a, b keyed[T]) int { return strings.Compare(a.key, b.key) }
	if !slices.IsSortedFunc(items, cmp) {
		slices.SortFunc(items, cmp)
	}
}

// writeRows writes a family of rows in key order; value encodes a row,
// into the buffer it is given if it is large enough.
func writeRows[T any](b *bulkWriter, items []keyed[T], value func(buf []byte, pool string, v T) ([]byte, error)) (int, error) {
	sortKeyed(items)
	buf := make([]byte, 0, 1024)
	for _, it := range items {
		v, err := value(buf, it.pool, it.v)
		if err != nil {
			return 0, err
		}
		if err := b.set(it.key, v); err != nil {
			return 0, err
		}
		if cap(v) > cap(buf) {
			buf = v[:0]
		}
	}
	return len(items), nil
}

// writeIndex writes, in key order, the index entries with the given
// prefix that gen yields.
func writeIndex(b *bulkWriter, prefix string, gen func(add func(keys []string))) error {
	var keys []string
	gen(func(ks []string) {
		for _, k := range ks {
			if strings.HasPrefix(k, prefix) {
				keys = append(keys, k)
			}
		}
	})
	if !slices.IsSorted(keys) {
		slices.Sort(keys)
	}
	for _, k := range keys {
		if err := b.set(k, nil); err != nil {
			return err
		}
	}
	return nil
}

// poolLists are a pool's entities in id order, listed once for all the
// families (a family may be written on another goroutine: the fold is
// only read while the views are materialized).
type poolLists struct {
	p       *state.Pool
	evals   func() []*state.Eval
	allocs  func() []*state.Alloc
	workers func() []*state.Worker
}

// family writes the keys of one prefix, in key order.
type family func(b *bulkWriter) (rows int, err error)

// materialize writes every row of the fold with its index entries, and the
// checkpoint to, in key order (see the key layout in the package
// documentation), and returns the files to ingest and the number of rows.
// The key families are disjoint ranges of keys: they are written on
// GOMAXPROCS goroutines, each into files of its own. The checkpoint has a
// file of its own: the views hold their layout and topic beside it
// already, and the other files, overlapping nothing, go to the bottom
// level.
func (f *fold) materialize(dir string, popts *pebble.Options, format sstable.TableFormat, to map[int32]int64) ([]string, int, error) {
	var lists []poolLists
	for _, p := range f.st.Pools() {
		lists = append(lists, poolLists{p: p, evals: sync.OnceValue(p.Evals), allocs: sync.OnceValue(p.Allocs),
			workers: sync.OnceValue(p.Workers)})
	}
	evalsIndex := func(add func([]string)) {
		for _, l := range lists {
			for _, e := range l.evals() {
				add(evalIndex(l.p.ID, e.ID, string(e.Status())))
			}
		}
	}
	allocsIndex := func(add func([]string)) {
		for _, l := range lists {
			for _, a := range l.allocs() {
				add(allocIndex(l.p.ID, a.ID, a.WorkerID(), string(a.Status()), a.Deadline()))
			}
		}
	}
	workersIndex := func(add func([]string)) {
		for _, l := range lists {
			for _, w := range l.workers() {
				add(workerIndex(l.p.ID, w.ID, w.Free(), w.Deadline))
			}
		}
	}
	replicasIndex := func(add func([]string)) {
		for _, l := range lists {
			for _, w := range l.workers() {
				for ds, deadline := range w.Replicas {
					add(replicaIndex(l.p.ID, ds, w.ID, deadline))
				}
			}
		}
	}
	index := func(prefix string, gens ...func(func([]string))) family {
		return func(b *bulkWriter) (int, error) {
			return 0, writeIndex(b, prefix, func(add func([]string)) {
				for _, gen := range gens {
					gen(add)
				}
			})
		}
	}
	type replica struct {
		w  *state.Worker
		ds string
	}
	families := []family{
		func(b *bulkWriter) (int, error) { // alloc/
			var items []keyed[*state.Alloc]
			for _, l := range lists {
				for _, a := range l.allocs() {
					items = append(items, keyed[*state.Alloc]{key: allocKey(l.p.ID, a.ID), pool: l.p.ID, v: a})
				}
			}
			return writeRows(b, items, func(buf []byte, pool string, a *state.Alloc) ([]byte, error) {
				return appendRow(buf, allocView(pool, a))
			})
		},
		func(b *bulkWriter) (int, error) { // eval/
			var items []keyed[*state.Eval]
			for _, l := range lists {
				for _, e := range l.evals() {
					items = append(items, keyed[*state.Eval]{key: evalKey(l.p.ID, e.ID), pool: l.p.ID, v: e})
				}
			}
			return writeRows(b, items, func(buf []byte, pool string, e *state.Eval) ([]byte, error) {
				return appendRow(buf, evalView(pool, e))
			})
		},
		index(prefixDeadLetter, evalsIndex),
		index(prefixEvalStatus, evalsIndex),
		index(prefixFree, workersIndex),
		index(prefixTTL, allocsIndex, workersIndex, replicasIndex),
		index(prefixWorkerAlloc, allocsIndex),
		func(b *bulkWriter) (int, error) { // meta/offset/
			offs := make([]string, 0, len(to))
			for part := range to {
				offs = append(offs, offsetKey(part))
			}
			slices.Sort(offs)
			for _, k := range offs {
				part, _ := strconv.ParseInt(strings.TrimPrefix(k, prefixOffset), 10, 32)
				if err := b.set(k, []byte(strconv.FormatInt(to[int32(part)], 10))); err != nil {
					return 0, err
				}
			}
			return 0, nil
		},
		func(b *bulkWriter) (int, error) { // pool/
			var items []keyed[*state.Pool]
			for _, l := range lists {
				items = append(items, keyed[*state.Pool]{key: poolKey(l.p.ID), pool: l.p.ID, v: l.p})
			}
			return writeRows(b, items, func(buf []byte, pool string, p *state.Pool) ([]byte, error) {
				return appendRow(buf, poolView(p, f.meta[pool]))
			})
		},
		func(b *bulkWriter) (int, error) { // replica/
			var items []keyed[replica]
			for _, l := range lists {
				for _, w := range l.workers() {
					for ds := range w.Replicas {
						items = append(items, keyed[replica]{key: replicaKey(l.p.ID, ds, w.ID), pool: l.p.ID, v: replica{w, ds}})
					}
				}
			}
			return writeRows(b, items, func(buf []byte, pool string, r replica) ([]byte, error) {
				return appendRow(buf, replicaView(pool, r.ds, r.w, r.w.Replicas[r.ds]))
			})
		},
		func(b *bulkWriter) (int, error) { // worker/
			var items []keyed[*state.Worker]
			for _, l := range lists {
				for _, w := range l.workers() {
					items = append(items, keyed[*state.Worker]{key: workerKey(l.p.ID, w.ID), pool: l.p.ID, v: w})
				}
			}
			return writeRows(b, items, func(buf []byte, pool string, w *state.Worker) ([]byte, error) {
				return appendRow(buf, workerRowOf(pool, w))
			})
		},
	}
	writers := make([]*bulkWriter, len(families))
	rows := make([]int, len(families))
	errs := make([]error, len(families))
	wopts := popts.MakeWriterOptions(len(popts.Levels)-1, format)
	var next atomic.Int32
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(families)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < len(families); i = int(next.Add(1)) - 1 {
				writers[i] = &bulkWriter{dir: dir, name: strconv.Itoa(i), opts: wopts}
				rows[i], errs[i] = families[i](writers[i])
				if errs[i] == nil {
					errs[i] = writers[i].cut()
				}
			}
		}()
	}
	wg.Wait()
	var err *multierror.Error
	var paths []string
	n := 0
	for i, w := range writers {
		if errs[i] != nil {
			err = multierror.Append(err, errs[i])
			w.discard()
		}
		paths = append(paths, w.paths...)
		n += rows[i]
	}
	return paths, n, err.ErrorOrNil()
}

// writeBulk writes the full materialization of the fold and the checkpoint
// to in one ingestion, into views that hold no row.
func (p *Projector) writeBulk(to map[int32]int64) (int, error) {
	dir := filepath.Join(p.opts.Dir, bulkDir)
	if err := os.RemoveAll(dir); err != nil {
		return 0, fmt.Errorf("projections: clear %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, fmt.Errorf("projections: create %s: %w", dir, err)
	}
	// Pebble moves the files it ingests; whatever is left goes.
	defer os.RemoveAll(dir)
	paths, rows, err := p.f.materialize(dir, p.popts, p.db.TableFormat(), to)
	if err != nil {
		return 0, fmt.Errorf("projections: bulk load: %w", err)
	}
	if err := p.db.Ingest(context.Background(), paths); err != nil {
		return 0, fmt.Errorf("projections: bulk load: ingest %d files: %w", len(paths), err)
	}
	return rows, nil
}

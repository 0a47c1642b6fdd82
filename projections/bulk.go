package projections

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/cockroachdb/pebble/v2"
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

// bulkSizeEvery is how many keys a bulk load's sstable takes between two
// looks at its size (Pebble estimates it from every block under way: at
// every key, that was ~7 % of the sstable writer's CPU; for columnar
// blocks, twice that): a file ends at most that many keys past
// bulkFileBytes.
const bulkSizeEvery = 256

// bulkBufferBytes is the write buffer of a bulk load's sstable: Pebble's
// own file writer buffers 4 KiB, one write call per (compressed) data
// block or two.
const bulkBufferBytes = 1 << 20

// bulkWriter writes keys in increasing order into sstables of about
// bulkFileBytes each, named <dir>/<name>-<n>.sst.
type bulkWriter struct {
	dir, name string
	opts      sstable.WriterOptions
	w         *sstable.Writer
	paths     []string
	last      []byte
	started   bool
	keys      int // keys in the current sstable
	rows      int // keys with a value: rows, not index entries
}

// bulkFile is the file of a bulk load's sstable, written through a buffer
// of bulkBufferBytes, synced when finished (Pebble ingests only durable
// files).
type bulkFile struct {
	f  vfs.File
	bw *bufio.Writer
}

// Write buffers p.
func (w *bulkFile) Write(p []byte) error {
	_, err := w.bw.Write(p)
	return err
}

// Finish writes what is buffered, syncs and closes the file.
func (w *bulkFile) Finish() error {
	err := w.bw.Flush()
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Abort closes the file (the bulk load removes it).
func (w *bulkFile) Abort() { _ = w.f.Close() }

// errUnordered is a family whose natural order is not key order (ids that
// need escaping, pools whose ids sort unlike their keys): it is then
// written again, sorted.
var errUnordered = errors.New("keys out of order")

// put writes one key (which must be greater than the previous one).
func (b *bulkWriter) put(key, value []byte) error {
	if b.started && bytes.Compare(key, b.last) <= 0 {
		return errUnordered
	}
	b.last, b.started = append(b.last[:0], key...), true
	if b.w == nil {
		path := filepath.Join(b.dir, fmt.Sprintf("%s-%06d.sst", b.name, len(b.paths)))
		f, err := vfs.Default.Create(path, vfs.WriteCategoryUnspecified)
		if err != nil {
			return fmt.Errorf("create %s: %w", path, err)
		}
		b.paths = append(b.paths, path)
		b.w = sstable.NewWriter(&bulkFile{f: f, bw: bufio.NewWriterSize(f, bulkBufferBytes)}, b.opts)
		b.keys = 0
	}
	if err := b.w.Set(key, value); err != nil {
		return fmt.Errorf("write %q: %w", key, err)
	}
	if len(value) > 0 {
		b.rows++
	}
	if b.keys++; b.keys%bulkSizeEvery == 0 && b.w.Raw().EstimatedSize() >= bulkFileBytes {
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
		return fmt.Errorf("finish %s: %w", b.paths[len(b.paths)-1], err)
	}
	return nil
}

// discard closes and removes the files written so far.
func (b *bulkWriter) discard() {
	if b.w != nil {
		_ = b.w.Close()
		b.w = nil
	}
	for _, p := range b.paths {
		_ = os.Remove(p)
	}
	b.paths, b.started, b.rows = nil, false, 0
}

// emitter yields the keys and values of one family to put, in key order
// if it can (a family's natural order is key order for valid ids).
type emitter func(put func(key, value []byte) error) error

// writeFamily writes one family into files of its own: in its natural
// order, or, if that is not key order, sorted.
func writeFamily(dir, name string, opts sstable.WriterOptions, emit emitter) (*bulkWriter, error) {
	b := &bulkWriter{dir: dir, name: name, opts: opts}
	err := emit(b.put)
	if err == nil {
		err = b.cut()
	}
	if !errors.Is(err, errUnordered) {
		if err != nil {
			b.discard()
		}
		return b, err
	}
	b.discard()
	type kv struct{ k, v string }
	var kvs []kv
	if err := emit(func(k, v []byte) error { kvs = append(kvs, kv{string(k), string(v)}); return nil }); err != nil {
		return b, err
	}
	slices.SortFunc(kvs, func(a, b kv) int { return strings.Compare(a.k, b.k) })
	b = &bulkWriter{dir: dir, name: name + "-sorted", opts: opts}
	for i, e := range kvs {
		if i > 0 && e.k == kvs[i-1].k {
			b.discard()
			return b, fmt.Errorf("key %q twice", e.k)
		}
		if err := b.put([]byte(e.k), []byte(e.v)); err != nil {
			b.discard()
			return b, err
		}
	}
	if err := b.cut(); err != nil {
		b.discard()
		return b, err
	}
	return b, nil
}

// poolHead sets key to the head that the keys of a pool's entities of a
// family share: appendKey(prefix, pool, id) is that head and the id's
// segment.
func poolHead(key []byte, prefix, pool string) []byte {
	return append(appendKey(key[:0], prefix, pool), '/')
}

// poolLists are a pool's entities in id order, listed once for all the
// families (families are written on several goroutines: the fold is only
// read while the views are materialized).
type poolLists struct {
	p       *state.Pool
	evals   func() []*state.Eval
	allocs  func() []*state.Alloc
	workers func() []*state.Worker
}

// materialize writes every row of the fold with its index entries (the
// same rows as fold.all names, see the key layout in the package
// documentation), and the checkpoint to, into sstables, and returns them
// and the number of rows. The key families (prefixes) are disjoint ranges
// of keys: they are written on GOMAXPROCS goroutines, each into files of
// its own, in the order the fold lists them, which is key order for valid
// ids. The checkpoint has a file of its own: the views hold their layout
// and topic beside it already, and the other files, overlapping nothing,
// go to the bottom level.
func (f *fold) materialize(dir string, popts *pebble.Options, format sstable.TableFormat, to map[int32]int64) ([]string, int, error) {
	var lists []poolLists
	for _, p := range f.st.Pools() {
		lists = append(lists, poolLists{p: p, evals: sync.OnceValue(p.Evals), allocs: sync.OnceValue(p.Allocs),
			workers: sync.OnceValue(p.Workers)})
	}
	// Every family but the checkpoint's: row families write a row per
	// entity, index families the index entries that the rows' indexKeys
	// give (the tests compare the result with views written batch by
	// batch).
	const metaFamily = 7
	families := [...]emitter{
		func(put func(k, v []byte) error) error { // alloc/<pool>/<alloc>
			var key, val []byte
			var known rowMemo
			for _, l := range lists {
				key = poolHead(key, prefixAlloc, l.p.ID)
				head := len(key)
				for _, a := range l.allocs() {
					key = appendSeg(key[:head], a.ID)
					v, err := appendAllocRow(val, l.p.ID, a, &known)
					if err != nil {
						return err
					}
					if err := put(key, v); err != nil {
						return err
					}
					val = v[:0]
				}
			}
			return nil
		},
		func(put func(k, v []byte) error) error { // eval/<pool>/<eval>
			var key, val []byte
			var known rowMemo
			for _, l := range lists {
				key = poolHead(key, prefixEval, l.p.ID)
				head := len(key)
				for _, e := range l.evals() {
					key = appendSeg(key[:head], e.ID)
					v, err := appendEvalRow(val, l.p.ID, e, &known)
					if err != nil {
						return err
					}
					if err := put(key, v); err != nil {
						return err
					}
					val = v[:0]
				}
			}
			return nil
		},
		func(put func(k, v []byte) error) error { // idx/deadletter/<pool>/<eval>
			var key []byte
			for _, l := range lists {
				for _, e := range l.evals() {
					if !deadLettered(string(e.Status())) {
						continue
					}
					key = appendKey(key[:0], prefixDeadLetter, l.p.ID, e.ID)
					if err := put(key, nil); err != nil {
						return err
					}
				}
			}
			return nil
		},
		func(put func(k, v []byte) error) error { // idx/evalstatus/<pool>/<status>/<eval>
			// The evals of each status in id order, statuses in
			// order: one pass numbers each eval's status (there are a
			// handful), then one pass per status.
			var key []byte
			var codes []uint8
			for _, l := range lists {
				evals := l.evals()
				var statuses []string
				codes = slices.Grow(codes[:0], len(evals))[:len(evals)]
				for i, e := range evals {
					st := string(e.Status())
					k := slices.Index(statuses, st)
					if k < 0 {
						k = len(statuses)
						statuses = append(statuses, st)
						if k > 255 {
							return fmt.Errorf("pool %s: more than 256 eval statuses", l.p.ID)
						}
					}
					codes[i] = uint8(k)
				}
				order := make([]int, len(statuses))
				for k := range order {
					order[k] = k
				}
				slices.SortFunc(order, func(a, b int) int { return strings.Compare(statuses[a], statuses[b]) })
				for _, k := range order {
					key = append(appendKey(key[:0], prefixEvalStatus, l.p.ID, statuses[k]), '/')
					head := len(key)
					for i, e := range evals {
						if codes[i] != uint8(k) {
							continue
						}
						key = appendSeg(key[:head], e.ID)
						if err := put(key, nil); err != nil {
							return err
						}
					}
				}
			}
			return nil
		},
		func(put func(k, v []byte) error) error { // idx/free/<pool>/<free>/<worker>
			for _, l := range lists {
				ws := slices.Clone(l.workers())
				slices.SortStableFunc(ws, func(a, b *state.Worker) int { return cmp.Compare(a.Free(), b.Free()) })
				for _, w := range ws {
					if err := put([]byte(freeKey(l.p.ID, w.Free(), w.ID)), nil); err != nil {
						return err
					}
				}
			}
			return nil
		},
		func(put func(k, v []byte) error) error { // idx/ttl/<pool>/<deadline>/...
			// The index orders the entries of a deadline by kind
			// alloc, worker, replica, and their keys are ordered
			// alloc, replica, worker: the workers' entries of a
			// deadline wait until its replicas' are written.
			// The entries of a deadline (a round of placements
			// shares one) share the head of their keys: formatted once.
			var key, head []byte
			var err error
			var workers []*state.Worker
			var at, headAt time.Time
			for _, l := range lists {
				head = head[:0]
				keyAt := func(deadline time.Time, kind string, ids ...string) []byte {
					if len(head) == 0 || !deadline.Equal(headAt) {
						head, headAt = appendTTLHead(head[:0], l.p.ID, deadline), deadline
					}
					return appendTTLTail(append(key[:0], head...), kind, ids...)
				}
				putWorkers := func() error {
					for _, w := range workers {
						key = keyAt(at, ttlKindWorker, w.ID)
						if err := put(key, nil); err != nil {
							return err
						}
					}
					workers = workers[:0]
					return nil
				}
				l.p.TTL().Each(func(e state.TTLEntry) bool {
					if len(workers) > 0 && !e.Deadline.Equal(at) {
						if err = putWorkers(); err != nil {
							return false
						}
					}
					switch e.Kind {
					case state.TTLAlloc:
						key = keyAt(e.Deadline, ttlKindAlloc, e.Alloc.ID)
					case state.TTLWorker:
						if len(workers) == 0 {
							at = e.Deadline
						}
						workers = append(workers, e.Worker)
						return true
					case state.TTLReplica:
						key = keyAt(e.Deadline, ttlKindReplica, e.Worker.ID, e.Dataset)
					default:
						err = fmt.Errorf("pool %s: TTL entry of unknown kind %d", l.p.ID, e.Kind)
						return false
					}
					err = put(key, nil)
					return err == nil
				})
				if err == nil {
					err = putWorkers()
				}
				if err != nil {
					return err
				}
			}
			return nil
		},
		func(put func(k, v []byte) error) error { // idx/workeralloc/<pool>/<worker>/<alloc>
			var key []byte
			for _, l := range lists {
				for _, w := range l.workers() {
					key = append(appendKey(key[:0], prefixWorkerAlloc, l.p.ID, w.ID), '/')
					head := len(key)
					for _, a := range w.RunningAllocs() {
						key = appendSeg(key[:head], a.ID)
						if err := put(key, nil); err != nil {
							return err
						}
					}
				}
			}
			return nil
		},
		metaFamily: func(put func(k, v []byte) error) error { // meta/offset/<partition>
			parts := slices.Sorted(maps.Keys(to))
			slices.SortFunc(parts, func(a, b int32) int { return strings.Compare(offsetKey(a), offsetKey(b)) })
			for _, part := range parts {
				if err := put([]byte(offsetKey(part)), []byte(strconv.FormatInt(to[part], 10))); err != nil {
					return err
				}
			}
			return nil
		},
		func(put func(k, v []byte) error) error { // pool/<pool>
			for _, l := range lists {
				v, err := marshal(poolView(l.p, f.metaCopy(l.p.ID)))
				if err != nil {
					return err
				}
				if err := put([]byte(poolKey(l.p.ID)), v); err != nil {
					return err
				}
			}
			return nil
		},
		func(put func(k, v []byte) error) error { // replica/<pool>/<dataset>/<worker>
			for _, l := range lists {
				type replica struct {
					w  *state.Worker
					ds string
				}
				var rs []replica
				for _, w := range l.workers() {
					for ds := range w.Replicas {
						rs = append(rs, replica{w, ds})
					}
				}
				slices.SortFunc(rs, func(a, b replica) int {
					return cmp.Or(cmp.Compare(a.ds, b.ds), cmp.Compare(a.w.ID, b.w.ID))
				})
				for _, r := range rs {
					v, err := marshal(replicaView(l.p.ID, r.ds, r.w, r.w.Replicas[r.ds]))
					if err != nil {
						return err
					}
					if err := put([]byte(replicaKey(l.p.ID, r.ds, r.w.ID)), v); err != nil {
						return err
					}
				}
			}
			return nil
		},
		func(put func(k, v []byte) error) error { // worker/<pool>/<worker>
			var val []byte
			for _, l := range lists {
				for _, w := range l.workers() {
					row := workerRowOf(l.p.ID, w)
					v, err := marshalWorker(val, &row)
					if err != nil {
						return err
					}
					if err := put([]byte(workerKey(l.p.ID, w.ID)), v); err != nil {
						return err
					}
					val = v[:0]
				}
			}
			return nil
		},
	}
	writers := make([]*bulkWriter, len(families))
	errs := make([]error, len(families))
	wopts := popts.MakeWriterOptions(len(popts.Levels)-1, format)
	var next atomic.Int32
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(families)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < len(families); i = int(next.Add(1)) - 1 {
				writers[i], errs[i] = writeFamily(dir, strconv.Itoa(i), wopts, families[i])
			}
		}()
	}
	wg.Wait()
	var err *multierror.Error
	var paths []string
	rows := 0
	for i, w := range writers {
		if errs[i] != nil {
			err = multierror.Append(err, errs[i])
		}
		// Row values are JSON, never empty; the checkpoint's are not rows.
		if i != metaFamily {
			rows += w.rows
		}
		paths = append(paths, w.paths...)
	}
	return paths, rows, err.ErrorOrNil()
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

// bulkGCPercent is the garbage collector's target (GOGC) while a bulk load
// folds and writes: the fold holds the whole state, which every collection
// scans, while the heap it adds to it is mostly short-lived (decoded
// events, row values); collecting less often trades memory for the CPU of
// those scans. It is process-wide, raised while any bulk load runs.
const bulkGCPercent = 200

// bulkGC counts the bulk loads under way and holds the target they raised.
var bulkGC struct {
	sync.Mutex
	loads int
	prior int
}

// raiseGC raises the garbage collector's target to bulkGCPercent (unless
// it is higher or off) for a bulk load, and returns the function that ends
// it: the last bulk load to end restores the prior target.
func raiseGC() (restore func()) {
	bulkGC.Lock()
	defer bulkGC.Unlock()
	if bulkGC.loads == 0 {
		bulkGC.prior = debug.SetGCPercent(bulkGCPercent)
		if bulkGC.prior < 0 || bulkGC.prior > bulkGCPercent {
			debug.SetGCPercent(bulkGC.prior)
		}
	}
	bulkGC.loads++
	var once sync.Once
	return func() {
		once.Do(func() {
			bulkGC.Lock()
			defer bulkGC.Unlock()
			if bulkGC.loads--; bulkGC.loads == 0 {
				debug.SetGCPercent(bulkGC.prior)
			}
		})
	}
}

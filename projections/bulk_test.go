package projections

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/line-sched/line/audit/audittest"
)

// TestBulkLoadEqualsMaterialization ingests the bulk load of simulated
// histories into empty Pebble views and checks that they hold exactly the
// full materialization of the fold, with pools whose ids sort unlike
// their keys ("p1-" < "p1" as keys, not as ids): those families are
// written again, sorted.
//
// A c1m-shaped history, whose workers and replicas share deadlines (their
// TTL index entries are ordered unlike their keys: the bulk load orders
// them), is written in its natural order too.
func TestBulkLoadEqualsMaterialization(t *testing.T) {
	for _, pools := range [][]string{{"p1", "p2"}, {"p1", "p1-", "p1.x"}, {"c1m"}} {
		var hist []audittest.Event
		var err error
		if pools[0] == "c1m" {
			hist, err = audittest.C1M(audittest.C1MOptions{Workers: 300, Evals: 6000, Partitions: 3})
		} else {
			hist, err = audittest.Simulate(audittest.Options{Seed: 11, Pools: pools, Partitions: 3, Steps: 300, Delayed: true})
		}
		if err != nil {
			t.Fatal(err)
		}
		f := newFold()
		to := map[int32]int64{}
		for _, e := range hist {
			_ = f.apply(e.Envelope, e.Position, nil)
			to[e.Position.Partition] = e.Position.Offset + 1
		}
		dir := t.TempDir()
		popts := pebbleOptions(slog.New(slog.NewTextHandler(io.Discard, nil)))
		db, err := pebble.Open(filepath.Join(dir, "views"), popts)
		if err != nil {
			t.Fatal(err)
		}
		paths, rows, err := f.materialize(dir, popts, db.TableFormat(), to)
		if err != nil {
			t.Fatalf("pools %v: %v", pools, err)
		}
		sorted := 0
		for _, p := range paths {
			if strings.Contains(filepath.Base(p), "-sorted-") {
				sorted++
			}
		}
		if wantSorted := len(pools) == 3; (sorted > 0) != wantSorted {
			t.Errorf("pools %v: %d files of families written again sorted, want some: %v", pools, sorted, wantSorted)
		}
		if err := db.Ingest(context.Background(), paths); err != nil {
			t.Fatalf("pools %v: ingest: %v", pools, err)
		}
		offs, err := readOffsets(db)
		if err != nil || len(offs) != len(to) {
			t.Fatalf("pools %v: checkpoint %v (%v), want %v", pools, offs, err, to)
		}
		for part, o := range to {
			if offs[part] != o {
				t.Errorf("pools %v: checkpoint %v, want %v", pools, offs, to)
			}
		}
		it, err := db.NewIter(nil)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		n := 0
		for ok := it.First(); ok; ok = it.Next() {
			if bytes.HasPrefix(it.Key(), []byte(prefixMeta)) {
				continue
			}
			if len(it.Value()) > 0 {
				n++
			}
			got.Write(it.Key())
			got.WriteByte('\t')
			got.Write(it.Value())
			got.WriteByte('\n')
		}
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
		want := (&Model{f: f}).Dump()
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("pools %v: the bulk load holds\n%s\nthe materialization of the fold is\n%s", pools, got.Bytes(), want)
		}
		if rows != n || n < 50 {
			t.Errorf("pools %v: %d rows reported, %d rows written (want some)", pools, rows, n)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkMaterialize writes the bulk load of a folded c1m-shaped history
// of -rebuild.evals evals and -rebuild.workers workers (the write phase of
// BenchmarkRebuild, without the fold), and reports rows per CPU second of
// the process.
func BenchmarkMaterialize(b *testing.B) {
	evals, workers := 200_000, 5_000
	if f := flag.Lookup("rebuild.evals"); f != nil && f.Value.String() != f.DefValue {
		evals, _ = strconv.Atoi(f.Value.String())
	}
	if f := flag.Lookup("rebuild.workers"); f != nil && f.Value.String() != f.DefValue {
		workers, _ = strconv.Atoi(f.Value.String())
	}
	hist, err := audittest.C1M(audittest.C1MOptions{Workers: workers, Evals: evals})
	if err != nil {
		b.Fatal(err)
	}
	f := newFold()
	to := map[int32]int64{}
	for _, e := range hist {
		_ = f.apply(e.Envelope, e.Position, nil)
		to[e.Position.Partition] = e.Position.Offset + 1
	}
	hist = nil
	popts := pebbleOptions(slog.New(slog.NewTextHandler(io.Discard, nil)))
	db, err := pebble.Open(filepath.Join(b.TempDir(), "views"), popts)
	if err != nil {
		b.Fatal(err)
	}
	format := db.TableFormat()
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	// Every write starts from a collected heap (the fold's), and only
	// the writes' CPU is counted: the collections of the fold's heap that
	// a write triggers are its own (the fewer it allocates, the fewer).
	rows, gcs := 0, uint32(0)
	var cpu time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := b.TempDir()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		gc0 := ms.NumGC
		cpu0 := audittest.CPUTime()
		b.StartTimer()
		paths, n, err := f.materialize(dir, popts, format, to)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cpu += audittest.CPUTime() - cpu0
		runtime.ReadMemStats(&ms)
		gcs += ms.NumGC - gc0
		rows += n
		var size int64
		for _, p := range paths {
			if st, err := os.Stat(p); err == nil {
				size += st.Size()
			}
		}
		b.ReportMetric(float64(size)/(1<<20), "file-MiB")
		_ = os.RemoveAll(dir)
		b.StartTimer()
	}
	b.ReportMetric(float64(rows)/cpu.Seconds(), "rows/cpu-s")
	b.ReportMetric(float64(gcs)/float64(b.N), "gcs/op")
}

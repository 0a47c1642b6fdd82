package state

import (
	"os"
	"runtime"
	"runtime/pprof"
	"testing"

	"github.com/line-sched/line/events"
)

func TestZZHeap(t *testing.T) {
	runtime.MemProfileRate = 4096
	h := bxHistory(100_000, 5_000)
	s := bxFold(t, h, events.Unmarshal)
	runtime.GC()
	f, _ := os.Create("/tmp/fs/heap.prof")
	pprof.Lookup("heap").WriteTo(f, 0)
	f.Close()
	runtime.KeepAlive(s)
}

package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/line-sched/line/app"
	"github.com/line-sched/line/broker"
	"github.com/line-sched/line/config"
	"github.com/line-sched/line/httpapi"
)

// Role is what a child process runs.
type Role string

// Roles of a child.
const (
	// RoleDev runs `line dev` (app.Dev): broker, ingest, projector and
	// scheduler in one process.
	RoleDev Role = "dev"
	// RoleBroker runs the embedded broker alone.
	RoleBroker Role = "broker"
	// RoleScheduler runs one scheduler (app.Scheduler) against
	// LINE_KAFKA_BROKERS.
	RoleScheduler Role = "scheduler"
	// RoleIngest runs the ingest service (app.Ingest, cmd/ingest) against
	// LINE_KAFKA_BROKERS, serving the commands on LINE_HTTP_ADDR.
	RoleIngest Role = "ingest"
	// RoleProjector runs the projector service (app.Projector,
	// cmd/projector) against LINE_KAFKA_BROKERS, serving the queries on
	// LINE_HTTP_ADDR.
	RoleProjector Role = "projector"
)

// Ready is the first line a child writes on its stdout (JSON).
type Ready struct {
	Pid     int      `json:"pid"`
	Kafka   []string `json:"kafka,omitempty"`
	HTTP    string   `json:"http,omitempty"`
	Control string   `json:"control"`
}

// ProcStatus is a process's memory as the kernel and the Go runtime see it.
type ProcStatus struct {
	// VmHWM is the peak resident set size, VmRSS the current one (bytes).
	VmHWM int64 `json:"vm_hwm"`
	VmRSS int64 `json:"vm_rss"`
	// MaxRSS is getrusage's peak RSS (bytes), where /proc is missing.
	MaxRSS int64 `json:"max_rss"`
	// HeapInuse and Sys are the Go runtime's.
	HeapInuse uint64 `json:"heap_inuse"`
	Sys       uint64 `json:"sys"`
	NumGC     uint32 `json:"num_gc"`
	// CPU is the user+system CPU seconds used so far.
	CPU float64 `json:"cpu_s"`
}

// Peak is the best known peak RSS in bytes: VmHWM, the peak of this
// process's own memory since its exec. getrusage's MaxRSS is only a
// fallback: Linux carries it over fork and exec, so a child started by a
// harness that had grown to 1 GiB reports at least 1 GiB.
func (s ProcStatus) Peak() int64 {
	if s.VmHWM > 0 {
		return s.VmHWM
	}
	return s.MaxRSS
}

// SelfStatus returns this process's memory and CPU.
func SelfStatus() ProcStatus {
	var s ProcStatus
	s.VmHWM, s.VmRSS = readVm("/proc/self/status")
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.MaxRSS = int64(ru.Maxrss) * 1024 // kilobytes on Linux
		s.CPU = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.HeapInuse, s.Sys, s.NumGC = ms.HeapInuse, ms.Sys, ms.NumGC
	return s
}

// readVm reads VmHWM and VmRSS (bytes) from a /proc/<pid>/status file.
func readVm(path string) (hwm, rss int64) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fs[0], 10, 64)
		switch k {
		case "VmHWM":
			hwm = n * 1024
		case "VmRSS":
			rss = n * 1024
		}
	}
	return hwm, rss
}

// Serve runs role until ctx is done (the child side of the harness). The
// settings come from the LINE_* environment (config.FromEnv). It writes one
// Ready line on out once the role's addresses are known, logs to errOut, and
// serves a control API on a loopback port: GET /status (ProcStatus),
// /cpu/start, /cpu/stop (the CPU profile since start), /heap (a heap
// profile).
func Serve(ctx context.Context, role Role, out, errOut io.Writer) error {
	cfg, err := config.FromEnv()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: controlMux()}
	go func() { _ = srv.Serve(ctl) }()
	defer srv.Close()
	ready := func(r Ready) {
		r.Pid, r.Control = os.Getpid(), "http://"+ctl.Addr().String()
		b, _ := json.Marshal(r)
		fmt.Fprintf(out, "%s\n", b)
	}
	switch role {
	case RoleDev:
		return app.Dev(ctx, cfg, log, func(a app.DevAddrs) { ready(Ready{Kafka: a.Kafka, HTTP: a.HTTP}) })
	case RoleBroker:
		emb, err := broker.StartEmbedded(broker.EmbeddedConfig{DataDir: cfg.DataDir, Addr: cfg.DevKafkaAddr,
			SyncWrites: cfg.DevSyncWrites, Logf: func(format string, args ...any) { log.Warn(fmt.Sprintf(format, args...)) }})
		if err != nil {
			return err
		}
		ready(Ready{Kafka: emb.Addrs()})
		<-ctx.Done()
		return emb.Close()
	case RoleScheduler, RoleIngest, RoleProjector:
		if len(cfg.Brokers) == 0 {
			return fmt.Errorf("bench serve --role %s: set LINE_KAFKA_BROKERS", role)
		}
		if role == RoleScheduler {
			ready(Ready{Kafka: cfg.Brokers})
			return app.Scheduler(ctx, cfg, cfg.Brokers, log)
		}
		ln, err := httpapi.Listen(cfg.HTTPAddr)
		if err != nil {
			return err
		}
		ready(Ready{Kafka: cfg.Brokers, HTTP: ln.Addr().String()})
		if role == RoleIngest {
			return app.Ingest(ctx, cfg, cfg.Brokers, ln, log)
		}
		return app.Projector(ctx, cfg, cfg.Brokers, ln, log, app.ProjectorOptions{})
	}
	return fmt.Errorf("unknown role %q (dev, broker, scheduler, ingest, projector)", role)
}

func controlMux() *http.ServeMux {
	var (
		mu  sync.Mutex
		cpu *cpuProfile
	)
	mux := http.NewServeMux()
	mux.HandleFunc("/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(SelfStatus())
	})
	mux.HandleFunc("/cpu/start", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if cpu != nil {
			http.Error(w, "already profiling", http.StatusConflict)
			return
		}
		p := &cpuProfile{}
		if err := pprof.StartCPUProfile(p); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		cpu = p
	})
	mux.HandleFunc("/cpu/stop", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if cpu == nil {
			http.Error(w, "not profiling", http.StatusConflict)
			return
		}
		pprof.StopCPUProfile()
		_, _ = w.Write(cpu.bytes())
		cpu = nil
	})
	mux.HandleFunc("/heap", func(w http.ResponseWriter, _ *http.Request) {
		runtime.GC()
		_ = pprof.Lookup("heap").WriteTo(w, 0)
	})
	return mux
}

// cpuProfile collects a CPU profile in memory.
type cpuProfile struct {
	mu sync.Mutex
	b  []byte
}

func (p *cpuProfile) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.b = append(p.b, b...)
	return len(b), nil
}

func (p *cpuProfile) bytes() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.b
}

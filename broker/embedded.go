package broker

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/gofrs/flock"
	"github.com/twmb/franz-go/pkg/kfake"
)

const (
	// envDataDir is the environment variable users set to move the
	// embedded broker's data directory.
	envDataDir = "LINE_DATA_DIR"
	// envDevKafkaAddr is the environment variable users set to move the
	// embedded broker's listen address.
	envDevKafkaAddr = "LINE_DEV_KAFKA_ADDR"

	// defaultEmbeddedAddr is the address the embedded broker listens on if
	// EmbeddedConfig.Addr is empty.
	defaultEmbeddedAddr = "127.0.0.1:9092"

	lockFileName    = "LOCK"
	lockPIDFileName = "LOCK.pid"
	kafkaSubdir     = "kafka"
)

// ErrDataDirLocked is returned (wrapped) by StartEmbedded when another
// process, or another Embedded in this process, holds the data directory's
// lock. Check for it with errors.Is.
var ErrDataDirLocked = errors.New("data dir is locked by another process")

// dataDirLockedError is the error StartEmbedded returns when the data
// directory is locked. Its message tells the user what to do; it unwraps to
// ErrDataDirLocked.
type dataDirLockedError struct {
	dir string
	pid int // 0 if unknown
}

func (e *dataDirLockedError) Error() string {
	holder := "pid unknown"
	if e.pid > 0 {
		holder = "pid " + strconv.Itoa(e.pid)
	}
	return fmt.Sprintf("data dir %q is in use by another line dev (%s): stop it, or set %s to another directory",
		e.dir, holder, envDataDir)
}

func (*dataDirLockedError) Unwrap() error { return ErrDataDirLocked }

// EmbeddedConfig configures StartEmbedded.
type EmbeddedConfig struct {
	// DataDir is the directory holding the broker's state; it is created
	// if missing. The Kafka log lives in DataDir/kafka, the exclusive lock
	// in DataDir/LOCK and the lock holder's pid in DataDir/LOCK.pid.
	// DataDir is required.
	DataDir string

	// Addr is the host:port to listen on, e.g. "127.0.0.1:9092". Port 0
	// picks a random free port; Embedded.Addrs reports the real one. If
	// the host is empty or unspecified ("0.0.0.0", "::"), the broker
	// listens on all interfaces but advertises loopback to clients, since
	// an unspecified address is not something a client can dial. If Addr
	// is empty, "127.0.0.1:9092" is used.
	Addr string

	// SyncWrites fsyncs every produced batch before acknowledging it.
	// Without it, writes sit in the OS page cache until a segment rolls or
	// the broker is closed (Kafka's default), so a crash of the machine
	// (not of the process) can lose recent records.
	SyncWrites bool

	// Logf, if non-nil, receives the broker's warnings and errors.
	Logf func(format string, args ...any)

	// BrokerConfigs override the pinned broker configs, e.g. a lower
	// group.min.session.timeout.ms for tests that kill group members.
	BrokerConfigs map[string]string
}

// Embedded is a running single-broker development Kafka cluster with its data
// directory locked. Create it with StartEmbedded and stop it with Close.
type Embedded struct {
	dataDir string
	addrs   []string
	cluster *kfake.Cluster
	lock    *flock.Flock
	log     *embeddedLogger

	closeOnce sync.Once
	closeErr  error
}

// StartEmbedded locks cfg.DataDir and starts an in-process, disk-persistent
// single Kafka broker listening on cfg.Addr. Records, topics, committed
// offsets and producer state written before a Close are there again after
// the next StartEmbedded on the same DataDir.
//
// If another process (or another Embedded in this process) holds the data
// directory, this returns an error wrapping ErrDataDirLocked that names the
// holder's pid. If the address cannot be listened on, the lock is released
// and the error names the address and LINE_DEV_KAFKA_ADDR.
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("starting embedded kafka: no data dir configured (set %s)", envDataDir)
	}
	addr := cfg.Addr
	if addr == "" {
		addr = defaultEmbeddedAddr
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("starting embedded kafka: invalid listen address %q (want host:port; check %s): %w",
			addr, envDevKafkaAddr, err)
	}

	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating data dir %q: %w", cfg.DataDir, err)
	}
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	unlock := func() {
		_ = os.Remove(filepath.Join(cfg.DataDir, lockPIDFileName))
		_ = lock.Unlock()
		_ = lock.Close()
	}

	log := &embeddedLogger{logf: cfg.Logf}

	// kfake hard-wires its listeners to 127.0.0.1:<port>; we ignore the
	// address it asks for and listen where we were told to. kfake
	// advertises whatever our listener's Addr returns, so we advertise
	// loopback in place of an unspecified host.
	var (
		listenErr  error
		advertised string
	)
	listenFn := func(network, _ string) (net.Listener, error) {
		ln, err := net.Listen(network, addr)
		if err != nil {
			listenErr = err
			return nil, err
		}
		aln := advertise(ln)
		advertised = aln.Addr().String()
		return aln, nil
	}

	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DataDir(filepath.Join(cfg.DataDir, kafkaSubdir)),
		kfake.ListenFn(listenFn),
		kfake.WithLogger(log),
		kfake.BrokerConfigs(embeddedBrokerConfigs),
	}
	if len(cfg.BrokerConfigs) > 0 {
		opts = append(opts, kfake.BrokerConfigs(cfg.BrokerConfigs))
	}
	if cfg.SyncWrites {
		opts = append(opts, kfake.SyncWrites())
	}

	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		unlock()
		switch {
		case listenErr != nil && errors.Is(listenErr, syscall.EADDRINUSE):
			return nil, fmt.Errorf("starting embedded kafka: address %s is already in use (another line dev or kafka?): stop it, or set %s to a free host:port: %w",
				addr, envDevKafkaAddr, err)
		case listenErr != nil:
			return nil, fmt.Errorf("starting embedded kafka: cannot listen on %s: set %s to another host:port: %w",
				addr, envDevKafkaAddr, err)
		default:
			return nil, fmt.Errorf("starting embedded kafka from %q (if its state is corrupt, move the directory away to start empty): %w",
				filepath.Join(cfg.DataDir, kafkaSubdir), err)
		}
	}

	return &Embedded{
		dataDir: cfg.DataDir,
		addrs:   []string{advertised},
		cluster: cluster,
		lock:    lock,
		log:     log,
	}, nil
}

// embeddedBrokerConfigs pins the broker configs that decide how transactions,
// consumer groups and committed-offset retention behave to Kafka's defaults. kfake's defaults
// match these today; pinning them here also overrides anything a previous
// run persisted with AlterConfigs, so every dev session starts alike.
var embeddedBrokerConfigs = map[string]string{
	"transaction.max.timeout.ms":           "900000",    // 15m
	"transactional.id.expiration.ms":       "604800000", // 7d
	"group.min.session.timeout.ms":         "6000",
	"group.max.session.timeout.ms":         "300000",
	"group.consumer.session.timeout.ms":    "45000",
	"group.consumer.heartbeat.interval.ms": "5000",
	"offsets.retention.minutes":            "10080", // 7d
	"message.max.bytes":                    "1048588",
}

// lockDataDir takes the exclusive, non-blocking lock on dir/LOCK and records
// our pid in dir/LOCK.pid.
func lockDataDir(dir string) (*flock.Flock, error) {
	lock := flock.New(filepath.Join(dir, lockFileName))
	ok, err := lock.TryLock()
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("locking data dir %q: %w", dir, err)
	}
	if !ok {
		_ = lock.Close()
		return nil, &dataDirLockedError{dir: dir, pid: readPID(filepath.Join(dir, lockPIDFileName))}
	}

	// The pid file is informational only: the flock is the real lock. We
	// write it with a rename so a concurrent reader never sees it half
	// written.
	pidPath := filepath.Join(dir, lockPIDFileName)
	tmp := pidPath + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err == nil {
		if err := os.Rename(tmp, pidPath); err != nil {
			_ = os.Remove(tmp)
		}
	}
	return lock, nil
}

// readPID returns the pid recorded in path, or 0 if there is none.
func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// Addrs returns the host:port addresses clients should use as seed brokers.
// With port 0 in EmbeddedConfig.Addr, this holds the port actually chosen.
func (e *Embedded) Addrs() []string {
	return append([]string(nil), e.addrs...)
}

// Cluster returns the underlying kfake cluster, for tests that need kfake's
// controls (fault injection, request interception, and so on).
func (e *Embedded) Cluster() *kfake.Cluster {
	return e.cluster
}

// Close stops the broker, flushing its state to the data directory, and then
// releases the data directory lock. Clients should be closed first. Close is
// idempotent: later calls return the first call's result.
//
// The returned error reports state kfake failed to persist while shutting
// down (kfake itself only logs those), and failures releasing the lock.
func (e *Embedded) Close() error {
	e.closeOnce.Do(func() {
		e.log.startClosing()
		e.cluster.Close()
		errs := e.log.stopClosing()

		if err := os.Remove(filepath.Join(e.dataDir, lockPIDFileName)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing pid file: %w", err))
		}
		if err := e.lock.Unlock(); err != nil {
			errs = append(errs, fmt.Errorf("unlocking data dir %q: %w", e.dataDir, err))
		}
		if err := e.lock.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing lock file of data dir %q: %w", e.dataDir, err))
		}
		if err := errors.Join(errs...); err != nil {
			e.closeErr = fmt.Errorf("closing embedded kafka: %w", err)
		}
	})
	return e.closeErr
}

// advertise returns ln, or if ln is bound to an unspecified host ("0.0.0.0",
// "::" or an empty host), ln wrapped so that its Addr reports 127.0.0.1
// instead. kfake puts the listener's Addr into metadata responses, and
// clients cannot dial an unspecified address. A wildcard IPv6 listener is
// dual stack on every platform we develop on, so IPv4 loopback reaches it.
func advertise(ln net.Listener) net.Listener {
	ta, ok := ln.Addr().(*net.TCPAddr)
	if !ok || !ta.IP.IsUnspecified() {
		return ln
	}
	return &advertisedListener{Listener: ln, addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: ta.Port}}
}

// advertisedListener is a net.Listener whose Addr is overridden.
type advertisedListener struct {
	net.Listener
	addr net.Addr
}

func (l *advertisedListener) Addr() net.Addr { return l.addr }

// embeddedLogger adapts EmbeddedConfig.Logf to kfake's logger. It forwards
// warnings and errors, stops forwarding once the cluster is closed (kfake
// goroutines can outlive Close, and a test's t.Logf panics after the test
// ends), and collects errors logged while closing so Close can return them.
type embeddedLogger struct {
	logf func(format string, args ...any)

	closed atomic.Bool

	mu        sync.Mutex
	closing   bool
	closeErrs []error
}

func (l *embeddedLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	if level == kfake.LogLevelNone || level > kfake.LogLevelWarn {
		return
	}
	if level == kfake.LogLevelError {
		l.mu.Lock()
		if l.closing {
			l.closeErrs = append(l.closeErrs, fmt.Errorf("kafka: "+format, args...))
		}
		l.mu.Unlock()
	}
	if l.logf == nil || l.closed.Load() {
		return
	}
	l.logf("kafka %s: "+format, append([]any{level}, args...)...)
}

func (l *embeddedLogger) startClosing() {
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
}

func (l *embeddedLogger) stopClosing() []error {
	l.closed.Store(true)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closing = false
	return l.closeErrs
}

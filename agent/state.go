package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
)

// Identity is what an agent remembers between runs, in its state file: the
// worker it registered and how far it has read that worker's alloc topic.
type Identity struct {
	// Version of the file format (1).
	Version int `json:"version"`
	// Addr is the server the worker was registered with (informational).
	Addr string `json:"addr,omitempty"`
	// Pool and Worker are the worker's ids; Topic is its alloc topic
	// and Partition the partition of it that carries the worker's allocs
	// (0 for a per-worker topic; the worker's partition of the shared
	// alloc topic for a pool with shared delivery).
	Pool      string `json:"pool_id"`
	Worker    string `json:"worker_id"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition,omitempty"`
	// Delivery is the pool's delivery mode as the server answered it
	// (empty if it could not be asked: informational).
	Delivery string `json:"delivery,omitempty"`
	// Capacity the worker was registered with. An agent started with
	// another capacity registers a new worker.
	Capacity int64 `json:"capacity"`
	// Offset is the next offset of Topic (Partition) to read: every
	// alloc of this worker before it has been started (or skipped), and
	// none after it. On a shared topic the records of other workers
	// between saves are skipped again after a restart.
	Offset int64 `json:"offset"`
	// Registered is when the worker was registered.
	Registered time.Time `json:"registered_at"`
	// Generated is true once this state file has registered a worker:
	// later registrations ask the server for a new id, as the old id's
	// alloc topic may still be being deleted.
	Generated bool `json:"reregistered,omitempty"`
}

// stateFile is the agent's state file, locked for the agent's lifetime so
// that two agents never share an identity.
type stateFile struct {
	path string
	lock *flock.Flock
}

// DefaultStateDir is $XDG_STATE_HOME/line, or ~/.local/state/line.
func DefaultStateDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "line")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "line")
	}
	return filepath.Join(os.TempDir(), "line-state")
}

// StatePath is the state file of an agent of pool in dir; name (the
// requested worker id, may be empty) tells several agents of one pool on
// one machine apart.
func StatePath(dir, pool, name string) string {
	f := "worker-" + pool
	if name != "" {
		f += "-" + name
	}
	return filepath.Join(dir, f+".json")
}

// ErrStateInUse is returned when another agent holds the state file.
var ErrStateInUse = errors.New("state file in use by another agent")

func openState(path string) (*stateFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	lock := flock.New(path + ".lock")
	ok, err := lock.TryLock()
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if !ok {
		_ = lock.Close()
		return nil, fmt.Errorf("%w: %s (run each agent of a pool with its own --state-dir or --worker-id)", ErrStateInUse, path)
	}
	return &stateFile{path: path, lock: lock}, nil
}

// load returns the saved identity, or nil if there is none.
func (s *stateFile) load() (*Identity, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var id Identity
	if err := json.Unmarshal(b, &id); err != nil {
		return nil, fmt.Errorf("state file %s is damaged (%v); delete it to register a new worker", s.path, err)
	}
	return &id, nil
}

// save writes id atomically and durably: a temporary file, fsync, rename.
func (s *stateFile) save(id Identity) error {
	id.Version = 1
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("save state %s: %w", s.path, err)
	}
	return nil
}

func (s *stateFile) close() { _ = s.lock.Close() }

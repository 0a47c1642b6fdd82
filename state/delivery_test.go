package state

import (
	"strings"
	"testing"

	"github.com/line-sched/line/events"
)

// TestFoldDelivery: the pool keeps the delivery mode of its pool.created;
// a pool.created without one (every record written before delivery modes
// existed, and every per-worker pool since) means per-worker; the default
// is left out of the record, so old and new per-worker records are the
// same bytes; an unknown mode never reaches the fold.
func TestFoldDelivery(t *testing.T) {
	f := fxNew(t)
	f.ok("shared", fxAt(0), events.PoolCreatedData{Strategy: events.Spread, Delivery: events.Shared})
	f.ok("default", fxAt(0), events.PoolCreatedData{Strategy: events.Spread})
	for pool, want := range map[string]events.Delivery{"shared": events.Shared, "default": events.PerWorker} {
		if got := f.s.Pool(pool).Delivery; got != want {
			t.Errorf("pool %s: Delivery = %q, want %q", pool, got, want)
		}
	}

	// A record as written before the field existed decodes to per-worker.
	old := `{"id":"ev1","type":"pool.created","v":1,"pool":"old","at":"2026-01-02T03:04:05Z","data":{"strategy":"binpack","locality_wait_ms":0}}`
	e, err := events.Unmarshal([]byte(old))
	if err != nil {
		t.Fatalf("old pool.created: %v", err)
	}
	if err := f.s.Apply(e, events.Position{Partition: 3, Offset: 99}); err != nil {
		t.Fatalf("apply old pool.created: %v", err)
	}
	if got := f.s.Pool("old").Delivery; got != events.PerWorker {
		t.Errorf("old pool: Delivery = %q, want per-worker", got)
	}

	b, err := events.Marshal(events.Envelope{ID: "ev2", Type: events.PoolCreated, V: events.SchemaVersion, Pool: "p",
		At: fxAt(0), Data: events.PoolCreatedData{Strategy: events.Spread}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "delivery") {
		t.Errorf("a per-worker pool.created carries a delivery field: %s", b)
	}
	b, err = events.Marshal(events.Envelope{ID: "ev3", Type: events.PoolCreated, V: events.SchemaVersion, Pool: "p",
		At: fxAt(0), Data: events.PoolCreatedData{Strategy: events.Spread, Delivery: events.Shared}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"delivery":"shared"`) {
		t.Errorf("a shared pool.created lacks its delivery: %s", b)
	}

	bad := strings.Replace(old, `"locality_wait_ms":0`, `"locality_wait_ms":0,"delivery":"broadcast"`, 1)
	if _, err := events.Unmarshal([]byte(bad)); err == nil || !strings.Contains(err.Error(), "delivery") {
		t.Errorf("pool.created with delivery broadcast: err = %v, want an error naming delivery", err)
	}
}

// Package testkit holds helpers for line's tests: an embedded broker per
// test, a configuration with short TTLs, an ingest service serving the HTTP
// API on a random loopback port, helpers that read the events topic back
// exactly as a read_committed consumer sees it, a producer that appends
// hand-made events where line would put them, and a small JSON HTTP client.
//
// Everything here runs on real TCP against franz-go's kfake broker: no
// mocks. Every helper that can fail takes a testing.TB and fails the test;
// every resource it opens is released by t.Cleanup, in reverse order of
// creation (the ingest service stops before its broker).
//
// A typical test:
//
//	emb := testkit.StartBroker(t)
//	cfg := testkit.Config(t)
//	base, _ := testkit.StartIngest(t, cfg, emb.Addrs())
//	res := testkit.Do(t, "POST", base+"/v1/pools", map[string]any{"pool_id": "p1"})
//	if res.Status != 201 { t.Fatalf("create pool: %s", res) }
//	evs := testkit.ReadEvents(t, emb.Addrs(), cfg.Topics.Events())
//
// The package is a regular (non-test) package so that tests of every
// package can import it; production code must not.
package testkit

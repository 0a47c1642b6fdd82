// Package audit replays a deployment's events topic into scratch state with
// the shared fold (package state) and verifies, event by event, that the
// recorded history is one the system may write: no worker is ever
// overcommitted, every alloc.placed was valid where it stands on the log
// (pool, worker, room, locality judged against what the deciding scheduler
// could see), every completion and expiry refers to a live alloc, every event
// applies (a *state.Rejection is a violation), every record decodes, and at
// the end every eval stands in exactly one status and the fold's invariants
// hold (state.Check).
//
// The audit never re-decides: decisions are facts, and it only verifies
// them. Checker is the pure core (envelopes in, violations out) so that tests
// can feed it forged histories; Replay reads the topic from Kafka and drives
// a Checker; History collects the history of one eval, alloc or worker; and
// ViewPool describes a pool's state at the cut.
//
// Positions are per partition. Pools never span partitions, so the checks
// only depend on each partition's order; Replay merges the partitions by
// event time (each partition's order kept) so that output reads as a
// timeline.
package audit

// Package bench is line's scenario harness: the end-to-end benchmarks that
// `line bench <scenario>` runs (see BENCHMARKS.md).
//
// The system under test runs in child processes that the harness starts
// (`line bench serve --role dev|broker|scheduler`): `line dev` (app.Dev:
// embedded broker, ingest, projector and scheduler in one process), or the
// embedded broker alone and a scheduler on its own (takeover). The load
// generators, the watchers of the worker topics and the broker-limit copy run
// in the harness's own process, so that a child's peak RSS (VmHWM) and CPU
// profile are the service's alone.
//
// Scenarios:
//
//   - core: scheduler.BenchmarkDecide at full size, via `go test` (needs
//     the Go toolchain and the source tree).
//   - c1m: register workers, submit evals through the batch endpoint, until
//     every alloc is committed on its worker topic; with the broker limit
//     (a transactional copy of as many records between two topics) measured
//     on the same broker in the same run.
//   - c1m-shared: c1m with the pool's delivery shared (allocs on the shared
//     alloc topic, keyed by worker): same measures, its own gate.
//   - latency: a paced stream of single-eval POSTs; submit -> alloc readable
//     (read_committed) on the worker topic.
//   - ingest: single-eval POSTs from a closed loop of concurrent connections.
//   - replay: `line audit` (audit.Replay) and a projector rebuild
//     (projections) over the c1m history.
//   - takeover: a fresh scheduler process on a partition with
//     TakeoverEvents (1M) events of history, made by a smaller c1m run:
//     time until it places again (plus one run on the c1m history, twice
//     as long at 1M evals, when one was left).
//
// Every scenario runs Runs times (default 3) and reports per-run values and
// medians, with the machine's core count and load.
package bench

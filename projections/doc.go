// Package projections materializes the fold of the events topic in Pebble,
// for queries.
//
// A Projector reads every partition of the events topic (a plain consumer,
// read_committed, no group) and keeps the shared fold (state.State) in
// memory: each record is applied with state.Apply, the only definition of
// what an event means. A reader goroutine polls and decodes the records
// (each poll split into chunks decoded on every core, then applied
// strictly in log order) while the projector folds and writes the
// previous ones. A batch is what
// was decoded so far (while polls come in full, as in a catch-up, up to
// Options.MaxBatchRecords records); the projector writes, in one Pebble
// batch, the rows of the entities the batch's events touched, recomputed
// from the state (one function per kind of row), with their secondary
// index entries, and the offsets the batch reflects. The batch commits
// atomically, so the views on disk are always the fold of a committed
// prefix of the log, and that prefix is the checkpoint stored beside them.
//
// Rows are written blind: the index entries a row had before the batch
// are known from the state before the batch's first event that touched
// it (the view is the fold of the log up to the checkpoint), so nothing is
// read back from Pebble while writing.
//
// Views that hold no row yet (a rebuild, new views) are written by a bulk
// load instead (see bulk.go): the backlog is folded into memory, then the
// full materialization of the fold is written in key order into sstables
// and ingested with the checkpoint in one atomic ingestion. While a bulk
// load runs, the garbage collector's target is raised (GOGC 200, process
// wide, unless it is higher): every collection scans the whole fold, so
// the load trades some memory for fewer of them.
//
// On open, the projector reads the checkpoint and folds the log from
// offset 0 into memory without writing anything below the checkpoint (the
// fold is deterministic: the memory then equals the state the views were
// written from); from the checkpoint on it writes again. A crash, even one
// that abandons Pebble without closing it, thus loses nothing committed and
// applies nothing twice. Rebuild wipes the views and starts from 0.
//
// # Key layout
//
// Ids are key segments separated by '/'; '%' and '/' inside an id (never
// in a valid id) are percent-encoded, so keys sort by id. Values are JSON
// (see PoolView, WorkerView, EvalView, AllocView, ReplicaView); index
// entries have empty values.
//
//	meta/format                                      layout version of the rows
//	meta/topic                                       the events topic the views fold
//	meta/offset/<partition>                          checkpoint: next offset to apply (decimal)
//	pool/<pool>                                      PoolView
//	worker/<pool>/<worker>                           WorkerView without running_allocs
//	eval/<pool>/<eval>                               EvalView
//	alloc/<pool>/<alloc>                             AllocView
//	replica/<pool>/<dataset>/<worker>                ReplicaView (replicas by dataset)
//	idx/ttl/<pool>/<deadline>/alloc/<alloc>          TTL index: a running alloc's deadline
//	idx/ttl/<pool>/<deadline>/worker/<worker>        TTL index: a worker's deadline
//	idx/ttl/<pool>/<deadline>/replica/<worker>/<ds>  TTL index: a replica's deadline
//	idx/free/<pool>/<free>/<worker>                  free-capacity index
//	idx/evalstatus/<pool>/<status>/<eval>            evals by status
//	idx/deadletter/<pool>/<eval>                     dead-lettered evals
//	idx/workeralloc/<pool>/<worker>/<alloc>          running allocs by worker
//
// A worker's row leaves out its running allocs: it is rewritten whenever
// the worker's free capacity changes, and a busy worker runs hundreds of
// allocs. Queries read them from idx/workeralloc, whose entries are index
// entries of the alloc rows (a running alloc has one), in alloc id order.
//
// <deadline> is UTC with nanoseconds in a fixed width
// (2006-01-02T15:04:05.000000000Z) and <free> is zero-padded to 20 digits,
// so that byte order is deadline or capacity order.
//
// Every query reads one Pebble snapshot (Snapshot): its rows and its
// checkpoint come from the same batch.
package projections

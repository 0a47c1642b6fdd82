// Package scheduler is the pure deciding core of line's scheduler: given a
// pool's state (the fold of its events in log order, see package state), a
// decision time and a Config, Decide returns the round's decisions as event
// data, in the order they must be appended, plus the records to deliver.
//
// Decide does no I/O, reads no clock, draws no random number and never
// depends on map iteration order: the same state, time and config give the
// same Decision, byte for byte, so that the core can be tested exhaustively
// and replayed. It never changes the state either. The state only advances
// by folding the log; a round's own earlier decisions are accounted for with
// scratch bookkeeping inside the call. The loop around it must commit a
// round and wait until the round's events were folded before deciding again
// for the same pool.
//
// # A round, in order
//
//  1. A deleted pool: nothing. A disbanded pool: eval.rejected ("pool
//     disbanded") for every pending eval (queue order) and every eval
//     awaiting a retry decision (expiry order). Once now >= DeleteAt:
//     pool.deleted, and every worker's alloc topic in TopicsToDelete
//     (sorted by worker id); no expiry in that round. Until then, expiry
//     (step 3) goes on. No placement in a disbanded pool.
//  2. Retry decisions, for the evals the fold shows placed with an expired
//     alloc (state.Pool.EachAwaitingRetry, in expiry order): Attempts >=
//     MaxRetry gives eval.dead_lettered and a DeadLetterRecord, otherwise
//     eval.requeued with Attempt = Attempts + 1. A retry decision is made in
//     the round after the alloc.expired was folded, never in the same round:
//     whatever foreign event lands in between, both decisions stay valid.
//  3. Expiry, only if now >= Config.ExpireFrom, from the pool's TTL index
//     (state.TTLIndex, cost proportional to what is due): first
//     alloc.expired ("not heartbeated") for each running alloc whose
//     deadline <= now, in deadline order; then, for each worker whose
//     deadline <= now, alloc.expired ("worker expired") for each of its
//     other running allocs (by alloc id) and worker.expired, its topic going
//     to TopicsToDelete; then replica.expired for each replica whose
//     deadline <= now, except those of workers expired in this round.
//     Expiring an alloc does not free capacity within the round.
//  4. Placement of pending evals, in queue order.
//
// # Placement
//
// Feasibility: a worker can take an eval if it is registered, its deadline
// is after now (so no expired or expiring worker), it is not reserved for a
// starving eval (below) and its free capacity minus what this round already
// placed on it is at least the eval's size. Capacity released by expiries
// or completions only counts once folded, in a later round.
//
// Ranking: a worker holding a live replica of the eval's dataset (replica
// deadline after now) comes first; among holders, or among all feasible
// workers when no holder fits, the pool's strategy decides: spread takes
// the most free worker (the original system's rule), binpack the least free
// worker that fits.
//
// Selection and tie-break: among workers equal under the strategy (the same
// free capacity left), the one that had less free capacity at the start of
// the round wins, i.e. the one that received less in this round; then the
// lowest worker id (byte order). So at the start of a round ties go to the
// lowest id, and within a round equal workers take turns. The rule only
// compares integers on the hot path (the round numbers its workers once by
// free capacity and id) and does not depend on any iteration order.
//
// Cost: a round costs O(workers) to set up (the live workers with room,
// numbered by free capacity and id), then per placement: for spread, a
// map lookup and an append, plus its share of sorting a group once (O(log
// workers)); for binpack, a binary search and a short memmove (O(log
// workers) plus at most a block); for both, O(log sizes) to count the
// candidates, where sizes is the number of distinct eval sizes that fit
// at the start of the round. Spread keeps the workers in groups of equal
// free capacity, the most free group sorted by the tie-break and taken
// from the front: as free capacity only goes down within a round, no
// worker ever joins the most free group, so a worker taken from it joins
// a lower group by an append, and a group is sorted once, when it becomes
// the most free. Binpack keeps a sorted list cut in blocks. Both count the
// candidates of each size in a Fenwick tree over the sizes in play.
//
// Locality (delay scheduling): an eval naming a dataset is placed on a
// holder when one fits (locality "hit"). A holder counts if its replica and
// its worker are live and its capacity could ever fit the eval. When such
// holders exist but are all full (or reserved), the eval waits, skipped by
// the round, until it has waited (now - QueuedAt) at least the pool's
// LocalityWait, then it is placed elsewhere (locality "miss"). When no
// worker holds the dataset, it is placed at once (miss). An eval never waits
// for locality longer than Config.StarvationAge.
//
// No head-of-line blocking: an eval that does not fit is skipped and does
// not stop the smaller ones behind it. The queue keeps a list per eval size,
// and the round merges the lists of the sizes that still fit back into queue
// order, so evals that cannot fit are never visited: a round costs the
// evals it places or skips for locality, not the length of the queue, and
// stops as soon as no worker has room for the smallest size left.
//
// Fairness (starvation rule): at the start of a round, the starving eval is
// the first pending eval, in queue order, that has waited at least
// Config.StarvationAge, that no live worker has room for right now, and that
// some live worker's capacity could fit. If there is one, the live worker
// with the most free capacity among those whose capacity is at least the
// eval's size (ties: lowest id) is reserved for it: no other eval is placed
// on that worker in this round. The starving eval itself cannot be placed in
// that round (nothing fits it), but the reserved worker only gets emptier,
// so it stays the reservation until the eval fits; in the first round where
// it fits, it is no longer starving and is placed in queue order, ahead of
// every younger eval. One reservation at most per round, and none in a
// round where nothing could be placed anyway. An eval larger
// than every live worker's capacity reserves nothing (it waits for a bigger
// worker or the pool's disband).
//
// Placement records: the alloc id is AllocID(pool, eval, attempt), the
// deadline now + AllocTTL, the topic the worker's alloc topic, the candidates
// the number of feasible workers for the eval at its turn, waited_ms the time
// since the eval was queued. Each alloc.placed has one AllocRecord in
// Deliveries, in the same order.
//
// Times: Decide truncates now to the log's precision (milliseconds, UTC),
// the time events.New gives the events, so that every comparison it makes is
// the one the fold makes.
package scheduler

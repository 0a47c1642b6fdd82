// Package procprio sets the CPU priority (the nice value) of a process.
// The projector lowers its own so that, on a machine it shares with the
// scheduler and ingest, the placement path gets the CPU first and the
// views are built from what is left (config.Config.ProjectorNice).
package procprio

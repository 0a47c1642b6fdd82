//go:build race

package scheduler

// raceEnabled shortens the property tests under the race detector, which
// slows them tenfold.
const raceEnabled = true

//go:build !linux

package procprio

import "errors"

// Renice is only implemented on Linux.
func Renice(pid, nice int) error {
	return errors.New("setting a process's nice value is only supported on Linux here")
}

//go:build !linux

package bench

import "errors"

// renice is only implemented on Linux.
func renice(pid, nice int) error {
	return errors.New("setting a process's nice value is only supported on Linux here")
}

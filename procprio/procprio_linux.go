package procprio

import (
	"fmt"
	"os"
	"strconv"
	"syscall"

	"github.com/hashicorp/go-multierror"
)

// Renice sets the nice value of every thread of process pid. On Linux a
// nice value belongs to a thread, and threads inherit their creator's:
// setting it on every thread there is now covers the threads started later.
func Renice(pid, nice int) error {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return fmt.Errorf("list the threads of %d: %w", pid, err)
	}
	var errs *multierror.Error
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil {
			errs = multierror.Append(errs, fmt.Errorf("thread %d: %w", tid, err))
		}
	}
	return errs.ErrorOrNil()
}

//go:build unix

package agent

import (
	"os"
	"os/exec"
	"syscall"
)

// setProcAttr puts the command in its own process group: a Ctrl-C in the
// agent's terminal reaches the agent (which drains) and not the allocs,
// and killGroup reaches everything the command started. On Linux the
// command is also killed if the agent dies (pdeathsig), so that no alloc
// outlives an agent killed with SIGKILL.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setDeathSignal(cmd.SysProcAttr)
}

// killGroup kills the process group of cmd.
func killGroup(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
		_ = cmd.Process.Kill()
	}
}

// signaled reports whether the process was ended by a signal.
func signaled(ps *os.ProcessState) bool {
	ws, ok := ps.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled()
}

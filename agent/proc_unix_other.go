//go:build unix && !linux

package agent

import "syscall"

func setDeathSignal(*syscall.SysProcAttr) {}

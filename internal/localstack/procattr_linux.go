//go:build linux

package localstack

import "syscall"

// sysProcAttr puts a child in a process group of its own, and has the
// kernel kill it when the thread that started it exits: a test binary that
// panics or is killed leaves no gateway or manager behind.
//
// NOTE: Pdeathsig follows the starting OS thread, not the process. Go keeps
// its threads alive unless a goroutine exits while locked to one, which
// nothing here does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

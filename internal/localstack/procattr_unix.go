//go:build unix

package localstack

import (
	"os"
	"os/exec"
	"syscall"
)

// terminateGroup asks every process in the group that p leads to stop.
func terminateGroup(p *os.Process) { _ = syscall.Kill(-p.Pid, syscall.SIGTERM) }

// killGroup kills every process in the group that p leads. A group that is
// gone is no error; while any member lives, its id cannot be reused.
func killGroup(p *os.Process) { _ = syscall.Kill(-p.Pid, syscall.SIGKILL) }

// terminatedBySIGTERM reports whether a process ended because of SIGTERM,
// which is how a stopped process that does not catch it ends.
func terminatedBySIGTERM(exit *exec.ExitError) bool {
	ws, ok := exit.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM
}

//go:build !unix

package localstack

import (
	"os"
	"os/exec"
	"syscall"
)

// Without Unix process groups, the stack stops the processes it started
// itself, and only by killing them.

func sysProcAttr() *syscall.SysProcAttr { return nil }

func terminateGroup(p *os.Process) { _ = p.Kill() }

func killGroup(p *os.Process) { _ = p.Kill() }

func terminatedBySIGTERM(*exec.ExitError) bool { return false }

//go:build unix && !linux

package localstack

import "syscall"

// sysProcAttr puts a child in a process group of its own, so that stopping
// it stops its children too. Without Linux's Pdeathsig, a child outlives a
// parent that is killed; Close stops them in every other case.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

package main

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// On a small machine the driver, the upstream and the proxy under test
// compete for the same cores, and the scheduler's choices swing throughput
// by a quarter from one run to the next. Pinning gives the proxy a core of
// its own (as a pod with a one-CPU limit has) and everything else the rest,
// so the figures compare proxies rather than scheduling luck.

// cpuSet builds an affinity mask.
func cpuSet(cpus []int) *unix.CPUSet {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	return &set
}

// pinSelf moves every thread of this process onto cpus; threads started
// later inherit the mask from the thread that starts them, and so do child
// processes.
func pinSelf(cpus []int) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	set := cpuSet(cpus)
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		// A thread may exit meanwhile; that is no failure.
		if err := unix.SchedSetaffinity(tid, set); err != nil && err != unix.ESRCH {
			return err
		}
	}
	return nil
}

// startPinned starts cmd on cpus: the child inherits the mask of the thread
// that forks it, so this thread takes the mask for the moment of the fork.
// The child's Go runtime then sizes GOMAXPROCS to it.
func startPinned(cmd *exec.Cmd, cpus []int) error {
	if len(cpus) == 0 {
		return cmd.Start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return cmd.Start()
	}
	if err := unix.SchedSetaffinity(0, cpuSet(cpus)); err != nil {
		return cmd.Start()
	}
	err := cmd.Start()
	// Best effort: should the restore fail, the thread keeps the proxy's
	// mask, which costs the driver some parallelism and nothing else.
	_ = unix.SchedSetaffinity(0, &old)
	return err
}

// allCPUs lists the cores this process may run on, in order.
func allCPUs() []int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil
	}
	var cpus []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus
}

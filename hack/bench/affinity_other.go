//go:build !linux

package main

import "os/exec"

// Pinning is Linux-only; elsewhere everything shares every core.
func pinSelf([]int) error { return nil }

func startPinned(cmd *exec.Cmd, _ []int) error { return cmd.Start() }

func allCPUs() []int { return nil }

package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat. It is
// 100 on every Linux architecture Go supports; reading it needs sysconf, and
// so cgo, which this static tool avoids.
const clockTicks = 100

// procSample is what Linux reports about one process at one moment.
type procSample struct {
	// CPU is user plus system time, all threads together.
	CPU time.Duration
	// RSS is the resident set now, PeakRSS the highest since the process
	// started or since resetPeakRSS.
	RSS, PeakRSS int64
}

// readProc samples the process pid from /proc.
func readProc(pid int) (procSample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procSample{}, fmt.Errorf("read stat of %d: %w", pid, err)
	}
	// The command name, field 2, is in parentheses and may contain spaces;
	// the fields after the last ')' start with field 3 (state).
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return procSample{}, fmt.Errorf("parse stat of %d: %q", pid, stat)
	}
	fields := strings.Fields(string(stat[end+1:]))
	if len(fields) < 13 {
		return procSample{}, fmt.Errorf("parse stat of %d: %d fields", pid, len(fields))
	}
	// utime and stime are fields 14 and 15, so 11 and 12 after the state.
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return procSample{}, fmt.Errorf("parse CPU times of %d: %w", pid, errors.Join(err1, err2))
	}
	s := procSample{CPU: time.Duration(utime+stime) * time.Second / clockTicks}

	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procSample{}, fmt.Errorf("read status of %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		switch {
		case name == "VmRSS" && err == nil:
			s.RSS = kb * 1024
		case name == "VmHWM" && err == nil:
			s.PeakRSS = kb * 1024
		}
	}
	return s, nil
}

// resetPeakRSS restarts the peak resident set measurement of pid (Linux 4.0+),
// so that each measurement reports its own peak.
func resetPeakRSS(pid int) error {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		return fmt.Errorf("reset peak RSS of %d: %w", pid, err)
	}
	return nil
}

// mib converts bytes to MiB for reports.
func mib(b int64) float64 { return float64(b) / (1 << 20) }

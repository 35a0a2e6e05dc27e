package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// managerProcess is `mcpgate manager` running as a child, so that its CPU
// time and memory are its own and readable in /proc.
type managerProcess struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process has been reaped
	err     error         // how it exited; read only after done is closed
}

func startManagerProcess(bin, kubeconfig, clerkAPIURL, logPath string) (*managerProcess, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create manager log: %w", err)
	}
	cmd := exec.Command(bin, "manager",
		"--metrics-bind-address=0",
		"--health-probe-bind-address=127.0.0.1:0",
		"--gateway-image="+benchGatewayImage,
		"--cluster-resource-namespace="+benchOperatorNamespace,
		"--clerk-api-url="+clerkAPIURL)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start manager: %w", err)
	}
	m := &managerProcess{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		m.err = cmd.Wait()
		_ = logFile.Close()
		close(m.done)
	}()
	return m, nil
}

func (m *managerProcess) pid() int { return m.cmd.Process.Pid }

func (m *managerProcess) exited() <-chan struct{} { return m.done }

// exitErr is how the manager exited; valid once exited is closed.
func (m *managerProcess) exitErr() error { return m.err }

// waitStarted waits until the manager's log says its workers run.
func (m *managerProcess) waitStarted(ctx context.Context) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if log, err := os.ReadFile(m.logPath); err == nil && bytes.Contains(log, []byte(managerStartedLine)) {
			return nil
		}
		select {
		case <-m.done:
			return fmt.Errorf("manager exited before it started its workers: %w", m.err)
		case <-ctx.Done():
			return fmt.Errorf("manager did not start its workers: %w", context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM, as the kubelet would, and kills the manager if it has
// not exited within grace.
func (m *managerProcess) stop(grace time.Duration) error {
	select {
	case <-m.done:
		return nil
	default:
	}
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal manager: %w", err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-m.done:
		return nil
	case <-timer.C:
		_ = m.cmd.Process.Kill()
		<-m.done
		return fmt.Errorf("manager did not exit within %s of SIGTERM and was killed", grace)
	}
}

// logTail is the last n lines of the manager's log.
func (m *managerProcess) logTail(n int) string {
	f, err := os.Open(m.logPath)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	defer func() { _ = f.Close() }()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// procSampler samples a process from /proc until stopped, keeping the
// largest resident set seen and the latest sample.
type procSampler struct {
	pid      int
	quit     chan struct{}
	finished chan struct{}
	once     sync.Once

	// Written by the sampling goroutine; read after finished is closed.
	maxRSS int64
	last   procSample
	ok     bool
	err    error
}

func startProcSampler(pid int, every time.Duration) *procSampler {
	p := &procSampler{pid: pid, quit: make(chan struct{}), finished: make(chan struct{})}
	go p.loop(every)
	return p
}

func (p *procSampler) loop(every time.Duration) {
	defer close(p.finished)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		p.sample()
		select {
		case <-p.quit:
			p.sample() // the CPU time up to the very end
			return
		case <-tick.C:
		}
	}
}

func (p *procSampler) sample() {
	s, err := readProc(p.pid)
	if err != nil {
		p.err = err
		return
	}
	p.last, p.ok, p.err = s, true, nil
	p.maxRSS = max(p.maxRSS, s.RSS, s.PeakRSS)
}

// stop ends the sampling and returns the peak resident set (the kernel's
// high-water mark, or a higher sample) and the CPU time of the last sample.
func (p *procSampler) stop() (peakRSS int64, cpu time.Duration, err error) {
	p.once.Do(func() { close(p.quit) })
	<-p.finished
	if !p.ok {
		return 0, 0, fmt.Errorf("sample manager: %w", p.err)
	}
	if p.err != nil {
		// The manager went away before the end; its figures are incomplete.
		return 0, 0, fmt.Errorf("sample manager at the end: %w", p.err)
	}
	return p.maxRSS, p.last.CPU, nil
}

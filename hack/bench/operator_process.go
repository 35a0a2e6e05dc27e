package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/mcpgate/mcpgate/internal/localstack"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

// waitStarted waits until the manager's log says its workers run, which
// is later than /readyz: the benchmark's clock starts when the McpServer
// controller can act.
func waitStarted(ctx context.Context, mgr *localstack.Manager) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if log, err := os.ReadFile(mgr.LogPath); err == nil && bytes.Contains(log, []byte(managerStartedLine)) {
			return nil
		}
		select {
		case <-mgr.Exited():
			return fmt.Errorf("manager exited before it started its workers: %w", mgr.ExitErr())
		case <-ctx.Done():
			return fmt.Errorf("manager did not start its workers: %w", context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// logTail is the last n lines of the manager's log.
func logTail(mgr *localstack.Manager, n int) string {
	log, err := os.ReadFile(mgr.LogPath)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return testenv.LastLines(string(log), n)
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

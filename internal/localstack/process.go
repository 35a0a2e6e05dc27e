package localstack

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// process is a child process in a process group of its own, so that
// stopping it stops everything it started too, and (on Linux) killed by the
// kernel if this process dies first, so that a crashed test or demo leaves
// no gateway or manager behind. Its output goes to a log file.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // how it exited; read only after done is closed

	stopOnce sync.Once
	stopErr  error
}

// processSpec describes a process to start.
type processSpec struct {
	name string   // for errors and logs
	path string   // the executable
	args []string // without the executable
	env  []string // added to this process's environment
	// clearEnv starts the process with env alone, not this process's
	// environment.
	clearEnv bool
	logPath  string // stdout (unless firstLine) and stderr are appended here
	// firstLine, if set, receives the first line the process prints to
	// stdout; the rest of stdout goes to the log. Commands under hack/
	// announce their addresses this way.
	firstLine chan<- string
}

// startProcess starts spec. The caller must stop the process.
func startProcess(spec processSpec) (*process, error) {
	logFile, err := os.OpenFile(spec.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log of %s: %w", spec.name, err)
	}
	cmd := exec.Command(spec.path, spec.args...)
	cmd.Env = append(os.Environ(), spec.env...)
	if spec.clearEnv {
		cmd.Env = spec.env
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr()

	var stdoutR, stdoutW *os.File
	if spec.firstLine != nil {
		// NOTE: an *os.File rather than cmd.StdoutPipe, so that Wait does not
		// wait for the reader, and the reader sees EOF when the process exits.
		if stdoutR, stdoutW, err = os.Pipe(); err != nil {
			_ = logFile.Close()
			return nil, fmt.Errorf("pipe for %s: %w", spec.name, err)
		}
		cmd.Stdout = stdoutW
	}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		closeAll(stdoutR, stdoutW)
		return nil, fmt.Errorf("start %s: %w", spec.name, err)
	}
	p := &process{name: spec.name, cmd: cmd, done: make(chan struct{})}
	var copied sync.WaitGroup
	if spec.firstLine != nil {
		_ = stdoutW.Close() // the child holds its own copy
		copied.Add(1)
		go func() {
			defer copied.Done()
			relayFirstLine(stdoutR, logFile, spec.firstLine)
		}()
	}
	go func() {
		p.err = cmd.Wait()
		// Whatever the process left in its group goes with it. NOTE: this
		// runs right after the reap, long before its id could be reused.
		killGroup(cmd.Process)
		copied.Wait()
		_ = logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// relayFirstLine sends the first line of r to first (or closes first when
// there is none) and copies the rest to log.
func relayFirstLine(r *os.File, log io.Writer, first chan<- string) {
	defer func() { _ = r.Close() }()
	br := bufio.NewReader(r)
	line, err := br.ReadString('\n')
	if err != nil {
		close(first)
		return
	}
	first <- line
	_, _ = io.Copy(log, br)
}

func closeAll(files ...*os.File) {
	for _, f := range files {
		if f != nil {
			_ = f.Close()
		}
	}
}

// pid is the process id, which is also its process group id.
func (p *process) pid() int { return p.cmd.Process.Pid }

// exited is closed once the process has exited.
func (p *process) exited() <-chan struct{} { return p.done }

// exitErr is how the process exited; only valid once exited is closed.
func (p *process) exitErr() error { return p.err }

// stop sends SIGTERM to the process group, waits up to grace for the
// process to exit, then kills the group. Whatever the process left in its
// group is killed once it exits (see startProcess). It is safe to call more
// than once and concurrently; the result reports an unclean exit (a kill,
// or a non-zero status).
func (p *process) stop(grace time.Duration) error {
	p.stopOnce.Do(func() { p.stopErr = p.terminate(grace) })
	return p.stopErr
}

func (p *process) terminate(grace time.Duration) error {
	select {
	case <-p.done:
		return p.describeExit(false)
	default:
	}
	// NOTE: the group is signalled only until its leader is seen to exit,
	// never long after, when its id could belong to another process.
	terminateGroup(p.cmd.Process)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	killed := false
	select {
	case <-p.done:
	case <-timer.C:
		killed = true
		killGroup(p.cmd.Process)
		<-p.done
	}
	return p.describeExit(killed)
}

// describeExit turns the exit status into an error, treating the status a
// SIGTERM leads to as a clean stop.
func (p *process) describeExit(killed bool) error {
	if killed {
		return fmt.Errorf("%s did not stop within its grace period and was killed", p.name)
	}
	var exit *exec.ExitError
	if p.err == nil || (errors.As(p.err, &exit) && terminatedBySIGTERM(exit)) {
		return nil
	}
	return fmt.Errorf("%s: %w", p.name, p.err)
}

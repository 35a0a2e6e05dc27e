package testenv

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/syncbuf"
)

// Process is a command of this repository running as a subprocess: `mcpgate
// manager` for the tests of the installation and of control-plane faults,
// the hack/ commands for their binary tests.
type Process struct {
	// Name tells processes apart in failure messages.
	Name string
	// Logs collects the process's stderr, and its stdout after the first
	// line (see JSONLine).
	Logs    syncbuf.Buffer
	cmd     *exec.Cmd
	stdout  *firstLine
	exited  chan struct{} // closed when the process has exited
	waitErr error         // what cmd.Wait returned; read after exited is closed
}

// Manager is `mcpgate manager` running as a subprocess.
type Manager = Process

// StartManager runs mcpgate with args (starting with "manager") and only
// what a pod would have in its environment: the kubeconfig, a HOME and PATH,
// so no MCPGATE_* setting of the test's leaks in.
func StartManager(t testing.TB, name, kubeconfig string, args ...string) *Manager {
	t.Helper()
	env := []string{"KUBECONFIG=" + kubeconfig, "HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	return StartProcess(t, name, env, Binary(t, "./cmd/mcpgate"), args...)
}

// StartCommand builds the module's package pkg (such as
// "./hack/sample-mcp-server") once per test process and runs it with args
// and the test's environment.
func StartCommand(t testing.TB, pkg string, args ...string) *Process {
	t.Helper()
	return StartProcess(t, pkg, nil, Binary(t, pkg), args...)
}

// StartProcess runs bin with args and env (nil: the test's). When the test
// ends the process gets SIGTERM, then SIGKILL after 10s; a failed test logs
// the end of its output.
func StartProcess(t testing.TB, name string, env []string, bin string, args ...string) *Process {
	t.Helper()
	p := &Process{Name: name, cmd: exec.Command(bin, args...), exited: make(chan struct{})}
	p.stdout = newFirstLine(&p.Logs)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, &p.Logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		if !p.Stop(10 * time.Second) {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s output (last lines):\n%s", p.Name, LastLines(p.Logs.String(), 40))
		}
	})
	return p
}

// JSONLine decodes the first line the process prints to stdout into v,
// refusing unknown fields: the hack/ commands print one JSON line that says
// where they listen. It fails the test when the process exits first, or
// prints no line within a minute.
func (p *Process) JSONLine(t testing.TB, v any) {
	t.Helper()
	p.stdout.decode(t, p.Name, p.exited, &p.Logs, v)
}

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Running reports whether the process has not exited.
func (p *Process) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// ExitErr waits for the process to exit and returns its error (nil: exit 0).
func (p *Process) ExitErr() error {
	<-p.exited
	return p.waitErr
}

// Stop sends SIGTERM and reports whether the process exited within timeout.
func (p *Process) Stop(timeout time.Duration) bool {
	if !p.Running() {
		return true
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return true
	case <-time.After(timeout):
		return false
	}
}

// LastLines keeps failure messages readable when a log is long.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

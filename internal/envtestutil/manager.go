package envtestutil

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/localstack"
	"github.com/mcpgate/mcpgate/internal/syncbuf"
)

// Manager is `mcpgate manager` running as a subprocess, as the tests of the
// installation and of control-plane faults run it.
type Manager struct {
	// Name tells managers apart in failure messages.
	Name string
	// Logs collects the manager's output.
	Logs    syncbuf.Buffer
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has exited
	waitErr error         // what cmd.Wait returned; read after exited is closed
}

// McpgateBinary builds cmd/mcpgate into the shared cache (a no-op when it
// is up to date) and returns its path.
func McpgateBinary(t testing.TB) string {
	t.Helper()
	bins, err := localstack.Build(context.Background(), localstack.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return bins.Mcpgate
}

// StartManager runs mcpgate with args (starting with "manager") and only
// what a pod would have in its environment: the kubeconfig, a HOME and PATH,
// so no MCPGATE_* setting of the test's leaks in. When the test ends the
// manager gets SIGTERM, then SIGKILL after 10s; a failed test logs the end
// of its output.
func StartManager(t testing.TB, name, kubeconfig string, args ...string) *Manager {
	t.Helper()
	m := &Manager{Name: name, cmd: exec.Command(McpgateBinary(t), args...), exited: make(chan struct{})}
	m.cmd.Env = []string{"KUBECONFIG=" + kubeconfig, "HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	m.cmd.Stdout, m.cmd.Stderr = &m.Logs, &m.Logs
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { m.waitErr = m.cmd.Wait(); close(m.exited) }()
	t.Cleanup(func() {
		if !m.Stop(10 * time.Second) {
			_ = m.cmd.Process.Kill()
			<-m.exited
		}
		if t.Failed() {
			t.Logf("manager %s output (last lines):\n%s", m.Name, LastLines(m.Logs.String(), 40))
		}
	})
	return m
}

// Exited is closed when the process has exited.
func (m *Manager) Exited() <-chan struct{} { return m.exited }

// Running reports whether the process has not exited.
func (m *Manager) Running() bool {
	select {
	case <-m.exited:
		return false
	default:
		return true
	}
}

// ExitErr waits for the process to exit and returns its error (nil: exit 0).
func (m *Manager) ExitErr() error {
	<-m.exited
	return m.waitErr
}

// Stop sends SIGTERM and reports whether the process exited within timeout.
func (m *Manager) Stop(timeout time.Duration) bool {
	if !m.Running() {
		return true
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
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

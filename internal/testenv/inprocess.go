package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/cmdutil"
	"github.com/mcpgate/mcpgate/internal/syncbuf"
)

// InProcess is a command's run function running in a goroutine of the
// test, which stops it as a signal would, by ending its context.
type InProcess struct {
	// Stderr collects what the command writes to stderr.
	Stderr syncbuf.Buffer
	name   string
	stdout *firstLine
	cancel context.CancelFunc
	exited chan struct{} // closed when run has returned
	code   int           // what run returned; read after exited is closed
}

// RunInProcess calls run with args in a goroutine. When the test ends, its
// context ends and the goroutine is waited for.
func RunInProcess(t testing.TB, name string, run cmdutil.Run, args ...string) *InProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &InProcess{name: name, cancel: cancel, exited: make(chan struct{})}
	var rest syncbuf.Buffer
	p.stdout = newFirstLine(&rest)
	go func() { p.code = run(ctx, args, p.stdout, &p.Stderr); close(p.exited) }()
	t.Cleanup(func() { cancel(); <-p.exited })
	return p
}

// JSONLine decodes the first line the command prints to stdout into v (see
// Process.JSONLine).
func (p *InProcess) JSONLine(t testing.TB, v any) {
	t.Helper()
	p.stdout.decode(t, p.name, p.exited, &p.Stderr, v)
}

// Stop ends the command's context and returns its exit code. It fails the
// test when run does not return within a minute.
func (p *InProcess) Stop(t testing.TB) int {
	t.Helper()
	p.cancel()
	select {
	case <-p.exited:
		return p.code
	case <-time.After(time.Minute):
		t.Fatalf("%s did not return within a minute of its context's end\nstderr:\n%s", p.name, LastLines(p.Stderr.String(), 40))
		return 0
	}
}

// CheckRefused runs run with each of the argument lists in tests (by
// subtest name), all of which the command must refuse: a non-zero exit
// code and nothing on stdout, where a caller waits for the start line.
func CheckRefused(t *testing.T, run cmdutil.Run, tests map[string][]string) {
	t.Helper()
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr syncbuf.Buffer
			if c := run(context.Background(), args, &stdout, &stderr); c == 0 {
				t.Fatalf("exit code 0 for %q", args)
			}
			if out := stdout.String(); out != "" {
				t.Fatalf("stdout = %q, want nothing on failure", out)
			}
		})
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/syncbuf"
)

// readEndpoint reads the one JSON line the command prints on start.
func readEndpoint(t *testing.T, r io.Reader, wantPath string) string {
	t.Helper()
	line, err := bufio.NewReader(r).ReadBytes('\n')
	if err != nil {
		t.Fatalf("read the endpoint line: %v (got %q)", err, line)
	}
	var e endpoint
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("endpoint line %q: %v", line, err)
	}
	u, err := url.Parse(e.URL)
	if err != nil || u.Scheme != "http" || u.Hostname() != "127.0.0.1" || u.Port() == "0" || u.Path != wantPath {
		t.Fatalf("url = %q, want http://127.0.0.1:PORT%s", e.URL, wantPath)
	}
	return e.URL
}

// echo connects an SDK client to endpoint and calls the echo tool; the
// session stays open (with its standalone SSE stream) until the test ends.
func echo(t *testing.T, endpoint string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "sample-mcp-server-test", Version: "v0"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hi"}})
	if err != nil {
		t.Fatalf("call echo: %v", err)
	}
	if tc, ok := res.Content[0].(*mcp.TextContent); !ok || tc.Text != "hi" {
		t.Fatalf("echo = %+v", res.Content)
	}
}

// TestRun runs the command in-process and stops it by cancelling its
// context, as a signal would, while a session's SSE stream is open: it must
// still exit 0 promptly.
func TestRun(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdoutR, stdoutW := io.Pipe()
	var stderr syncbuf.Buffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"--path", "/v1/mcp"}, stdoutW, &stderr)
		stdoutW.Close()
	}()
	echo(t, readEndpoint(t, stdoutR, "/v1/mcp"))

	start := time.Now()
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit code %d, want 0; stderr:\n%s", c, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
	if d := time.Since(start); d >= shutdownTimeout {
		t.Errorf("shutdown took %v: open streams held it up", d)
	}
}

func TestRun_badArguments(t *testing.T) {
	t.Parallel()
	tests := map[string][]string{
		"unknown flag":      {"--nope"},
		"positional arg":    {"extra"},
		"relative path":     {"--path", "mcp"},
		"unlistenable addr": {"--listen", "256.0.0.1:0"},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			if c := run(context.Background(), args, &stdout, &stderr); c == 0 {
				t.Fatalf("exit code 0 for %v", args)
			}
			if stdout.Len() != 0 {
				t.Fatalf("stdout = %q, want nothing on failure", stdout.String())
			}
		})
	}
}

// TestBinary builds the command, starts it with its defaults, calls a tool
// at the printed URL, and stops it with SIGTERM: it must exit 0.
func TestBinary(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is not on PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "sample-mcp-server")
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	cmd := exec.Command(bin)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncbuf.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	echo(t, readEndpoint(t, stdout, "/mcp"))

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the command did not exit after SIGTERM")
	}
	if !strings.Contains(stderr.String(), "Serving the sample MCP server") {
		t.Errorf("stderr lacks the start log:\n%s", stderr.String())
	}
}

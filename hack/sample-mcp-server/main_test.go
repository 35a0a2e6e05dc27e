package main

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/testenv"
)

// checkEndpoint checks the one JSON line the command prints on start.
func checkEndpoint(t *testing.T, e endpoint, wantPath string) string {
	t.Helper()
	u, err := url.Parse(e.URL)
	if err != nil || u.Scheme != "http" || u.Hostname() != "127.0.0.1" || u.Port() == "0" || u.Path != wantPath {
		t.Fatalf("url = %q, want http://127.0.0.1:PORT%s", e.URL, wantPath)
	}
	return e.URL
}

// echo connects an SDK client to endpoint and calls the echo tool; the
// session stays open (with its standalone SSE stream) until the test ends.
func echo(t *testing.T, endpoint string) *mcp.ClientSession {
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
	return cs
}

// TestRun runs the command in-process and stops it by cancelling its
// context, as a signal would, while a session's SSE stream is open: the
// stream must end, and the command exit 0.
func TestRun(t *testing.T) {
	t.Parallel()
	cmd := testenv.RunInProcess(t, "sample-mcp-server", run, "--path", "/v1/mcp")
	var e endpoint
	cmd.JSONLine(t, &e)
	cs := echo(t, checkEndpoint(t, e, "/v1/mcp"))

	if c := cmd.Stop(t); c != 0 {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", c, cmd.Stderr.String())
	}
	// The session's standalone SSE stream ended with the server: the
	// client's session ends on its own.
	ended := make(chan struct{})
	go func() { _ = cs.Wait(); close(ended) }() // its error says the connection is gone
	select {
	case <-ended:
	case <-time.After(time.Minute):
		t.Fatal("the client's session did not end after the shutdown")
	}
}

func TestRun_badArguments(t *testing.T) {
	t.Parallel()
	testenv.CheckRefused(t, run, map[string][]string{
		"unknown flag":      {"--nope"},
		"positional arg":    {"extra"},
		"relative path":     {"--path", "mcp"},
		"unlistenable addr": {"--listen", "256.0.0.1:0"},
	})
}

// TestBinary builds the command, starts it with its defaults, calls a tool
// at the printed URL, and stops it with SIGTERM: it must exit 0.
func TestBinary(t *testing.T) {
	t.Parallel()
	cmd := testenv.StartCommand(t, "./hack/sample-mcp-server")
	var e endpoint
	cmd.JSONLine(t, &e)
	echo(t, checkEndpoint(t, e, "/mcp"))

	if !cmd.Stop(time.Minute) {
		t.Fatal("the command did not exit within a minute of SIGTERM")
	}
	if err := cmd.ExitErr(); err != nil {
		t.Fatalf("exit after SIGTERM: %v; stderr:\n%s", err, cmd.Logs.String())
	}
	if !strings.Contains(cmd.Logs.String(), "Serving the sample MCP server") {
		t.Errorf("stderr lacks the start log:\n%s", cmd.Logs.String())
	}
}

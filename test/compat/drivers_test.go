package compat_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/mcpclient"
	"github.com/mcpgate/mcpgate/internal/sampleserver"
	"github.com/mcpgate/mcpgate/test/e2e/tsclient"
)

// cellTimeout bounds one client's session.
const cellTimeout = 60 * time.Second

// driver runs one client as a person would use it: connect (authorizing
// when asked), then call one tool.
type driver struct {
	key  string // in cell IDs and the expectations
	name string // the matrix row
	// run runs one session against st and reports what happened.
	run func(t *testing.T, st *stack, c cell) outcome
}

// outcome is what one session did.
type outcome struct {
	ok bool
	// err is the client's error, as it reported it, when !ok.
	err string
	// authorizations counts trips to the authorization endpoint.
	authorizations int
	// clientIDs are the client_ids the client authorized with.
	clientIDs []string
}

// drivers are the matrix rows, in order.
var drivers = []driver{
	{key: "go", name: "Go SDK v1.8.0 (`internal/mcpclient`)", run: runGoSDK},
	{key: "ts1", name: "TypeScript SDK " + tsclient.SDKV1 + " (`@modelcontextprotocol/sdk`)", run: runTypeScript(tsclient.SDKV1)},
	{key: "ts2", name: "TypeScript SDK " + tsclient.SDKV2 + " (`@modelcontextprotocol/client`)", run: runTypeScript(tsclient.SDKV2)},
	{key: "mcp-remote", name: "mcp-remote " + tsclient.MCPRemoteVersion + " (stdio bridge)", run: runMCPRemote},
}

// toolArgs are the arguments of each tool the matrix calls.
var toolArgs = map[string]map[string]any{
	sampleserver.ToolWhoami:     {},
	sampleserver.ToolDeleteRepo: {"name": "acme/widgets"},
}

// runGoSDK runs the official Go SDK through internal/mcpclient.
func runGoSDK(t *testing.T, st *stack, c cell) outcome {
	ctx, cancel := context.WithTimeout(t.Context(), cellTimeout)
	defer cancel()
	var (
		mu  sync.Mutex
		out outcome
	)
	opts := mcpclient.Options{
		URL:        st.mcpURL,
		ClientName: "mcpgate compat (Go SDK)",
		OnAuthorize: func(a mcpclient.Authorization) {
			mu.Lock()
			defer mu.Unlock()
			out.authorizations++
			out.clientIDs = append(out.clientIDs, a.ClientID)
		},
	}
	if c.registration == regCIMD {
		opts.ClientMetadataURL = st.metadata.serve(t, opts.ClientName, mcpclient.DefaultRedirectURL)
	}
	result := func(err error) outcome {
		mu.Lock()
		defer mu.Unlock()
		out.ok = err == nil
		if err != nil {
			out.err = err.Error()
		}
		return out
	}
	cs, err := mcpclient.Connect(ctx, opts)
	if err != nil {
		return result(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: c.tool, Arguments: toolArgs[c.tool]})
	if err == nil && res.IsError {
		err = fmt.Errorf("tool %s returned an error: %s", c.tool, toolText(res))
	}
	return result(err)
}

func toolText(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// runTypeScript runs test/e2e/ts/client.mjs on one SDK line.
func runTypeScript(sdk string) func(t *testing.T, st *stack, c cell) outcome {
	return func(t *testing.T, st *stack, c cell) outcome {
		opts := tsclient.Options{SDK: sdk, Tool: c.tool, Args: toolArgs[c.tool], Timeout: cellTimeout}
		if c.registration == regCIMD {
			opts.ClientMetadataURL = st.metadata.serve(t, "mcpgate compat (TypeScript SDK "+sdk+")", tsclient.RedirectURL)
		}
		res, err := tsclient.Run(t.Context(), t, st.mcpURL, opts)
		out := outcome{ok: err == nil, authorizations: res.Authorizations}
		if res.RegisteredClientID != "" {
			out.clientIDs = []string{res.RegisteredClientID}
		}
		if err != nil {
			out.err = err.Error()
			if res.Error != "" {
				out.err = res.Error
			}
		}
		return out
	}
}

// runMCPRemote runs mcp-remote as a stdio server, driven by the Go SDK as
// its MCP client; its OAuth flow runs through the stand-in browser of
// tsclient.MCPRemoteCommand, which logs the authorizations.
func runMCPRemote(t *testing.T, st *stack, c cell) outcome {
	ctx, cancel := context.WithTimeout(t.Context(), cellTimeout)
	defer cancel()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	opts := tsclient.MCPRemoteOptions{CallbackPort: port, ConfigDir: t.TempDir()}
	if c.registration == regCIMD {
		opts.ClientMetadataURL = st.metadata.serve(t, "mcpgate compat (mcp-remote)", tsclient.MCPRemoteRedirectURL(port))
	}
	cmd, err := tsclient.MCPRemoteCommand(ctx, st.mcpURL, opts)
	if err != nil {
		t.Fatal(err)
	}
	// Written by exec's copying goroutine, which may outlive a failed
	// Connect.
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	defer func() { t.Logf("mcp-remote stderr:\n%s", stderr.String()) }()
	result := func(err error) outcome {
		// Counted by the scopes asked for: mcp-remote sometimes opens the
		// browser twice for one step-up, when requests race for it.
		opened := tsclient.MCPRemoteAuthorizations(opts.ConfigDir)
		t.Logf("mcp-remote opened the browser for scopes %q", opened)
		distinct := slices.Compact(slices.Clone(opened))
		out := outcome{ok: err == nil, authorizations: len(distinct)}
		if err != nil {
			out.err = err.Error()
		}
		return out
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "mcpgate-compat", Version: "0.0.0"}, nil)
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		return result(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: c.tool, Arguments: toolArgs[c.tool]})
	if err == nil && res.IsError {
		err = fmt.Errorf("tool %s returned an error: %s", c.tool, toolText(res))
	}
	return result(err)
}

// freePort finds a loopback port nobody listens on.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lockedBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

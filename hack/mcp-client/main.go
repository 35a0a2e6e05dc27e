// Command mcp-client is a headless OAuth MCP client for trying a gateway by
// hand, such as the one `make demo` runs:
//
//	go run ./hack/mcp-client --url http://127.0.0.1:PORT/mcp
//	go run ./hack/mcp-client --url ... --tool echo --args '{"text":"hi"}'
//
// It connects with internal/mcpclient (the official Go SDK; discovery from
// the 401, dynamic client registration, authorization code with PKCE, all
// without a browser, so it needs an authorization server that consents at
// once, like the Clerk emulator), lists the tools, calls one, and prints
// what came back. A 403 insufficient_scope makes it authorize again with
// the scopes asked for (step-up). It exits 1 if anything fails, the tool
// call included, and 2 on a usage error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/cmdutil"
	"github.com/mcpgate/mcpgate/internal/mcpclient"
)

func main() { cmdutil.Main(run, nil) }

// clientFlags are the command line.
type clientFlags struct {
	url     string
	scopes  []string
	tool    string
	args    map[string]any
	timeout time.Duration
}

func parseFlags(args []string, stderr io.Writer) (clientFlags, error) {
	var f clientFlags
	fs := cmdutil.NewFlagSet("mcp-client", "", stderr)
	fs.StringVar(&f.url, "url", "", "MCP endpoint, such as http://127.0.0.1:8080/mcp (required)")
	scopes := fs.String("scopes", "", "scopes to request besides those the server asks for, separated by spaces or commas")
	fs.StringVar(&f.tool, "tool", "whoami", "tool to call")
	toolArgs := fs.String("args", "{}", "arguments of the tool call, a JSON object")
	fs.DurationVar(&f.timeout, "timeout", time.Minute, "give up after this long")
	if err := cmdutil.Parse(fs, args); err != nil {
		return f, err
	}
	switch {
	case f.url == "":
		return f, errors.New("--url is required")
	case f.tool == "":
		return f, errors.New("--tool must not be empty")
	case f.timeout <= 0:
		return f, errors.New("--timeout must be positive")
	}
	f.scopes = strings.FieldsFunc(*scopes, func(r rune) bool { return r == ',' || r == ' ' })
	if err := json.Unmarshal([]byte(*toolArgs), &f.args); err != nil || f.args == nil {
		return f, fmt.Errorf("--args %q is not a JSON object", *toolArgs)
	}
	return f, nil
}

// run connects, lists, calls and prints; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, err := parseFlags(args, stderr)
	if err != nil {
		return cmdutil.UsageExitRepeat(stderr, "mcp-client", err)
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	if err := callTool(ctx, f, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "mcp-client: %v\n", err)
		return 1
	}
	return 0
}

func callTool(ctx context.Context, f clientFlags, stdout, stderr io.Writer) error {
	var mu sync.Mutex // OnAuthorize may run on any goroutine
	cs, err := mcpclient.Connect(ctx, mcpclient.Options{
		URL:        f.url,
		Scopes:     f.scopes,
		ClientName: "mcpgate-mcp-client",
		OnAuthorize: func(a mcpclient.Authorization) {
			mu.Lock()
			defer mu.Unlock()
			if a.Err != nil {
				fmt.Fprintf(stderr, "authorization for scopes %q failed: %v\n", strings.Join(a.Scopes, " "), a.Err)
				return
			}
			fmt.Fprintf(stderr, "authorized as client %s for scopes %q\n", a.ClientID, strings.Join(a.Scopes, " "))
		},
	})
	if err != nil {
		return err
	}
	defer func() { _ = cs.Close() }()
	info := cs.InitializeResult().ServerInfo
	fmt.Fprintf(stdout, "server: %s %s\n", info.Name, info.Version)

	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		return fmt.Errorf("list tools: %w", err)
	}
	fmt.Fprintln(stdout, "tools:")
	for _, t := range tools.Tools {
		fmt.Fprintf(stdout, "  %-12s %s\n", t.Name, t.Description)
	}

	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: f.tool, Arguments: f.args})
	if err != nil {
		return fmt.Errorf("call %s: %w", f.tool, err)
	}
	fmt.Fprintf(stdout, "%s:\n", f.tool)
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			fmt.Fprintf(stdout, "  %s\n", t.Text)
		}
	}
	if res.StructuredContent != nil {
		b, err := json.MarshalIndent(res.StructuredContent, "  ", "  ")
		if err != nil {
			return fmt.Errorf("encode the structured result: %w", err)
		}
		fmt.Fprintf(stdout, "  structured: %s\n", b)
	}
	if res.IsError {
		return fmt.Errorf("the tool %s reported an error", f.tool)
	}
	return nil
}

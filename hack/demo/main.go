// Command demo runs mcpgate on this machine, with nothing to install but Go
// (`make demo`):
//
//	go run ./hack/demo
//
// It starts a local Kubernetes control plane (envtest), the mcpgate operator,
// a Clerk emulator and the sample MCP server, applies config/samples through
// a local overlay, runs the gateway the operator deploys as a local process
// (see internal/localstack), prints where everything is, and serves until
// Ctrl-C or SIGTERM, then stops everything and exits 0.
//
// With DEMO_ONESHOT=1 it instead runs one scripted client session against
// the gateway once it is up (OAuth sign-in, tools/list, echo and whoami) and
// exits 0 only if the session succeeded: a smoke test of the whole path.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/internal/cmdutil"
	"github.com/mcpgate/mcpgate/internal/localstack"
	"github.com/mcpgate/mcpgate/internal/mcpclient"
	"github.com/mcpgate/mcpgate/internal/sampleserver"
)

// readyTimeout bounds the wait for the sample McpServer to be served once
// everything has started.
const readyTimeout = 2 * time.Minute

// main stops the demo on the first SIGINT or SIGTERM. Later signals only
// say that the stop is under way: exiting then would leave etcd and the API
// server running.
func main() {
	cmdutil.Main(run, func() { fmt.Fprintln(os.Stderr, "demo: still stopping; everything will be gone in a few seconds") })
}

// demoFlags are the command line.
type demoFlags struct {
	clerkMode, sampleMode localstack.Mode
	tokens                localstack.TokenFormat
	oneshot               bool
}

func parseFlags(args []string, stderr io.Writer) (demoFlags, error) {
	f := demoFlags{oneshot: os.Getenv("DEMO_ONESHOT") == "1"}
	fs := cmdutil.NewFlagSet("demo", "", stderr)
	clerk := fs.String("clerk-emulator", "in-process", "run the Clerk emulator in-process or as a subprocess (hack/clerk-emulator)")
	sample := fs.String("sample-server", "in-process", "run the sample MCP server in-process or as a subprocess (hack/sample-mcp-server)")
	tokens := fs.String("tokens", "jwt", "access token format the sample McpServer asks Clerk for: jwt or opaque")
	if err := cmdutil.Parse(fs, args); err != nil {
		return f, err
	}
	var err error
	if f.clerkMode, err = parseMode(*clerk); err != nil {
		return f, fmt.Errorf("--clerk-emulator: %w", err)
	}
	if f.sampleMode, err = parseMode(*sample); err != nil {
		return f, fmt.Errorf("--sample-server: %w", err)
	}
	switch *tokens {
	case "jwt":
		f.tokens = localstack.JWT
	case "opaque":
		f.tokens = localstack.Opaque
	default:
		return f, fmt.Errorf("--tokens: %q is neither jwt nor opaque", *tokens)
	}
	return f, nil
}

func parseMode(s string) (localstack.Mode, error) {
	switch s {
	case "in-process":
		return localstack.InProcess, nil
	case "subprocess":
		return localstack.Subprocess, nil
	}
	return 0, fmt.Errorf("%q is neither in-process nor subprocess", s)
}

// run starts the demo, stops it when ctx ends, and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, err := parseFlags(args, stderr)
	if err != nil {
		return cmdutil.UsageExitRepeat(stderr, "demo", err)
	}
	// envtest and the kubelet emulation log through controller-runtime;
	// only their errors are worth a line here, the rest is in the log files.
	ctrl.SetLogger(zap.New(zap.WriteTo(stderr), zap.Level(zapcore.ErrorLevel)))

	say := func(msg string) { fmt.Fprintln(stdout, msg) }
	started := time.Now()
	stack, err := localstack.Start(ctx, localstack.Options{
		Clerk:    localstack.ClerkOptions{Mode: f.clerkMode},
		Sample:   localstack.SampleOptions{Mode: f.sampleMode},
		Progress: say,
	})
	if err != nil {
		return fail(ctx, f, stderr, err)
	}
	code := serve(ctx, stack, f, started, stdout, stderr)
	say("Stopping ...")
	if err := stack.Close(); err != nil {
		fmt.Fprintf(stderr, "demo: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// serve applies the samples, waits until they are served, prints the
// summary and then either runs the scripted session or waits for a signal.
func serve(ctx context.Context, stack *localstack.Stack, f demoFlags, started time.Time, stdout, stderr io.Writer) int {
	say := func(msg string) { fmt.Fprintln(stdout, msg) }
	say("Applying config/samples through a local overlay (kubectl apply -k) ...")
	names, err := stack.ApplySamples(ctx, localstack.SamplesOptions{TokenFormat: f.tokens})
	if err != nil {
		return fail(ctx, f, stderr, err)
	}
	if len(names) == 0 {
		fmt.Fprintln(stderr, "demo: config/samples holds no McpServer")
		return 1
	}
	waitCtx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var gateways []localstack.Gateway
	for _, name := range names {
		gw, err := stack.WaitGateway(waitCtx, stack.Namespace(), name, "")
		if err != nil {
			return fail(ctx, f, stderr, err)
		}
		// The operator's own verdict: kubectl wait reads the Ready condition.
		if _, err := stack.Kubectl(waitCtx, nil, "wait", "-n", stack.Namespace(), "--for=condition=Ready",
			"--timeout="+readyTimeout.String(), "mcpservers/"+name); err != nil {
			return fail(ctx, f, stderr, fmt.Errorf("McpServer %s did not become Ready: %w", name, err))
		}
		gateways = append(gateways, gw)
	}
	printSummary(stdout, stack, gateways, time.Since(started), f.oneshot)

	if f.oneshot {
		say("DEMO_ONESHOT=1: running a scripted client session ...")
		sessionCtx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := session(sessionCtx, gateways[0].URL, stdout); err != nil {
			fmt.Fprintf(stderr, "demo: client session failed: %v\n", err)
			return 1
		}
		say("Client session succeeded.")
		return 0
	}
	<-ctx.Done()
	return 0
}

// fail reports err and returns the exit code: 1, except when a signal
// stopped an interactive demo while it was starting, which is what the user
// asked for.
func fail(ctx context.Context, f demoFlags, stderr io.Writer, err error) int {
	if ctx.Err() != nil && !f.oneshot {
		fmt.Fprintln(stderr, "demo: interrupted while starting")
		return 0
	}
	fmt.Fprintf(stderr, "demo: %v\n", err)
	return 1
}

// printSummary tells the user where everything is and what to try.
func printSummary(w io.Writer, stack *localstack.Stack, gateways []localstack.Gateway, took time.Duration, oneshot bool) {
	gw := gateways[0]
	bin := filepath.Dir(stack.KubectlPath())
	fmt.Fprintf(w, `
================================================================================
mcpgate is running locally (up in %s)

  MCP endpoint   %s
  Metadata       %s
  McpServer      %s/%s, gateway log %s
  Clerk          emulator at %s (user %s, who consents at once)
  All logs       %s

Look at the cluster (the kubectl in %s matches the API server):
  export KUBECONFIG=%s
  export PATH=%s:$PATH
  kubectl get mcps -A
  kubectl describe mcps -n %s %s

Call the gateway (OAuth: dynamic registration, PKCE, no browser needed):
  go run ./hack/mcp-client --url %s
  go run ./hack/mcp-client --url %s --tool delete_repo --args '{"name":"demo"}'   # steps up to repo:admin

MCP Inspector:
  npx @modelcontextprotocol/inspector   then Transport "Streamable HTTP", URL %s
  (its OAuth runs in the browser; if its sign-in stops at the emulator, which
  sends no CORS headers unlike Clerk, use hack/mcp-client above)
`, took.Round(100*time.Millisecond), gw.URL, gw.MetadataURL, gw.Namespace, gw.McpServer, gw.LogPath,
		stack.Clerk().Issuer, clerktest.DefaultUserEmail, stack.LogDir(),
		bin, stack.Kubeconfig(), bin, gw.Namespace, gw.McpServer,
		gw.URL, gw.URL, gw.URL)
	for _, other := range gateways[1:] {
		fmt.Fprintf(w, "\nAlso serving %s/%s at %s\n", other.Namespace, other.McpServer, other.URL)
	}
	if !oneshot {
		fmt.Fprintln(w, "\nPress Ctrl-C to stop everything.")
	}
	fmt.Fprintln(w, "================================================================================")
}

// session is the scripted client session: sign in, list the tools, call
// echo and whoami, print what came back.
func session(ctx context.Context, url string, w io.Writer) error {
	var mu sync.Mutex
	authorizations := 0
	cs, err := mcpclient.Connect(ctx, mcpclient.Options{
		URL:        url,
		ClientName: "mcpgate-demo",
		OnAuthorize: func(a mcpclient.Authorization) {
			mu.Lock()
			defer mu.Unlock()
			authorizations++
			fmt.Fprintf(w, "  authorized client %s for scopes %q (error: %v)\n", a.ClientID, strings.Join(a.Scopes, " "), a.Err)
		},
	})
	if err != nil {
		return err
	}
	defer func() { _ = cs.Close() }()
	init := cs.InitializeResult()
	fmt.Fprintf(w, "  connected to %s %s\n", init.ServerInfo.Name, init.ServerInfo.Version)

	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		return fmt.Errorf("list tools: %w", err)
	}
	names := make([]string, 0, len(tools.Tools))
	for _, t := range tools.Tools {
		names = append(names, t.Name)
	}
	fmt.Fprintf(w, "  tools: %s\n", strings.Join(names, ", "))

	calls := []mcp.CallToolParams{
		{Name: sampleserver.ToolEcho, Arguments: map[string]any{"text": "hello through mcpgate"}},
		{Name: sampleserver.ToolWhoami, Arguments: map[string]any{}},
	}
	for _, call := range calls {
		res, err := cs.CallTool(ctx, &call)
		if err != nil {
			return fmt.Errorf("call %s: %w", call.Name, err)
		}
		if res.IsError {
			return fmt.Errorf("call %s: the tool reported an error: %s", call.Name, resultText(res))
		}
		structured, _ := json.Marshal(res.StructuredContent)
		fmt.Fprintf(w, "  %s: %s\n    structured: %s\n", call.Name, resultText(res), structured)
	}
	mu.Lock()
	defer mu.Unlock()
	if authorizations == 0 {
		return errors.New("the gateway let the client in without authorization")
	}
	return nil
}

// resultText joins the text content of a tool result.
func resultText(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, t.Text)
		}
	}
	return strings.Join(parts, " ")
}

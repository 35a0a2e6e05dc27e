// Command sample-mcp-server serves the sample MCP server (package
// internal/sampleserver) over streamable HTTP, as the upstream to put behind
// a gateway in the demo and in local development:
//
//	go run ./hack/sample-mcp-server --listen 127.0.0.1:9000
//
// It prints one JSON line to stdout, {"url": "http://127.0.0.1:PORT/mcp"},
// once it accepts connections, then serves until SIGINT or SIGTERM and exits 0.
// It trusts the X-Mcpgate-* identity headers: expose it only to the gateway.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/mcpgate/mcpgate/internal/cmdutil"
	"github.com/mcpgate/mcpgate/internal/netaddr"
	"github.com/mcpgate/mcpgate/internal/sampleserver"
)

func main() { cmdutil.Main(run, nil) }

// endpoint is the one line printed on start.
type endpoint struct {
	URL string `json:"url"`
}

// shutdownTimeout bounds how long requests may hold up the exit after a
// signal, once their contexts are cancelled.
const shutdownTimeout = 5 * time.Second

// run serves until ctx ends and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := cmdutil.NewFlagSet("sample-mcp-server", "", stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on (host:port; port 0 picks one)")
	path := fs.String("path", "/mcp", "path of the MCP endpoint")
	stateless := fs.Bool("stateless", false, "serve without sessions (2026-07-28 protocol only)")
	anyHost := fs.Bool("disable-localhost-protection", false,
		"accept any Host header on a loopback listener (needed behind a proxy that forwards the public Host)")
	if err := cmdutil.Parse(fs, args); err != nil {
		return cmdutil.UsageExit(stderr, "sample-mcp-server", err)
	}
	if !strings.HasPrefix(*path, "/") {
		fmt.Fprintf(stderr, "sample-mcp-server: --path %q must start with '/'\n", *path)
		return 2
	}

	logger := slog.New(slog.NewTextHandler(stderr, nil))
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		logger.Error("Failed to listen", "address", *listen, "error", err)
		return 1
	}
	mux := http.NewServeMux()
	mux.Handle(*path, sampleserver.NewHandler(sampleserver.Options{
		Logger:                     logger,
		Stateless:                  *stateless,
		DisableLocalhostProtection: *anyHost,
	}))
	// NOTE: the line goes out after Listen, so a reader may connect at once.
	url := "http://" + netaddr.Advertised(ln.Addr()) + *path
	if err := cmdutil.PrintLine(stdout, endpoint{URL: url}); err != nil {
		logger.Error("Failed to write the endpoint line", "error", err)
		_ = ln.Close()
		return 1
	}
	logger.Info("Serving the sample MCP server", "url", url, "stateless", *stateless)
	if err := cmdutil.Serve(ctx, ln, mux, logger, shutdownTimeout); err != nil {
		logger.Error("Server stopped", "error", err)
		return 1
	}
	return 0
}

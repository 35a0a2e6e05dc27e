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
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mcpgate/mcpgate/internal/netaddr"
	"github.com/mcpgate/mcpgate/internal/sampleserver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// endpoint is the one line printed on start.
type endpoint struct {
	URL string `json:"url"`
}

// shutdownTimeout bounds how long requests may hold up the exit after a
// signal, once their contexts are cancelled.
const shutdownTimeout = 5 * time.Second

// run serves until ctx ends and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sample-mcp-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on (host:port; port 0 picks one)")
	path := fs.String("path", "/mcp", "path of the MCP endpoint")
	stateless := fs.Bool("stateless", false, "serve without sessions (2026-07-28 protocol only)")
	anyHost := fs.Bool("disable-localhost-protection", false,
		"accept any Host header on a loopback listener (needed behind a proxy that forwards the public Host)")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return 0
	} else if err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sample-mcp-server: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return 2
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
	// Requests get a context that ends on shutdown: open SSE streams (the
	// standalone GET of every session) do not end on their own.
	base, cancelRequests := context.WithCancel(context.Background())
	defer cancelRequests()
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	// NOTE: the line goes out after Listen, so a reader may connect at once.
	line, err := json.Marshal(endpoint{URL: "http://" + netaddr.Advertised(ln.Addr()) + *path})
	if err == nil {
		_, err = fmt.Fprintf(stdout, "%s\n", line)
	}
	if err != nil {
		logger.Error("Failed to write the endpoint line", "error", err)
		_ = srv.Close()
		return 1
	}
	logger.Info("Serving the sample MCP server", "url", "http://"+netaddr.Advertised(ln.Addr())+*path, "stateless", *stateless)

	select {
	case err := <-served:
		logger.Error("Server stopped", "error", err)
		return 1
	case <-ctx.Done():
	}
	logger.Info("Received signal, shutting down")
	cancelRequests()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("Closed connections that were still open", "error", err)
		_ = srv.Close()
	}
	return 0
}

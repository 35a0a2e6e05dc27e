package localstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/mcpgate/mcpgate/internal/sampleserver"
)

// samplePath is the sample server's MCP endpoint, the McpServer's default
// spec.upstream.path.
const samplePath = "/mcp"

// sampleServer is the running sample MCP server, in this process or a child.
type sampleServer struct {
	url  string // http://127.0.0.1:PORT/mcp
	port int32  // where it listens on loopback
	// InProcess only.
	srv    *http.Server
	cancel context.CancelFunc
	log    *os.File
	// Subprocess only.
	proc *process
}

// startSample starts the sample MCP server on a loopback port chosen by the
// kernel. Its DNS-rebinding protection is off: the gateway forwards requests
// with the Service's host name (sample-mcp.demo.svc:8080) as Host, which a
// loopback listener would otherwise refuse.
func startSample(ctx context.Context, mode Mode, bin, logDir string) (*sampleServer, error) {
	logPath := filepath.Join(logDir, "sample-mcp-server.log")
	if mode == Subprocess {
		var line struct {
			URL string `json:"url"`
		}
		proc, err := startAnnouncing(ctx, processSpec{
			name: "sample-mcp-server", path: bin, logPath: logPath,
			args: []string{"--listen", "127.0.0.1:0", "--path", samplePath, "--disable-localhost-protection"},
		}, &line)
		if err != nil {
			return nil, err
		}
		port, err := urlPort(line.URL)
		if err != nil {
			_ = proc.stop(5 * time.Second)
			return nil, fmt.Errorf("sample-mcp-server: %w", err)
		}
		return &sampleServer{url: line.URL, port: port, proc: proc}, nil
	}

	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open sample server log: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("listen for the sample server: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(samplePath, sampleserver.NewHandler(sampleserver.Options{
		Logger:                     slog.New(slog.NewTextHandler(logFile, nil)),
		DisableLocalhostProtection: true,
	}))
	// Requests get a context that stop cancels: the standalone SSE stream of
	// every session would otherwise hold up the shutdown.
	base, cancel := context.WithCancel(context.Background())
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	go func() { _ = srv.Serve(ln) }()
	port := int32(ln.Addr().(*net.TCPAddr).Port)
	return &sampleServer{
		url:  "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))) + samplePath,
		port: port, srv: srv, cancel: cancel, log: logFile,
	}, nil
}

// stop stops the sample server.
func (s *sampleServer) stop() error {
	if s.proc != nil {
		return s.proc.stop(10 * time.Second)
	}
	s.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(fmt.Errorf("stop the sample server: %w", err), s.srv.Close())
	}
	return errors.Join(err, s.log.Close())
}

// urlPort is the explicit port of an http URL.
func urlPort(raw string) (int32, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return 0, fmt.Errorf("parse %q: %w", raw, err)
	}
	port, err := strconv.ParseInt(u.Port(), 10, 32)
	if err != nil || port < 1 || port > 65535 {
		return 0, fmt.Errorf("%q has no port", raw)
	}
	return int32(port), nil
}

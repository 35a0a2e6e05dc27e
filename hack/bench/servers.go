package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mcpgate/mcpgate/internal/sampleserver"
)

// Paths of the upstream process. Each answers a tools/call, except
// pathToolsList, which answers any request with a tools/list result.
const (
	pathTrivialJSON = "/trivial/json" // a fixed JSON-RPC result, as application/json
	pathToolsList   = "/tools/json"   // a fixed tools/list result of listedTools tools, as application/json
	pathTrivialSSE  = "/trivial/sse"  // the same result as one SSE event
	pathSampleJSON  = "/sample/json"  // the sample MCP server (Go SDK), JSON responses
	pathSampleSSE   = "/sample/sse"   // the sample MCP server, SSE responses
	pathStream      = "/stream"       // a long SSE stream of progress events, for the streams test
	pathStats       = "/stats"        // counters of the streams test
)

// trivialResult is the fixed answer of the trivial upstream: the size and
// shape of a small tool result.
const trivialResult = `{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hello"}]}}`

// listedTools is the length of pathToolsList's list: a large server's.
const listedTools = 200

// toolName names the i-th tool of pathToolsList's list.
func toolName(i int) string { return fmt.Sprintf("tool_%03d", i) }

// toolsListAnswer is the answer of pathToolsList: n tools, each with a
// description and a one-argument input schema, as a real server lists them.
func toolsListAnswer(n int) []byte {
	type tool struct {
		Name        string         `json:"name"`
		Description string         `json:"description"`
		InputSchema map[string]any `json:"inputSchema"`
	}
	tools := make([]tool, n)
	for i := range tools {
		tools[i] = tool{
			Name:        toolName(i),
			Description: fmt.Sprintf("Tool %d of %d: answers with the text it is given.", i, n),
			InputSchema: map[string]any{
				"type":       "object",
				"properties": map[string]any{"text": map[string]any{"type": "string", "description": "What to answer with."}},
				"required":   []string{"text"},
			},
		}
	}
	answer := map[string]any{"jsonrpc": "2.0", "id": 1, "result": map[string]any{"tools": tools}}
	data, err := json.Marshal(answer)
	if err != nil {
		panic(err) // a fixed value of known types
	}
	return data
}

// upstreamHandler serves every upstream path. The trivial paths do nothing
// but write a fixed answer, so that they show a proxy's own cost.
func upstreamHandler(streamEvents int, streamInterval time.Duration) http.Handler {
	var sent atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+pathTrivialJSON, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, trivialResult)
	})
	toolsList := toolsListAnswer(listedTools)
	mux.HandleFunc("POST "+pathToolsList, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(toolsList)
	})
	mux.HandleFunc("POST "+pathTrivialSSE, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "event: message\ndata: "+trivialResult+"\n\n")
	})
	sample := func(jsonResponse bool) http.Handler {
		return sampleserver.NewHandler(sampleserver.Options{Stateless: true, JSONResponse: jsonResponse, DisableLocalhostProtection: true})
	}
	mux.Handle("POST "+pathSampleJSON, sample(true))
	mux.Handle("POST "+pathSampleSSE, sample(false))
	mux.HandleFunc("POST "+pathStream, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		flusher, ok := w.(http.Flusher)
		if !ok {
			http.Error(w, "streaming unsupported", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		flusher.Flush()
		ticker := time.NewTicker(streamInterval)
		defer ticker.Stop()
		for i := 1; i <= streamEvents; i++ {
			event := `{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":` + strconv.Itoa(i) + `}}`
			if i == streamEvents {
				event = trivialResult
			}
			if _, err := io.WriteString(w, "event: message\ndata: "+event+"\n\n"); err != nil {
				return
			}
			flusher.Flush()
			sent.Add(1)
			if i < streamEvents {
				select {
				case <-ticker.C:
				case <-r.Context().Done():
					return
				}
			}
		}
	})
	mux.HandleFunc("GET "+pathStats, func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]int64{"events_sent": sent.Load()})
	})
	return mux
}

// bareProxy is the floor cost of any proxy hop: a ReverseProxy with no
// authentication, tuned as the gateway's proxy is (streams flushed at once).
func bareProxy(upstream *url.URL) http.Handler {
	return &httputil.ReverseProxy{
		// SetURL also sets the Host header to the upstream's.
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(upstream) },
		FlushInterval: -1,
		// The gateway's own pool size, so neither hop churns connections.
		Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256},
	}
}

// runServe is `bench serve upstream|bare`: one server in its own process, so
// that its CPU and memory are its own. It prints "listening <addr>" when ready
// and serves until SIGTERM.
func runServe(args []string) error {
	if len(args) == 0 {
		return errors.New("serve: upstream or bare")
	}
	kind := args[0]
	fs := flag.NewFlagSet("bench serve "+kind, flag.ContinueOnError)
	upstream := fs.String("upstream", "", "bare: the upstream base URL (paths are appended)")
	events := fs.Int("stream-events", 20, "upstream: events per stream of "+pathStream)
	interval := fs.Duration("stream-interval", 250*time.Millisecond, "upstream: time between stream events")
	cpuProfile := fs.String("cpu-profile", "", "write a CPU profile (pprof) to this file until the server stops")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	var handler http.Handler
	switch kind {
	case "upstream":
		handler = upstreamHandler(*events, *interval)
	case "bare":
		u, err := url.Parse(*upstream)
		if err != nil || u.Host == "" {
			return fmt.Errorf("serve bare: --upstream %q is not a URL", *upstream)
		}
		handler = bareProxy(u)
	default:
		return fmt.Errorf("serve: unknown server %q", kind)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	fmt.Printf("listening %s\n", ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// process is a server the driver started.
type process struct {
	name string
	cmd  *exec.Cmd
	addr string
	done chan struct{}
	// logPath is the file its stderr goes to; set for gateways, whose
	// exit during startup is reported with its end.
	logPath string
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// startProcess runs `bench serve ...` on cpus (nil: wherever this process
// runs) and waits for the line that says where it listens.
func startProcess(ctx context.Context, name string, cpus []int, logFile io.Writer, bin string, args ...string) (*process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := startPinned(cmd, cpus); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				lines <- addr
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() { _ = cmd.Wait(); close(p.done) }()
	select {
	case p.addr = <-lines:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before it listened", name)
	case <-time.After(30 * time.Second):
		p.stop()
		return nil, fmt.Errorf("%s did not listen within 30s", name)
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
}

// stop sends SIGTERM and waits; a process that hangs is killed.
func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// freeAddrs finds n distinct free loopback addresses for a server that
// takes its addresses in a configuration file. They are free when
// returned, not reserved.
func freeAddrs(n int) ([]string, error) {
	addrs := make([]string, 0, n)
	// All listeners stay open until every address is known, so that the n
	// addresses differ.
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer ln.Close()
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway"
	"github.com/mcpgate/mcpgate/gateway/config"
)

// TestSecretKeyRotation rewrites the key file as the kubelet does when the
// Secret changes: the next Backend API call carries the new key, no restart.
func TestSecretKeyRotation(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var keysSeen []string
	c := clerktest.NewServer(clerktest.WithObserver(func(x clerktest.Exchange) {
		mu.Lock()
		defer mu.Unlock()
		keysSeen = append(keysSeen, strings.TrimPrefix(x.Request.Header.Get("Authorization"), "Bearer "))
	}))
	t.Cleanup(c.Close)
	e := newEnv(t, withClerk(c))
	lastKey := func() string {
		mu.Lock()
		defer mu.Unlock()
		if len(keysSeen) == 0 {
			return ""
		}
		return keysSeen[len(keysSeen)-1]
	}
	call := func() int {
		t.Helper()
		// A new opaque token each time, so no cached verdict answers.
		req := newRequest(t, http.MethodPost, e.mcpURL(), toolCall("search"))
		req.Header.Set("Authorization", "Bearer "+e.token(t, clerktest.TokenRequest{Scopes: baseScopes, Format: clerktest.FormatOpaque}))
		resp, _ := do(t, req)
		return resp.StatusCode
	}

	if got := call(); got != http.StatusOK || lastKey() != c.SecretKey() {
		t.Fatalf("with the right key: %d, key used %q", got, lastKey())
	}
	writeKeyFile(t, e.keyFile, "sk_test_rotatedButWrong")
	if got := call(); got != http.StatusServiceUnavailable || lastKey() != "sk_test_rotatedButWrong" {
		t.Fatalf("after rotating to a key Clerk refuses: %d, key used %q", got, lastKey())
	}
	writeKeyFile(t, e.keyFile, c.SecretKey())
	if got := call(); got != http.StatusOK || lastKey() != c.SecretKey() {
		t.Fatalf("after rotating back: %d, key used %q", got, lastKey())
	}
}

// serveEnv runs the env's gateway with Serve on loopback listeners.
func serveEnv(t *testing.T, e *gwEnv) (trafficURL, healthURL string, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		errc <- e.gw.Serve(ctx, tl, hl)
	}()
	t.Cleanup(func() {
		cancel()
		<-finished
	})
	return "http://" + tl.Addr().String(), "http://" + hl.Addr().String(), cancel, errc
}

// TestSlowHeadersAreCut: a client that trickles its headers (slowloris)
// loses its connection once ReadHeaderTimeout has passed, however steadily
// it sends, and nothing reaches the upstream.
func TestSlowHeadersAreCut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withOptions(func(o *gateway.Options) { o.ReadHeaderTimeout = 300 * time.Millisecond }))
	traffic, _, _, _ := serveEnv(t, e)
	conn, err := net.Dial("tcp", strings.TrimPrefix(traffic, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	start := time.Now()
	if _, err := io.WriteString(conn, "POST /mcp HTTP/1.1\r\nHost: gateway\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() {
		// Returns when the server closes the connection; whether that reads
		// as EOF or a reset does not matter here.
		_, _ = io.ReadAll(conn)
		close(closed)
	}()
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	for {
		select {
		case <-closed:
			// The server's clock started at accept, a little before ours.
			if took := time.Since(start); took < 200*time.Millisecond {
				t.Errorf("connection closed after %v, well before the header timeout", took)
			}
			if got := e.up.requests(); len(got) != 0 {
				t.Errorf("the upstream received %d requests", len(got))
			}
			return
		case <-ticker.C:
			if time.Since(start) > 10*time.Second {
				t.Fatal("a client trickling its headers kept its connection for 10s")
			}
			_, _ = io.WriteString(conn, "a") // one more byte of the same header line
		}
	}
}

// TestGracefulShutdown cancels Serve while a slow request is in flight: it
// completes, readiness turns off, and new connections are refused.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	traffic, health, cancel, done := serveEnv(t, e)
	waitReadyz(t, health, http.StatusOK)

	req := authorized(t, e, http.MethodPost, "mode=slow&delay=700ms", toolCall("search"))
	req.URL.Host = strings.TrimPrefix(traffic, "http://")
	type result struct {
		status int
		body   string
	}
	results := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			results <- result{body: err.Error()}
			return
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(resp.Body)
		results <- result{resp.StatusCode, string(body)}
	}()
	<-e.up.received
	cancel()

	waitFor(t, "readiness to turn off while draining", 5*time.Second, func() bool {
		resp, err := http.Get(health + "/readyz")
		if err != nil {
			return true // already closed
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	waitFor(t, "the listener to close", 5*time.Second, func() bool {
		conn, err := net.DialTimeout("tcp", req.URL.Host, time.Second)
		if err == nil {
			_ = conn.Close()
		}
		return err != nil
	})
	if r := <-results; r.status != http.StatusOK || r.body != toolResult {
		t.Errorf("in-flight request: %d %q, want it completed", r.status, r.body)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after draining")
	}
}

// TestShutdownClosesStreams checks that a stream outliving the grace period
// is closed, and its upstream request cancelled.
func TestShutdownClosesStreams(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withOptions(func(o *gateway.Options) { o.ShutdownGrace = 200 * time.Millisecond }))
	traffic, _, cancel, done := serveEnv(t, e)
	req := authorized(t, e, http.MethodGet, "mode=hang", "")
	req.URL.Host = strings.TrimPrefix(traffic, "http://")
	go func() {
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
		}
	}()
	<-e.up.received
	start := time.Now()
	cancel()
	select {
	case <-e.up.cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream request was not cancelled at the end of the grace period")
	}
	if err := <-done; err != nil {
		t.Errorf("Serve returned %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("shutdown took %s with a 200ms grace period", d)
	}
}

func TestRunRefusesBusyAddress(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	e := newEnv(t)
	cfg := e.cfg
	cfg.Listen.Traffic = ln.Addr().String()
	g, err := gateway.New(cfg, gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "listen for traffic") {
		t.Errorf("Run on a busy address: %v", err)
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	c := clerktest.NewServer()
	t.Cleanup(c.Close)
	clock := newManualClock()
	c.SetFault("GET /.well-known/jwks.json", clerktest.Fault{Status: http.StatusServiceUnavailable})
	e := newEnv(t, withClerk(c), withOptions(func(o *gateway.Options) { o.Now = clock.Now }))
	get := func(path string) (int, string) {
		resp, body := do(t, newRequest(t, http.MethodGet, e.health.URL+path, ""))
		return resp.StatusCode, body
	}

	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d", code)
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "503") {
		t.Errorf("/readyz with Clerk's keys unreachable = %d %q, want 503", code, body)
	}
	c.ClearFaults()
	if code, _ := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz right after a failed fetch = %d, want 503 until the verifier retries", code)
	}
	clock.Step(6 * time.Second) // past the verifier's retry delay after a failure
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz once the keys can be fetched = %d %q", code, body)
	}
	c.SetFault("*", clerktest.Fault{Outage: true})
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after the keys were fetched, Clerk down = %d, want 200: the keys are cached", code)
	}
	c.ClearFaults()

	// The keys fetched for readiness serve the first request.
	calls := c.Calls("GET /.well-known/jwks.json")
	req := newRequest(t, http.MethodPost, e.mcpURL(), toolCall("search"))
	req.Header.Set("Authorization", "Bearer "+e.token(t, clerktest.TokenRequest{Scopes: baseScopes}))
	if resp, body := do(t, req); resp.StatusCode != http.StatusOK {
		t.Fatalf("request: %d %s", resp.StatusCode, body)
	}
	if n := c.Calls("GET /.well-known/jwks.json"); n != calls {
		t.Errorf("the first request fetched the keys again (%d calls, had %d)", n, calls)
	}
	do(t, newRequest(t, http.MethodGet, e.mcpURL(), ""))

	code, metrics := get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		`mcpgate_gateway_requests_total{code="200",route="mcp"} 1`,
		`mcpgate_gateway_requests_total{code="401",route="mcp"} 1`,
		`mcpgate_gateway_auth_total{outcome="allowed",reason="ok"} 1`,
		`mcpgate_gateway_auth_total{outcome="denied",reason="missing_token"} 1`,
		`mcpgate_gateway_auth_total{outcome="error",reason="clerk_unavailable"} 0`,
		`mcpgate_gateway_token_verification_seconds_count{format="jwt"} 1`,
		`mcpgate_gateway_upstream_seconds_count 1`,
		`mcpgate_gateway_open_streams 0`,
		`mcpgate_gateway_clerk_calls_total{outcome="ok"}`,
		`mcpgate_gateway_clerk_calls_total{outcome="server_error"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestReadinessWaitsForTheUpstream: a new replica is not Ready until the
// upstream accepts a connection (on a node, the NetworkPolicy enforcer
// admits a new pod's address only a moment after it starts), dialled as the
// proxy dials it; once Ready, the upstream going away does not undo it.
func TestReadinessWaitsForTheUpstream(t *testing.T) {
	t.Parallel()
	// The upstream is 127.0.0.2:P, which refuses connections until the
	// test listens there. Holding 127.0.0.1:P keeps port P from being
	// given to another socket meanwhile.
	hold, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	addr := net.JoinHostPort("127.0.0.2", strconv.Itoa(hold.Addr().(*net.TCPAddr).Port))
	const upstreamHost = "upstream.team-a.svc:8080"
	e := newEnv(t,
		withConfig(func(c *config.Config) { c.Upstream.URL = "http://" + upstreamHost + "/mcp" }),
		withOptions(func(o *gateway.Options) { o.Resolve = map[string]string{upstreamHost: addr} }))
	readyz := func() (int, string) {
		resp, body := do(t, newRequest(t, http.MethodGet, e.health.URL+"/readyz", ""))
		return resp.StatusCode, body
	}

	if code, body := readyz(); code != http.StatusServiceUnavailable || !strings.Contains(body, upstreamHost) {
		t.Errorf("/readyz with the upstream refusing connections = %d %q, want 503 naming %s", code, body, upstreamHost)
	}
	if logs := e.logs.String(); !strings.Contains(logs, "could not connect to the upstream") {
		t.Errorf("no log line says why the replica is not ready:\n%s", logs)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	if code, body := readyz(); code != http.StatusOK {
		t.Errorf("/readyz once the upstream listens = %d %q, want 200", code, body)
	}
	l.Close()
	if code, body := readyz(); code != http.StatusOK {
		t.Errorf("/readyz after the upstream went away = %d %q, want 200: readiness latches", code, body)
	}
}

// TestAccessLog checks the one line per request, and that no credential
// gets into any log line.
func TestAccessLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.token(t, clerktest.TokenRequest{Scopes: baseScopes, ClientID: "client_logged"})
	req := newRequest(t, http.MethodPost, e.mcpURL(), toolCall("search"))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Cookie", "session=cookie-secret")
	req.Header.Set("X-Request-Id", "req-log-1")
	do(t, req)
	bad := newRequest(t, http.MethodGet, e.mcpURL()+"?access_token="+tok, "")
	do(t, bad)

	logs := e.logs.String()
	for _, secret := range []string{tok, "cookie-secret", e.clerk.SecretKey()} {
		if strings.Contains(logs, secret) {
			t.Errorf("a credential is in the logs:\n%s", logs)
		}
	}
	var line string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, `"request_id":"req-log-1"`) && strings.Contains(l, `"msg":"Served request"`) {
			line = l
		}
	}
	for _, want := range []string{`"method":"POST"`, `"route":"mcp"`, `"status":200`, `"bytes":`, `"duration":`,
		`"user_id":"` + clerktest.DefaultUserID + `"`, `"client_id":"client_logged"`, `"auth":"ok"`} {
		if !strings.Contains(line, want) {
			t.Errorf("access log line lacks %s: %s", want, line)
		}
	}
}

// TestShutdownDelay: for ShutdownDelay after its context ends, the gateway
// reports unready but still serves new requests, and only then stops
// listening.
func TestShutdownDelay(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withOptions(func(o *gateway.Options) { o.ShutdownDelay = 2 * time.Second }))
	traffic, health, cancel, done := serveEnv(t, e)
	waitReadyz(t, health, http.StatusOK)
	cancel()
	waitReadyz(t, health, http.StatusServiceUnavailable)
	req := authorized(t, e, http.MethodPost, "", toolCall("search"))
	req.URL.Host = strings.TrimPrefix(traffic, "http://")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("a new request while unready, within the delay: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("a new request while unready, within the delay: status %d, want 200", resp.StatusCode)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the delay")
	}
}

// waitReadyz waits until the health server's /readyz answers status.
func waitReadyz(t *testing.T, health string, status int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("/readyz to answer %d", status), 5*time.Second, func() bool {
		resp, err := http.Get(health + "/readyz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == status
	})
}

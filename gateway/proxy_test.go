package gateway_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway"
	"github.com/mcpgate/mcpgate/gateway/config"
)

// authorized builds a request to the env's MCP endpoint with a valid token.
func authorized(t testing.TB, e *gwEnv, method, query, body string) *http.Request {
	t.Helper()
	target := e.mcpURL()
	if query != "" {
		target += "?" + query
	}
	req := newRequest(t, method, target, body)
	req.Header.Set("Authorization", "Bearer "+e.token(t, clerktest.TokenRequest{Scopes: baseScopes}))
	return req
}

// TestProxyExchange checks what passes through in both directions: MCP
// headers, statuses, the query, and the upstream's path.
func TestProxyExchange(t *testing.T) {
	t.Parallel()
	mcpHeaders := http.Header{
		"Mcp-Session-Id":       {"sess-client-1"},
		"Mcp-Protocol-Version": {"2025-11-25"},
		"Last-Event-Id":        {"41"},
		"Accept":               {"application/json, text/event-stream"},
		"Mcp-Method":           {"tools/call"},
		"Mcp-Name":             {"search"},
		"Mcp-Param-Region":     {"us-west1"},
	}
	tests := []struct {
		name   string
		method string
		query  string
		body   string
		status int
		// mcpMethod replaces the tools/call of the Mcp-Method header (and
		// drops Mcp-Name), for a body of another method.
		mcpMethod string
	}{
		{name: "JSON response", method: http.MethodPost, query: "x=1&y=a%2Fb", body: toolCall("search"), status: http.StatusOK},
		{name: "notification accepted", method: http.MethodPost, query: "mode=status&code=202", body: `{"jsonrpc":"2.0","method":"notifications/initialized"}`, status: http.StatusAccepted, mcpMethod: "notifications/initialized"},
		{name: "session gone", method: http.MethodPost, query: "mode=status&code=404", body: toolCall("search"), status: http.StatusNotFound},
		{name: "no GET stream", method: http.MethodGet, query: "mode=status&code=405", status: http.StatusMethodNotAllowed},
		{name: "session ended", method: http.MethodDelete, query: "mode=status&code=204", status: http.StatusNoContent},
		{name: "upstream error", method: http.MethodPost, query: "mode=status&code=500", body: toolCall("search"), status: http.StatusInternalServerError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			req := authorized(t, e, tc.method, tc.query, tc.body)
			for k, v := range mcpHeaders {
				req.Header[k] = v
			}
			if tc.mcpMethod != "" {
				req.Header.Set("Mcp-Method", tc.mcpMethod)
				req.Header.Del("Mcp-Name")
			}
			req.Header.Set("X-Request-Id", "req-from-client-1")
			resp, body := do(t, req)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d %q, want %d", resp.StatusCode, body, tc.status)
			}
			for name, want := range map[string]string{
				"Mcp-Session-Id":              "sess-upstream-1",
				"Mcp-Protocol-Version":        "2025-11-25",
				"X-Request-Id":                "req-from-client-1",
				"Access-Control-Allow-Origin": "", // the upstream's, dropped
			} {
				if got := resp.Header.Get(name); got != want {
					t.Errorf("response %s = %q, want %q", name, got, want)
				}
			}

			seen := e.up.requests()
			if len(seen) != 1 {
				t.Fatalf("upstream received %d requests", len(seen))
			}
			got := seen[0]
			upstreamHost := strings.TrimPrefix(e.up.srv.URL, "http://")
			gatewayHost := strings.TrimPrefix(e.srv.URL, "http://")
			if got.Method != tc.method || got.Path != "/upstream/mcp" || got.RawQuery != tc.query || got.Host != upstreamHost {
				t.Errorf("upstream saw %s %s?%s Host %s; want %s /upstream/mcp?%s Host %s",
					got.Method, got.Path, got.RawQuery, got.Host, tc.method, tc.query, upstreamHost)
			}
			if string(got.Body) != tc.body {
				t.Errorf("upstream body %q, want %q", got.Body, tc.body)
			}
			for k := range mcpHeaders {
				if g, v := got.Header.Values(k), req.Header.Values(k); strings.Join(g, "|") != strings.Join(v, "|") {
					t.Errorf("upstream %s = %q, want %q", k, g, v)
				}
			}
			for name, want := range map[string]string{
				"X-Forwarded-For":   "127.0.0.1",
				"X-Forwarded-Host":  gatewayHost,
				"X-Forwarded-Proto": "http",
				"X-Request-Id":      "req-from-client-1",
				"Authorization":     "",
			} {
				if g := got.Header.Get(name); g != want {
					t.Errorf("upstream %s = %q, want %q", name, g, want)
				}
			}
		})
	}
}

func TestProxyForwardedHeaders(t *testing.T) {
	t.Parallel()
	client := http.Header{
		"X-Forwarded-For":   {"203.0.113.7"},
		"X-Forwarded-Host":  {"tools.example.com"},
		"X-Forwarded-Proto": {"https"},
		"Forwarded":         {"for=203.0.113.7"},
	}
	tests := map[string]struct {
		trust bool
		want  map[string]string // "<gw>" stands for the gateway's host
	}{
		"untrusted": {want: map[string]string{
			"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "<gw>", "X-Forwarded-Proto": "http", "Forwarded": "",
		}},
		"trusted": {trust: true, want: map[string]string{
			"X-Forwarded-For": "203.0.113.7, 127.0.0.1", "X-Forwarded-Host": "tools.example.com", "X-Forwarded-Proto": "https", "Forwarded": "for=203.0.113.7",
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, withConfig(func(c *config.Config) { c.TrustForwardedHeaders = tc.trust }))
			req := authorized(t, e, http.MethodPost, "", toolCall("search"))
			for k, v := range client {
				req.Header[k] = v
			}
			if resp, body := do(t, req); resp.StatusCode != http.StatusOK {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			got := e.up.requests()[0].Header
			for k, want := range tc.want {
				want = strings.ReplaceAll(want, "<gw>", strings.TrimPrefix(e.srv.URL, "http://"))
				if g := strings.Join(got.Values(k), ", "); g != want {
					t.Errorf("upstream %s = %q, want %q", k, g, want)
				}
			}
		})
	}
}

// TestProxyStreamsSSE checks that each event reaches the client as the
// upstream sends it: the upstream holds the stream after the first event
// until the client has received it.
func TestProxyStreamsSSE(t *testing.T) {
	t.Parallel()
	for _, method := range []string{http.MethodPost, http.MethodGet} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			body := ""
			if method == http.MethodPost {
				body = toolCall("search")
			}
			req := authorized(t, e, method, "mode=sse", body)
			req.Header.Set("Last-Event-ID", "0")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }()
			if ct, xab := resp.Header.Get("Content-Type"), resp.Header.Get("X-Accel-Buffering"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" || xab != "no" {
				t.Fatalf("status %d, Content-Type %q, X-Accel-Buffering %q", resp.StatusCode, ct, xab)
			}
			events := make(chan string)
			go func() {
				defer close(events)
				sc := bufio.NewScanner(resp.Body)
				for sc.Scan() {
					if line := sc.Text(); strings.HasPrefix(line, "data: ") {
						events <- line
					}
				}
			}()
			select {
			case ev := <-events:
				if ev != `data: {"n":1}` {
					t.Fatalf("first event %q", ev)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the first event did not arrive while the upstream held the stream open: buffered?")
			}
			if got := scrape(t, e, "mcpgate_gateway_open_streams"); got != "1" {
				t.Errorf("open streams = %s during the stream, want 1", got)
			}
			close(e.up.gate)
			var rest []string
			for ev := range events {
				rest = append(rest, ev)
			}
			if strings.Join(rest, "|") != `data: {"n":2}|data: {"n":3}` {
				t.Errorf("later events %q", rest)
			}
			if got := e.up.requests()[0].Header.Get("Last-Event-Id"); got != "0" {
				t.Errorf("upstream Last-Event-ID = %q", got)
			}
			waitFor(t, "the stream to be counted closed", 5*time.Second, func() bool {
				return scrape(t, e, "mcpgate_gateway_open_streams") == "0"
			})
		})
	}
}

// scrape returns the value of an unlabelled metric from the health handler.
func scrape(t testing.TB, e *gwEnv, name string) string {
	t.Helper()
	_, body := do(t, newRequest(t, http.MethodGet, e.health.URL+"/metrics", ""))
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	t.Fatalf("no metric %s in\n%s", name, body)
	return ""
}

func TestProxyClientDisconnectCancelsUpstream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := authorized(t, e, http.MethodPost, "mode=hang", toolCall("search")).WithContext(ctx)
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
		}
		done <- err
	}()
	select {
	case <-e.up.received:
	case <-time.After(5 * time.Second):
		t.Fatal("the request did not reach the upstream")
	}
	cancel()
	select {
	case <-e.up.cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream request was not cancelled when the client went away")
	}
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("client error %v", err)
	}
}

func TestProxyUpstreamFailures(t *testing.T) {
	t.Parallel()
	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() + "/mcp"
	_ = ln.Close()

	tests := map[string]struct {
		upstream string // "" keeps the recording upstream
		query    string
		status   int
		body     string
	}{
		"dead upstream":                  {upstream: dead, status: http.StatusBadGateway, body: "502 upstream unavailable\n"},
		"slow beyond the header timeout": {query: "mode=slow&delay=5s", status: http.StatusGatewayTimeout, body: "504 upstream timed out\n"},
		"slow within the header timeout": {query: "mode=slow&delay=50ms", status: http.StatusOK, body: toolResult},
		"upstream drops the connection":  {query: "mode=drop", status: http.StatusBadGateway, body: "502 upstream unavailable\n"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t,
				withConfig(func(c *config.Config) {
					if tc.upstream != "" {
						c.Upstream.URL = tc.upstream
					}
				}),
				withOptions(func(o *gateway.Options) { o.ResponseHeaderTimeout = 300 * time.Millisecond }))
			start := time.Now()
			resp, body := do(t, authorized(t, e, http.MethodPost, tc.query, toolCall("search")))
			if resp.StatusCode != tc.status || (tc.body != "" && body != tc.body) {
				t.Errorf("%d %q, want %d %q", resp.StatusCode, body, tc.status, tc.body)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
}

func TestProxyUpstreamDiesMidStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, err := http.DefaultClient.Do(authorized(t, e, http.MethodPost, "mode=die", toolCall("search")))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	r := bufio.NewReader(resp.Body)
	line, err := r.ReadString('\n')
	if err != nil || line != "id: 1\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	_, err = io.ReadAll(r)
	if err == nil {
		t.Fatal("the stream ended cleanly; the client must see that it was cut")
	}
	waitFor(t, "the aborted request to be logged", 5*time.Second, func() bool {
		return strings.Contains(e.logs.String(), `"aborted":true`)
	})
}

// TestProxyResolve checks the development-only dial override.
func TestProxyResolve(t *testing.T) {
	t.Parallel()
	up := newRecordingUpstream(t)
	e := newEnv(t,
		withConfig(func(c *config.Config) { c.Upstream.URL = "http://mcp.team-a.svc:8080/upstream/mcp" }),
		withOptions(func(o *gateway.Options) {
			o.Resolve = map[string]string{"mcp.team-a.svc:8080": strings.TrimPrefix(up.srv.URL, "http://")}
		}))
	if resp, body := do(t, authorized(t, e, http.MethodPost, "", toolCall("search"))); resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	seen := up.requests()
	if len(seen) != 1 || seen[0].Host != "mcp.team-a.svc:8080" {
		t.Errorf("upstream saw %+v, want one request for Host mcp.team-a.svc:8080", seen)
	}
}

// TestCORS checks the MCP endpoint's answers to browsers.
func TestCORS(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withConfig(func(c *config.Config) { c.AllowedOrigins = []string{"https://app.example.com"} }))
	preflight := func(origin string) *http.Response {
		req := newRequest(t, http.MethodOptions, e.mcpURL(), "")
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type, mcp-protocol-version, mcp-param-region, x-evil")
		resp, _ := do(t, req)
		return resp
	}
	resp := preflight("https://app.example.com")
	h := resp.Header
	if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		h.Get("Access-Control-Allow-Methods") != "POST, GET, DELETE, OPTIONS" ||
		h.Get("Access-Control-Allow-Headers") != "authorization, content-type, mcp-protocol-version, mcp-param-region" {
		t.Errorf("allowed preflight: %d %v", resp.StatusCode, h)
	}
	if resp := preflight("https://evil.example.com"); resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("foreign preflight: %d %v", resp.StatusCode, resp.Header)
	}
	// A 401 to an allowed origin exposes the challenge to the page.
	req := newRequest(t, http.MethodPost, e.mcpURL(), toolCall("search"))
	req.Header.Set("Origin", "https://app.example.com")
	resp, _ = do(t, req)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "WWW-Authenticate") ||
		!strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "Mcp-Session-Id") {
		t.Errorf("401 to a browser: %d %v", resp.StatusCode, resp.Header)
	}
	if len(e.up.requests()) != 0 {
		t.Error("a preflight or unauthenticated request reached the upstream")
	}
	u, _ := url.Parse(e.mcpURL())
	if u.Host == "" {
		t.Fatal("no host")
	}
}

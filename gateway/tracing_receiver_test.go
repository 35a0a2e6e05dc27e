package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway/config"
	"github.com/mcpgate/mcpgate/internal/mcpclient"
	"github.com/mcpgate/mcpgate/internal/sampleserver"
	"github.com/mcpgate/mcpgate/internal/tracing/tracingtest"
)

// OTLP span kinds.
const (
	kindServer = 2
	kindClient = 3
)

// tracingTraceID and tracingParentID are the client's trace context.
const (
	tracingTraceID  = "4bf92f3577b34da6a3ce929d0e0e4736"
	tracingParentID = "00f067aa0ba902b7"
	// tracingArgument is a tool argument no span may hold.
	tracingArgument = "argument-that-must-stay-out-of-traces"
	// tracingHeaderValue is an export header's value (an API key of a
	// hosted tracing service): it goes to the receiver, never into a span.
	tracingHeaderValue = "export-api-key-0123456789"
)

// TestTracingToReceiver sends MCP calls with the official Go SDK client
// (through internal/mcpclient: discovery, registration, authorization)
// through a gateway whose sampling ratio is 0, with the client's sampled
// traceparent on every request, and reads the spans a real OTLP receiver
// (the OpenTelemetry Collector's otlpreceiver) got: a server span per
// request, the child of the client's span; the decision steps and the
// upstream call as its children; the upstream given the gateway's span in
// traceparent and, for MCP 2026-07-28, in params._meta; the export header
// at the receiver; no token, key, export header or tool argument in any
// span. A request whose traceparent is not sampled records nothing.
func TestTracingToReceiver(t *testing.T) {
	t.Parallel()
	recv := startReceiver(t)

	headersDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(headersDir, "X-Api-Key"), []byte(tracingHeaderValue+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	em := clerktest.NewServer(clerktest.WithJWTAccessTokens(false)) // opaque: verification calls Clerk
	t.Cleanup(em.Close)
	up := &upstreamRecorder{next: sampleserver.NewHandler(sampleserver.Options{Stateless: true})}
	upSrv := httptest.NewServer(up)
	t.Cleanup(upSrv.Close)
	env := newEnv(t, withClerk(em), withConfig(func(c *config.Config) {
		c.Upstream.URL = upSrv.URL + "/mcp"
		c.Scopes, c.ToolScopes = []string{"profile"}, nil
		c.Tracing = &config.Tracing{Endpoint: recv.Endpoint, SamplingRatio: 0, HeadersDir: headersDir}
	}))

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	tokens := &tokenSpy{base: http.DefaultTransport}
	cs, err := mcpclient.Connect(ctx, mcpclient.Options{
		URL:        env.mcpURL(),
		HTTPClient: &http.Client{Transport: &traceparentSetter{base: tokens, value: "00-" + tracingTraceID + "-" + tracingParentID + "-01"}},
		ClientName: "mcpgate-tracing-test",
	})
	if err != nil {
		t.Fatalf("connect through the gateway: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: sampleserver.ToolEcho, Arguments: map[string]any{"text": tracingArgument}})
	if err != nil || res.IsError {
		t.Fatalf("echo through the gateway: %v %+v", err, res)
	}

	// No traceparent at ratio 0: a new trace, not sampled. The gateway
	// records nothing, yet gives the upstream a traceparent of its own,
	// unsampled, that the upstream may continue.
	req := newRequest(t, http.MethodPost, env.mcpURL(), `{"jsonrpc":"2.0","id":6,"method":"tools/list","params":{}}`)
	req.Header.Set("Authorization", "Bearer "+tokens.last())
	if resp, body := do(t, req); resp.StatusCode != http.StatusOK {
		t.Fatalf("tools/list without traceparent = %d %s", resp.StatusCode, body)
	}
	newTrace := up.find("tools/list")

	// An unsampled traceparent: the gateway records nothing (ratio 0 for
	// new traces, and the parent says no), yet still passes a traceparent
	// of the same trace to the upstream.
	const unsampledTrace = "0af7651916cd43dd8448eb211c80319c"
	req = newRequest(t, http.MethodPost, env.mcpURL(), `{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{}}`)
	req.Header.Set("Authorization", "Bearer "+tokens.last())
	req.Header.Set("Traceparent", "00-"+unsampledTrace+"-b7ad6b7169203331-00")
	if resp, body := do(t, req); resp.StatusCode != http.StatusOK {
		t.Fatalf("unsampled tools/list = %d %s", resp.StatusCode, body)
	}
	if err := env.gw.FlushSpans(ctx); err != nil {
		t.Fatalf("FlushSpans: %v", err)
	}

	spans, err := recv.WaitForSpans(10*time.Second, func(s []tracingtest.Span) bool {
		return findSpan(s, kindClient, "tools/call "+sampleserver.ToolEcho) != nil
	})
	if err != nil {
		t.Fatalf("waiting for the upstream span: %v", err)
	}

	t.Run("server spans continue the client's trace", func(t *testing.T) {
		var servers int
		for _, s := range spans {
			if s.TraceID != tracingTraceID {
				t.Errorf("span %q in trace %s, want only the client's trace %s (ratio 0)", s.Name, s.TraceID, tracingTraceID)
			}
			if s.Kind == kindServer {
				servers++
				if s.ParentSpanID != tracingParentID {
					t.Errorf("server span %q has parent %q, want the client's span %s", s.Name, s.ParentSpanID, tracingParentID)
				}
				if s.Name != "POST /mcp" && s.Name != "GET /mcp" && s.Name != "DELETE /mcp" && !strings.HasPrefix(s.Name, "GET /.well-known/") {
					t.Errorf("server span named %q, want METHOD ROUTE", s.Name)
				}
			}
			if s.Resource["service.name"] != "mcpgate-gateway" || s.Resource["mcpgate.mcpserver"] != "team-a/tools" {
				t.Errorf("span %q resource = %v, want service.name mcpgate-gateway, mcpgate.mcpserver team-a/tools", s.Name, s.Resource)
			}
		}
		if servers < 3 {
			t.Errorf("got %d server spans, want one per request (initialize, notification, tools/call at least)", servers)
		}
	})

	upstream := findSpan(spans, kindClient, "tools/call "+sampleserver.ToolEcho)
	server := spanByID(spans, upstream.ParentSpanID)
	t.Run("the tools/call request", func(t *testing.T) {
		if server == nil || server.Kind != kindServer || server.Name != "POST /mcp" {
			t.Fatalf("upstream span's parent = %+v, want the POST /mcp server span", server)
		}
		for k, want := range map[string]string{
			"http.request.method": "POST", "http.route": "/mcp", "http.response.status_code": "200",
			"mcp.method.name": "tools/call", "gen_ai.tool.name": sampleserver.ToolEcho, "gen_ai.operation.name": "execute_tool",
			"mcpgate.decision": "ok", "user.id": clerktest.DefaultUserID,
		} {
			if got := server.Attributes[k]; got != want {
				t.Errorf("server span %s = %q, want %q", k, got, want)
			}
		}
		for k, want := range map[string]string{"mcp.method.name": "tools/call", "http.response.status_code": "200", "mcpgate.meta_trace_context": "true"} {
			if got := upstream.Attributes[k]; got != want {
				t.Errorf("upstream span %s = %q, want %q", k, got, want)
			}
		}
		for _, step := range []string{"mcpgate.verify_token", "mcpgate.scopes"} {
			s := childNamed(spans, server.SpanID, step)
			if s == nil {
				t.Errorf("no %s span under the tools/call server span", step)
				continue
			}
			if s.Attributes["mcpgate.decision"] != "ok" {
				t.Errorf("%s decision = %q, want ok", step, s.Attributes["mcpgate.decision"])
			}
		}
		if v := childNamed(spans, server.SpanID, "mcpgate.verify_token"); v != nil && v.Attributes["mcpgate.token.format"] != "opaque" {
			t.Errorf("verify span token format = %q, want opaque", v.Attributes["mcpgate.token.format"])
		}
	})

	t.Run("token verification calls Clerk once, then hits the cache", func(t *testing.T) {
		var misses, hits int
		for _, s := range spans {
			if s.Name != "mcpgate.verify_token" {
				continue
			}
			switch s.Attributes["mcpgate.cache"] {
			case "miss":
				misses++
				clerkCall := false
				for _, c := range spans {
					clerkCall = clerkCall || c.ParentSpanID == s.SpanID && c.Kind == kindClient && c.Attributes["mcpgate.peer"] == "clerk" && c.Name == "POST"
				}
				if !clerkCall {
					t.Errorf("a verification that missed the cache has no Clerk POST span under it")
				}
			case "hit":
				hits++
			}
		}
		if misses < 1 || hits < 1 {
			t.Errorf("verifications: %d misses, %d hits; want the first to miss and later ones to hit", misses, hits)
		}
	})

	t.Run("the upstream continues the gateway's span", func(t *testing.T) {
		want := "00-" + tracingTraceID + "-" + upstream.SpanID + "-01"
		call := up.find("tools/call")
		if call == nil {
			t.Fatal("the upstream saw no tools/call")
		}
		if got := call.header.Get("Traceparent"); got != want {
			t.Errorf("upstream traceparent header = %q, want %q (the gateway's upstream span)", got, want)
		}
		if call.header.Get("Mcp-Protocol-Version") >= "2026-07-28" {
			var body struct {
				Params struct {
					Meta map[string]any `json:"_meta"`
				} `json:"params"`
			}
			if err := json.Unmarshal(call.body, &body); err != nil {
				t.Fatal(err)
			}
			if got := body.Params.Meta["traceparent"]; got != want {
				t.Errorf("upstream params._meta.traceparent = %v, want %q", got, want)
			}
		} else {
			t.Errorf("the SDK spoke %q; this test expects 2026-07-28, which carries _meta trace context", call.header.Get("Mcp-Protocol-Version"))
		}
		list := up.find("tools/list")
		if list == nil || !strings.HasPrefix(list.header.Get("Traceparent"), "00-"+unsampledTrace+"-") || !strings.HasSuffix(list.header.Get("Traceparent"), "-00") {
			t.Errorf("unsampled request reached the upstream with traceparent %q, want one in trace %s, unsampled", list.header.Get("Traceparent"), unsampledTrace)
		}
		if newTrace == nil {
			t.Fatal("the upstream saw no tools/list without traceparent")
		}
		if tp := newTrace.header.Get("Traceparent"); !validTraceparent.MatchString(tp) || !strings.HasSuffix(tp, "-00") || strings.Contains(tp, tracingTraceID) {
			t.Errorf("a request without traceparent reached the upstream with traceparent %q, want a new trace's, unsampled", tp)
		}
	})

	t.Run("export headers reach the receiver, secrets reach no span", func(t *testing.T) {
		exports, err := recv.Exports()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range exports {
			if got := e.Headers["x-api-key"]; len(got) != 1 || got[0] != tracingHeaderValue {
				t.Errorf("export header x-api-key = %q, want the file's value", got)
			}
		}
		secrets := []string{tracingArgument, tracingHeaderValue, em.SecretKey(), tokens.last()}
		for _, s := range spans {
			for k, v := range s.Attributes {
				for _, secret := range secrets {
					if secret != "" && (strings.Contains(v, secret) || strings.Contains(k, "argument")) {
						t.Errorf("span %q attribute %s = %q holds a secret or tool argument", s.Name, k, v)
					}
				}
			}
		}
	})
}

// validTraceparent is a W3C version 00 traceparent.
var validTraceparent = regexp.MustCompile(`^00-(?:[0-9a-f]{32})-(?:[0-9a-f]{16})-0[01]$`)

// startReceiver runs the OTLP receiver (building it on first use) and
// stops it when the test ends.
func startReceiver(t *testing.T) *tracingtest.Receiver {
	t.Helper()
	recv := tracingtest.StartT(t, "x-api-key")
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		spans, _ := recv.Spans()
		for _, s := range spans {
			t.Logf("received span %q kind %d id %s parent %s %v", s.Name, s.Kind, s.SpanID, s.ParentSpanID, s.Attributes)
		}
	})
	return recv
}

func findSpan(spans []tracingtest.Span, kind int, name string) *tracingtest.Span {
	for i := range spans {
		if spans[i].Kind == kind && spans[i].Name == name {
			return &spans[i]
		}
	}
	return nil
}

func spanByID(spans []tracingtest.Span, id string) *tracingtest.Span {
	for i := range spans {
		if spans[i].SpanID == id {
			return &spans[i]
		}
	}
	return nil
}

func childNamed(spans []tracingtest.Span, parent, name string) *tracingtest.Span {
	for i := range spans {
		if spans[i].ParentSpanID == parent && spans[i].Name == name {
			return &spans[i]
		}
	}
	return nil
}

// traceparentSetter sends a fixed traceparent with every request, as an
// instrumented client would.
type traceparentSetter struct {
	base  http.RoundTripper
	value string
}

func (s *traceparentSetter) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Traceparent", s.value)
	return s.base.RoundTrip(req)
}

// tokenSpy remembers the last bearer token the client sent.
type tokenSpy struct {
	base  http.RoundTripper
	mu    sync.Mutex
	token string
}

func (s *tokenSpy) RoundTrip(req *http.Request) (*http.Response, error) {
	if tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer "); ok {
		s.mu.Lock()
		s.token = tok
		s.mu.Unlock()
	}
	return s.base.RoundTrip(req)
}

func (s *tokenSpy) last() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token
}

// upstreamRecorder records the requests an upstream MCP server received.
type upstreamRecorder struct {
	next http.Handler
	mu   sync.Mutex
	seen []upstreamCall
}

type upstreamCall struct {
	header http.Header
	body   []byte
}

func (u *upstreamRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.seen = append(u.seen, upstreamCall{header: r.Header.Clone(), body: body})
	u.mu.Unlock()
	r.Body = io.NopCloser(strings.NewReader(string(body)))
	u.next.ServeHTTP(w, r)
}

// find returns the last request whose body has method.
func (u *upstreamRecorder) find(method string) *upstreamCall {
	u.mu.Lock()
	defer u.mu.Unlock()
	for i := len(u.seen) - 1; i >= 0; i-- {
		var m struct {
			Method string `json:"method"`
		}
		if json.Unmarshal(u.seen[i].body, &m) == nil && m.Method == method {
			c := u.seen[i]
			return &c
		}
	}
	return nil
}

// TestTracingBrokerCalls: with the key broker, an opaque token's
// verification is a call to the broker, recorded as a client span under
// the verification step, which then counts as a cache miss.
func TestTracingBrokerCalls(t *testing.T) {
	t.Parallel()
	recv := startReceiver(t)
	em := clerktest.NewServer(clerktest.WithJWTAccessTokens(false))
	t.Cleanup(em.Close)
	env := newEnv(t, withClerk(em), withBroker(), withConfig(func(c *config.Config) {
		c.Tracing = &config.Tracing{Endpoint: recv.Endpoint, SamplingRatio: 1}
	}))
	req := newRequest(t, http.MethodPost, env.mcpURL(), toolCall("search"))
	req.Header.Set("Authorization", "Bearer "+env.token(t, clerktest.TokenRequest{Scopes: allScopes}))
	if resp, body := do(t, req); resp.StatusCode != http.StatusOK {
		t.Fatalf("tools/call = %d %s", resp.StatusCode, body)
	}
	if err := env.gw.FlushSpans(t.Context()); err != nil {
		t.Fatal(err)
	}
	spans, err := recv.WaitForSpans(10*time.Second, func(s []tracingtest.Span) bool {
		return findSpan(s, kindClient, "broker verify") != nil
	})
	if err != nil {
		t.Fatal(err)
	}
	call := findSpan(spans, kindClient, "broker verify")
	verify := spanByID(spans, call.ParentSpanID)
	if verify == nil || verify.Name != "mcpgate.verify_token" || verify.Attributes["mcpgate.cache"] != "miss" || call.Attributes["mcpgate.peer"] != "broker" {
		t.Errorf("broker span %+v under %+v; want it under a verification that missed the cache", call, verify)
	}
}

// TestTracingClientMetaTrace: for MCP 2026-07-28, the upstream's
// params._meta.traceparent is the gateway's upstream span when the client
// sent a traceparent header (the gateway's spans are in the client's
// trace), and the client's own when the client put its context in _meta
// alone (the gateway's spans, which follow the header, are not).
func TestTracingClientMetaTrace(t *testing.T) {
	t.Parallel()
	env := newEnv(t, withConfig(func(c *config.Config) {
		// Nothing listens there: exports fail, requests never notice.
		c.Tracing = &config.Tracing{Endpoint: "http://127.0.0.1:1", SamplingRatio: 1}
	}))
	tok := env.token(t, clerktest.TokenRequest{Scopes: allScopes})
	const clientMeta = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{},"_meta":{"traceparent":"` + clientMeta + `"}}}`
	for name, tc := range map[string]struct {
		header    string // the client's traceparent header
		wantTrace string // the trace of the upstream's _meta.traceparent
		wantOwn   bool   // _meta.traceparent is the client's, unchanged
	}{
		"context in the header and _meta": {header: "00-" + tracingTraceID + "-" + tracingParentID + "-01", wantTrace: tracingTraceID},
		"context in _meta alone":          {wantOwn: true},
	} {
		req := newRequest(t, http.MethodPost, env.mcpURL(), body)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Mcp-Protocol-Version", "2026-07-28")
		if tc.header != "" {
			req.Header.Set("Traceparent", tc.header)
		}
		if resp, got := do(t, req); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", name, resp.StatusCode, got)
		}
		seen := env.up.requests()
		last := seen[len(seen)-1]
		var m struct {
			Params struct {
				Meta map[string]string `json:"_meta"`
			} `json:"params"`
		}
		if err := json.Unmarshal(last.Body, &m); err != nil {
			t.Fatalf("%s: upstream body %s: %v", name, last.Body, err)
		}
		meta, header := m.Params.Meta["traceparent"], last.Header.Get("Traceparent")
		switch {
		case header == "" || header == tc.header:
			t.Errorf("%s: upstream traceparent header %q, want the gateway's span", name, header)
		case tc.wantOwn && meta != clientMeta:
			t.Errorf("%s: upstream _meta.traceparent = %q, want the client's %q", name, meta, clientMeta)
		case !tc.wantOwn && (meta != header || !strings.Contains(meta, tc.wantTrace)):
			t.Errorf("%s: upstream _meta.traceparent = %q, want the header's %q in trace %s", name, meta, header, tc.wantTrace)
		}
	}
}

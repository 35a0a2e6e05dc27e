package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"reflect"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/gateway/config"
)

func TestWithMetaTrace(t *testing.T) {
	t.Parallel()
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := map[string]struct {
		body string
		// tracestate is the gateway's tracestate; empty sends none.
		tracestate string
		// want is the body the upstream gets; empty: the body is refused
		// (left as it was).
		want string
	}{
		"no _meta": {
			body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`,
			want: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","_meta":{"traceparent":"` + tp + `"}}}`,
		},
		"empty params": {
			body: `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{ }}`,
			want: `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{ "_meta":{"traceparent":"` + tp + `"}}}`,
		},
		"no params": {
			body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`,
			want: `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"traceparent":"` + tp + `"}}}`,
		},
		"_meta with protocol fields and the client's traceparent, which ours follows": {
			body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","traceparent":"00-client"},"name":"echo"}}`,
			want: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","traceparent":"00-client","traceparent":"` + tp + `"},"name":"echo"}}`,
		},
		"empty _meta and tracestate with a quote": {
			body:       `{"method":"tools/list","params":{"_meta":{}},"id":2}`,
			tracestate: `k=v"x`,
			want:       `{"method":"tools/list","params":{"_meta":{"traceparent":"` + tp + `","tracestate":"k=v\"x"}},"id":2}`,
		},
		"whitespace around": {
			body: " {\"method\":\"ping\",\"params\":{\"a\":1} } \n",
			want: " {\"method\":\"ping\",\"params\":{\"a\":1,\"_meta\":{\"traceparent\":\"" + tp + "\"}} } \n",
		},
		"params twice":         {body: `{"method":"tools/call","params":{"name":"a"},"params":{"name":"b"}}`},
		"params in two cases":  {body: `{"method":"tools/call","params":{"name":"a"},"Params":{"name":"b"}}`},
		"_meta twice":          {body: `{"method":"tools/call","params":{"_meta":{},"_META":{},"name":"a"}}`},
		"params not an object": {body: `{"method":"tools/call","params":[1]}`},
		"_meta not an object":  {body: `{"method":"tools/call","params":{"_meta":"x"}}`},
		"a batch":              {body: `[{"method":"ping"}]`},
		"not JSON":             {body: `{"method":`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, ok := withMetaTrace([]byte(tc.body), tp, tc.tracestate)
			if tc.want == "" {
				if ok {
					t.Fatalf("withMetaTrace(%s) = %s, want it refused", tc.body, got)
				}
				return
			}
			if !ok || string(got) != tc.want {
				t.Fatalf("withMetaTrace(%s) =\n%s, %v; want\n%s", tc.body, got, ok, tc.want)
			}
			// What an upstream on encoding/json reads: our traceparent.
			var m struct {
				Params struct {
					Meta map[string]any `json:"_meta"`
				} `json:"params"`
			}
			if err := json.Unmarshal(got, &m); err != nil || m.Params.Meta["traceparent"] != tp {
				t.Fatalf("upstream reads _meta %v (%v), want traceparent %s", m.Params.Meta, err, tp)
			}
		})
	}
}

func TestMetaHasTraceparent(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]bool{
		`{"method":"tools/call","params":{"_meta":{"traceparent":"00-a-b-01"},"name":"x"}}`: true,
		`{"method":"tools/call","params":{"_meta":{"TraceParent":"00-a-b-01"}}}`:            true,
		`{"method":"tools/call","params":{"_meta":{"tracestate":"k=v"}}}`:                   false,
		`{"method":"tools/call","params":{"name":"x"}}`:                                     false,
		`{"method":"ping"}`:                                    false,
		`[{"params":{"_meta":{"traceparent":"x"}}}]`:           false,
		`{"params":{"_meta":{"traceparent":"x"}},"params":{}}`: false,
		`not json`: false,
	} {
		if got := metaHasTraceparent([]byte(body)); got != want {
			t.Errorf("metaHasTraceparent(%s) = %v, want %v", body, got, want)
		}
	}
}

// FuzzWithMetaTrace: whatever the body, an accepted splice is valid JSON
// whose params._meta.traceparent is ours, and whose other members are as
// they were.
func FuzzWithMetaTrace(f *testing.F) {
	for _, s := range []string{`{"method":"ping"}`, `{"method":"tools/call","params":{"name":"x","_meta":{"a":1}}}`, `{"params":{}}`, `{"params":{"_meta":{"traceparent":1}}}`} {
		f.Add(s)
	}
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	f.Fuzz(func(t *testing.T, body string) {
		got, ok := withMetaTrace([]byte(body), tp, "")
		if !ok {
			return
		}
		if !json.Valid(got) {
			t.Fatalf("withMetaTrace(%q) = %q, not JSON", body, got)
		}
		var in, out map[string]json.RawMessage
		if json.Unmarshal([]byte(body), &in) != nil || json.Unmarshal(got, &out) != nil {
			return
		}
		for k, v := range in {
			if !strings.EqualFold(k, "params") && string(out[k]) != string(v) {
				t.Fatalf("member %s changed: %s -> %s", k, v, out[k])
			}
		}
		var params map[string]json.RawMessage
		var meta map[string]any
		if json.Unmarshal(foldMember(out, "params"), &params) != nil || json.Unmarshal(foldMember(params, "_meta"), &meta) != nil || meta["traceparent"] != tp {
			t.Fatalf("withMetaTrace(%q) = %q: _meta.traceparent not ours", body, got)
		}
	})
}

// foldMember is m's member named key in any letter case (the splice accepts
// one such member only).
func foldMember(m map[string]json.RawMessage, key string) json.RawMessage {
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

// ptrHandler is a comparable handler.
type ptrHandler struct{}

func (*ptrHandler) ServeHTTP(http.ResponseWriter, *http.Request) {}

// TestTracingOffLeavesHooksOut: without config.Tracing every hook returns
// what it was given, so the request path is the one without tracing.
func TestTracingOffLeavesHooksOut(t *testing.T) {
	t.Parallel()
	g := &Gateway{} // g.tr nil: tracing off
	h := &ptrHandler{}
	if g.annotateRequest(h) != http.Handler(h) {
		t.Error("annotateRequest wrapped the handler with tracing off")
	}
	plain := httptest.NewRequest(http.MethodGet, "/mcp", nil)
	if ctx, span := g.startRequestSpan(plain); ctx != plain.Context() || span != nil {
		t.Error("startRequestSpan started a span or made a context with tracing off")
	}
	mw := func(next http.Handler) http.Handler { return next }
	if reflect.ValueOf(g.traceStep(spanVerify, mw)).Pointer() != reflect.ValueOf(mw).Pointer() {
		t.Error("traceStep wrapped the step with tracing off")
	}
	base := http.DefaultTransport
	if g.upstreamTracing(base) != base || g.clerkTransport(base) != base {
		t.Error("a transport was wrapped with tracing off")
	}
	in := httptest.NewRequest(http.MethodPost, "/mcp", nil)
	in.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	pr := &httputil.ProxyRequest{In: in, Out: in.Clone(in.Context())}
	out := pr.Out
	g.traceUpstream(pr)
	if pr.Out != out || out.Header.Get("Traceparent") != in.Header.Get("Traceparent") {
		t.Error("traceUpstream changed the outbound request with tracing off; the client's traceparent must pass as it is")
	}
	ctx, end := g.startBrokerSpan(t.Context(), "verify")
	end(nil)
	if ctx != t.Context() {
		t.Error("startBrokerSpan made a context with tracing off")
	}
}

// hookTransport answers every request with a canned 200 and no body.
type hookTransport struct{}

func (hookTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
}

// BenchmarkTracingHooks is what tracing adds to a request's time in the
// gateway, the hooks alone, without the network and the other steps: the
// server span (started where withRequestInfo starts it), the checks of five
// decision steps that pass, the upstream's trace context from the proxy's
// Rewrite and the upstream transport's span end. "off" is the same
// harness without tracing; a ratio's cost is its ns/op and allocs/op over
// off's. A request's whole cost in the gateway is in the order of 100 µs
// of CPU (the bench's CPU s/10k req), against which these are weighed.
func BenchmarkTracingHooks(b *testing.B) {
	sink := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
	b.Cleanup(sink.Close)
	pass := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { next.ServeHTTP(w, r) })
	}
	for _, tc := range []struct {
		name  string
		ratio float64 // <0: tracing off
	}{{"off", -1}, {"ratio=0", 0}, {"ratio=0.01", 0.01}} {
		b.Run(tc.name, func(b *testing.B) {
			g := &Gateway{}
			if tc.ratio >= 0 {
				tr, err := newGatewayTracer(config.Config{
					Server:  config.ServerRef{Namespace: "bench", Name: "hooks"},
					Tracing: &config.Tracing{Endpoint: sink.URL, SamplingRatio: tc.ratio},
				}, slog.New(slog.DiscardHandler))
				if err != nil {
					b.Fatal(err)
				}
				g.tr = tr
				b.Cleanup(func() { g.shutdownTracing(context.Background()) })
			}
			upstream := g.upstreamTracing(hookTransport{})
			var h http.Handler = http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				pr := &httputil.ProxyRequest{In: r, Out: r.Clone(r.Context())}
				g.traceUpstream(pr)
				if _, err := upstream.RoundTrip(pr.Out); err != nil {
					b.Fatal(err)
				}
			})
			for _, name := range []string{spanCredentials, spanScopes, spanAccess, spanIdentify, spanVerify} {
				h = g.traceStep(name, pass)(h)
			}
			in := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(`{}`))
			in.Header.Set("Content-Type", "application/json")
			b.ReportAllocs()
			for b.Loop() {
				ctx, span := g.startRequestSpan(in)
				h.ServeHTTP(nil, in.WithContext(context.WithValue(ctx, requestInfoKey{}, &requestInfo{})))
				if span != nil {
					span.End()
				}
			}
		})
	}
}

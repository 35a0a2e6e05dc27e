package gateway_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
)

// benchCall POSTs a tools/call to target b.N times over one keep-alive
// client and checks each answer is the upstream's JSON result.
func benchCall(b *testing.B, target, token string) {
	b.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	body := toolCall("search")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(got) != toolResult {
			b.Fatalf("%d %q", resp.StatusCode, got)
		}
	}
}

// BenchmarkDirect is the baseline: client to upstream, no gateway.
func BenchmarkDirect(b *testing.B) {
	up := newRecordingUpstream(b)
	benchCall(b, up.srv.URL+"/upstream/mcp", "")
}

// BenchmarkGatewayJWT goes through the gateway with a JWT access token,
// verified locally against the cached key set.
func BenchmarkGatewayJWT(b *testing.B) {
	e := newEnv(b)
	tok := e.token(b, clerktest.TokenRequest{Scopes: baseScopes})
	benchCall(b, e.mcpURL(), tok)
}

// BenchmarkGatewayOpaqueCached goes through the gateway with an opaque
// token whose verdict is cached after the first call to Clerk.
func BenchmarkGatewayOpaqueCached(b *testing.B) {
	c := clerktest.NewServer()
	b.Cleanup(c.Close)
	e := newEnv(b, withClerk(c))
	tok := e.token(b, clerktest.TokenRequest{Scopes: baseScopes, Format: clerktest.FormatOpaque})
	benchCall(b, e.mcpURL(), tok)
	b.ReportMetric(float64(c.Calls("POST /v1/oauth_applications/access_tokens/verify")), "clerk-verify-calls")
}

// BenchmarkBareProxy is the floor of any proxy hop: a stock
// httputil.ReverseProxy in front of the same upstream, no checks at all.
func BenchmarkBareProxy(b *testing.B) {
	up := newRecordingUpstream(b)
	target, err := url.Parse(up.srv.URL)
	if err != nil {
		b.Fatal(err)
	}
	proxy := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target) },
		FlushInterval: -1,
		Transport:     &http.Transport{MaxIdleConnsPerHost: 256},
	})
	b.Cleanup(proxy.Close)
	benchCall(b, proxy.URL+"/upstream/mcp", "")
}

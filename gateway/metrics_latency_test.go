package gateway_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
)

// TestLatencyMetrics checks the two timings the dashboard's latency and
// Clerk rows read: each request's time to its response by route, and each
// call to Clerk's by endpoint and outcome, the successes of every endpoint
// present (at zero) from the start.
func TestLatencyMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, before := do(t, newRequest(t, http.MethodGet, e.health.URL+"/metrics", ""))
	for _, want := range []string{
		`mcpgate_gateway_clerk_call_duration_seconds_count{endpoint="verify",outcome="ok"} 0`,
		`mcpgate_gateway_clerk_call_duration_seconds_count{endpoint="memberships",outcome="ok"} 0`,
	} {
		if !strings.Contains(before, want) {
			t.Errorf("/metrics before any call lacks %q", want)
		}
	}

	// An opaque token costs one verification call to the Backend API; a
	// second request with it is answered from the verifier's cache.
	tok := e.token(t, clerktest.TokenRequest{Scopes: baseScopes, Format: clerktest.FormatOpaque})
	for range 2 {
		req := newRequest(t, http.MethodPost, e.mcpURL(), toolCall("search"))
		req.Header.Set("Authorization", "Bearer "+tok)
		if resp, body := do(t, req); resp.StatusCode != http.StatusOK {
			t.Fatalf("request: %d %s", resp.StatusCode, body)
		}
	}
	do(t, newRequest(t, http.MethodGet, e.metadataURL(), ""))

	_, after := do(t, newRequest(t, http.MethodGet, e.health.URL+"/metrics", ""))
	for _, want := range []string{
		`mcpgate_gateway_request_duration_seconds_count{route="mcp"} 2`,
		`mcpgate_gateway_request_duration_seconds_count{route="protected_resource_metadata"} 1`,
		`mcpgate_gateway_clerk_call_duration_seconds_count{endpoint="verify",outcome="ok"} 1`,
		`mcpgate_gateway_token_verification_seconds_count{format="opaque"} 2`,
	} {
		if !strings.Contains(after, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

package gateway_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway"
	"github.com/mcpgate/mcpgate/gateway/config"
)

// Service keys the credential tests put in files. secretScan looks for
// them (and user tokens) in everything the gateway said.
const (
	apiKeyV1 = "svc-key-v1-5f0d3c2b9a"
	apiKeyV2 = "svc-key-v2-7e1a4b8c6d"
	tenantID = "tenant-secret-41c9e2"
)

// withCredentials configures upstream credentials.
func withCredentials(c config.Credentials) envOption {
	return withConfig(func(cfg *config.Config) { cfg.Upstream.Credentials = &c })
}

// credentialFile writes value to a new file in dir, as the kubelet does.
func credentialFile(t testing.TB, dir, name, value string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	writeKeyFile(t, p, value)
	return p
}

// call sends body as the default user with the base scopes, and any
// extra headers (repeated keys kept, spellings as given).
func call(t testing.TB, e *gwEnv, body string, extra map[string][]string) (*http.Response, string) {
	t.Helper()
	req := newRequest(t, http.MethodPost, e.mcpURL(), body)
	req.Header.Set("Authorization", "Bearer "+e.token(t, clerktest.TokenRequest{Scopes: baseScopes, Format: clerktest.FormatJWT}))
	for k, v := range extra {
		req.Header[k] = v
	}
	return do(t, req)
}

// TestCredentialHeaders checks headers from files: set with their prefix
// on every forwarded request, a rotated file used without a restart (the
// file is looked at again a second after it was last read), and an
// Authorization of the gateway's own instead of the client's token.
func TestCredentialHeaders(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyFile := credentialFile(t, dir, "api-key", apiKeyV1)
	clock := newManualClock()
	e := newEnv(t, withOptions(func(o *gateway.Options) { o.Now = clock.Now }), withCredentials(config.Credentials{Headers: []config.CredentialHeader{
		{Name: "Authorization", File: keyFile, Prefix: "Bearer "},
		{Name: "x-tenant", File: credentialFile(t, dir, "tenant", "  "+tenantID+"\n\n")},
	}}))
	clientToken := e.token(t, clerktest.TokenRequest{Scopes: baseScopes, Format: clerktest.FormatJWT})
	send := func() http.Header {
		t.Helper()
		req := newRequest(t, http.MethodPost, e.mcpURL(), toolCall("search"))
		req.Header.Set("Authorization", "Bearer "+clientToken)
		if resp, body := do(t, req); resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d %q", resp.StatusCode, body)
		}
		seen := e.up.requests()
		return seen[len(seen)-1].Header
	}
	got := send()
	if v := got.Values("Authorization"); len(v) != 1 || v[0] != "Bearer "+apiKeyV1 {
		t.Errorf("Authorization = %q, want the service key", v)
	}
	if v := got.Values("X-Tenant"); len(v) != 1 || v[0] != tenantID {
		t.Errorf("X-Tenant = %q, want %q, trimmed", v, tenantID)
	}
	if strings.Contains(strings.Join(got.Values("Authorization"), ""), clientToken) {
		t.Error("the client's token reached the upstream")
	}

	writeKeyFile(t, keyFile, apiKeyV2)
	if v := send().Get("Authorization"); v != "Bearer "+apiKeyV1 {
		t.Errorf("within a second of the last read, Authorization = %q, want the key read then", v)
	}
	clock.Step(time.Second)
	if v := send().Get("Authorization"); v != "Bearer "+apiKeyV2 {
		t.Errorf("a second after rotation, Authorization = %q, want the new key", v)
	}
}

// TestCredentialHeadersSpoofed sends the credential headers itself, in
// every spelling a lenient upstream might read as the same: the upstream
// sees only the gateway's value, once.
func TestCredentialHeadersSpoofed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e := newEnv(t, withCredentials(config.Credentials{Headers: []config.CredentialHeader{
		{Name: "X-Api-Key", File: credentialFile(t, dir, "api-key", apiKeyV1)},
		{Name: "X_Tenant_Id", File: credentialFile(t, dir, "tenant", tenantID)},
	}}))
	resp, body := call(t, e, toolCall("search"), map[string][]string{
		"X-Api-Key":   {"evil-1", "evil-2"},
		"x-api-key":   {"evil-3"},
		"X_API_KEY":   {"evil-4"},
		"x_api-Key":   {"evil-5"},
		"X-Tenant-Id": {"evil-6"},
		"x_tenant_id": {"evil-7"},
	})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d %q", resp.StatusCode, body)
	}
	got := e.up.requests()[0].Header
	for name, vs := range got {
		for _, v := range vs {
			if strings.HasPrefix(v, "evil") {
				t.Errorf("the client's %s: %s reached the upstream", name, v)
			}
		}
	}
	if v := got.Values("X-Api-Key"); len(v) != 1 || v[0] != apiKeyV1 {
		t.Errorf("X-Api-Key = %q, want the service key once", v)
	}
	if v := got.Values("X_tenant_id"); len(v) != 1 || v[0] != tenantID {
		t.Errorf("X_Tenant_Id = %q (headers %v), want the tenant once", v, got)
	}
}

// TestCredentialFileMissing checks that a request the gateway has no
// credential for is never forwarded: a missing or empty file is a 503 with
// Retry-After and the replica is not ready, until the file appears.
func TestCredentialFileMissing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "api-key")
	e := newEnv(t, withCredentials(config.Credentials{Headers: []config.CredentialHeader{{Name: "X-Api-Key", File: keyFile}}}))
	expectUnavailable := func(step string) {
		t.Helper()
		resp, body := call(t, e, toolCall("search"), nil)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("%s: status %d (Retry-After %q) %q, want 503 with Retry-After", step, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
		resp, body = do(t, newRequest(t, http.MethodGet, e.health.URL+"/readyz", ""))
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "X-Api-Key") {
			t.Fatalf("%s: /readyz %d %q, want 503 naming the header", step, resp.StatusCode, body)
		}
	}
	expectUnavailable("missing")
	writeKeyFile(t, keyFile, "")
	expectUnavailable("empty")
	if n := len(e.up.requests()); n != 0 {
		t.Fatalf("upstream got %d requests without their credential", n)
	}
	if !strings.Contains(e.logs.String(), keyFile) {
		t.Errorf("no log line names %s:\n%s", keyFile, e.logs)
	}

	writeKeyFile(t, keyFile, apiKeyV1)
	if resp, body := call(t, e, toolCall("search"), nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("file written: status %d %q", resp.StatusCode, body)
	}
	if resp, body := do(t, newRequest(t, http.MethodGet, e.health.URL+"/readyz", "")); resp.StatusCode != http.StatusOK {
		t.Fatalf("file written: /readyz %d %q", resp.StatusCode, body)
	}
	_, metrics := do(t, newRequest(t, http.MethodGet, e.health.URL+"/metrics", ""))
	if want := `mcpgate_gateway_auth_total{outcome="error",reason="credential_unavailable"} 2`; !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %q", want)
	}
}

// TestCredentialsNoRedirect has the upstream redirect elsewhere: the
// client gets the 3xx as the upstream sent it, and the gateway makes no
// second request, so the credentials never reach the redirect's target.
func TestCredentialsNoRedirect(t *testing.T) {
	t.Parallel()
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		_, _ = io.WriteString(w, toolResult)
	}))
	t.Cleanup(other.Close)
	var mu sync.Mutex
	var upstreamCalls []http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		upstreamCalls = append(upstreamCalls, r.Header.Clone())
		mu.Unlock()
		w.Header().Set("Location", other.URL+"/steal")
		w.WriteHeader(http.StatusTemporaryRedirect)
	}))
	t.Cleanup(up.Close)
	dir := t.TempDir()
	e := newEnv(t, withConfig(func(c *config.Config) {
		c.Upstream.URL = up.URL + "/mcp"
		c.Upstream.Credentials = &config.Credentials{Headers: []config.CredentialHeader{{Name: "X-Api-Key", File: credentialFile(t, dir, "api-key", apiKeyV1)}}}
	}))
	req := newRequest(t, http.MethodPost, e.mcpURL(), toolCall("search"))
	req.Header.Set("Authorization", "Bearer "+e.token(t, clerktest.TokenRequest{Scopes: baseScopes, Format: clerktest.FormatJWT}))
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != other.URL+"/steal" {
		t.Errorf("status %d, Location %q; want the upstream's 307 to %s unchanged", resp.StatusCode, resp.Header.Get("Location"), other.URL+"/steal")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(upstreamCalls) != 1 || upstreamCalls[0].Get("X-Api-Key") != apiKeyV1 {
		t.Errorf("upstream got %d requests, want 1 with the key", len(upstreamCalls))
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the redirect's target got %d requests", n)
	}
}

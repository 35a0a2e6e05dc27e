package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway"
	"github.com/mcpgate/mcpgate/gateway/config"
)

func TestResourceMetadata(t *testing.T) {
	t.Parallel()
	const self = "<self>" // stands for the test server's http://127.0.0.1:port
	tests := []struct {
		name string
		// cfg changes the configuration.
		cfg func(*config.Config)
		// paths are the metadata paths requested; each must answer alike.
		paths []string
		// header adds request headers.
		header http.Header
		// resource is the expected resource.
		resource string
		// challengeMetadata is the resource_metadata of a 401.
		challengeMetadata string
	}{{
		name:              "configured public URL",
		cfg:               func(c *config.Config) { c.PublicURL = "https://tools.example.com/mcp" },
		paths:             []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"},
		header:            http.Header{"X-Forwarded-Host": {"evil.example.com"}},
		resource:          "https://tools.example.com/mcp",
		challengeMetadata: "https://tools.example.com/.well-known/oauth-protected-resource/mcp",
	}, {
		name: "public URL under another path than the gateway's",
		cfg: func(c *config.Config) {
			c.PublicURL = "https://tools.example.com/team-a/mcp"
		},
		paths:             []string{"/.well-known/oauth-protected-resource/team-a/mcp", "/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"},
		resource:          "https://tools.example.com/team-a/mcp",
		challengeMetadata: "https://tools.example.com/.well-known/oauth-protected-resource/team-a/mcp",
	}, {
		name:              "derived from the request",
		paths:             []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"},
		resource:          self + "/mcp",
		challengeMetadata: self + "/.well-known/oauth-protected-resource/mcp",
	}, {
		name:              "forwarded headers ignored unless trusted",
		paths:             []string{"/.well-known/oauth-protected-resource/mcp"},
		header:            http.Header{"X-Forwarded-Host": {"tools.example.com"}, "X-Forwarded-Proto": {"https"}},
		resource:          self + "/mcp",
		challengeMetadata: self + "/.well-known/oauth-protected-resource/mcp",
	}, {
		name:              "trusted forwarded headers",
		cfg:               func(c *config.Config) { c.TrustForwardedHeaders = true },
		paths:             []string{"/.well-known/oauth-protected-resource/mcp"},
		header:            http.Header{"X-Forwarded-Host": {"tools.example.com, proxy.internal"}, "X-Forwarded-Proto": {"HTTPS"}},
		resource:          "https://tools.example.com/mcp",
		challengeMetadata: "https://tools.example.com/.well-known/oauth-protected-resource/mcp",
	}, {
		name:              "trusted forwarded headers that are no host or scheme",
		cfg:               func(c *config.Config) { c.TrustForwardedHeaders = true },
		paths:             []string{"/.well-known/oauth-protected-resource/mcp"},
		header:            http.Header{"X-Forwarded-Host": {"evil.example.com/x?"}, "X-Forwarded-Proto": {"javascript"}},
		resource:          self + "/mcp",
		challengeMetadata: self + "/.well-known/oauth-protected-resource/mcp",
	}, {
		name: "MCP endpoint at the root",
		cfg: func(c *config.Config) {
			c.Path = "/"
			c.PublicURL = "https://tools.example.com/"
		},
		paths:             []string{"/.well-known/oauth-protected-resource"},
		resource:          "https://tools.example.com/",
		challengeMetadata: "https://tools.example.com/.well-known/oauth-protected-resource",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, withConfig(func(c *config.Config) {
				c.Scopes = []string{"profile", "offline_access", "email", "profile"}
				if tc.cfg != nil {
					tc.cfg(c)
				}
			}))
			expand := func(s string) string { return strings.ReplaceAll(s, self, e.srv.URL) }
			for _, p := range tc.paths {
				req := newRequest(t, http.MethodGet, e.srv.URL+p, "")
				for k, v := range tc.header {
					req.Header[k] = v
				}
				resp, body := do(t, req)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("GET %s: %d %s", p, resp.StatusCode, body)
				}
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("GET %s: Content-Type %q", p, ct)
				}
				if o := resp.Header.Get("Access-Control-Allow-Origin"); o != "*" {
					t.Errorf("GET %s: Access-Control-Allow-Origin %q, want *", p, o)
				}
				var doc map[string]any
				if err := json.Unmarshal([]byte(body), &doc); err != nil {
					t.Fatal(err)
				}
				want := map[string]any{
					"resource":                 expand(tc.resource),
					"authorization_servers":    []any{e.clerk.FrontendAPIURL()},
					"scopes_supported":         []any{"profile", "email", "repo:admin", "secrets:read"},
					"bearer_methods_supported": []any{"header"},
					"resource_name":            "team-a/tools",
				}
				gotJSON, _ := json.Marshal(doc)
				wantJSON, _ := json.Marshal(want)
				if string(gotJSON) != string(wantJSON) {
					t.Errorf("GET %s:\n got %s\nwant %s", p, gotJSON, wantJSON)
				}
			}

			// The challenge points at the same document.
			req := newRequest(t, http.MethodPost, e.srv.URL+e.cfg.Path, toolCall("search"))
			for k, v := range tc.header {
				req.Header[k] = v
			}
			resp, _ := do(t, req)
			_, params := parseChallenge(t, resp.Header.Get("WWW-Authenticate"))
			if got := params["resource_metadata"]; got != expand(tc.challengeMetadata) {
				t.Errorf("resource_metadata = %q, want %q", got, expand(tc.challengeMetadata))
			}
			if got := params["scope"]; got != "profile email" {
				t.Errorf("scope = %q, want the configured scopes, deduplicated, without offline_access", got)
			}
		})
	}
}

func TestMetadataMethods(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, p := range []string{e.metaPath, "/.well-known/oauth-protected-resource", "/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		t.Run(p, func(t *testing.T) {
			t.Parallel()
			req := newRequest(t, http.MethodOptions, e.srv.URL+p, "")
			req.Header.Set("Origin", "https://any.example.com")
			req.Header.Set("Access-Control-Request-Method", "GET")
			req.Header.Set("Access-Control-Request-Headers", "mcp-protocol-version")
			resp, _ := do(t, req)
			h := resp.Header
			if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "*" ||
				!strings.Contains(h.Get("Access-Control-Allow-Methods"), "GET") ||
				!strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "mcp-protocol-version") {
				t.Errorf("preflight: %d %v", resp.StatusCode, h)
			}

			resp, body := do(t, newRequest(t, http.MethodHead, e.srv.URL+p, ""))
			if resp.StatusCode != http.StatusOK || body != "" || resp.ContentLength <= 0 {
				t.Errorf("HEAD: %d, %d bytes, Content-Length %d", resp.StatusCode, len(body), resp.ContentLength)
			}

			resp, _ = do(t, newRequest(t, http.MethodPost, e.srv.URL+p, "{}"))
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD, OPTIONS" {
				t.Errorf("POST: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
			}
		})
	}
	t.Run("unknown path", func(t *testing.T) {
		t.Parallel()
		for _, p := range []string{"/", "/mcp/", "/MCP", "/.well-known/oauth-protected-resource/other", "/upstream/mcp"} {
			resp, _ := do(t, newRequest(t, http.MethodGet, e.srv.URL+p, ""))
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
			}
		}
	})
}

// TestAuthorizationServerMetadata checks that Clerk's documents are served
// unchanged, fetched once, and served stale while the issuer is down.
func TestAuthorizationServerMetadata(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		t.Run(p, func(t *testing.T) {
			t.Parallel()
			c := clerktest.NewServer()
			t.Cleanup(c.Close)
			clock := newManualClock()
			e := newEnv(t, withClerk(c), withOptions(func(o *gateway.Options) { o.Now = clock.Now }))
			endpoint := "GET " + p

			direct, err := http.Get(c.FrontendAPIURL() + p)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := io.ReadAll(direct.Body)
			_ = direct.Body.Close()
			c.ResetCalls()

			get := func() (*http.Response, string) {
				t.Helper()
				return do(t, newRequest(t, http.MethodGet, e.srv.URL+p, ""))
			}
			for range 3 {
				resp, body := get()
				if resp.StatusCode != http.StatusOK || body != string(want) {
					t.Fatalf("%d %q, want Clerk's document %q", resp.StatusCode, body, want)
				}
				if resp.Header.Get("Content-Type") != direct.Header.Get("Content-Type") || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
					t.Errorf("headers %v", resp.Header)
				}
			}
			if n := c.Calls(endpoint); n != 1 {
				t.Errorf("issuer called %d times for three requests, want 1", n)
			}

			// Expired, and the issuer fails: the stale copy is served, and
			// the issuer is not asked again at once.
			c.SetFault(endpoint, clerktest.Fault{Status: http.StatusInternalServerError})
			clock.Step(gateway.DefaultMetadataCacheTTL + time.Second)
			for range 2 {
				if resp, body := get(); resp.StatusCode != http.StatusOK || body != string(want) {
					t.Fatalf("while the issuer fails: %d %q, want the stale document", resp.StatusCode, body)
				}
			}
			if n := c.Calls(endpoint); n != 2 {
				t.Errorf("issuer called %d times, want 2 (one refresh attempt)", n)
			}

			// The issuer is back: the next fetch after the back-off refreshes.
			c.ClearFaults()
			clock.Step(10 * time.Second)
			if resp, _ := get(); resp.StatusCode != http.StatusOK {
				t.Fatalf("after recovery: %d", resp.StatusCode)
			}
			if n := c.Calls(endpoint); n != 3 {
				t.Errorf("issuer called %d times, want 3", n)
			}
		})
	}
}

func TestAuthorizationServerMetadataNeverFetched(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		fault      clerktest.Fault
		status     int
		retryAfter string
	}{
		"issuer unreachable": {fault: clerktest.Fault{Outage: true}, status: http.StatusServiceUnavailable, retryAfter: "5"},
		"issuer failing":     {fault: clerktest.Fault{Status: http.StatusInternalServerError}, status: http.StatusBadGateway},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := clerktest.NewServer()
			t.Cleanup(c.Close)
			c.SetFault("GET /.well-known/oauth-authorization-server", tc.fault)
			e := newEnv(t, withClerk(c))
			resp, body := do(t, newRequest(t, http.MethodGet, e.srv.URL+"/.well-known/oauth-authorization-server", ""))
			if resp.StatusCode != tc.status || resp.Header.Get("Retry-After") != tc.retryAfter {
				t.Errorf("%d (Retry-After %q) %q, want %d (Retry-After %q)", resp.StatusCode, resp.Header.Get("Retry-After"), body, tc.status, tc.retryAfter)
			}
			if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
				t.Errorf("Content-Type %q: the gateway's own error must not pass for metadata", resp.Header.Get("Content-Type"))
			}
		})
	}
}

// TestDerivedAudiencesShareOneKeyFetch sends JWTs bound to many host names
// the gateway is reached under: each verifies, and Clerk is asked for its
// keys once.
func TestDerivedAudiencesShareOneKeyFetch(t *testing.T) {
	t.Parallel()
	c := clerktest.NewServer()
	t.Cleanup(c.Close)
	e := newEnv(t, withClerk(c))
	for i := range 20 {
		host := "gw-" + string(rune('a'+i)) + ".example.com"
		tok := e.token(t, clerktest.TokenRequest{Scopes: baseScopes, Audience: []string{"http://" + host + "/mcp"}})
		req := newRequest(t, http.MethodPost, e.mcpURL(), toolCall("search"))
		req.Host = host
		req.Header.Set("Authorization", "Bearer "+tok)
		if resp, body := do(t, req); resp.StatusCode != http.StatusOK {
			t.Fatalf("host %s: %d %s", host, resp.StatusCode, body)
		}
	}
	if n := c.Calls("GET /.well-known/jwks.json"); n != 1 {
		t.Errorf("Clerk's key set fetched %d times, want 1", n)
	}
	hosts := []string{}
	for _, r := range e.up.requests() {
		hosts = append(hosts, r.Header.Get("X-Forwarded-Host"))
	}
	if !slices.Contains(hosts, "gw-t.example.com") {
		t.Errorf("upstream saw X-Forwarded-Host %q", hosts)
	}
}

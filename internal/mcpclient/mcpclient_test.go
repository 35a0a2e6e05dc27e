package mcpclient_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/mcpgate/mcpgate/clerk"
	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway/identity"
	"github.com/mcpgate/mcpgate/internal/mcpclient"
	"github.com/mcpgate/mcpgate/internal/sampleserver"
)

// Scopes the protected fixture asks for: baseScope for everything, adminScope
// in addition for delete_repo.
const (
	baseScope  = "profile"
	adminScope = "repo:admin"
)

// protectedServer serves the sample MCP server at /mcp behind a minimal
// resource server: RFC 9728 metadata, 401 and 403 challenges, tokens checked
// by the clerk package against the emulator. It is a fixture for the client,
// not a model of the gateway.
func protectedServer(t *testing.T, em *clerktest.Server) (mcpURL string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	origin := "http://" + srv.Listener.Addr().String()
	mcpURL = origin + "/mcp"
	metadataURL := origin + "/.well-known/oauth-protected-resource/mcp"
	verifier, err := clerk.NewVerifier(clerk.VerifierOptions{
		Issuer:        em.FrontendAPIURL(),
		BackendAPIURL: em.BackendAPIURL(),
		SecretKey:     func(context.Context) (string, error) { return em.SecretKey(), nil },
		Audiences:     []string{mcpURL},
	})
	if err != nil {
		t.Fatal(err)
	}
	upstream := sampleserver.NewHandler(sampleserver.Options{})
	challenge := func(w http.ResponseWriter, status int, errCode string, scopes ...string) {
		params := fmt.Sprintf(`resource_metadata=%q, scope=%q`, metadataURL, strings.Join(scopes, " "))
		if errCode != "" {
			params = fmt.Sprintf(`error=%q, `, errCode) + params
		}
		w.Header().Set("WWW-Authenticate", "Bearer "+params)
		http.Error(w, http.StatusText(status), status)
	}

	mux := http.NewServeMux()
	mux.Handle("GET /.well-known/oauth-protected-resource/mcp", auth.ProtectedResourceMetadataHandler(&oauthex.ProtectedResourceMetadata{
		Resource:             mcpURL,
		AuthorizationServers: []string{em.FrontendAPIURL()},
		ScopesSupported:      []string{baseScope},
	}))
	mux.HandleFunc("/mcp", func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			challenge(w, http.StatusUnauthorized, "", baseScope)
			return
		}
		id, err := verifier.Verify(r.Context(), token)
		if err != nil {
			challenge(w, http.StatusUnauthorized, "invalid_token", baseScope)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var msg struct {
			Method string `json:"method"`
			Params struct {
				Name string `json:"name"`
			} `json:"params"`
		}
		_ = json.Unmarshal(body, &msg)
		need := []string{baseScope}
		if msg.Method == "tools/call" && msg.Params.Name == sampleserver.ToolDeleteRepo {
			need = append(need, adminScope)
		}
		for _, s := range need {
			if !slices.Contains(id.Scopes, s) {
				challenge(w, http.StatusForbidden, "insufficient_scope", need...)
				return
			}
		}
		r.Header.Del("Authorization")
		r.Header.Set(identity.UserHeader, id.UserID)
		r.Header.Set(identity.ClientHeader, id.ClientID)
		r.Header.Set(identity.ScopesHeader, strings.Join(id.Scopes, " "))
		upstream.ServeHTTP(w, r)
	})
	srv.Config.Handler = mux
	srv.Start()
	t.Cleanup(srv.Close)
	return mcpURL
}

// authorizations records the authorizations a client performs.
type authorizations struct {
	mu  sync.Mutex
	all []mcpclient.Authorization
}

func (a *authorizations) record(x mcpclient.Authorization) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.all = append(a.all, x)
}

func (a *authorizations) list() []mcpclient.Authorization {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.all)
}

// newEmulator starts a Clerk emulator that knows the admin scope.
func newEmulator(t *testing.T, opts ...clerktest.Option) *clerktest.Server {
	t.Helper()
	em := clerktest.NewServer(append([]clerktest.Option{clerktest.WithScopes(adminScope)}, opts...)...)
	t.Cleanup(em.Close)
	return em
}

func whoami(t *testing.T, cs *mcp.ClientSession) sampleserver.Identity {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: sampleserver.ToolWhoami, Arguments: map[string]any{}})
	if err != nil {
		t.Fatalf("whoami: %v", err)
	}
	var id sampleserver.Identity
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &id); err != nil || res.IsError {
		t.Fatalf("whoami = %s (%v)", b, err)
	}
	return id
}

// TestConnect_stepUp runs the whole flow against both token formats:
// registration and authorization on the first 401, a call with the first
// token, a 403 insufficient_scope on delete_repo, a second authorization with
// the united scopes, and the retried call succeeding.
func TestConnect_stepUp(t *testing.T) {
	t.Parallel()
	for name, jwt := range map[string]bool{"jwt": true, "opaque": false} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			em := newEmulator(t, clerktest.WithJWTAccessTokens(jwt))
			mcpURL := protectedServer(t, em)
			var auths authorizations
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			cs, err := mcpclient.Connect(ctx, mcpclient.Options{URL: mcpURL, OnAuthorize: auths.record})
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close()

			first := auths.list()
			if len(first) != 1 || first[0].Err != nil || !slices.Equal(first[0].Scopes, []string{baseScope}) || first[0].Resource != mcpURL {
				t.Fatalf("authorizations after connect = %+v, want one for %q on %s", first, baseScope, mcpURL)
			}
			if id := whoami(t, cs); id.UserID != clerktest.DefaultUserID || id.ClientID != first[0].ClientID ||
				!slices.Equal(id.Scopes, []string{baseScope}) || id.Authorization {
				t.Fatalf("whoami = %+v, want user %s, client %s", id, clerktest.DefaultUserID, first[0].ClientID)
			}

			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: sampleserver.ToolDeleteRepo, Arguments: map[string]any{"name": "acme/widgets"}})
			if err != nil {
				t.Fatalf("delete_repo: %v", err)
			}
			if tc, ok := res.Content[0].(*mcp.TextContent); res.IsError || !ok || tc.Text != "deleted acme/widgets" {
				t.Fatalf("delete_repo = %+v", res.Content)
			}
			all := auths.list()
			if len(all) != 2 || all[1].Err != nil {
				t.Fatalf("authorizations = %+v, want 2", all)
			}
			if got := slices.Sorted(slices.Values(all[1].Scopes)); !slices.Equal(got, []string{baseScope, adminScope}) {
				t.Errorf("step-up requested %v, want %s and %s", all[1].Scopes, baseScope, adminScope)
			}
			// The SDK registered a new client for the step-up; the token in
			// use now is that client's.
			if id := whoami(t, cs); id.ClientID != all[1].ClientID || !slices.Contains(id.Scopes, adminScope) {
				t.Errorf("whoami after step-up = %+v, want client %s with %s", id, all[1].ClientID, adminScope)
			}
			if n := len(auths.list()); n != 2 {
				t.Errorf("%d authorizations, want no more after the step-up", n)
			}
		})
	}
}

// TestConnect_extraScopes checks that Options.Scopes are added to what the
// server asks for.
func TestConnect_extraScopes(t *testing.T) {
	t.Parallel()
	em := newEmulator(t)
	var auths authorizations
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cs, err := mcpclient.Connect(ctx, mcpclient.Options{URL: protectedServer(t, em), Scopes: []string{"email", baseScope}, OnAuthorize: auths.record})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	// The SDK unites scope sets through a map, so their order is random.
	want := []string{"email", baseScope}
	if all := auths.list(); len(all) != 1 || !slices.Equal(slices.Sorted(slices.Values(all[0].Scopes)), want) {
		t.Fatalf("authorizations = %+v, want one for %q", all, want)
	}
	if id := whoami(t, cs); !slices.Equal(slices.Sorted(slices.Values(id.Scopes)), want) {
		t.Errorf("whoami scopes = %v, want %v", id.Scopes, want)
	}
}

// TestConnect_clientMetadataDocument checks Options.ClientMetadataURL: with
// an authorization server that advertises client ID metadata documents, the
// client registers nothing, its document's URL is the client_id, and the
// step-up re-authorizes that same client; without the advertisement it
// registers as before.
func TestConnect_clientMetadataDocument(t *testing.T) {
	t.Parallel()
	for name, advertised := range map[string]bool{"advertised": true, "not advertised": false} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			md := serveClientMetadata(t)
			metadataURL := md.ClientID
			em := newEmulator(t, clerktest.WithLoopbackClientMetadata(true), clerktest.WithClientMetadataTransport(md.Transport()))
			settings := em.Settings()
			settings.ClientIDMetadataDocumentsAdvertised = advertised
			em.SetSettings(settings)
			var auths authorizations
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			cs, err := mcpclient.Connect(ctx, mcpclient.Options{URL: protectedServer(t, em), ClientMetadataURL: metadataURL, OnAuthorize: auths.record})
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close()
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: sampleserver.ToolDeleteRepo, Arguments: map[string]any{"name": "acme/widgets"}})
			if err != nil || res.IsError {
				t.Fatalf("delete_repo = %+v, %v", res, err)
			}
			all := auths.list()
			if len(all) != 2 {
				t.Fatalf("authorizations = %+v, want 2 (sign-in and step-up)", all)
			}
			registrations := em.Calls("POST /oauth/register")
			for _, a := range all {
				if advertised && a.ClientID != metadataURL {
					t.Errorf("authorized as %q, want the metadata document URL %q", a.ClientID, metadataURL)
				}
				if !advertised && a.ClientID == metadataURL {
					t.Errorf("authorized as the metadata document URL, which the server does not advertise")
				}
			}
			if advertised && registrations != 0 || !advertised && registrations == 0 {
				t.Errorf("%d registrations with CIMD %s", registrations, name)
			}
		})
	}
}

// serveClientMetadata serves the client's metadata document (see
// clerktest.NewClientMetadataServer) until the test ends.
func serveClientMetadata(t *testing.T) *clerktest.ClientMetadataServer {
	t.Helper()
	md := clerktest.NewClientMetadataServer("/clients/mcpclient.json", mcpclient.DefaultClientName, mcpclient.DefaultRedirectURL)
	t.Cleanup(md.Close)
	return md
}

// allFailed reports whether there were authorizations and none got a code.
// A failure during Connect is seen twice: the SDK tries server/discover
// first and, when that fails, falls back to initialize, which authorizes anew.
func allFailed(all []mcpclient.Authorization) bool {
	for _, a := range all {
		if a.Err == nil {
			return false
		}
	}
	return len(all) > 0
}

// TestConnect_denied checks that a refused consent fails Connect with the
// authorization server's error.
func TestConnect_denied(t *testing.T) {
	t.Parallel()
	em := newEmulator(t, clerktest.WithAutoConsent(false))
	var auths authorizations
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cs, err := mcpclient.Connect(ctx, mcpclient.Options{URL: protectedServer(t, em), OnAuthorize: auths.record})
	if err == nil {
		cs.Close()
		t.Fatal("connected although the user denied consent")
	}
	if !strings.Contains(err.Error(), "access_denied") {
		t.Errorf("error = %v, want access_denied", err)
	}
	if all := auths.list(); !allFailed(all) {
		t.Errorf("authorizations = %+v, want only failed ones", all)
	}
}

func TestConnect_badOptions(t *testing.T) {
	t.Parallel()
	tests := map[string]mcpclient.Options{
		"no url":           {},
		"relative url":     {URL: "/mcp"},
		"not http":         {URL: "ftp://127.0.0.1/mcp"},
		"bad redirect url": {URL: "http://127.0.0.1:1/mcp", RedirectURL: "callback"},
	}
	for name, opts := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if cs, err := mcpclient.Connect(t.Context(), opts); err == nil {
				cs.Close()
				t.Fatal("Connect succeeded")
			}
		})
	}
}

// TestConnect_authorizationFailures points the client at authorization
// servers that answer the authorization request with a sign-in page, or
// misbehave in other ways, and checks that Connect says why it failed.
func TestConnect_authorizationFailures(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		authorize http.HandlerFunc // the authorization endpoint
		wantErr   string           // in Connect's error
		gotCode   bool             // the fetcher got a code (the SDK failed later)
	}{
		"sign-in page": {
			authorize: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				_, _ = io.WriteString(w, "<html>sign in</html>")
			},
			wantErr: mcpclient.ErrInteractionRequired.Error(),
		},
		"oauth error without redirect": {
			authorize: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_, _ = io.WriteString(w, `{"error":"invalid_request","error_description":"redirect_uri is not registered"}`)
			},
			wantErr: "invalid_request: redirect_uri is not registered",
		},
		"redirect without code": {
			authorize: func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, mcpclient.DefaultRedirectURL+"?state=x", http.StatusFound)
			},
			wantErr: "neither code nor error",
		},
		"redirect loop": {
			authorize: func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, r.URL.String(), http.StatusFound)
			},
			wantErr: "more than 10 redirects",
		},
		"sign-in hop, then a state mismatch": {
			// The client follows redirects inside the authorization server;
			// the SDK then refuses the foreign state.
			authorize: func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Has("signed_in") {
					http.Redirect(w, r, mcpclient.DefaultRedirectURL+"?code=c&state=forged", http.StatusFound)
					return
				}
				http.Redirect(w, r, r.URL.String()+"&signed_in=1", http.StatusSeeOther)
			},
			wantErr: "state mismatch",
			gotCode: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			mcpURL := fakeResource(t, tc.authorize)
			var auths authorizations
			cs, err := mcpclient.Connect(t.Context(), mcpclient.Options{URL: mcpURL, OnAuthorize: auths.record})
			if err == nil {
				cs.Close()
				t.Fatal("Connect succeeded")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error = %v, want it to contain %q", err, tc.wantErr)
			}
			if all := auths.list(); !tc.gotCode && !allFailed(all) {
				t.Errorf("authorizations = %+v, want only failed ones", all)
			}
			if got, want := errors.Is(err, mcpclient.ErrInteractionRequired), name == "sign-in page"; got != want {
				t.Errorf("errors.Is(err, ErrInteractionRequired) = %t, want %t", got, want)
			}
		})
	}
}

// fakeResource serves, on one loopback origin, an MCP endpoint that always
// answers 401, its resource metadata, authorization server metadata naming
// the same origin as issuer, a registration endpoint, and authorize as the
// authorization endpoint.
func fakeResource(t *testing.T, authorize http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	origin := "http://" + srv.Listener.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("/mcp", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer resource_metadata="`+origin+`/.well-known/oauth-protected-resource/mcp"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	mux.Handle("GET /.well-known/oauth-protected-resource/mcp", auth.ProtectedResourceMetadataHandler(&oauthex.ProtectedResourceMetadata{
		Resource: origin + "/mcp", AuthorizationServers: []string{origin},
	}))
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                           origin,
			"authorization_endpoint":           origin + "/authorize",
			"token_endpoint":                   origin + "/token",
			"registration_endpoint":            origin + "/register",
			"code_challenge_methods_supported": []string{"S256"},
		})
	})
	mux.HandleFunc("POST /register", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"client_id":"client_fake","redirect_uris":["`+mcpclient.DefaultRedirectURL+`"],"token_endpoint_auth_method":"none"}`)
	})
	mux.HandleFunc("GET /authorize", authorize)
	srv.Config.Handler = mux
	srv.Start()
	t.Cleanup(srv.Close)
	return origin + "/mcp"
}

// TestConnect_loginHint signs in as another user than the emulator's default
// by naming them in login_hint, by ID and by email address; whoami shows the
// token's subject reached the server.
func TestConnect_loginHint(t *testing.T) {
	t.Parallel()
	em := newEmulator(t)
	other, err := em.CreateUser(clerktest.UserParams{Emails: []string{"hint@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	url := protectedServer(t, em)
	for name, hint := range map[string]string{"none": "", "user id": other.ID, "email": "hint@example.com"} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			cs, err := mcpclient.Connect(ctx, mcpclient.Options{URL: url, LoginHint: hint})
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer cs.Close()
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: sampleserver.ToolWhoami, Arguments: map[string]any{}})
			if err != nil || res.IsError {
				t.Fatalf("whoami: %v, %+v", err, res)
			}
			want := other.ID
			if hint == "" {
				want = clerktest.DefaultUserID
			}
			if got, _ := res.StructuredContent.(map[string]any); got["userId"] != want {
				t.Errorf("whoami = %v, want user %s", got, want)
			}
		})
	}
}

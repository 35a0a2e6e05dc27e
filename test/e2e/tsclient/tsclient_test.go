package tsclient_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway"
	"github.com/mcpgate/mcpgate/gateway/config"
	"github.com/mcpgate/mcpgate/internal/sampleserver"
	"github.com/mcpgate/mcpgate/test/e2e/ts"
	"github.com/mcpgate/mcpgate/test/e2e/tsclient"
)

const (
	// scope is what the gateway requires of every token: one the emulator
	// lets any dynamically registered client request (its defaults are
	// profile and email).
	scope = "profile"
	// toolScope is a custom scope of the emulator's instance that the
	// gateway can require for delete_repo.
	toolScope = "repo:admin"
)

// grantedScopes are the scopes each SDK line asks for, and the emulator
// grants, when the gateway's challenge names scope: 1.32.2 asks for the
// challenge's scopes; 2.4.0 adds offline_access because the client's
// metadata lists the refresh_token grant and the emulator's metadata lists
// offline_access in scopes_supported (determineScope in its auth code).
var grantedScopes = map[string][]string{
	tsclient.SDKV1: {scope},
	tsclient.SDKV2: {scope, "offline_access"},
}

// TestTypeScriptClient runs the official TypeScript SDK client, both lines,
// through the whole flow against the real gateway, with the Clerk emulator
// as the authorization server and the sample MCP server upstream: 401
// challenge, protected resource metadata, authorization server metadata,
// dynamic registration, authorization code with PKCE, then tools/list and
// tools/call with the identity the gateway passed on.
func TestTypeScriptClient(t *testing.T) {
	t.Parallel()
	tests := map[string]stackOptions{
		"jwt tokens, stateful upstream":      {},
		"opaque tokens, stateful upstream":   {opaque: true},
		"jwt tokens, stateless upstream":     {stateless: true},
		"opaque tokens, stateless upstream":  {opaque: true, stateless: true},
		"jwt tokens, gateway has tool scope": {toolScope: true},
	}
	for _, sdk := range tsclient.SDKs {
		for name, o := range tests {
			t.Run(sdk+"/"+name, func(t *testing.T) {
				t.Parallel()
				st := startStack(t, o)
				res, err := tsclient.Run(t.Context(), t, st.mcpURL, tsclient.Options{SDK: sdk, Tool: sampleserver.ToolWhoami})
				if err != nil {
					t.Fatalf("%v\nreport: %+v", err, res)
				}

				if !strings.HasSuffix(res.SDK, "@"+sdk) {
					t.Errorf("sdk = %q, want version %s", res.SDK, sdk)
				}
				if res.Authorizations != 1 {
					t.Errorf("authorizations = %d, want 1", res.Authorizations)
				}
				if res.RegisteredClientID == "" {
					t.Error("no registered client id")
				}
				// The SDK used the gateway's protected resource metadata (it
				// silently falls back to treating the MCP server's origin as
				// the authorization server when that fails).
				if res.Resource != st.mcpURL {
					t.Errorf("resource = %q, want %q", res.Resource, st.mcpURL)
				}
				if strings.TrimSuffix(res.AuthorizationServer, "/") != st.em.FrontendAPIURL() {
					t.Errorf("authorization server = %q, want %q", res.AuthorizationServer, st.em.FrontendAPIURL())
				}
				for _, want := range []string{sampleserver.ToolEcho, sampleserver.ToolWhoami, sampleserver.ToolProgress} {
					if !slices.Contains(res.Tools, want) {
						t.Errorf("tools = %v, missing %s", res.Tools, want)
					}
				}

				id := whoami(t, res)
				want := sampleserver.Identity{UserID: clerktest.DefaultUserID, ClientID: res.RegisteredClientID, Scopes: grantedScopes[sdk]}
				if id.UserID != want.UserID || id.ClientID != want.ClientID || !slices.Equal(id.Scopes, want.Scopes) || id.Authorization {
					t.Errorf("whoami = %+v, want %+v", id, want)
				}
			})
		}
	}
}

// TestTypeScriptClientToolArguments checks that tool arguments reach the
// server and the tool's result comes back whole.
func TestTypeScriptClientToolArguments(t *testing.T) {
	t.Parallel()
	for _, sdk := range tsclient.SDKs {
		t.Run(sdk, func(t *testing.T) {
			t.Parallel()
			st := startStack(t, stackOptions{})
			res, err := tsclient.Run(t.Context(), t, st.mcpURL, tsclient.Options{
				SDK:  sdk,
				Tool: sampleserver.ToolEcho,
				Args: map[string]any{"text": "hello from TypeScript"},
			})
			if err != nil {
				t.Fatalf("%v\nreport: %+v", err, res)
			}
			var out sampleserver.EchoOutput
			if err := json.Unmarshal(res.StructuredContent(), &out); err != nil || out.Text != "hello from TypeScript" {
				t.Errorf("echo result %s (%v)", res.Result, err)
			}
		})
	}
}

// TestTypeScriptClientListOnly checks that ListOnly lists the tools and
// calls none.
func TestTypeScriptClientListOnly(t *testing.T) {
	t.Parallel()
	for _, sdk := range tsclient.SDKs {
		t.Run(sdk, func(t *testing.T) {
			t.Parallel()
			st := startStack(t, stackOptions{})
			res, err := tsclient.Run(t.Context(), t, st.mcpURL, tsclient.Options{SDK: sdk, Tool: "no_such_tool", ListOnly: true})
			if err != nil {
				t.Fatalf("%v\nreport: %+v", err, res)
			}
			if !slices.Contains(res.Tools, sampleserver.ToolWhoami) || res.Result != nil || res.Stage != "" {
				t.Errorf("report = %+v, want the tool list and no tool result", res)
			}
		})
	}
}

// TestTypeScriptClientLoginHint checks that Options.LoginHint chooses who
// signs in at the emulator, by user ID or by verified email address, and
// that a hint naming nobody fails the authorization.
func TestTypeScriptClientLoginHint(t *testing.T) {
	t.Parallel()
	// Ada is a second user of the instance, in Clerk's ID shape.
	const (
		adaID    = "user_2adaLovelaceTestUser0000000"
		adaEmail = "ada@example.com"
	)
	tests := map[string]struct {
		hint      string // Options.LoginHint
		wantUser  string // whoami's user, when it succeeds
		wantError string // in Result.Error, when authorization fails
	}{
		"user id": {hint: adaID, wantUser: adaID},
		"email":   {hint: adaEmail, wantUser: adaID},
		"no hint": {wantUser: clerktest.DefaultUserID},
		"nobody":  {hint: "user_nobody", wantError: "authorization request refused: access_denied: login_hint names no user"},
	}
	for _, sdk := range tsclient.SDKs {
		for name, tc := range tests {
			t.Run(sdk+"/"+name, func(t *testing.T) {
				t.Parallel()
				st := startStack(t, stackOptions{})
				if _, err := st.em.CreateUser(clerktest.UserParams{ID: adaID, Emails: []string{adaEmail}}); err != nil {
					t.Fatal(err)
				}
				res, err := tsclient.Run(t.Context(), t, st.mcpURL, tsclient.Options{SDK: sdk, LoginHint: tc.hint})
				if tc.wantError != "" {
					if err == nil || !strings.Contains(res.Error, tc.wantError) || res.Stage != "initialize" {
						t.Fatalf("Run = %+v, %v; want a failed initialize with %q", res, err, tc.wantError)
					}
					return
				}
				if err != nil {
					t.Fatalf("%v\nreport: %+v", err, res)
				}
				if id := whoami(t, res); id.UserID != tc.wantUser {
					t.Errorf("whoami user = %q, want %q", id.UserID, tc.wantUser)
				}
			})
		}
	}
}

// TestTypeScriptClientReportsFailure checks that a failing run is reported
// as one, with the client's reason.
func TestTypeScriptClientReportsFailure(t *testing.T) {
	t.Parallel()
	for _, sdk := range tsclient.SDKs {
		t.Run(sdk, func(t *testing.T) {
			t.Parallel()
			st := startStack(t, stackOptions{})
			res, err := tsclient.Run(t.Context(), t, st.mcpURL, tsclient.Options{SDK: sdk, Tool: "no_such_tool"})
			if err == nil || res.OK || res.Error == "" {
				t.Fatalf("Run = %+v, %v; want a failure", res, err)
			}
			t.Logf("report: %+v", res)
			// It got as far as the tool call: authorized, tools listed.
			if res.Authorizations != 1 || !slices.Contains(res.Tools, sampleserver.ToolWhoami) || res.Stage != "tools/call" {
				t.Errorf("report = %+v, want one authorization, the tool list and a failed tools/call", res)
			}
		})
	}
}

// TestTypeScriptClientServerRefusal pins what each SDK line makes of a
// server that refuses a request with 403 and a JSON-RPC error in the body,
// as an access rule does. A handler in front of the gateway refuses one
// method once the client holds a token, so that this does not wait on the
// gateway's own access rules.
func TestTypeScriptClientServerRefusal(t *testing.T) {
	t.Parallel()
	const (
		code    = -32003
		message = "Access denied: ada@example.com may not use this server"
	)
	for _, sdk := range tsclient.SDKs {
		for _, method := range []string{"initialize", "tools/call"} {
			t.Run(sdk+"/"+method, func(t *testing.T) {
				t.Parallel()
				st := startStack(t, stackOptions{refuse: &refusal{method: method, code: code, message: message}})
				res, err := tsclient.Run(t.Context(), t, st.mcpURL, tsclient.Options{SDK: sdk})
				if err == nil {
					t.Fatalf("Run succeeded: %+v", res)
				}
				t.Logf("report: %+v", res)
				if res.Stage != method || res.ErrorHTTPStatus != http.StatusForbidden || res.ErrorCode != code || res.ErrorMessage != message {
					t.Errorf("stage %q, HTTP status %d, JSON-RPC error %d %q; want %q, 403, %d %q",
						res.Stage, res.ErrorHTTPStatus, res.ErrorCode, res.ErrorMessage, method, code, message)
				}
				// The SDK's own HTTP error class, which keeps the status.
				if want := map[string]string{tsclient.SDKV1: "StreamableHTTPError", tsclient.SDKV2: "SdkHttpError"}[sdk]; res.ErrorClass != want {
					t.Errorf("error class %q, want %q", res.ErrorClass, want)
				}
				// Both lines put the body in the error message too.
				if !strings.Contains(res.Error, message) {
					t.Errorf("error %q does not show the server's message", res.Error)
				}
			})
		}
	}
}

// TestTypeScriptClientStepUp pins down how far step-up authorization gets
// with each SDK line, as docs/clients.md shows it (TestClientCompatibility
// in test/compat produces that matrix for every client): the gateway
// answers delete_repo with 403 insufficient_scope naming repo:admin, which
// the client was not granted at sign-in.
//
// 1.32.2 recognizes the challenge but cannot complete step-up when it holds
// a refresh token, which every Clerk token response carries: auth()
// refreshes instead of authorizing again, and a refresh never widens the
// scope (RFC 6749 section 6), so the retry meets the same 403
// (modelcontextprotocol/typescript-sdk issue 2255). No authorization
// server setting helps; only asking for the tool scopes at sign-in does.
//
// 2.4.0 re-authorizes (a second trip to the authorization endpoint) for the
// union of the scopes, with the client it has: the one it registered for
// the first challenge ("profile"), or its metadata document URL. The
// emulator refuses a scope outside a dynamically registered client's
// registration under its default rule (RFC 7591's meaning of the
// registered scope); under the instance rule, or for a CIMD client, which
// has no registered scope, the step-up succeeds.
//
// With the gateway's remedy (toolScopeChallenge AtSignIn) both lines ask
// for every tool scope at sign-in and never need to step up.
func TestTypeScriptClientStepUp(t *testing.T) {
	t.Parallel()
	type want struct {
		err            string // in Result.Error; "" means delete_repo succeeds
		authorizations int
		why            string
	}
	refreshes := want{
		err:            "403 after trying upscoping",
		authorizations: 1,
		why:            "1.32.2 refreshes instead of re-authorizing, and a refresh cannot widen the scope (typescript-sdk issue 2255)",
	}
	tests := map[string]struct {
		stack stackOptions
		want  map[string]want // by SDK
	}{
		"DCR, emulator holds clients to their registration": {
			stack: stackOptions{toolScope: true},
			want: map[string]want{
				tsclient.SDKV1: refreshes,
				tsclient.SDKV2: {
					err:            "authorization request refused: invalid_scope: scope not allowed for this client",
					authorizations: 2,
					why:            "2.4.0 re-authorizes the same registered client for profile+repo:admin, which the emulator refuses as outside the client's registration",
				},
			},
		},
		"DCR, emulator allows any instance scope": {
			stack: stackOptions{toolScope: true, scopeRule: clerktest.ScopesOfInstance},
			want: map[string]want{
				tsclient.SDKV1: refreshes,
				tsclient.SDKV2: {authorizations: 2, why: "2.4.0 re-authorizes its registered client, which may ask for any scope of the instance"},
			},
		},
		"CIMD": {
			stack: stackOptions{toolScope: true, cimd: true},
			want: map[string]want{
				tsclient.SDKV1: refreshes,
				tsclient.SDKV2: {authorizations: 2, why: "2.4.0 re-authorizes its metadata document client, which has no registered scope to be held to"},
			},
		},
		"remedy AtSignIn": {
			stack: stackOptions{toolScope: true, toolScopeChallenge: config.ToolScopeChallengeAtSignIn},
			want: map[string]want{
				tsclient.SDKV1: {authorizations: 1, why: "the 401 challenge names repo:admin, so 1.32.2 gets it at sign-in"},
				tsclient.SDKV2: {authorizations: 1, why: "the 401 challenge names repo:admin, so 2.4.0 gets it at sign-in"},
			},
		},
	}
	for name, tc := range tests {
		for _, sdk := range tsclient.SDKs {
			t.Run(sdk+"/"+name, func(t *testing.T) {
				t.Parallel()
				want := tc.want[sdk]
				st := startStack(t, tc.stack)
				opts := tsclient.Options{
					SDK:  sdk,
					Tool: sampleserver.ToolDeleteRepo,
					Args: map[string]any{"name": "acme/widgets"},
				}
				if tc.stack.cimd {
					opts.ClientMetadataURL = st.clientMetadataURL
				}
				res, err := tsclient.Run(t.Context(), t, st.mcpURL, opts)
				t.Logf("report: %+v", res)
				if want.err == "" {
					if err != nil || res.Authorizations != want.authorizations {
						t.Fatalf("run: %v after %d authorizations; want delete_repo to succeed after %d: %s", err, res.Authorizations, want.authorizations, want.why)
					}
					if tc.stack.cimd && res.RegisteredClientID != st.clientMetadataURL {
						t.Errorf("client id %q, want the metadata document URL %q", res.RegisteredClientID, st.clientMetadataURL)
					}
					return
				}
				if err == nil {
					t.Fatalf("delete_repo succeeded (%s): %s completes step-up now; update this case and docs/clients.md", res.Result, sdk)
				}
				if !strings.Contains(res.Error, want.err) || res.Authorizations != want.authorizations {
					t.Fatalf("run failed with %q after %d authorizations; want %q after %d: %s",
						res.Error, res.Authorizations, want.err, want.authorizations, want.why)
				}
				if res.Stage != "tools/call" || !slices.Contains(res.Tools, sampleserver.ToolDeleteRepo) {
					t.Errorf("report = %+v, want the tool list and a failed tools/call", res)
				}
			})
		}
	}
}

// TestInstall checks that the cache holds both pinned SDK lines and that a
// second Install reuses it.
func TestInstall(t *testing.T) {
	t.Parallel()
	dir, err := tsclient.Install(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	again, err := tsclient.Install(t.Context())
	if err != nil || again != dir {
		t.Fatalf("second Install = %q, %v; want %q", again, err, dir)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second Install took %s: the cache was not reused", d)
	}
	if _, err := os.Stat(filepath.Join(dir, "client.mjs")); err != nil {
		t.Error(err)
	}

	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	b, err := ts.Project.ReadFile("package.json")
	if err == nil {
		err = json.Unmarshal(b, &pkg)
	}
	if err != nil {
		t.Fatal(err)
	}
	for name, version := range map[string]string{
		"@modelcontextprotocol/sdk":    tsclient.SDKV1,
		"@modelcontextprotocol/client": tsclient.SDKV2,
		"mcp-remote":                   tsclient.MCPRemoteVersion,
	} {
		var installed struct {
			Version string `json:"version"`
		}
		b, err = os.ReadFile(filepath.Join(dir, "node_modules", name, "package.json"))
		if err == nil {
			err = json.Unmarshal(b, &installed)
		}
		if err != nil {
			t.Fatal(err)
		}
		if installed.Version != version || pkg.Dependencies[name] != version {
			t.Errorf("%s: installed %q, package.json pins %q, tsclient says %q", name, installed.Version, pkg.Dependencies[name], version)
		}
	}
}

// whoami decodes the whoami tool's structured result.
func whoami(t *testing.T, res tsclient.Result) sampleserver.Identity {
	t.Helper()
	var id sampleserver.Identity
	if err := json.Unmarshal(res.StructuredContent(), &id); err != nil {
		t.Fatalf("whoami result %s: %v", res.Result, err)
	}
	return id
}

// stack is the emulator, the sample server and the gateway, on loopback.
type stack struct {
	em     *clerktest.Server
	mcpURL string
	// clientMetadataURL is the client's metadata document, with cimd.
	clientMetadataURL string
}

// stackOptions vary the setup.
type stackOptions struct {
	opaque    bool     // opaque access tokens, verified through the Backend API; default JWT
	stateless bool     // the upstream serves without sessions
	toolScope bool     // delete_repo needs toolScope besides scope
	refuse    *refusal // answer one method with 403 and a JSON-RPC error
	// scopeRule is the emulator's rule for the scopes of dynamically
	// registered clients (default: held to their registration).
	scopeRule clerktest.ClientScopeRule
	// toolScopeChallenge is the gateway's config.ToolScopeChallenge.
	toolScopeChallenge string
	// cimd: the emulator advertises client ID metadata documents and a
	// loopback TLS server serves the client's (stack.clientMetadataURL).
	cimd bool
}

// refusal is a 403 with a JSON-RPC error body, for one JSON-RPC method of a
// request that carries a bearer token (so the OAuth flow runs first).
type refusal struct {
	method  string
	code    int
	message string
}

// wrap answers r's method with the refusal and passes anything else to next.
func (rf *refusal) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var msg struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		if json.Unmarshal(body, &msg) != nil || msg.Method != rf.method || msg.ID == nil {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"jsonrpc": "2.0",
			"id":      msg.ID,
			"error":   map[string]any{"code": rf.code, "message": rf.message},
		})
	})
}

// startStack starts the three servers and stops them when the test ends.
func startStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	st := &stack{}
	emOpts := []clerktest.Option{clerktest.WithJWTAccessTokens(!o.opaque), clerktest.WithScopes(toolScope), clerktest.WithClientScopeRule(o.scopeRule)}
	if o.cimd {
		md := serveClientMetadata(t)
		st.clientMetadataURL = md.ClientID
		emOpts = append(emOpts, clerktest.WithLoopbackClientMetadata(true), clerktest.WithClientMetadataTransport(md.Transport()))
	}
	em := clerktest.NewServer(emOpts...)
	t.Cleanup(em.Close)
	st.em = em
	if o.cimd {
		settings := em.Settings()
		settings.ClientIDMetadataDocumentsAdvertised = true
		em.SetSettings(settings)
	}

	up := httptest.NewServer(sampleserver.NewHandler(sampleserver.Options{Stateless: o.stateless}))
	t.Cleanup(up.Close)

	keyFile := filepath.Join(t.TempDir(), "secret-key")
	if err := os.WriteFile(keyFile, []byte(em.SecretKey()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Config{
		APIVersion:   config.APIVersion,
		Kind:         config.Kind,
		Server:       config.ServerRef{Namespace: "e2e", Name: "typescript"},
		Listen:       config.Listen{Traffic: "127.0.0.1:0", Health: "127.0.0.1:0"}, // unused: served by httptest
		Path:         "/mcp",
		ResourceName: "mcpgate TypeScript client test",
		Upstream:     config.Upstream{URL: up.URL + "/mcp"},
		Scopes:       []string{scope},
		Clerk:        config.Clerk{Issuer: em.FrontendAPIURL(), APIURL: em.BackendAPIURL(), SecretKeyFile: keyFile},
	}
	if o.toolScope {
		cfg.ToolScopes = []config.ToolScope{{Tool: sampleserver.ToolDeleteRepo, Scopes: []string{toolScope}}}
		cfg.ToolScopeChallenge = o.toolScopeChallenge
	}
	g, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	h := g.Handler()
	if o.refuse != nil {
		h = o.refuse.wrap(h)
	}
	gw := httptest.NewServer(h)
	// The client holds a standalone SSE stream open until it exits, which
	// it has by now; closing the client side first keeps Close from waiting.
	t.Cleanup(func() {
		gw.CloseClientConnections()
		gw.Close()
	})
	st.mcpURL = gw.URL + "/mcp"
	return st
}

// serveClientMetadata serves the client's metadata document (see
// clerktest.NewClientMetadataServer) until the test ends.
func serveClientMetadata(t *testing.T) *clerktest.ClientMetadataServer {
	t.Helper()
	md := clerktest.NewClientMetadataServer("/clients/mcpgate-e2e-typescript.json", "mcpgate e2e (TypeScript SDK)", tsclient.RedirectURL)
	t.Cleanup(md.Close)
	return md
}

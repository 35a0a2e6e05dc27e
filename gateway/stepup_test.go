package gateway_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway/config"
)

// The scopes of the test configuration as a challenge names them.
const (
	challengeBase = "profile email"
	challengeAll  = "profile email repo:admin secrets:read"
)

// withToolScopeChallenge sets the gateway's toolScopeChallenge.
func withToolScopeChallenge(mode string) envOption {
	return withConfig(func(c *config.Config) { c.ToolScopeChallenge = mode })
}

// TestToolScopeChallenge: the mode decides which scopes a 401 challenge
// names, which a client asks for at sign-in; it changes neither the
// metadata's scopes_supported, which name every scope in both modes, nor
// the 403 insufficient_scope challenge, nor what a token must hold.
func TestToolScopeChallenge(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		mode string // the config's toolScopeChallenge
		// signIn is the scope of every 401 challenge.
		signIn string
	}{
		"default":  {mode: "", signIn: challengeBase},
		"StepUp":   {mode: config.ToolScopeChallengeStepUp, signIn: challengeBase},
		"AtSignIn": {mode: config.ToolScopeChallengeAtSignIn, signIn: challengeAll},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, withToolScopeChallenge(tc.mode))
			meta := e.metadataURL()

			// 401s, with and without a token.
			unauthorized := map[string]func() *http.Request{
				"no token": func() *http.Request { return newRequest(t, http.MethodPost, e.mcpURL(), toolCall("delete_repo")) },
				"invalid token": func() *http.Request {
					req := newRequest(t, http.MethodPost, e.mcpURL(), toolCall("delete_repo"))
					req.Header.Set("Authorization", "Bearer not-a-token")
					return req
				},
				"token in the query": func() *http.Request {
					return newRequest(t, http.MethodGet, e.mcpURL()+"?access_token=x", "")
				},
			}
			for what, req := range unauthorized {
				resp, body := do(t, req())
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("%s: status %d %q, want 401", what, resp.StatusCode, body)
				}
				_, params := parseChallenge(t, resp.Header.Get("WWW-Authenticate"))
				if params["scope"] != tc.signIn || params["resource_metadata"] != meta {
					t.Errorf("%s: challenge %v, want scope %q and resource_metadata %q", what, params, tc.signIn, meta)
				}
			}

			// The metadata names every scope, whatever the mode.
			resp, body := do(t, newRequest(t, http.MethodGet, meta, ""))
			var doc struct {
				ScopesSupported []string `json:"scopes_supported"`
			}
			if err := json.Unmarshal([]byte(body), &doc); resp.StatusCode != http.StatusOK || err != nil {
				t.Fatalf("metadata: status %d, %v: %q", resp.StatusCode, err, body)
			}
			if got := strings.Join(doc.ScopesSupported, " "); got != challengeAll {
				t.Errorf("scopes_supported = %q, want %q", got, challengeAll)
			}

			// Enforcement is the same in both modes: a token needs what
			// the request calls for, and no more.
			call := func(tool string, scopes []string) *http.Response {
				req := newRequest(t, http.MethodPost, e.mcpURL(), toolCall(tool))
				req.Header.Set("Authorization", "Bearer "+e.token(t, clerktest.TokenRequest{Scopes: scopes}))
				resp, _ := do(t, req)
				return resp
			}
			if resp := call("search", baseScopes); resp.StatusCode != http.StatusOK {
				t.Errorf("unscoped tool with the base scopes: status %d, want 200", resp.StatusCode)
			}
			if resp := call("delete_repo", []string{"profile", "email", "repo:admin"}); resp.StatusCode != http.StatusOK {
				t.Errorf("scoped tool with its scopes: status %d, want 200", resp.StatusCode)
			}
			resp = call("delete_repo", baseScopes)
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("scoped tool without its scope: status %d, want 403", resp.StatusCode)
			}
			_, params := parseChallenge(t, resp.Header.Get("WWW-Authenticate"))
			want := map[string]string{"error": "insufficient_scope", "scope": "profile email repo:admin", "resource_metadata": meta}
			if !mapsEqual(params, want) {
				t.Errorf("403 challenge %v, want %v", params, want)
			}
		})
	}
}

// TestInsufficientScopeBody: a JSON-RPC request refused for want of scopes
// gets, besides the unchanged challenge, a JSON-RPC error for each of its
// requests (one with id null for a batch larger than any client sends)
// saying what it needs and what a person can do; anything else gets the
// plain-text 403.
func TestInsufficientScopeBody(t *testing.T) {
	t.Parallel()
	const (
		authorizeAgain = "The MCP client must authorize again, asking for them."
		askOwners      = "ask the server's owners to set toolScopeChallenge: AtSignIn on it"
		reAdd          = "remove this server from the client, add it again and sign in"
	)
	tests := []struct {
		name string
		mode string // the config's toolScopeChallenge
		// method and body of the request, by a token with scopes.
		method, body string
		scopes       []string
		// challenge is the 403's scope.
		challenge string
		// ids are the ids of the JSON-RPC error responses; nil: a
		// plain-text body.
		ids []string
		// says and notSays are parts the message must and must not hold.
		says, notSays []string
	}{{
		name:      "tool call, step-up",
		body:      `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"delete_repo"}}`,
		scopes:    baseScopes,
		challenge: "profile email repo:admin",
		ids:       []string{"7"},
		says: []string{
			`Insufficient scope: calling the tool "delete_repo" needs the scopes profile email repo:admin, and the access token lacks repo:admin. `,
			authorizeAgain, askOwners, reAdd,
		},
	}, {
		name:      "tool call, at sign-in",
		mode:      config.ToolScopeChallengeAtSignIn,
		body:      `{"jsonrpc":"2.0","id":"x-1","method":"tools/call","params":{"name":"delete_repo"}}`,
		scopes:    baseScopes,
		challenge: "profile email repo:admin",
		ids:       []string{`"x-1"`},
		says:      []string{`calling the tool "delete_repo" needs the scopes profile email repo:admin`, authorizeAgain, reAdd},
		notSays:   []string{askOwners},
	}, {
		name:      "batch: a response for each request, none for the notification",
		body:      `[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/progress"},` + toolCall("delete_repo") + `,{"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"search"}}]`,
		scopes:    baseScopes,
		challenge: "profile email repo:admin",
		ids:       []string{"1", "1", `"b"`},
		says:      []string{`calling the tool "delete_repo" needs`, askOwners},
		notSays:   []string{"search"},
	}, {
		name:      "batch of two scoped tools, one held",
		mode:      config.ToolScopeChallengeStepUp,
		body:      `[` + toolCall("delete_repo") + `,{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"read_secrets"}}]`,
		scopes:    []string{"profile", "email", "repo:admin"},
		challenge: "profile email repo:admin secrets:read",
		ids:       []string{"1", "2"},
		says:      []string{`calling the tool "read_secrets" needs the scopes profile email repo:admin secrets:read, and the access token lacks secrets:read.`, askOwners},
		notSays:   []string{"delete_repo"},
	}, {
		name:      "batch of two scoped tools, neither held",
		mode:      config.ToolScopeChallengeAtSignIn,
		body:      `[` + toolCall("delete_repo") + `,{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"read_secrets"}},` + toolCall("delete_repo") + `]`,
		scopes:    baseScopes,
		challenge: "profile email repo:admin secrets:read",
		ids:       []string{"1", "2", "1"},
		says:      []string{`calling the tools "delete_repo", "read_secrets" needs the scopes profile email repo:admin secrets:read, and the access token lacks repo:admin secrets:read.`, reAdd},
		notSays:   []string{askOwners},
	}, {
		// Signing in again fixes the server's own scopes in either mode:
		// the 401 challenge names them.
		name:      "the server's scopes missing, step-up",
		body:      `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}`,
		scopes:    []string{"profile"},
		challenge: challengeBase,
		ids:       []string{"0"},
		says:      []string{"Insufficient scope: this request needs the scopes profile email, and the access token lacks email. ", authorizeAgain, reAdd},
		notSays:   []string{askOwners},
	}, {
		name:      "the server's scopes missing for a scoped tool whose scope is held",
		body:      toolCall("delete_repo"),
		scopes:    []string{"profile", "repo:admin"},
		challenge: "profile email repo:admin",
		ids:       []string{"1"},
		says:      []string{"this request needs the scopes profile email repo:admin, and the access token lacks email."},
		notSays:   []string{"delete_repo", askOwners},
	}, {
		name:      "a notification alone: id null",
		body:      `{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		scopes:    []string{"profile"},
		challenge: challengeBase,
		ids:       []string{"null"},
		says:      []string{"lacks email"},
	}, {
		name:      "a batch larger than any client sends: one error, id null",
		body:      "[" + strings.Repeat(`{"jsonrpc":"2.0","id":1,"method":"ping"},`, 32) + toolCall("delete_repo") + "]",
		scopes:    baseScopes,
		challenge: "profile email repo:admin",
		ids:       []string{"null"},
		says:      []string{`calling the tool "delete_repo" needs`},
	}, {
		name:      "a batch of 32: one error each",
		body:      "[" + strings.Repeat(`{"jsonrpc":"2.0","id":1,"method":"ping"},`, 31) + toolCall("delete_repo") + "]",
		scopes:    baseScopes,
		challenge: "profile email repo:admin",
		ids:       strings.Split(strings.Repeat("1 ", 32)[:63], " "),
		says:      []string{`calling the tool "delete_repo" needs`},
	}, {
		name:      "a GET: plain text",
		method:    http.MethodGet,
		scopes:    []string{"profile"},
		challenge: challengeBase,
	}}
	envs := map[string]*gwEnv{}
	for _, mode := range []string{"", config.ToolScopeChallengeStepUp, config.ToolScopeChallengeAtSignIn} {
		envs[mode] = newEnv(t, withToolScopeChallenge(mode))
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := envs[tc.mode]
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			req := newRequest(t, method, e.mcpURL(), tc.body)
			req.Header.Set("Authorization", "Bearer "+e.token(t, clerktest.TokenRequest{Scopes: tc.scopes}))
			resp, body := do(t, req)
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("status %d %q, want 403", resp.StatusCode, body)
			}
			values := resp.Header.Values("WWW-Authenticate")
			if len(values) != 1 {
				t.Fatalf("WWW-Authenticate = %q, want one challenge", values)
			}
			_, params := parseChallenge(t, values[0])
			want := map[string]string{"error": "insufficient_scope", "scope": tc.challenge, "resource_metadata": e.metadataURL()}
			if !mapsEqual(params, want) {
				t.Errorf("challenge %v, want %v", params, want)
			}
			if tc.ids == nil {
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || body != "403 forbidden\n" {
					t.Errorf("body %q (%s), want the plain-text 403", body, ct)
				}
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			errs := decodeRPCErrors(t, body)
			if len(errs) != len(tc.ids) {
				t.Fatalf("body %q: %d responses, want %d", body, len(errs), len(tc.ids))
			}
			for i, got := range errs {
				if got.JSONRPC != "2.0" || string(got.ID) != tc.ids[i] || got.Error.Code != -32004 {
					t.Errorf("response %d = %+v, want id %s, code -32004", i, got, tc.ids[i])
				}
				if got.Error.Message != errs[0].Error.Message {
					t.Errorf("response %d says %q, response 0 %q; want one message", i, got.Error.Message, errs[0].Error.Message)
				}
			}
			msg := errs[0].Error.Message
			t.Logf("message: %s", msg)
			for _, s := range tc.says {
				if !strings.Contains(msg, s) {
					t.Errorf("message %q does not say %q", msg, s)
				}
			}
			for _, s := range tc.notSays {
				if strings.Contains(msg, s) {
					t.Errorf("message %q says %q", msg, s)
				}
			}
			if got := e.up.requests(); len(got) != 0 {
				t.Errorf("the upstream received %d requests, want none", len(got))
			}
		})
	}
}

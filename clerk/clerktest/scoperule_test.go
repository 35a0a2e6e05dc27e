package clerktest

import (
	"net/http"
	"net/url"
	"testing"
)

// registerWithScope registers a public client through DCR with scope.
func registerWithScope(t *testing.T, s *Server, scope string) registered {
	t.Helper()
	resp := do(t, http.MethodPost, s.FrontendAPIURL()+"/oauth/register", http.Header{"Content-Type": {"application/json"}},
		`{"redirect_uris":["http://127.0.0.1:7777/callback"],"token_endpoint_auth_method":"none","scope":"`+scope+`"}`)
	if resp.status != http.StatusCreated {
		t.Fatalf("register: status %d: %s", resp.status, resp.body)
	}
	return registered{ID: resp.json(t)["client_id"].(string), RedirectURI: "http://127.0.0.1:7777/callback"}
}

// TestServer_clientScopeRule checks what a client registered with
// "email tools:read" may ask for at the authorization endpoint under each
// rule: a wider scope is refused only under ScopesOfRegistration, a scope
// the instance does not know always, and no scope means the registered one.
func TestServer_clientScopeRule(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		rule      []Option // WithClientScopeRule, or nothing for the default
		scope     string   // requested at the authorization endpoint
		wantError string   // the redirect's error, "" for a code
		wantScope string   // the token response's scope when a code is issued
	}{
		"default rule, within registration": {scope: "email", wantScope: "email"},
		"default rule, wider":               {scope: "email tools:read tools:write", wantError: "invalid_scope"},
		"default rule, none requested":      {scope: "", wantScope: "email tools:read"},
		"registration, within":              {rule: []Option{WithClientScopeRule(ScopesOfRegistration)}, scope: "tools:read", wantScope: "tools:read"},
		"registration, wider":               {rule: []Option{WithClientScopeRule(ScopesOfRegistration)}, scope: "email tools:write", wantError: "invalid_scope"},
		"registration, wider built-in":      {rule: []Option{WithClientScopeRule(ScopesOfRegistration)}, scope: "openid", wantError: "invalid_scope"},
		"instance, within":                  {rule: []Option{WithClientScopeRule(ScopesOfInstance)}, scope: "tools:read", wantScope: "tools:read"},
		"instance, wider":                   {rule: []Option{WithClientScopeRule(ScopesOfInstance)}, scope: "email tools:read tools:write", wantScope: "email tools:read tools:write"},
		"instance, wider built-in":          {rule: []Option{WithClientScopeRule(ScopesOfInstance)}, scope: "openid profile", wantScope: "openid profile"},
		"instance, unknown scope":           {rule: []Option{WithClientScopeRule(ScopesOfInstance)}, scope: "email admin", wantError: "invalid_scope"},
		"instance, none requested":          {rule: []Option{WithClientScopeRule(ScopesOfInstance)}, scope: "", wantScope: "email tools:read"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newTestServer(t, append([]Option{WithScopes("tools:read", "tools:write")}, tc.rule...)...)
			c := registerWithScope(t, s, "email tools:read")
			verifier, challenge := pkce()
			q := url.Values{
				"response_type": {"code"}, "client_id": {c.ID}, "redirect_uri": {c.RedirectURI},
				"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "state": {"state-123456"},
			}
			if tc.scope != "" {
				q.Set("scope", tc.scope)
			}
			status, got := authorize(t, s, q)
			if status != http.StatusFound || got.Get("error") != tc.wantError {
				t.Fatalf("authorize: status %d, redirect %v; want error %q", status, got, tc.wantError)
			}
			if tc.wantError != "" {
				return
			}
			resp := exchange(t, s, c, got.Get("code"), verifier)
			if resp.status != http.StatusOK || resp.json(t)["scope"] != tc.wantScope {
				t.Fatalf("token: status %d: %s; want scope %q", resp.status, resp.body, tc.wantScope)
			}
		})
	}
}

// TestServer_refreshNeverWidens checks that a refresh token yields at most
// the scopes of its grant under either rule: ScopesOfInstance widens what
// the authorization endpoint grants, never what a refresh does.
func TestServer_refreshNeverWidens(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		rule      ClientScopeRule
		scope     string // requested on refresh; "" sends no scope parameter
		wantError string // "" for success
		wantScope string
	}{
		"registration, no scope":       {rule: ScopesOfRegistration, wantScope: "email tools:read"},
		"registration, narrower":       {rule: ScopesOfRegistration, scope: "tools:read", wantScope: "tools:read"},
		"registration, wider":          {rule: ScopesOfRegistration, scope: "email tools:read tools:write", wantError: "invalid_scope"},
		"registration, other built-in": {rule: ScopesOfRegistration, scope: "openid", wantError: "invalid_scope"},
		"instance, no scope":           {rule: ScopesOfInstance, wantScope: "email tools:read"},
		"instance, narrower":           {rule: ScopesOfInstance, scope: "email", wantScope: "email"},
		"instance, wider":              {rule: ScopesOfInstance, scope: "email tools:read tools:write", wantError: "invalid_scope"},
		"instance, other built-in":     {rule: ScopesOfInstance, scope: "profile", wantError: "invalid_scope"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newTestServer(t, WithScopes("tools:read", "tools:write"), WithClientScopeRule(tc.rule))
			c := registerWithScope(t, s, "email tools:read")
			code, verifier := authCodeFor(t, s, c, "email tools:read", nil)
			tok := exchange(t, s, c, code, verifier)
			if tok.status != http.StatusOK {
				t.Fatalf("token: status %d: %s", tok.status, tok.body)
			}
			form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.json(t)["refresh_token"].(string)}, "client_id": {c.ID}}
			if tc.scope != "" {
				form.Set("scope", tc.scope)
			}
			resp := postForm(t, s.FrontendAPIURL()+"/oauth/token", form, "", "")
			if tc.wantError != "" {
				if resp.status != http.StatusBadRequest || resp.json(t)["error"] != tc.wantError {
					t.Fatalf("refresh: status %d: %s; want 400 %s", resp.status, resp.body, tc.wantError)
				}
				return
			}
			if resp.status != http.StatusOK || resp.json(t)["scope"] != tc.wantScope {
				t.Fatalf("refresh: status %d: %s; want scope %q", resp.status, resp.body, tc.wantScope)
			}
		})
	}
}

// TestServer_scopeRuleSparesAddedClients checks that ScopesOfInstance
// applies to dynamically registered clients only: an administrator's
// choice of scopes for a client added with AddClient still holds.
func TestServer_scopeRuleSparesAddedClients(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, WithClientScopeRule(ScopesOfInstance))
	added, err := s.AddClient(Client{RedirectURIs: []string{"http://127.0.0.1:7777/callback"}, Scopes: []string{"email"}, Public: true})
	if err != nil {
		t.Fatal(err)
	}
	_, challenge := pkce()
	q := url.Values{
		"response_type": {"code"}, "client_id": {added.ID}, "scope": {"email profile"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}
	if _, got := authorize(t, s, q); got.Get("error") != "invalid_scope" {
		t.Fatalf("added client asking beyond its scopes: redirect %v, want invalid_scope", got)
	}
}

func TestParseClientScopeRule(t *testing.T) {
	t.Parallel()
	for _, r := range []ClientScopeRule{ScopesOfRegistration, ScopesOfInstance} {
		if got, err := ParseClientScopeRule(r.String()); err != nil || got != r {
			t.Errorf("ParseClientScopeRule(%q) = %v, %v; want %v", r.String(), got, err, r)
		}
	}
	if _, err := ParseClientScopeRule("any"); err == nil {
		t.Error("ParseClientScopeRule(any) succeeded, want an error")
	}
}

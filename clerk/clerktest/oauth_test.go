package clerktest

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

var oatRE = regexp.MustCompile(`^oat_[0-9a-f]{32}$`)

// TestServer_oauthFlow runs what an MCP client does, over HTTP: discover the
// metadata, register, authorize with PKCE, redeem the code, refresh, call
// userinfo, revoke. Once with JWT access tokens, once with opaque ones.
func TestServer_oauthFlow(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		jwt        bool   // the instance's oauth_jwt_access_tokens
		authMethod string // token_endpoint_auth_method at registration
	}{
		"jwt, confidential client": {jwt: true},
		"opaque, public client":    {jwt: false, authMethod: "none"},
		"jwt, public client":       {jwt: true, authMethod: "none"},
		"opaque, post client":      {jwt: false, authMethod: "client_secret_post"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newTestServer(t, WithJWTAccessTokens(tc.jwt))

			// Discover.
			meta := get(t, s.FrontendAPIURL()+"/.well-known/oauth-authorization-server").json(t)
			if meta["issuer"] != s.FrontendAPIURL() {
				t.Fatalf("issuer = %v, want %s", meta["issuer"], s.FrontendAPIURL())
			}
			for field, want := range map[string]string{
				"authorization_endpoint": "/oauth/authorize", "token_endpoint": "/oauth/token",
				"revocation_endpoint": "/oauth/token/revoke", "jwks_uri": "/.well-known/jwks.json",
				"registration_endpoint": "/oauth/register",
			} {
				if meta[field] != s.FrontendAPIURL()+want {
					t.Errorf("%s = %v, want %s", field, meta[field], s.FrontendAPIURL()+want)
				}
			}

			// Register, authorize, redeem.
			c := register(t, s, tc.authMethod)
			if (tc.authMethod == "none") != (c.Secret == "") {
				t.Fatalf("client_secret = %q for auth method %q", c.Secret, tc.authMethod)
			}
			code, verifier := authCodeFor(t, s, c, "openid email offline_access", url.Values{"nonce": {"n-0S6_WzA2Mj"}})
			form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.RedirectURI}, "code_verifier": {verifier}}
			var resp response
			switch tc.authMethod {
			case "none":
				form.Set("client_id", c.ID)
				resp = postForm(t, s.FrontendAPIURL()+"/oauth/token", form, "", "")
			case "client_secret_post":
				form.Set("client_id", c.ID)
				form.Set("client_secret", c.Secret)
				resp = postForm(t, s.FrontendAPIURL()+"/oauth/token", form, "", "")
			default:
				resp = postForm(t, s.FrontendAPIURL()+"/oauth/token", form, c.ID, c.Secret)
			}
			if resp.status != http.StatusOK {
				t.Fatalf("token: status %d: %s", resp.status, resp.body)
			}
			if resp.header.Get("Cache-Control") != "no-store" {
				t.Errorf("token response Cache-Control = %q, want no-store", resp.header.Get("Cache-Control"))
			}
			tok := resp.json(t)
			access, refresh := tok["access_token"].(string), tok["refresh_token"].(string)
			if tok["token_type"] != "Bearer" || tok["scope"] != "openid email offline_access" || tok["expires_in"] != float64(3600) || refresh == "" {
				t.Fatalf("token response = %v", tok)
			}
			checkAccessToken(t, s, access, tc.jwt, c.ID, []string{"openid", "email", "offline_access"})
			_, idClaims := verifiedJWT(t, s, tok["id_token"].(string))
			if idClaims["aud"] != c.ID || idClaims["sub"] != DefaultUserID || idClaims["nonce"] != "n-0S6_WzA2Mj" || idClaims["email"] != DefaultUserEmail {
				t.Errorf("id_token claims = %v", idClaims)
			}

			// Refresh: a new pair; the old refresh token is spent.
			refreshForm := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}
			user, pass := c.ID, c.Secret
			if tc.authMethod == "none" {
				refreshForm.Set("client_id", c.ID)
				user = ""
			}
			resp = postForm(t, s.FrontendAPIURL()+"/oauth/token", refreshForm, user, pass)
			if resp.status != http.StatusOK {
				t.Fatalf("refresh: status %d: %s", resp.status, resp.body)
			}
			refreshed := resp.json(t)
			newAccess := refreshed["access_token"].(string)
			if newAccess == access || refreshed["refresh_token"] == refresh || refreshed["refresh_token"] == "" {
				t.Fatalf("refresh returned the old tokens: %v", refreshed)
			}
			checkAccessToken(t, s, newAccess, tc.jwt, c.ID, []string{"openid", "email", "offline_access"})
			resp = postForm(t, s.FrontendAPIURL()+"/oauth/token", refreshForm, user, pass)
			if resp.status != http.StatusUnauthorized || resp.json(t)["error"] != "invalid_grant" {
				t.Fatalf("reused refresh token: status %d: %s; want 401 invalid_grant", resp.status, resp.body)
			}

			// Userinfo.
			resp = do(t, http.MethodGet, s.FrontendAPIURL()+"/oauth/userinfo", http.Header{"Authorization": {"Bearer " + newAccess}}, "")
			if resp.status != http.StatusOK {
				t.Fatalf("userinfo: status %d: %s", resp.status, resp.body)
			}
			info := resp.json(t)
			if info["sub"] != DefaultUserID || info["user_id"] != DefaultUserID || info["email"] != DefaultUserEmail || info["email_verified"] != true || info["instance_id"] != s.InstanceID() {
				t.Errorf("userinfo = %v", info)
			}

			// Revoke the refresh token, and the access token where that is possible.
			revokeForm := url.Values{"token": {refreshed["refresh_token"].(string)}}
			if tc.authMethod == "none" {
				revokeForm.Set("client_id", c.ID)
			}
			if resp = postForm(t, s.FrontendAPIURL()+"/oauth/token/revoke", revokeForm, user, pass); resp.status != http.StatusOK {
				t.Fatalf("revoke refresh token: status %d: %s", resp.status, resp.body)
			}
			refreshForm.Set("refresh_token", refreshed["refresh_token"].(string))
			if resp = postForm(t, s.FrontendAPIURL()+"/oauth/token", refreshForm, user, pass); resp.status != http.StatusUnauthorized {
				t.Fatalf("revoked refresh token: status %d, want 401", resp.status)
			}
			revokeForm.Set("token", newAccess)
			resp = postForm(t, s.FrontendAPIURL()+"/oauth/token/revoke", revokeForm, user, pass)
			if tc.jwt {
				if resp.status != http.StatusBadRequest || resp.json(t)["error"] != "unsupported_token_type" {
					t.Fatalf("revoke JWT: status %d: %s; want 400 unsupported_token_type", resp.status, resp.body)
				}
				return
			}
			if resp.status != http.StatusOK {
				t.Fatalf("revoke access token: status %d: %s", resp.status, resp.body)
			}
			resp = do(t, http.MethodGet, s.FrontendAPIURL()+"/oauth/userinfo", http.Header{"Authorization": {"Bearer " + newAccess}}, "")
			if resp.status != http.StatusUnauthorized || !strings.Contains(resp.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Fatalf("userinfo with revoked token: status %d, WWW-Authenticate %q", resp.status, resp.header.Get("WWW-Authenticate"))
			}
			v := backend(t, s, http.MethodPost, "/oauth_applications/access_tokens/verify", `{"access_token":"`+newAccess+`"}`).json(t)
			if v["revoked"] != true || v["revocation_reason"] == nil {
				t.Fatalf("verify after revocation = %v, want revoked", v)
			}
		})
	}
}

// checkAccessToken checks an issued access token's format and contents.
func checkAccessToken(t *testing.T, s *Server, token string, jwt bool, clientID string, scopes []string) {
	t.Helper()
	if !jwt {
		if !oatRE.MatchString(token) {
			t.Fatalf("opaque access token %q does not look like oat_ + 32 hex", token)
		}
		v := backend(t, s, http.MethodPost, "/oauth_applications/access_tokens/verify", `{"access_token":"`+token+`"}`)
		m := v.json(t)
		if v.status != http.StatusOK || m["client_id"] != clientID || m["subject"] != DefaultUserID || m["revoked"] != false || m["expired"] != false {
			t.Fatalf("verify: status %d: %v", v.status, m)
		}
		return
	}
	header, claims := verifiedJWT(t, s, token)
	if header["typ"] != "at+jwt" || header["alg"] != "RS256" || header["kid"] != s.KeyID() {
		t.Fatalf("JWT header = %v", header)
	}
	if claims["iss"] != s.FrontendAPIURL() || claims["sub"] != DefaultUserID || claims["client_id"] != clientID || claims["azp"] != clientID {
		t.Fatalf("JWT claims = %v", claims)
	}
	if claims["scope"] != strings.Join(scopes, " ") || !oatRE.MatchString(claims["jti"].(string)) {
		t.Fatalf("JWT scope/jti = %v / %v", claims["scope"], claims["jti"])
	}
	if _, ok := claims["aud"]; ok {
		t.Fatalf("JWT has aud %v though no resource was requested", claims["aud"])
	}
	if sid, _ := claims["sid"].(string); !strings.HasPrefix(sid, "sess_") {
		t.Fatalf("JWT sid = %v", claims["sid"])
	}
	iat, nbf, exp := numClaim(t, claims, "iat"), numClaim(t, claims, "nbf"), numClaim(t, claims, "exp")
	if nbf != iat || exp-iat != 3600 {
		t.Fatalf("iat %d nbf %d exp %d: want nbf = iat and a 1h lifetime", iat, nbf, exp)
	}
}

// TestServer_resourceBecomesAudience checks RFC 8707: a resource given at the
// authorization endpoint ends up as the access token's aud.
func TestServer_resourceBecomesAudience(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	c := register(t, s, "")
	code, verifier := authCodeFor(t, s, c, "email", url.Values{"resource": {"https://tools.example.com/mcp"}})
	resp := exchange(t, s, c, code, verifier)
	if resp.status != http.StatusOK {
		t.Fatalf("token: status %d: %s", resp.status, resp.body)
	}
	_, claims := verifiedJWT(t, s, resp.json(t)["access_token"].(string))
	if claims["aud"] != "https://tools.example.com/mcp" {
		t.Fatalf("aud = %v, want the resource", claims["aud"])
	}
}

// TestServer_metadataFollowsSettings checks that discovery reflects the
// instance settings at the time of the request.
func TestServer_metadataFollowsSettings(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		settings         func(*OAuthApplicationSettings)
		wantRegistration bool // registration_endpoint advertised
		wantCIMD         bool // client_id_metadata_document_supported: true
	}{
		"defaults":              {settings: func(*OAuthApplicationSettings) {}, wantRegistration: true},
		"registration off":      {settings: func(o *OAuthApplicationSettings) { o.DynamicOAuthClientRegistration = false }},
		"client id metadata on": {settings: func(o *OAuthApplicationSettings) { o.ClientIDMetadataDocumentsAdvertised = true }, wantRegistration: true, wantCIMD: true},
		"cimd on, registration off": {settings: func(o *OAuthApplicationSettings) {
			*o = OAuthApplicationSettings{ClientIDMetadataDocumentsAdvertised: true}
		}, wantCIMD: true},
		"custom default scope shown": {settings: func(o *OAuthApplicationSettings) { o.DefaultScopes = []string{"email", "tools:read"} }, wantRegistration: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newTestServer(t)
			settings := s.Settings()
			tc.settings(&settings)
			s.SetSettings(settings)
			meta := get(t, s.FrontendAPIURL()+"/.well-known/oauth-authorization-server").json(t)
			if _, ok := meta["registration_endpoint"]; ok != tc.wantRegistration {
				t.Errorf("registration_endpoint present = %v, want %v", ok, tc.wantRegistration)
			}
			if got := meta["client_id_metadata_document_supported"] == true; got != tc.wantCIMD {
				t.Errorf("client_id_metadata_document_supported = %v, want %v", meta["client_id_metadata_document_supported"], tc.wantCIMD)
			}
			if _, ok := meta["userinfo_endpoint"]; ok {
				t.Errorf("userinfo_endpoint is not part of the spec's authorization server metadata")
			}
			for _, sc := range settings.DefaultScopes {
				if !slices.Contains(toStrings(meta["scopes_supported"]), sc) {
					t.Errorf("scopes_supported %v lacks default scope %s", meta["scopes_supported"], sc)
				}
			}
			oidc := get(t, s.FrontendAPIURL()+"/.well-known/openid-configuration").json(t)
			for _, field := range []string{"issuer", "userinfo_endpoint", "introspection_endpoint", "jwks_uri", "response_modes_supported", "backchannel_logout_supported", "frontchannel_logout_supported"} {
				if _, ok := oidc[field]; !ok {
					t.Errorf("openid-configuration lacks %s", field)
				}
			}
		})
	}
}

func toStrings(v any) []string {
	var out []string
	for _, e := range v.([]any) {
		out = append(out, e.(string))
	}
	return out
}

// TestServer_register covers RFC 7591 errors and the 422 when registration is off.
func TestServer_register(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		body       string
		off        bool   // dynamic registration disabled
		wantStatus int    // HTTP status
		wantError  string // RFC 7591 error code, for 400s
	}{
		"minimal":                  {body: `{"redirect_uris":["https://app.example.com/cb"]}`, wantStatus: 201},
		"loopback http":            {body: `{"redirect_uris":["http://localhost:8080/cb"],"token_endpoint_auth_method":"none"}`, wantStatus: 201},
		"native app scheme":        {body: `{"redirect_uris":["myapp://oauth/callback"]}`, wantStatus: 201},
		"mcp client metadata":      {body: `{"redirect_uris":["http://127.0.0.1:1/cb"],"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"software_id":"x"}`, wantStatus: 201},
		"registration off":         {body: `{"redirect_uris":["https://app.example.com/cb"]}`, off: true, wantStatus: 422},
		"no redirect uris":         {body: `{"client_name":"x"}`, wantStatus: 400, wantError: "invalid_redirect_uri"},
		"relative redirect uri":    {body: `{"redirect_uris":["/cb"]}`, wantStatus: 400, wantError: "invalid_redirect_uri"},
		"http on a public host":    {body: `{"redirect_uris":["http://app.example.com/cb"]}`, wantStatus: 400, wantError: "invalid_redirect_uri"},
		"fragment":                 {body: `{"redirect_uris":["https://app.example.com/cb#x"]}`, wantStatus: 400, wantError: "invalid_redirect_uri"},
		"javascript scheme":        {body: `{"redirect_uris":["javascript:alert(1)"]}`, wantStatus: 400, wantError: "invalid_redirect_uri"},
		"redirect uris not a list": {body: `{"redirect_uris":"https://app.example.com/cb"}`, wantStatus: 400, wantError: "invalid_redirect_uri"},
		"bad auth method":          {body: `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"private_key_jwt"}`, wantStatus: 400, wantError: "invalid_client_metadata"},
		"unknown scope":            {body: `{"redirect_uris":["https://a.example/cb"],"scope":"email launch_missiles"}`, wantStatus: 400, wantError: "invalid_client_metadata"},
		"implicit grant":           {body: `{"redirect_uris":["https://a.example/cb"],"grant_types":["implicit"]}`, wantStatus: 400, wantError: "invalid_client_metadata"},
		"name too long":            {body: `{"redirect_uris":["https://a.example/cb"],"client_name":"` + strings.Repeat("n", 257) + `"}`, wantStatus: 400, wantError: "invalid_client_metadata"},
		"not json":                 {body: `redirect_uris=x`, wantStatus: 400, wantError: "invalid_client_metadata"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newTestServer(t, WithDynamicClientRegistration(!tc.off))
			resp := do(t, http.MethodPost, s.FrontendAPIURL()+"/oauth/register", http.Header{"Content-Type": {"application/json"}}, tc.body)
			if resp.status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.status, tc.wantStatus, resp.body)
			}
			m := resp.json(t)
			switch tc.wantStatus {
			case 201:
				for _, f := range []string{"client_id", "client_id_issued_at", "client_secret_expires_at", "client_name", "redirect_uris", "grant_types", "response_types", "scope", "token_endpoint_auth_method"} {
					if _, ok := m[f]; !ok {
						t.Errorf("response lacks required field %s: %v", f, m)
					}
				}
				if _, hasSecret := m["client_secret"]; hasSecret == (m["token_endpoint_auth_method"] == "none") {
					t.Errorf("client_secret present = %v for method %v", hasSecret, m["token_endpoint_auth_method"])
				}
			case 400:
				if m["error"] != tc.wantError || m["error_description"] == "" {
					t.Errorf("error body = %v, want error %s", m, tc.wantError)
				}
			case 422:
				checkClerkErrors(t, resp, "")
			}
		})
	}
}

// TestServer_authorizeErrors covers the authorization endpoint's refusals:
// direct answers when the client or redirect URI is wrong, redirects otherwise.
func TestServer_authorizeErrors(t *testing.T) {
	t.Parallel()
	_, challenge := pkce()
	tests := map[string]struct {
		opts       []Option
		edit       func(q url.Values) // applied to a valid request from a public client
		wantStatus int                // 302 for redirected errors
		wantError  string             // error in the body or the redirect
	}{
		"unknown client":            {edit: func(q url.Values) { q.Set("client_id", "client_nope") }, wantStatus: 401, wantError: "invalid_client"},
		"missing client":            {edit: func(q url.Values) { q.Del("client_id") }, wantStatus: 400, wantError: "invalid_request"},
		"redirect uri mismatch":     {edit: func(q url.Values) { q.Set("redirect_uri", "http://127.0.0.1:7777/other") }, wantStatus: 400, wantError: "invalid_request"},
		"redirect uri prefix only":  {edit: func(q url.Values) { q.Set("redirect_uri", "http://127.0.0.1:7777/callback/x") }, wantStatus: 400, wantError: "invalid_request"},
		"wrong response type":       {edit: func(q url.Values) { q.Set("response_type", "token") }, wantStatus: 302, wantError: "unsupported_response_type"},
		"no pkce from public":       {edit: func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, wantStatus: 302, wantError: "invalid_request"},
		"plain pkce":                {edit: func(q url.Values) { q.Set("code_challenge_method", "plain") }, wantStatus: 302, wantError: "invalid_request"},
		"challenge without method":  {edit: func(q url.Values) { q.Del("code_challenge_method") }, wantStatus: 302, wantError: "invalid_request"},
		"malformed challenge":       {edit: func(q url.Values) { q.Set("code_challenge", "short") }, wantStatus: 302, wantError: "invalid_request"},
		"short state":               {edit: func(q url.Values) { q.Set("state", "abc") }, wantStatus: 302, wantError: "invalid_request"},
		"unknown scope":             {edit: func(q url.Values) { q.Set("scope", "email admin") }, wantStatus: 302, wantError: "invalid_scope"},
		"relative resource":         {edit: func(q url.Values) { q.Set("resource", "/mcp") }, wantStatus: 302, wantError: "invalid_target"},
		"repeated scope":            {edit: func(q url.Values) { q.Add("scope", "email") }, wantStatus: 302, wantError: "invalid_request"},
		"user denies":               {opts: []Option{WithAutoConsent(false)}, edit: func(url.Values) {}, wantStatus: 302, wantError: "access_denied"},
		"no consent with prompt":    {opts: []Option{WithAutoConsent(false)}, edit: func(q url.Values) { q.Set("prompt", "none") }, wantStatus: 302, wantError: "consent_required"},
		"custom scope is allowed":   {opts: []Option{WithScopes("tools:write")}, edit: func(q url.Values) { q.Set("scope", "tools:write") }, wantStatus: 302},
		"valid request (control)":   {edit: func(url.Values) {}, wantStatus: 302},
		"redirect uri may be left":  {edit: func(q url.Values) { q.Del("redirect_uri") }, wantStatus: 302},
		"default scopes without it": {edit: func(q url.Values) { q.Del("scope") }, wantStatus: 302},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newTestServer(t, tc.opts...)
			c := register(t, s, "none")
			q := url.Values{
				"response_type": {"code"}, "client_id": {c.ID}, "redirect_uri": {c.RedirectURI}, "scope": {"openid email"},
				"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "state": {"xyz-state-1"},
			}
			tc.edit(q)
			resp := get(t, s.FrontendAPIURL()+"/oauth/authorize?"+q.Encode())
			if resp.status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.status, tc.wantStatus, resp.body)
			}
			if tc.wantStatus != http.StatusFound {
				if got := resp.json(t)["error"]; got != tc.wantError {
					t.Fatalf("error = %v, want %s", got, tc.wantError)
				}
				return
			}
			loc, err := url.Parse(resp.header.Get("Location"))
			if err != nil || !strings.HasPrefix(loc.String(), c.RedirectURI+"?") {
				t.Fatalf("Location = %q, want the registered redirect URI", resp.header.Get("Location"))
			}
			got := loc.Query()
			if got.Get("error") != tc.wantError {
				t.Fatalf("redirect error = %q (%s), want %q", got.Get("error"), got.Get("error_description"), tc.wantError)
			}
			if (tc.wantError == "") == (got.Get("code") == "") {
				t.Fatalf("redirect query %v: want a code exactly when there is no error", got)
			}
			if got.Get("state") != q.Get("state") {
				t.Fatalf("state = %q, want %q", got.Get("state"), q.Get("state"))
			}
		})
	}
}

// TestServer_tokenErrors covers refusals at the token endpoint, with the
// status codes of the Frontend API spec.
func TestServer_tokenErrors(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		// run gets a fresh code for a confidential client and returns the response to check.
		run        func(t *testing.T, s *Server, clock *clocktesting.FakeClock, c registered, code, verifier string) response
		wantStatus int
		wantError  string
	}{
		"wrong verifier": {
			run: func(t *testing.T, s *Server, _ *clocktesting.FakeClock, c registered, code, _ string) response {
				other, _ := pkce()
				return exchange(t, s, c, code, other)
			},
			wantStatus: 401, wantError: "invalid_grant",
		},
		"missing verifier": {
			run: func(t *testing.T, s *Server, _ *clocktesting.FakeClock, c registered, code, _ string) response {
				return postForm(t, s.FrontendAPIURL()+"/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.RedirectURI}}, c.ID, c.Secret)
			},
			wantStatus: 400, wantError: "invalid_request",
		},
		"code reused": {
			run: func(t *testing.T, s *Server, _ *clocktesting.FakeClock, c registered, code, verifier string) response {
				if first := exchange(t, s, c, code, verifier); first.status != http.StatusOK {
					t.Fatalf("first exchange: status %d: %s", first.status, first.body)
				}
				return exchange(t, s, c, code, verifier)
			},
			wantStatus: 401, wantError: "invalid_grant",
		},
		"redirect uri mismatch": {
			run: func(t *testing.T, s *Server, _ *clocktesting.FakeClock, c registered, code, verifier string) response {
				c.RedirectURI = "http://127.0.0.1:7777/elsewhere"
				return exchange(t, s, c, code, verifier)
			},
			wantStatus: 400, wantError: "invalid_grant",
		},
		"code expired": {
			run: func(t *testing.T, s *Server, clock *clocktesting.FakeClock, c registered, code, verifier string) response {
				clock.Step(10*time.Minute + time.Second)
				return exchange(t, s, c, code, verifier)
			},
			wantStatus: 400, wantError: "invalid_grant",
		},
		"unknown code": {
			run: func(t *testing.T, s *Server, _ *clocktesting.FakeClock, c registered, _, verifier string) response {
				return exchange(t, s, c, "not-a-code", verifier)
			},
			wantStatus: 401, wantError: "invalid_grant",
		},
		"wrong client secret": {
			run: func(t *testing.T, s *Server, _ *clocktesting.FakeClock, c registered, code, verifier string) response {
				c.Secret = "wrong"
				return exchange(t, s, c, code, verifier)
			},
			wantStatus: 401, wantError: "invalid_client",
		},
		"code of another client": {
			run: func(t *testing.T, s *Server, _ *clocktesting.FakeClock, _ registered, code, verifier string) response {
				return exchange(t, s, register(t, s, ""), code, verifier)
			},
			wantStatus: 401, wantError: "invalid_grant",
		},
		"confidential client without secret": {
			run: func(t *testing.T, s *Server, _ *clocktesting.FakeClock, c registered, code, verifier string) response {
				return postForm(t, s.FrontendAPIURL()+"/oauth/token", url.Values{"grant_type": {"authorization_code"}, "client_id": {c.ID}, "code": {code}, "redirect_uri": {c.RedirectURI}, "code_verifier": {verifier}}, "", "")
			},
			wantStatus: 401, wantError: "invalid_client",
		},
		"unsupported grant type": {
			run: func(t *testing.T, s *Server, _ *clocktesting.FakeClock, c registered, _, _ string) response {
				return postForm(t, s.FrontendAPIURL()+"/oauth/token", url.Values{"grant_type": {"client_credentials"}}, c.ID, c.Secret)
			},
			wantStatus: 401, wantError: "unsupported_grant_type",
		},
		"json body": {
			run: func(t *testing.T, s *Server, _ *clocktesting.FakeClock, c registered, code, _ string) response {
				return do(t, http.MethodPost, s.FrontendAPIURL()+"/oauth/token", http.Header{"Content-Type": {"application/json"}}, `{"grant_type":"authorization_code","code":"`+code+`"}`)
			},
			wantStatus: 400, wantError: "invalid_request",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock()
			s := newTestServer(t, WithClock(clock.Now))
			c := register(t, s, "")
			code, verifier := authCodeFor(t, s, c, "email", nil)
			resp := tc.run(t, s, clock, c, code, verifier)
			if resp.status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.status, tc.wantStatus, resp.body)
			}
			if got := resp.json(t)["error"]; got != tc.wantError {
				t.Fatalf("error = %v, want %s", got, tc.wantError)
			}
		})
	}
}

// TestServer_codeReuseRevokesTokens checks RFC 6749 4.1.2: tokens issued from
// a code that is presented twice are revoked.
func TestServer_codeReuseRevokesTokens(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, WithJWTAccessTokens(false))
	c := register(t, s, "")
	code, verifier := authCodeFor(t, s, c, "email", nil)
	tok := exchange(t, s, c, code, verifier).json(t)
	if again := exchange(t, s, c, code, verifier); again.status != http.StatusUnauthorized {
		t.Fatalf("second exchange: status %d", again.status)
	}
	if !s.AccessTokenRevoked(tok["access_token"].(string)) {
		t.Error("access token from a reused code is still valid")
	}
	resp := postForm(t, s.FrontendAPIURL()+"/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}, c.ID, c.Secret)
	if resp.status != http.StatusUnauthorized {
		t.Errorf("refresh token from a reused code: status %d, want 401", resp.status)
	}
}

// TestServer_userinfoRequiresToken checks the 401s of the userinfo endpoint.
func TestServer_userinfoRequiresToken(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := newTestServer(t, WithClock(clock.Now))
	expiring, err := s.MintAccessToken(TokenRequest{Scopes: []string{"email"}, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	session, err := s.MintSessionToken("")
	if err != nil {
		t.Fatal(err)
	}
	clock.Step(2 * time.Minute)
	tests := map[string]struct {
		authorization string // the Authorization header
		wantChallenge string // substring of WWW-Authenticate
	}{
		"no header":     {wantChallenge: "Bearer"},
		"basic scheme":  {authorization: "Basic dXNlcjpwYXNz", wantChallenge: "Bearer"},
		"garbage":       {authorization: "Bearer nope", wantChallenge: `error="invalid_token"`},
		"expired token": {authorization: "Bearer " + expiring, wantChallenge: `error="invalid_token"`},
		"session token": {authorization: "Bearer " + session, wantChallenge: `error="invalid_token"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			if tc.authorization != "" {
				h.Set("Authorization", tc.authorization)
			}
			resp := do(t, http.MethodGet, s.FrontendAPIURL()+"/oauth/userinfo", h, "")
			if resp.status != http.StatusUnauthorized || !strings.Contains(resp.header.Get("WWW-Authenticate"), tc.wantChallenge) {
				t.Fatalf("status %d, WWW-Authenticate %q; want 401 with %q", resp.status, resp.header.Get("WWW-Authenticate"), tc.wantChallenge)
			}
			checkClerkErrors(t, resp, "authentication_invalid")
		})
	}
}

// TestServer_addClientWithoutRegistration runs the flow for a pre-registered
// client while dynamic registration is off.
func TestServer_addClientWithoutRegistration(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, WithDynamicClientRegistration(false))
	added, err := s.AddClient(Client{RedirectURIs: []string{"https://app.example.com/cb"}})
	if err != nil {
		t.Fatal(err)
	}
	c := registered{ID: added.ID, Secret: added.Secret, RedirectURI: "https://app.example.com/cb"}
	code, verifier := authCodeFor(t, s, c, "profile", nil)
	if resp := exchange(t, s, c, code, verifier); resp.status != http.StatusOK {
		t.Fatalf("token: status %d: %s", resp.status, resp.body)
	}
	if _, err := s.AddClient(Client{ID: added.ID, RedirectURIs: []string{"https://app.example.com/cb"}}); err == nil {
		t.Error("adding a client ID twice succeeded")
	}
	if _, err := s.AddClient(Client{RedirectURIs: []string{"http://app.example.com/cb"}}); err == nil {
		t.Error("a plain-http redirect URI on a public host was accepted")
	}
}

// TestServer_authorizeResponseModes covers form_post and POST requests to
// the authorization endpoint.
func TestServer_authorizeResponseModes(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	c := register(t, s, "none")
	_, challenge := pkce()
	q := url.Values{
		"response_type": {"code"}, "client_id": {c.ID}, "redirect_uri": {c.RedirectURI},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "state": {"state-form-post"},
	}

	resp := postForm(t, s.FrontendAPIURL()+"/oauth/authorize", q, "", "")
	if resp.status != http.StatusSeeOther || !strings.HasPrefix(resp.header.Get("Location"), c.RedirectURI+"?") {
		t.Fatalf("POST authorize: status %d Location %q, want 303 to the redirect URI", resp.status, resp.header.Get("Location"))
	}

	q.Set("response_mode", "form_post")
	resp = get(t, s.FrontendAPIURL()+"/oauth/authorize?"+q.Encode())
	body := string(resp.body)
	if resp.status != http.StatusOK || !strings.Contains(body, `action="`+c.RedirectURI+`"`) ||
		!strings.Contains(body, `name="code"`) || !strings.Contains(body, `name="state" value="state-form-post"`) {
		t.Fatalf("form_post: status %d body %s", resp.status, body)
	}
}

// TestServer_publicClientBasicAuth checks that a public client may identify
// itself through HTTP Basic with an empty password, as golang.org/x/oauth2
// does, but not with a password.
func TestServer_publicClientBasicAuth(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	c := register(t, s, "none")
	for _, tc := range []struct {
		pass       string
		wantStatus int
	}{{"", 200}, {"guess", 401}} {
		code, verifier := authCodeFor(t, s, c, "email", nil)
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.RedirectURI}, "code_verifier": {verifier}}
		h := http.Header{
			"Content-Type":  {"application/x-www-form-urlencoded"},
			"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(c.ID+":"+tc.pass))},
		}
		if resp := do(t, http.MethodPost, s.FrontendAPIURL()+"/oauth/token", h, form.Encode()); resp.status != tc.wantStatus {
			t.Fatalf("password %q: status %d, want %d: %s", tc.pass, resp.status, tc.wantStatus, resp.body)
		}
	}
}

// TestServer_tokenInfo covers RFC 7662 introspection at /oauth/token_info.
func TestServer_tokenInfo(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, WithJWTAccessTokens(false))
	c := register(t, s, "")
	other := register(t, s, "")
	code, verifier := authCodeFor(t, s, c, "email profile", nil)
	tok := exchange(t, s, c, code, verifier).json(t)
	tests := map[string]struct {
		token      string
		client     registered
		wantStatus int
		wantActive bool
	}{
		"own access token":   {token: tok["access_token"].(string), client: c, wantStatus: 200, wantActive: true},
		"own refresh token":  {token: tok["refresh_token"].(string), client: c, wantStatus: 200, wantActive: true},
		"other client's":     {token: tok["access_token"].(string), client: other, wantStatus: 200},
		"unknown token":      {token: "oat_0123456789abcdef0123456789abcdef", client: c, wantStatus: 200},
		"bad client secret":  {token: tok["access_token"].(string), client: registered{ID: c.ID, Secret: "nope"}, wantStatus: 401},
		"no client identity": {token: tok["access_token"].(string), wantStatus: 401},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			resp := postForm(t, s.FrontendAPIURL()+"/oauth/token_info", url.Values{"token": {tc.token}}, tc.client.ID, tc.client.Secret)
			if resp.status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.status, tc.wantStatus, resp.body)
			}
			if tc.wantStatus != 200 {
				return
			}
			m := resp.json(t)
			if m["active"] != tc.wantActive {
				t.Fatalf("body = %v, want active %v", m, tc.wantActive)
			}
			if tc.wantActive && (m["client_id"] != c.ID || m["sub"] != DefaultUserID || m["scope"] != "email profile") {
				t.Fatalf("body = %v", m)
			}
			if !tc.wantActive && len(m) != 1 {
				t.Fatalf("inactive body = %v, want only active", m)
			}
		})
	}
}

// TestDefaultUserID checks that the default subject has the shape the
// Backend API spec requires of a verified token's subject.
func TestDefaultUserID(t *testing.T) {
	t.Parallel()
	if !regexp.MustCompile(`^user_\w{27}$`).MatchString(DefaultUserID) {
		t.Fatalf("DefaultUserID %q does not match ^user_\\w{27}$", DefaultUserID)
	}
}

// TestServer_registeredScopesLimitClient checks that a client registered
// with a scope may ask only for those scopes, and gets them by default.
func TestServer_registeredScopesLimitClient(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, WithScopes("tools:read"))
	resp := do(t, http.MethodPost, s.FrontendAPIURL()+"/oauth/register", http.Header{"Content-Type": {"application/json"}},
		`{"redirect_uris":["http://127.0.0.1:7777/callback"],"scope":"email tools:read"}`)
	if resp.status != http.StatusCreated || resp.json(t)["scope"] != "email tools:read" {
		t.Fatalf("register: status %d: %s", resp.status, resp.body)
	}
	m := resp.json(t)
	c := registered{ID: m["client_id"].(string), Secret: m["client_secret"].(string), RedirectURI: "http://127.0.0.1:7777/callback"}

	_, challenge := pkce()
	q := url.Values{"response_type": {"code"}, "client_id": {c.ID}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}, "scope": {"openid"}}
	if _, got := authorize(t, s, q); got.Get("error") != "invalid_scope" {
		t.Fatalf("scope outside the registration: redirect %v, want invalid_scope", got)
	}
	code, verifier := authCodeFor(t, s, c, "", nil)
	if got := exchange(t, s, c, code, verifier).json(t)["scope"]; got != "email tools:read" {
		t.Fatalf("scope with none requested = %v, want the registered scopes", got)
	}
}

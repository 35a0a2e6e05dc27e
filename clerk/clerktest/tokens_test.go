package clerktest

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServer_MintAccessToken checks directly minted tokens against what the
// token endpoint issues.
func TestServer_MintAccessToken(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		jwtSetting bool // the instance's oauth_jwt_access_tokens
		req        TokenRequest
		wantJWT    bool
		wantAud    any // the aud claim of a JWT; nil means absent
		wantErr    bool
	}{
		"instance setting jwt":    {jwtSetting: true, req: TokenRequest{Scopes: []string{"email"}}, wantJWT: true},
		"instance setting opaque": {jwtSetting: false, req: TokenRequest{}},
		"jwt overrides setting":   {jwtSetting: false, req: TokenRequest{Format: FormatJWT}, wantJWT: true},
		"opaque overrides":        {jwtSetting: true, req: TokenRequest{Format: FormatOpaque}},
		"one audience":            {jwtSetting: true, req: TokenRequest{Audience: []string{"https://a.example/mcp"}}, wantJWT: true, wantAud: "https://a.example/mcp"},
		"two audiences":           {jwtSetting: true, req: TokenRequest{Audience: []string{"https://a.example", "https://b.example"}}, wantJWT: true, wantAud: []any{"https://a.example", "https://b.example"}},
		"unknown format":          {req: TokenRequest{Format: "paseto"}, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newTestServer(t, WithJWTAccessTokens(tc.jwtSetting), WithAccessTokenTTL(30*time.Minute), WithUser(User{ID: "user_alice"}))
			tok, err := s.MintAccessToken(tc.req)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if !tc.wantJWT {
				if !oatRE.MatchString(tok) {
					t.Fatalf("token %q is not opaque", tok)
				}
				return
			}
			header, claims := verifiedJWT(t, s, tok)
			if header["typ"] != "at+jwt" || claims["sub"] != "user_alice" || claims["client_id"] == "" || claims["client_id"] != claims["azp"] {
				t.Fatalf("header %v claims %v", header, claims)
			}
			if numClaim(t, claims, "exp")-numClaim(t, claims, "iat") != 1800 {
				t.Fatalf("lifetime is not the configured 30m: %v", claims)
			}
			gotAud, hasAud := claims["aud"]
			if !hasAud && tc.wantAud != nil || hasAud && jsonString(gotAud) != jsonString(tc.wantAud) {
				t.Fatalf("aud = %v, want %v", gotAud, tc.wantAud)
			}
		})
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestServer_MintSessionToken checks that session tokens look like Clerk's:
// same key, typ JWT, no client_id, so a gateway can tell them apart.
func TestServer_MintSessionToken(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	tok, err := s.MintSessionToken("user_bob")
	if err != nil {
		t.Fatal(err)
	}
	header, claims := verifiedJWT(t, s, tok)
	if header["typ"] != "JWT" || header["kid"] != s.KeyID() {
		t.Fatalf("header = %v", header)
	}
	for _, c := range []string{"iss", "sub", "sid", "iat", "nbf", "exp", "azp"} {
		if _, ok := claims[c]; !ok {
			t.Errorf("claim %s missing", c)
		}
	}
	if _, ok := claims["client_id"]; ok {
		t.Error("a session token has client_id")
	}
	if claims["sub"] != "user_bob" || claims["iss"] != s.FrontendAPIURL() {
		t.Errorf("claims = %v", claims)
	}
}

// TestServer_RotateKeys checks that rotation brings in a new kid, keeps the
// previous key in the JWKS, and drops the one before.
func TestServer_RotateKeys(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	first := s.KeyID()
	oldToken, err := s.MintAccessToken(TokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	s.RotateKeys()
	second := s.KeyID()
	if second == first || !strings.HasPrefix(second, "ins_") {
		t.Fatalf("kid after rotation = %q (before %q)", second, first)
	}
	if kids := jwksKids(t, s); len(kids) != 2 || kids[0] != second || kids[1] != first {
		t.Fatalf("JWKS kids = %v, want [%s %s]", kids, second, first)
	}
	newToken, err := s.MintAccessToken(TokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := verifiedJWT(t, s, newToken); h["kid"] != second {
		t.Fatalf("new token kid = %v, want %s", h["kid"], second)
	}
	if h, _ := verifiedJWT(t, s, oldToken); h["kid"] != first {
		t.Fatalf("old token kid = %v, want %s", h["kid"], first)
	}

	// Verify still knows the old token; after one more rotation it does not.
	body := `{"access_token":"` + oldToken + `"}`
	if got := backend(t, s, http.MethodPost, "/oauth_applications/access_tokens/verify", body).status; got != 200 {
		t.Fatalf("verify old token: status %d", got)
	}
	s.RotateKeys()
	if kids := jwksKids(t, s); len(kids) != 2 || kids[1] != second {
		t.Fatalf("JWKS kids = %v after a second rotation", kids)
	}
	if got := backend(t, s, http.MethodPost, "/oauth_applications/access_tokens/verify", body).status; got != 404 {
		t.Fatalf("verify token of a dropped key: status %d, want 404", got)
	}
}

func jwksKids(t *testing.T, s *Server) []string {
	t.Helper()
	var set struct{ Keys []struct{ Kid string } }
	if err := json.Unmarshal(get(t, s.FrontendAPIURL()+"/.well-known/jwks.json").body, &set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

// TestServer_RevokeAccessToken checks revocation of both formats: opaque
// tokens are revoked for verify and userinfo; JWTs are only recorded.
func TestServer_RevokeAccessToken(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	opaque, _ := s.MintAccessToken(TokenRequest{Format: FormatOpaque, Scopes: []string{"email"}})
	jwt, _ := s.MintAccessToken(TokenRequest{Format: FormatJWT, Scopes: []string{"email"}})
	for _, tok := range []string{opaque, jwt} {
		if s.AccessTokenRevoked(tok) {
			t.Fatal("fresh token reported revoked")
		}
		if err := s.RevokeAccessToken(tok); err != nil {
			t.Fatal(err)
		}
		if !s.AccessTokenRevoked(tok) {
			t.Fatal("revoked token not reported revoked")
		}
	}
	userinfo := func(tok string) int {
		return do(t, http.MethodGet, s.FrontendAPIURL()+"/oauth/userinfo", http.Header{"Authorization": {"Bearer " + tok}}, "").status
	}
	if got := userinfo(opaque); got != 401 {
		t.Errorf("userinfo with revoked opaque token: %d, want 401", got)
	}
	if got := userinfo(jwt); got != 200 {
		t.Errorf("userinfo with a JWT recorded as revoked: %d, want 200 (JWTs cannot be revoked)", got)
	}
	if err := s.RevokeAccessToken("oat_0123456789abcdef0123456789abcdef"); err == nil {
		t.Error("revoking an unknown token succeeded")
	}
	session, _ := s.MintSessionToken("")
	if err := s.RevokeAccessToken(session); err == nil {
		t.Error("revoking a session token succeeded")
	}
}

// TestServer_PublishableKey checks the key's encoding of the frontend host.
func TestServer_PublishableKey(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	enc, ok := strings.CutPrefix(s.PublishableKey(), "pk_test_")
	if !ok {
		t.Fatalf("publishable key %q", s.PublishableKey())
	}
	host, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		t.Fatal(err)
	}
	if "http://"+strings.TrimSuffix(string(host), "$") != s.FrontendAPIURL() || !strings.HasSuffix(string(host), "$") {
		t.Fatalf("publishable key decodes to %q; frontend is %s", host, s.FrontendAPIURL())
	}
	if !strings.HasPrefix(s.SecretKey(), "sk_test_") || !strings.HasSuffix(s.BackendAPIURL(), "/v1") {
		t.Fatalf("secret key %q, backend %q", s.SecretKey(), s.BackendAPIURL())
	}
}

package clerktest

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// checkClerkErrors checks the spec's ClerkErrors body: errors with message,
// long_message and code, a clerk_trace_id matching the Clerk-Trace-Id
// header. wantCode "" accepts any code.
func checkClerkErrors(t *testing.T, resp response, wantCode string) {
	t.Helper()
	var body struct {
		Errors []struct {
			Message     *string `json:"message"`
			LongMessage *string `json:"long_message"`
			Code        *string `json:"code"`
		} `json:"errors"`
		TraceID string `json:"clerk_trace_id"`
	}
	if err := json.Unmarshal(resp.body, &body); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, resp.body)
	}
	if len(body.Errors) != 1 {
		t.Fatalf("errors = %s, want one error", resp.body)
	}
	e := body.Errors[0]
	if e.Message == nil || e.LongMessage == nil || e.Code == nil || *e.Message == "" {
		t.Fatalf("error lacks message, long_message or code: %s", resp.body)
	}
	if wantCode != "" && *e.Code != wantCode {
		t.Fatalf("code = %q, want %q", *e.Code, wantCode)
	}
	if body.TraceID == "" || resp.header.Get("Clerk-Trace-Id") != body.TraceID {
		t.Fatalf("clerk_trace_id %q, Clerk-Trace-Id header %q: want equal and set", body.TraceID, resp.header.Get("Clerk-Trace-Id"))
	}
	if ct := resp.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q", ct)
	}
}

// TestServer_backendAuthentication checks that every Backend API endpoint
// wants the secret key, and unknown routes are Clerk 404s.
func TestServer_backendAuthentication(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	tests := map[string]struct {
		method, path  string
		authorization string
		wantStatus    int
		wantCode      string
	}{
		"jwks without key":        {method: "GET", path: "/jwks", wantStatus: 401, wantCode: "authentication_invalid"},
		"settings with wrong key": {method: "GET", path: "/instance/oauth_application_settings", authorization: "Bearer sk_test_wrong", wantStatus: 401, wantCode: "authentication_invalid"},
		"verify with basic":       {method: "POST", path: "/oauth_applications/access_tokens/verify", authorization: "Basic " + s.SecretKey(), wantStatus: 401, wantCode: "authentication_invalid"},
		"key without scheme":      {method: "GET", path: "/jwks", authorization: s.SecretKey(), wantStatus: 401, wantCode: "authentication_invalid"},
		"publishable key":         {method: "GET", path: "/jwks", authorization: "Bearer " + s.PublishableKey(), wantStatus: 401, wantCode: "authentication_invalid"},
		"unknown route":           {method: "GET", path: "/users", authorization: "Bearer " + s.SecretKey(), wantStatus: 404, wantCode: "resource_not_found"},
		"wrong method":            {method: "DELETE", path: "/jwks", authorization: "Bearer " + s.SecretKey(), wantStatus: 404, wantCode: "resource_not_found"},
		"unknown route, no key":   {method: "GET", path: "/users", wantStatus: 401, wantCode: "authentication_invalid"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			if tc.authorization != "" {
				h.Set("Authorization", tc.authorization)
			}
			resp := do(t, tc.method, s.BackendAPIURL()+tc.path, h, "")
			if resp.status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.status, tc.wantStatus, resp.body)
			}
			checkClerkErrors(t, resp, tc.wantCode)
		})
	}
}

// TestServer_backendJWKS checks that both APIs serve the same key set.
func TestServer_backendJWKS(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	b := backend(t, s, http.MethodGet, "/jwks", "")
	f := get(t, s.FrontendAPIURL()+"/.well-known/jwks.json")
	if b.status != 200 || f.status != 200 || string(b.body) != string(f.body) {
		t.Fatalf("backend %d %s\nfrontend %d %s", b.status, b.body, f.status, f.body)
	}
	var set map[string][]map[string]any
	if err := json.Unmarshal(b.body, &set); err != nil || len(set) != 1 || len(set["keys"]) != 1 {
		t.Fatalf("JWKS = %s, want an object with only keys, holding one key", b.body)
	}
	k := set["keys"][0]
	for _, f := range []string{"kid", "alg", "use", "kty", "n", "e"} {
		if _, ok := k[f]; !ok {
			t.Errorf("key lacks %s", f)
		}
	}
	if k["kid"] != s.KeyID() || !strings.HasPrefix(s.KeyID(), "ins_") || k["e"] != "AQAB" {
		t.Errorf("key = %v", k)
	}
}

// TestServer_verify covers the opaque token verify endpoint.
func TestServer_verify(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := newTestServer(t, WithClock(clock.Now), WithJWTAccessTokens(false))
	mint := func(req TokenRequest) string {
		t.Helper()
		tok, err := s.MintAccessToken(req)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	valid := mint(TokenRequest{ClientID: "client_a", Scopes: []string{"email", "profile"}})
	revoked := mint(TokenRequest{ClientID: "client_a"})
	if err := s.RevokeAccessToken(revoked); err != nil {
		t.Fatal(err)
	}
	expired := mint(TokenRequest{ClientID: "client_a", TTL: time.Minute})
	jwtValid := mint(TokenRequest{ClientID: "client_a", Format: FormatJWT, Scopes: []string{"email"}})
	jwtExpired := mint(TokenRequest{ClientID: "client_a", Format: FormatJWT, TTL: time.Minute})
	session, err := s.MintSessionToken("")
	if err != nil {
		t.Fatal(err)
	}
	created := clock.Now().Unix()
	clock.Step(2 * time.Minute)

	tests := map[string]struct {
		body        string
		wantStatus  int
		wantRevoked bool // for 200 with the full object
		wantExpired bool
		wantActive  bool // the {"active": false} shape
		wantScopes  []string
	}{
		"valid":           {body: `{"access_token":"` + valid + `"}`, wantStatus: 200, wantScopes: []string{"email", "profile"}},
		"deprecated name": {body: `{"secret":"` + valid + `"}`, wantStatus: 200, wantScopes: []string{"email", "profile"}},
		"revoked":         {body: `{"access_token":"` + revoked + `"}`, wantStatus: 200, wantRevoked: true, wantScopes: []string{}},
		"expired":         {body: `{"access_token":"` + expired + `"}`, wantStatus: 200, wantExpired: true, wantScopes: []string{}},
		"jwt":             {body: `{"access_token":"` + jwtValid + `"}`, wantStatus: 200, wantScopes: []string{"email"}},
		"expired jwt":     {body: `{"access_token":"` + jwtExpired + `"}`, wantStatus: 200, wantActive: true},
		"unknown":         {body: `{"access_token":"oat_0123456789abcdef0123456789abcdef"}`, wantStatus: 404},
		"session token":   {body: `{"access_token":"` + session + `"}`, wantStatus: 404},
		"empty token":     {body: `{"access_token":""}`, wantStatus: 400},
		"no token":        {body: `{}`, wantStatus: 400},
		"not json":        {body: `access_token=x`, wantStatus: 400},
		"token not text":  {body: `{"access_token":42}`, wantStatus: 400},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			resp := backend(t, s, http.MethodPost, "/oauth_applications/access_tokens/verify", tc.body)
			if resp.status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.status, tc.wantStatus, resp.body)
			}
			if tc.wantStatus != 200 {
				checkClerkErrors(t, resp, "")
				return
			}
			m := resp.json(t)
			if tc.wantActive {
				if len(m) != 1 || m["active"] != false {
					t.Fatalf("body = %v, want exactly {\"active\": false}", m)
				}
				return
			}
			want := []string{"object", "id", "client_id", "subject", "scopes", "revoked", "revocation_reason", "expired", "expiration", "created_at", "updated_at"}
			got := slices.Sorted(func(yield func(string) bool) {
				for k := range m {
					if !yield(k) {
						return
					}
				}
			})
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("fields = %v, want exactly %v", got, want)
			}
			if m["object"] != "clerk_idp_oauth_access_token" || !oatRE.MatchString(m["id"].(string)) || m["client_id"] != "client_a" || m["subject"] != DefaultUserID {
				t.Fatalf("body = %v", m)
			}
			if m["revoked"] != tc.wantRevoked || m["expired"] != tc.wantExpired || (m["revocation_reason"] != nil) != tc.wantRevoked {
				t.Fatalf("revoked/expired/reason = %v/%v/%v", m["revoked"], m["expired"], m["revocation_reason"])
			}
			if !slices.Equal(toStrings(m["scopes"]), tc.wantScopes) && !(len(tc.wantScopes) == 0 && len(m["scopes"].([]any)) == 0) {
				t.Fatalf("scopes = %v, want %v", m["scopes"], tc.wantScopes)
			}
			if m["created_at"] != float64(created) {
				t.Fatalf("created_at = %v, want %d (unix seconds)", m["created_at"], created)
			}
			exp, _ := m["expiration"].(float64)
			if int64(exp) <= created || int64(exp) > created+int64(time.Hour/time.Second) {
				t.Fatalf("expiration = %v, want unix seconds within the TTL of %d", m["expiration"], created)
			}
		})
	}
}

// TestServer_settings covers GET and PATCH of the instance settings.
func TestServer_settings(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		patch      string
		wantStatus int
		wantCode   string                              // Clerk error code for 422s
		check      func(OAuthApplicationSettings) bool // on the settings afterwards
	}{
		"empty patch changes nothing": {patch: `{}`, wantStatus: 200, check: func(o OAuthApplicationSettings) bool {
			return o.DynamicOAuthClientRegistration && o.OAuthJWTAccessTokens && o.DefaultScopes == nil
		}},
		"subset": {patch: `{"oauth_jwt_access_tokens":false,"client_id_metadata_documents_advertised":true}`, wantStatus: 200, check: func(o OAuthApplicationSettings) bool {
			return !o.OAuthJWTAccessTokens && o.ClientIDMetadataDocumentsAdvertised && o.DynamicOAuthClientRegistration
		}},
		"null leaves alone": {patch: `{"dynamic_oauth_client_registration":null}`, wantStatus: 200, check: func(o OAuthApplicationSettings) bool {
			return o.DynamicOAuthClientRegistration
		}},
		"default scopes": {patch: `{"default_scopes":["email","openid"]}`, wantStatus: 200, check: func(o OAuthApplicationSettings) bool {
			return slices.Equal(o.DefaultScopes, []string{"email", "openid"})
		}},
		"all cimd flags": {patch: `{"client_id_metadata_documents_only_allow_pre_registered_clients":true,"client_id_metadata_documents_block_implicitly_allowed_clients":true}`, wantStatus: 200, check: func(o OAuthApplicationSettings) bool {
			return o.ClientIDMetadataDocumentsOnlyAllowPreRegisteredClients && o.ClientIDMetadataDocumentsBlockImplicitlyAllowedClients
		}},
		"unknown field":          {patch: `{"oauth_jwt_access_tokens":false,"enable_magic":true}`, wantStatus: 422, wantCode: "form_param_unknown"},
		"wrong type":             {patch: `{"oauth_jwt_access_tokens":"no"}`, wantStatus: 422, wantCode: "form_param_format_invalid"},
		"scopes not a list":      {patch: `{"default_scopes":"email"}`, wantStatus: 422, wantCode: "form_param_format_invalid"},
		"duplicate scopes":       {patch: `{"default_scopes":["email","email"]}`, wantStatus: 422, wantCode: "form_param_value_invalid"},
		"not an object":          {patch: `[true]`, wantStatus: 422, wantCode: "request_body_invalid"},
		"not json":               {patch: `dynamic_oauth_client_registration=true`, wantStatus: 422, wantCode: "request_body_invalid"},
		"json null":              {patch: `null`, wantStatus: 422, wantCode: "request_body_invalid"},
		"object key is settings": {patch: `{"object":"oauth_application_settings"}`, wantStatus: 422, wantCode: "form_param_unknown"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newTestServer(t)
			before := s.Settings()
			resp := backend(t, s, http.MethodPatch, "/instance/oauth_application_settings", tc.patch)
			if resp.status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.status, tc.wantStatus, resp.body)
			}
			if tc.wantStatus == 422 {
				checkClerkErrors(t, resp, tc.wantCode)
				if after := s.Settings(); !equalSettings(after, before) {
					t.Fatalf("a refused PATCH changed the settings: %+v", after)
				}
				return
			}
			checkSettingsBody(t, resp.body, s.Settings())
			if !tc.check(s.Settings()) {
				t.Fatalf("settings after PATCH = %+v", s.Settings())
			}
			got := backend(t, s, http.MethodGet, "/instance/oauth_application_settings", "")
			if got.status != 200 || string(got.body) != string(resp.body) {
				t.Fatalf("GET after PATCH = %d %s, want the PATCH response %s", got.status, got.body, resp.body)
			}
		})
	}
}

// TestServer_settingsResetDefaultScopes checks that null default_scopes
// restores Clerk's defaults.
func TestServer_settingsResetDefaultScopes(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	if resp := backend(t, s, http.MethodPatch, "/instance/oauth_application_settings", `{"default_scopes":["openid"]}`); resp.status != 200 {
		t.Fatalf("status %d", resp.status)
	}
	resp := backend(t, s, http.MethodPatch, "/instance/oauth_application_settings", `{"default_scopes":null}`)
	if resp.status != 200 || s.Settings().DefaultScopes != nil {
		t.Fatalf("status %d, settings %+v", resp.status, s.Settings())
	}
	if got := toStrings(resp.json(t)["default_scopes"]); !slices.Equal(got, DefaultScopes()) {
		t.Fatalf("default_scopes = %v, want Clerk's defaults %v", got, DefaultScopes())
	}
}

// checkSettingsBody checks the full settings object: object type and every
// required field, matching want.
func checkSettingsBody(t *testing.T, body []byte, want OAuthApplicationSettings) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	if m["object"] != "oauth_application_settings" || len(m) != 7 {
		t.Fatalf("settings body = %s, want object and six fields", body)
	}
	var got OAuthApplicationSettings
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if want.DefaultScopes == nil {
		want.DefaultScopes = DefaultScopes()
	}
	if !equalSettings(got, want) {
		t.Fatalf("settings body = %+v, want %+v", got, want)
	}
}

func equalSettings(a, b OAuthApplicationSettings) bool {
	return a.DynamicOAuthClientRegistration == b.DynamicOAuthClientRegistration &&
		a.OAuthJWTAccessTokens == b.OAuthJWTAccessTokens &&
		a.ClientIDMetadataDocumentsAdvertised == b.ClientIDMetadataDocumentsAdvertised &&
		a.ClientIDMetadataDocumentsOnlyAllowPreRegisteredClients == b.ClientIDMetadataDocumentsOnlyAllowPreRegisteredClients &&
		a.ClientIDMetadataDocumentsBlockImplicitlyAllowedClients == b.ClientIDMetadataDocumentsBlockImplicitlyAllowedClients &&
		slices.Equal(a.DefaultScopes, b.DefaultScopes) && (a.DefaultScopes == nil) == (b.DefaultScopes == nil)
}

// TestServer_observer checks that every Backend API exchange, refused and
// faulted ones included, reaches the observer with both bodies.
func TestServer_observer(t *testing.T) {
	t.Parallel()
	var (
		mu  sync.Mutex
		got []Exchange
	)
	s := newTestServer(t, WithObserver(func(e Exchange) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, e)
	}))
	backend(t, s, http.MethodGet, "/instance/oauth_application_settings", "")
	do(t, http.MethodGet, s.BackendAPIURL()+"/jwks", nil, "")
	s.SetFault("PATCH /v1/instance/oauth_application_settings", Fault{Status: 503})
	backend(t, s, http.MethodPatch, "/instance/oauth_application_settings", `{"oauth_jwt_access_tokens":false}`)
	get(t, s.FrontendAPIURL()+"/.well-known/jwks.json") // Frontend API: not observed

	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 {
		t.Fatalf("observed %d exchanges, want 3", len(got))
	}
	for i, want := range []struct {
		method, path string
		status       int
		reqBody      string
	}{
		{"GET", "/v1/instance/oauth_application_settings", 200, ""},
		{"GET", "/v1/jwks", 401, ""},
		{"PATCH", "/v1/instance/oauth_application_settings", 503, `{"oauth_jwt_access_tokens":false}`},
	} {
		e := got[i]
		if e.Request.Method != want.method || e.Request.URL.Path != want.path || e.Status != want.status || string(e.RequestBody) != want.reqBody {
			t.Errorf("exchange %d = %s %s %d %q", i, e.Request.Method, e.Request.URL.Path, e.Status, e.RequestBody)
		}
		if !json.Valid(e.ResponseBody) || e.Header.Get("Content-Type") != "application/json" {
			t.Errorf("exchange %d response: %q %s", i, e.Header.Get("Content-Type"), e.ResponseBody)
		}
	}
}

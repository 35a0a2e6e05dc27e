package clerktest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/clerk/clerktest/openapicheck"
)

// cimdRedirectURI is the redirect URI the test documents list.
const cimdRedirectURI = "http://127.0.0.1:7777/callback"

// docServer serves a client metadata document at /client.json and counts
// the fetches.
type docServer struct {
	*httptest.Server
	clientID string // the document's URL
	fetches  atomic.Int32
}

// newDocServer starts a loopback http server whose /client.json is written
// by serve, given the document's URL; nil serves validDocument.
func newDocServer(t *testing.T, serve func(w http.ResponseWriter, r *http.Request, clientID string)) *docServer {
	t.Helper()
	if serve == nil {
		serve = func(w http.ResponseWriter, _ *http.Request, clientID string) { writeDoc(w, validDocument(clientID)) }
	}
	d := &docServer{}
	d.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.fetches.Add(1)
		serve(w, r, d.clientID)
	}))
	d.clientID = d.URL + "/client.json"
	t.Cleanup(d.Close)
	return d
}

// validDocument is a public client's metadata document, as the MCP
// specification's example shows it.
func validDocument(clientID string) map[string]any {
	return map[string]any{
		"client_id": clientID, "client_name": "CIMD test client", "client_uri": "https://app.example.com",
		"redirect_uris": []string{cimdRedirectURI}, "grant_types": []string{"authorization_code", "refresh_token"},
		"response_types": []string{"code"}, "token_endpoint_auth_method": "none",
	}
}

func writeDoc(w http.ResponseWriter, doc map[string]any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(doc)
}

// withDoc serves validDocument with edit applied.
func withDoc(edit func(doc map[string]any)) func(http.ResponseWriter, *http.Request, string) {
	return func(w http.ResponseWriter, _ *http.Request, clientID string) {
		doc := validDocument(clientID)
		edit(doc)
		writeDoc(w, doc)
	}
}

// cimdAdvertised turns on client_id_metadata_documents_advertised, with
// the other settings as edit leaves them.
func cimdAdvertised(edit func(*OAuthApplicationSettings)) Option {
	return func(o *options) {
		o.settings.ClientIDMetadataDocumentsAdvertised = true
		if edit != nil {
			edit(&o.settings)
		}
	}
}

// cimdAuthorize sends an authorization request for clientID and returns
// the response, redirect or not.
func cimdAuthorize(t *testing.T, s *Server, clientID, redirectURI, scope, challenge string) response {
	t.Helper()
	q := url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirectURI}, "scope": {scope},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "state": {"state-123456"},
	}
	return get(t, s.FrontendAPIURL()+"/oauth/authorize?"+q.Encode())
}

// codeFrom reads the code from an authorization response, failing on anything else.
func codeFrom(t *testing.T, resp response) string {
	t.Helper()
	if resp.status != http.StatusFound {
		t.Fatalf("authorize: status %d: %s", resp.status, resp.body)
	}
	loc, err := url.Parse(resp.header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("authorize: redirect %q has no code", resp.header.Get("Location"))
	}
	return loc.Query().Get("code")
}

// TestServer_clientMetadataDocumentFlow runs a CIMD client end to end:
// discovery advertises CIMD, the client authorizes with its URL as
// client_id and any scope the instance knows, redeems the code, and the
// access token carries the URL as client_id, in the JWT and in the Backend
// API's verify answer (checked against Clerk's spec); refresh works and
// never widens.
func TestServer_clientMetadataDocumentFlow(t *testing.T) {
	t.Parallel()
	checker := openapicheck.Load(t)
	for name, jwt := range map[string]bool{"jwt": true, "opaque": false} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			doc := newDocServer(t, nil)
			s, exchanges := recordExchanges(t, WithJWTAccessTokens(jwt), WithScopes("tools:read", "tools:write"),
				WithLoopbackClientMetadata(true), cimdAdvertised(nil))

			if meta := get(t, s.FrontendAPIURL()+"/.well-known/oauth-authorization-server").json(t); meta["client_id_metadata_document_supported"] != true {
				t.Fatalf("AS metadata = %v, want client_id_metadata_document_supported true", meta)
			}
			c := registered{ID: doc.clientID, RedirectURI: cimdRedirectURI}
			scope := "openid email tools:read tools:write offline_access"
			code, verifier := authCodeFor(t, s, c, scope, nil)
			resp := exchange(t, s, c, code, verifier)
			if resp.status != http.StatusOK {
				t.Fatalf("token: status %d: %s", resp.status, resp.body)
			}
			tok := resp.json(t)
			if tok["scope"] != scope {
				t.Fatalf("token scope = %v, want %q", tok["scope"], scope)
			}
			checkAccessToken(t, s, tok["access_token"].(string), jwt, doc.clientID, strings.Fields(scope))
			v := backend(t, s, http.MethodPost, "/oauth_applications/access_tokens/verify", `{"access_token":"`+tok["access_token"].(string)+`"}`)
			if m := v.json(t); v.status != http.StatusOK || m["client_id"] != doc.clientID {
				t.Fatalf("verify: status %d: %v; want client_id %s", v.status, m, doc.clientID)
			}
			if _, idClaims := verifiedJWT(t, s, tok["id_token"].(string)); idClaims["aud"] != doc.clientID {
				t.Errorf("id_token aud = %v, want %s", idClaims["aud"], doc.clientID)
			}

			refresh := func(refreshToken, scope string) response {
				form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}, "client_id": {doc.clientID}}
				if scope != "" {
					form.Set("scope", scope)
				}
				return postForm(t, s.FrontendAPIURL()+"/oauth/token", form, "", "")
			}
			wider := refresh(tok["refresh_token"].(string), "email tools:read public_metadata")
			if wider.status != http.StatusBadRequest || wider.json(t)["error"] != "invalid_scope" {
				t.Fatalf("wider refresh: status %d: %s; want 400 invalid_scope", wider.status, wider.body)
			}
			narrower := refresh(tok["refresh_token"].(string), "tools:read")
			if narrower.status != http.StatusOK || narrower.json(t)["scope"] != "tools:read" {
				t.Fatalf("narrower refresh: status %d: %s", narrower.status, narrower.body)
			}
			checkAccessToken(t, s, narrower.json(t)["access_token"].(string), jwt, doc.clientID, []string{"tools:read"})
			checkExchanges(t, checker, s, exchanges(), nil)
			if n := doc.fetches.Load(); n != 1 {
				t.Errorf("document fetched %d times, want once (then cached)", n)
			}
		})
	}
}

// TestServer_clientMetadataDocumentRefused covers what the authorization
// endpoint refuses of a CIMD client, answered directly (not redirected),
// as the redirect URI cannot be trusted: 401 invalid_client for anything
// wrong with the client or its document, 400 invalid_request for a
// redirect URI the document does not list, and invalid_scope by redirect
// for a scope the instance does not know.
func TestServer_clientMetadataDocumentRefused(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		opts        []Option                                         // server options
		serve       func(http.ResponseWriter, *http.Request, string) // nil: a valid document
		clientID    func(doc *docServer) string                      // nil: the document's URL
		redirectURI string                                           // "": the listed one
		scope       string                                           // "": email
		wantStatus  int
		wantError   string
		wantDesc    string // a substring of error_description
	}{
		"not advertised": {
			wantStatus: 401, wantError: "invalid_client", wantDesc: "not registered",
		},
		"client_id mismatch": {
			opts: []Option{cimdAdvertised(nil), WithLoopbackClientMetadata(true)},
			// The URL differs only in case: only an exact match counts.
			serve: func(w http.ResponseWriter, _ *http.Request, id string) {
				d := validDocument(id)
				d["client_id"] = strings.Replace(id, "client.json", "Client.json", 1)
				writeDoc(w, d)
			},
			wantStatus: 401, wantError: "invalid_client", wantDesc: "is not its URL",
		},
		"client_id missing": {
			opts:       []Option{cimdAdvertised(nil), WithLoopbackClientMetadata(true)},
			serve:      withDoc(func(d map[string]any) { delete(d, "client_id") }),
			wantStatus: 401, wantError: "invalid_client", wantDesc: "no client_id",
		},
		"client_name missing": {
			opts:       []Option{cimdAdvertised(nil), WithLoopbackClientMetadata(true)},
			serve:      withDoc(func(d map[string]any) { delete(d, "client_name") }),
			wantStatus: 401, wantError: "invalid_client", wantDesc: "no client_name",
		},
		"redirect_uri not listed": {
			opts:        []Option{cimdAdvertised(nil), WithLoopbackClientMetadata(true)},
			redirectURI: "http://127.0.0.1:7777/elsewhere",
			wantStatus:  400, wantError: "invalid_request", wantDesc: "redirect_uri does not match",
		},
		"secret auth method": {
			opts:       []Option{cimdAdvertised(nil), WithLoopbackClientMetadata(true)},
			serve:      withDoc(func(d map[string]any) { d["token_endpoint_auth_method"] = "client_secret_basic" }),
			wantStatus: 401, wantError: "invalid_client", wantDesc: "shared secret",
		},
		"document carries a secret": {
			opts:       []Option{cimdAdvertised(nil), WithLoopbackClientMetadata(true)},
			serve:      withDoc(func(d map[string]any) { d["client_secret"] = "s3cr3t" }),
			wantStatus: 401, wantError: "invalid_client", wantDesc: "client_secret",
		},
		"not JSON": {
			opts:       []Option{cimdAdvertised(nil), WithLoopbackClientMetadata(true)},
			serve:      func(w http.ResponseWriter, _ *http.Request, _ string) { _, _ = w.Write([]byte("<html></html>")) },
			wantStatus: 401, wantError: "invalid_client", wantDesc: "not a JSON object",
		},
		"oversized document": {
			opts:       []Option{cimdAdvertised(nil), WithLoopbackClientMetadata(true)},
			serve:      withDoc(func(d map[string]any) { d["client_uri"] = "https://app.example.com/" + strings.Repeat("a", 5<<10) }),
			wantStatus: 401, wantError: "invalid_client", wantDesc: "larger than 5120 bytes",
		},
		"slow document": {
			// Only this case shortens the timeout, so that a busy machine
			// cannot make the others time out.
			opts: []Option{cimdAdvertised(nil), WithLoopbackClientMetadata(true), WithClientMetadataTimeout(200 * time.Millisecond)},
			serve: func(w http.ResponseWriter, r *http.Request, id string) {
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
				writeDoc(w, validDocument(id))
			},
			wantStatus: 401, wantError: "invalid_client", wantDesc: "not fetched within",
		},
		"document redirects": {
			opts: []Option{cimdAdvertised(nil), WithLoopbackClientMetadata(true)},
			serve: func(w http.ResponseWriter, r *http.Request, id string) {
				if r.URL.Path == "/client.json" {
					http.Redirect(w, r, "/moved.json", http.StatusFound)
					return
				}
				writeDoc(w, validDocument(id))
			},
			wantStatus: 401, wantError: "invalid_client", wantDesc: "redirect",
		},
		"document not found": {
			opts:       []Option{cimdAdvertised(nil), WithLoopbackClientMetadata(true)},
			serve:      func(w http.ResponseWriter, r *http.Request, _ string) { http.NotFound(w, r) },
			wantStatus: 401, wantError: "invalid_client", wantDesc: "HTTP 404",
		},
		"loopback without the option": {
			opts:       []Option{cimdAdvertised(nil)},
			wantStatus: 401, wantError: "invalid_client", wantDesc: "loopback",
		},
		"http off loopback": {
			opts:       []Option{cimdAdvertised(nil), WithLoopbackClientMetadata(true)},
			clientID:   func(*docServer) string { return "http://app.example.com/client.json" },
			wantStatus: 401, wantError: "invalid_client", wantDesc: "must be an https URL",
		},
		"no path": {
			opts:       []Option{cimdAdvertised(nil), WithLoopbackClientMetadata(true)},
			clientID:   func(d *docServer) string { return d.URL + "/" },
			wantStatus: 401, wantError: "invalid_client", wantDesc: "must contain a path",
		},
		"dot segment": {
			opts:       []Option{cimdAdvertised(nil), WithLoopbackClientMetadata(true)},
			clientID:   func(d *docServer) string { return d.URL + "/x/../client.json" },
			wantStatus: 401, wantError: "invalid_client", wantDesc: "path segments",
		},
		"only pre-registered, new client": {
			opts: []Option{WithLoopbackClientMetadata(true), cimdAdvertised(func(o *OAuthApplicationSettings) {
				o.ClientIDMetadataDocumentsOnlyAllowPreRegisteredClients = true
			})},
			wantStatus: 401, wantError: "invalid_client", wantDesc: "only from pre-registered clients",
		},
		"unknown scope": {
			opts:       []Option{cimdAdvertised(nil), WithLoopbackClientMetadata(true)},
			scope:      "email admin",
			wantStatus: 302, wantError: "invalid_scope",
		},
		"valid (control)": {
			opts:       []Option{cimdAdvertised(nil), WithLoopbackClientMetadata(true)},
			scope:      "openid profile email public_metadata private_metadata user:org:read",
			wantStatus: 302,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			doc := newDocServer(t, tc.serve)
			s := newTestServer(t, tc.opts...)
			clientID, redirectURI, scope := doc.clientID, cimdRedirectURI, "email"
			if tc.clientID != nil {
				clientID = tc.clientID(doc)
			}
			if tc.redirectURI != "" {
				redirectURI = tc.redirectURI
			}
			if tc.scope != "" {
				scope = tc.scope
			}
			_, challenge := pkce()
			resp := cimdAuthorize(t, s, clientID, redirectURI, scope, challenge)
			if resp.status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.status, tc.wantStatus, resp.body)
			}
			var gotError, gotDesc string
			if resp.status == http.StatusFound {
				loc, _ := url.Parse(resp.header.Get("Location"))
				gotError, gotDesc = loc.Query().Get("error"), loc.Query().Get("error_description")
			} else {
				m := resp.json(t)
				gotError, _ = m["error"].(string)
				gotDesc, _ = m["error_description"].(string)
			}
			if gotError != tc.wantError || !strings.Contains(gotDesc, tc.wantDesc) {
				t.Fatalf("error %q (%s), want %q containing %q", gotError, gotDesc, tc.wantError, tc.wantDesc)
			}
		})
	}
}

// TestServer_clientMetadataDocumentSettings follows one CIMD client through
// the settings Clerk's Backend API documents: an auto-connected client stays
// admitted when only pre-registered clients are allowed, is refused (at the
// authorization and token endpoints) once implicitly allowed clients are
// blocked, comes back when an administrator allows it, becomes unknown again
// when deleted, and is an unknown client whenever CIMD is not advertised.
func TestServer_clientMetadataDocumentSettings(t *testing.T) {
	t.Parallel()
	doc := newDocServer(t, nil)
	s := newTestServer(t, WithLoopbackClientMetadata(true), cimdAdvertised(nil))
	c := registered{ID: doc.clientID, RedirectURI: cimdRedirectURI}
	set := func(edit func(*OAuthApplicationSettings)) {
		settings := s.Settings()
		edit(&settings)
		s.SetSettings(settings)
	}
	authorizeStatus := func() int {
		_, challenge := pkce()
		return cimdAuthorize(t, s, doc.clientID, cimdRedirectURI, "email", challenge).status
	}

	code, verifier := authCodeFor(t, s, c, "email", nil)
	tok := exchange(t, s, c, code, verifier)
	if tok.status != http.StatusOK {
		t.Fatalf("token: status %d: %s", tok.status, tok.body)
	}

	set(func(o *OAuthApplicationSettings) { o.ClientIDMetadataDocumentsOnlyAllowPreRegisteredClients = true })
	if got := authorizeStatus(); got != http.StatusFound {
		t.Fatalf("auto-connected client with only pre-registered allowed: status %d, want 302", got)
	}

	set(func(o *OAuthApplicationSettings) { o.ClientIDMetadataDocumentsBlockImplicitlyAllowedClients = true })
	if got := authorizeStatus(); got != http.StatusUnauthorized {
		t.Fatalf("implicitly allowed client while blocked: status %d, want 401", got)
	}
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.json(t)["refresh_token"].(string)}, "client_id": {doc.clientID}}
	if resp := postForm(t, s.FrontendAPIURL()+"/oauth/token", form, "", ""); resp.status != http.StatusUnauthorized || resp.json(t)["error"] != "invalid_client" {
		t.Fatalf("refresh by a blocked client: status %d: %s; want 401 invalid_client", resp.status, resp.body)
	}

	if err := s.AllowClientMetadataDocument(doc.clientID); err != nil {
		t.Fatal(err)
	}
	if got := authorizeStatus(); got != http.StatusFound {
		t.Fatalf("explicitly allowed client while implicit ones are blocked: status %d, want 302", got)
	}

	if !s.DeleteClient(doc.clientID) {
		t.Fatal("DeleteClient: the client did not exist")
	}
	if got := authorizeStatus(); got != http.StatusUnauthorized {
		t.Fatalf("deleted client with only pre-registered allowed: status %d, want 401", got)
	}

	set(func(o *OAuthApplicationSettings) {
		*o = OAuthApplicationSettings{DynamicOAuthClientRegistration: true, OAuthJWTAccessTokens: true}
	})
	if meta := get(t, s.FrontendAPIURL()+"/.well-known/oauth-authorization-server").json(t); meta["client_id_metadata_document_supported"] != nil {
		t.Fatalf("AS metadata = %v, want no client_id_metadata_document_supported", meta)
	}
	if err := s.AllowClientMetadataDocument(doc.clientID); err != nil {
		t.Fatal(err)
	}
	if got := authorizeStatus(); got != http.StatusUnauthorized {
		t.Fatalf("CIMD not advertised: status %d, want 401", got)
	}
}

// TestServer_clientMetadataDocumentCache checks that a document is fetched
// again only when its cached copy is stale: after its max-age, after the
// default few minutes, or every time with no-store.
func TestServer_clientMetadataDocumentCache(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		cacheControl string
		advance      time.Duration // clock moved between the two authorizations
		wantFetches  int32
	}{
		"no header, fresh":   {advance: time.Minute, wantFetches: 1},
		"no header, stale":   {advance: 6 * time.Minute, wantFetches: 2},
		"max-age, fresh":     {cacheControl: "public, max-age=3600", advance: 30 * time.Minute, wantFetches: 1},
		"max-age, stale":     {cacheControl: "max-age=60", advance: 2 * time.Minute, wantFetches: 2},
		"no-store":           {cacheControl: "no-store", wantFetches: 2},
		"max-age capped":     {cacheControl: "max-age=999999999", advance: 25 * time.Hour, wantFetches: 2},
		"max-age not number": {cacheControl: "max-age=soon", advance: time.Minute, wantFetches: 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			doc := newDocServer(t, func(w http.ResponseWriter, _ *http.Request, id string) {
				if tc.cacheControl != "" {
					w.Header().Set("Cache-Control", tc.cacheControl)
				}
				writeDoc(w, validDocument(id))
			})
			clock := newFakeClock()
			s := newTestServer(t, WithClock(clock.Now), WithLoopbackClientMetadata(true), cimdAdvertised(nil))
			_, challenge := pkce()
			codeFrom(t, cimdAuthorize(t, s, doc.clientID, cimdRedirectURI, "email", challenge))
			clock.Step(tc.advance)
			codeFrom(t, cimdAuthorize(t, s, doc.clientID, cimdRedirectURI, "email", challenge))
			if got := doc.fetches.Load(); got != tc.wantFetches {
				t.Fatalf("fetched %d times, want %d", got, tc.wantFetches)
			}
		})
	}
}

// TestServer_clientMetadataDocumentOverTLS checks an https document on
// loopback, trusted through WithClientMetadataTransport.
func TestServer_clientMetadataDocumentOverTLS(t *testing.T) {
	t.Parallel()
	var clientID string
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { writeDoc(w, validDocument(clientID)) }))
	t.Cleanup(ts.Close)
	clientID = ts.URL + "/client.json"
	s := newTestServer(t, WithLoopbackClientMetadata(true), WithClientMetadataTransport(ts.Client().Transport), cimdAdvertised(nil))
	c := registered{ID: clientID, RedirectURI: cimdRedirectURI}
	code, verifier := authCodeFor(t, s, c, "email", nil)
	if resp := exchange(t, s, c, code, verifier); resp.status != http.StatusOK {
		t.Fatalf("token: status %d: %s", resp.status, resp.body)
	}
}

// TestServer_addClientRefusesURL checks that AddClient points a URL client
// ID at AllowClientMetadataDocument rather than making a client that
// bypasses the metadata document.
func TestServer_addClientRefusesURL(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	if _, err := s.AddClient(Client{ID: "https://app.example.com/client.json", RedirectURIs: []string{cimdRedirectURI}}); err == nil {
		t.Fatal("AddClient with a URL ID succeeded, want an error")
	}
	if err := s.AllowClientMetadataDocument("https://app.example.com/"); err == nil {
		t.Fatal("AllowClientMetadataDocument without a path succeeded, want an error")
	}
}

// TestMetadataFetch_dialGuard checks the default transport's last line of
// defence: without WithLoopbackClientMetadata it will not connect to a
// loopback address, whatever name led there; with it, it will.
func TestMetadataFetch_dialGuard(t *testing.T) {
	t.Parallel()
	doc := newDocServer(t, nil)
	for allow, wantErr := range map[bool]bool{false: true, true: false} {
		req, err := http.NewRequest(http.MethodGet, doc.clientID, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := metadataFetch{allowLoopback: allow}.withDefaults().transport.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		if (err != nil) != wantErr {
			t.Errorf("loopback allowed %v: error %v, want error %v", allow, err, wantErr)
		}
	}
}

// FuzzClientFromMetadata feeds arbitrary documents to the validator: it
// must not panic, and whatever it accepts is a public client with the
// document's URL as its ID and at least one acceptable redirect URI.
func FuzzClientFromMetadata(f *testing.F) {
	const id = "https://app.example.com/client.json"
	valid, _ := json.Marshal(validDocument(id))
	for _, seed := range []string{string(valid), `{}`, `null`, `[]`, `{"client_id":1}`, `{"client_id":"` + id + `","client_name":"x","redirect_uris":["javascript:alert(1)"]}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := clientFromMetadata(id, body)
		if err != nil {
			return
		}
		if c.id != id || !c.public() || len(c.redirectURIs) == 0 || c.scopes != nil {
			t.Fatalf("accepted %q as %+v", body, c)
		}
		for _, u := range c.redirectURIs {
			if checkRedirectURI(u) != nil {
				t.Fatalf("accepted redirect URI %q", u)
			}
		}
	})
}

// FuzzMetadataURL checks that whatever client_id URL is accepted without
// loopback is https, has a path and names no loopback host.
func FuzzMetadataURL(f *testing.F) {
	for _, seed := range []string{"https://app.example.com/client.json", "https://app.example.com", "http://127.0.0.1/c.json", "https://u:p@x.example/c", "https://x.example/a/../c", "https://[::1]/c"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if (metadataFetch{}).checkURL(raw) != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "https" || isLoopback(u.Hostname()) || u.EscapedPath() == "" || u.EscapedPath() == "/" || u.User != nil {
			t.Fatalf("accepted client_id URL %q", raw)
		}
	})
}

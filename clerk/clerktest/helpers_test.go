package clerktest

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// newFakeClock is a settable clock for WithClock.
func newFakeClock() *clocktesting.FakeClock {
	return clocktesting.NewFakeClock(time.Unix(1_800_000_000, 0))
}

// newTestServer starts an emulator that is closed when the test ends.
func newTestServer(t *testing.T, opts ...Option) *Server {
	t.Helper()
	s := NewServer(opts...)
	t.Cleanup(s.Close)
	return s
}

// noRedirectClient is an HTTP client that hands redirects back to the test,
// as a headless OAuth client reads the code from the redirect itself.
func noRedirectClient() *http.Client {
	return &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

// decode unmarshals the body into a map, failing the test on bad JSON.
func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response body is not a JSON object: %v\n%s", err, r.body)
	}
	return m
}

// do sends a request and reads the whole response.
func do(t *testing.T, method, target string, header http.Header, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := noRedirectClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func get(t *testing.T, target string) response {
	t.Helper()
	return do(t, http.MethodGet, target, nil, "")
}

// postForm posts form to target, with HTTP Basic credentials when user is set.
func postForm(t *testing.T, target string, form url.Values, user, pass string) response {
	t.Helper()
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	if user != "" {
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(user)+":"+url.QueryEscape(pass))))
	}
	return do(t, http.MethodPost, target, h, form.Encode())
}

// backend calls the Backend API with the server's secret key.
func backend(t *testing.T, s *Server, method, path, body string) response {
	t.Helper()
	return do(t, method, s.BackendAPIURL()+path, http.Header{
		"Authorization": {"Bearer " + s.SecretKey()},
		"Content-Type":  {"application/json"},
	}, body)
}

// pkce returns a fresh code verifier and its S256 challenge.
func pkce() (verifier, challenge string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	verifier = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// registered is a client as the registration endpoint returned it.
type registered struct {
	ID, Secret, RedirectURI string
}

// register registers a client through DCR; authMethod "" leaves the default.
func register(t *testing.T, s *Server, authMethod string) registered {
	t.Helper()
	meta := map[string]any{"redirect_uris": []string{"http://127.0.0.1:7777/callback"}, "client_name": "test client"}
	if authMethod != "" {
		meta["token_endpoint_auth_method"] = authMethod
	}
	body, _ := json.Marshal(meta)
	resp := do(t, http.MethodPost, s.FrontendAPIURL()+"/oauth/register", http.Header{"Content-Type": {"application/json"}}, string(body))
	if resp.status != http.StatusCreated {
		t.Fatalf("register: status %d: %s", resp.status, resp.body)
	}
	m := resp.json(t)
	secret, _ := m["client_secret"].(string)
	return registered{ID: m["client_id"].(string), Secret: secret, RedirectURI: "http://127.0.0.1:7777/callback"}
}

// authorize runs the authorization request and returns the redirect's query.
func authorize(t *testing.T, s *Server, params url.Values) (int, url.Values) {
	t.Helper()
	resp := get(t, s.FrontendAPIURL()+"/oauth/authorize?"+params.Encode())
	if resp.status != http.StatusFound {
		return resp.status, nil
	}
	loc, err := url.Parse(resp.header.Get("Location"))
	if err != nil {
		t.Fatalf("bad Location: %v", err)
	}
	return resp.status, loc.Query()
}

// authCodeFor runs a successful authorization for c and returns the code and verifier.
func authCodeFor(t *testing.T, s *Server, c registered, scope string, extra url.Values) (code, verifier string) {
	t.Helper()
	verifier, challenge := pkce()
	params := url.Values{
		"response_type": {"code"}, "client_id": {c.ID}, "redirect_uri": {c.RedirectURI},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "state": {"state-123456"}, "scope": {scope},
	}
	for k, vs := range extra {
		params[k] = vs
	}
	status, q := authorize(t, s, params)
	if status != http.StatusFound || q.Get("code") == "" {
		t.Fatalf("authorize: status %d, query %v", status, q)
	}
	if q.Get("state") != "state-123456" {
		t.Fatalf("state = %q, want it echoed", q.Get("state"))
	}
	return q.Get("code"), verifier
}

// exchange redeems a code; public clients send client_id in the body.
func exchange(t *testing.T, s *Server, c registered, code, verifier string) response {
	t.Helper()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.RedirectURI}, "code_verifier": {verifier}}
	if c.Secret == "" {
		form.Set("client_id", c.ID)
		return postForm(t, s.FrontendAPIURL()+"/oauth/token", form, "", "")
	}
	return postForm(t, s.FrontendAPIURL()+"/oauth/token", form, c.ID, c.Secret)
}

// verifiedJWT checks token's RS256 signature against the JWKS the Frontend
// API serves, independently of the emulator's own code, and returns its
// header and claims.
func verifiedJWT(t *testing.T, s *Server, token string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts, want 3", len(parts))
	}
	header, claims = decodeSegment(t, parts[0]), decodeSegment(t, parts[1])
	var set struct {
		Keys []struct{ Kid, Kty, Alg, Use, N, E string }
	}
	if err := json.Unmarshal(get(t, s.FrontendAPIURL()+"/.well-known/jwks.json").body, &set); err != nil {
		t.Fatal(err)
	}
	for _, k := range set.Keys {
		if k.Kid != header["kid"] {
			continue
		}
		n, errN := base64.RawURLEncoding.DecodeString(k.N)
		e, errE := base64.RawURLEncoding.DecodeString(k.E)
		if errN != nil || errE != nil || k.Kty != "RSA" || k.Alg != "RS256" || k.Use != "sig" {
			t.Fatalf("malformed JWK %+v", k)
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		sig, err := base64.RawURLEncoding.DecodeString(parts[2])
		if err != nil {
			t.Fatal(err)
		}
		digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
			t.Fatalf("signature does not verify against the JWKS: %v", err)
		}
		return header, claims
	}
	t.Fatalf("kid %v is not in the JWKS", header["kid"])
	return nil, nil
}

func decodeSegment(t *testing.T, seg string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatalf("segment is not base64url: %v", err)
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("segment is not a JSON object: %v", err)
	}
	return m
}

// numClaim returns a numeric claim as int64.
func numClaim(t *testing.T, claims map[string]any, name string) int64 {
	t.Helper()
	n, ok := claims[name].(json.Number)
	if !ok {
		t.Fatalf("claim %s = %v, want a number", name, claims[name])
	}
	v, err := n.Int64()
	if err != nil {
		t.Fatalf("claim %s: %v", name, err)
	}
	return v
}

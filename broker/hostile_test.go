package broker

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
)

// TestServer_hostileInput sends the broker what a compromised gateway, a
// workload in another namespace or a confused client could, through a real
// API server's TokenReview and a Clerk emulator per instance, and lists each
// case's outcome: the status, the protocol's code, and the clerk error class
// the gateway's Client restores from it. No answer quotes a token sent.
func TestServer_hostileInput(t *testing.T) {
	t.Parallel()
	startKube(t)
	nsA, nsB := newNamespace(t, "team-a"), newNamespace(t, "team-b")
	gwA := Caller{Namespace: nsA, Name: "tools-gateway"}
	gwB := Caller{Namespace: nsB, Name: "docs-gateway"}
	// The same name as gwA in another namespace, and an account of gwA's
	// namespace that is no gateway.
	twinB := Caller{Namespace: nsB, Name: "tools-gateway"}
	defaultA := Caller{Namespace: nsA, Name: "default"}
	for _, c := range []Caller{gwA, gwB, twinB, defaultA} {
		newServiceAccount(t, c)
	}
	emA, emB := newEmulator(t), newEmulator(t)
	res := NewStaticResolver(nil)
	instA := instanceOf(nsA+"/tools", emA)
	instA.Audiences = []string{"https://tools.example.com/mcp"}
	res.Set(gwA, instA)
	res.Set(gwB, instanceOf(nsB+"/docs", emB))
	auth, err := NewTokenReviewAuthenticator(TokenReviewOptions{Client: kube.broker.AuthenticationV1()})
	if err != nil {
		t.Fatal(err)
	}
	b := startBroker(t, auth, res)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b.ca.pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}

	saA := saToken(t, gwA, Audience)
	deleted := Caller{Namespace: nsA, Name: "deleted-gateway"}
	newServiceAccount(t, deleted)
	saDeleted := saToken(t, deleted, Audience)
	if err := kube.admin.CoreV1().ServiceAccounts(nsA).Delete(t.Context(), deleted.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The two ways a token ends before its expiry (which TokenRequest puts
	// ten minutes out at least; TestTokenReviewAuthenticator moves the
	// broker's clock past it): its ServiceAccount or its pod is deleted.
	saPodGone, pod := podToken(t, gwA)
	if err := kube.admin.CoreV1().Pods(nsA).Delete(t.Context(), pod, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	sa := map[string]string{
		"podGone":       saPodGone,
		"a":             saA,
		"b":             saToken(t, gwB, Audience),
		"twin":          saToken(t, twinB, Audience),
		"default":       saToken(t, defaultA, Audience),
		"wrongAudience": saToken(t, gwA, "vault"),
		"apiAudience":   saToken(t, gwA),
		"forged":        resign(t, saA, nil),
		"deleted":       saDeleted,
	}
	session, err := emA.MintSessionToken("")
	if err != nil {
		t.Fatal(err)
	}
	opaqueRevoked := mint(t, emA, clerktest.TokenRequest{Format: clerktest.FormatOpaque})
	if err := emA.RevokeAccessToken(opaqueRevoked); err != nil {
		t.Fatal(err)
	}
	at := map[string]string{
		"a":             mint(t, emA, clerktest.TokenRequest{}),
		"aOpaque":       mint(t, emA, clerktest.TokenRequest{Format: clerktest.FormatOpaque}),
		"aForResource":  mint(t, emA, clerktest.TokenRequest{Audience: []string{"https://tools.example.com/mcp"}}),
		"aForOther":     mint(t, emA, clerktest.TokenRequest{Audience: []string{"https://other.example.com/mcp"}}),
		"aExpired":      mint(t, emA, clerktest.TokenRequest{TTL: -time.Minute}),
		"aRevoked":      opaqueRevoked,
		"aSession":      session,
		"b":             mint(t, emB, clerktest.TokenRequest{}),
		"bOpaque":       mint(t, emB, clerktest.TokenRequest{Format: clerktest.FormatOpaque}),
		"bForResource":  mint(t, emB, clerktest.TokenRequest{Audience: []string{"https://tools.example.com/mcp"}}),
		"empty":         "",
		"notAToken":     "hello",
		"aWithTrailing": mint(t, emA, clerktest.TokenRequest{}) + "x",
	}
	body := func(token string, extra ...string) string {
		b, _ := json.Marshal(Request{AccessToken: at[token]})
		s := string(b)
		for _, e := range extra {
			s = strings.TrimSuffix(s, "}") + "," + e + "}"
		}
		return s
	}

	tests := []struct {
		name string
		// sa names the caller's ServiceAccount token in sa; auth, when set,
		// is the whole Authorization header instead (or headers, for
		// several).
		sa     string
		auth   []string
		method string // POST when empty
		path   string // PathUser when empty
		body   string
		plain  bool // over plain HTTP, not TLS
		status int
		code   string
		class  string // what the gateway's Client restores
		reason string // the verifier's, for CodeInvalidToken
	}{
		// The caller.
		{name: "no service account token", auth: []string{}, body: body("a"), status: 401, code: CodeUnauthenticated, class: "unavailable"},
		{name: "two authorization headers", auth: []string{"Bearer " + saA, "Bearer " + saA}, body: body("a"), status: 401, code: CodeUnauthenticated, class: "unavailable"},
		{name: "basic credentials", auth: []string{"Basic " + saA}, body: body("a"), status: 401, code: CodeUnauthenticated, class: "unavailable"},
		{name: "forged service account token", sa: "forged", body: body("a"), status: 401, code: CodeUnauthenticated, class: "unavailable"},
		{name: "token for another audience", sa: "wrongAudience", body: body("a"), status: 401, code: CodeUnauthenticated, class: "unavailable"},
		{name: "token for the api server", sa: "apiAudience", body: body("a"), status: 401, code: CodeUnauthenticated, class: "unavailable"},
		{name: "token of a deleted service account", sa: "deleted", body: body("a"), status: 401, code: CodeUnauthenticated, class: "unavailable"},
		{name: "token of a deleted pod", sa: "podGone", body: body("a"), status: 401, code: CodeUnauthenticated, class: "unavailable"},
		{name: "another namespace's account of the same name", sa: "twin", body: body("a"), status: 403, code: CodeForbidden, class: "unavailable"},
		{name: "an account that is no gateway", sa: "default", body: body("a"), status: 403, code: CodeForbidden, class: "unavailable"},
		{name: "plain http", sa: "a", body: body("a"), plain: true, status: 400, code: CodeBadRequest, class: "unavailable"},
		// The request.
		{name: "GET", sa: "a", method: http.MethodGet, status: 405, code: CodeBadRequest, class: "unavailable"},
		{name: "a path that lists users", sa: "a", path: "/v1/users", body: body("a"), status: 404, code: CodeBadRequest, class: "unavailable"},
		{name: "a user id in the body", sa: "a", body: body("a", `"user_id":"user_someone"`), status: 400, code: CodeBadRequest, class: "unavailable"},
		{name: "not json", sa: "a", body: "access_token=x", status: 400, code: CodeBadRequest, class: "unavailable"},
		{name: "two json values", sa: "a", body: body("a") + body("a"), status: 400, code: CodeBadRequest, class: "unavailable"},
		{name: "oversized body", sa: "a", body: `{"access_token":"` + strings.Repeat("a", maxRequestBytes) + `"}`, status: 400, code: CodeBadRequest, class: "unavailable"},
		{name: "provider that is a path", sa: "a", path: PathOAuthToken, body: body("a", `"provider":"oauth_x/../../users"`), status: 400, code: CodeBadRequest, class: "unavailable"},
		{name: "provider on the user endpoint", sa: "a", body: body("a", `"provider":"oauth_github"`), status: 400, code: CodeBadRequest, class: "unavailable"},
		// The access token.
		{name: "no access token", sa: "a", body: body("empty"), status: 422, code: CodeInvalidToken, class: "invalid_token", reason: "empty token"},
		{name: "not an access token", sa: "a", body: body("notAToken"), status: 422, code: CodeInvalidToken, class: "invalid_token", reason: "unrecognized token format"},
		{name: "a session token", sa: "a", body: body("aSession"), status: 422, code: CodeInvalidToken, class: "invalid_token", reason: "not an access token"},
		{name: "an expired access token", sa: "a", body: body("aExpired"), status: 422, code: CodeInvalidToken, class: "invalid_token", reason: "token expired"},
		{name: "a revoked opaque token", sa: "a", body: body("aRevoked"), status: 422, code: CodeInvalidToken, class: "invalid_token", reason: "token revoked"},
		{name: "a jwt with a bad signature", sa: "a", body: body("aWithTrailing"), status: 422, code: CodeInvalidToken, class: "invalid_token", reason: "malformed signature"},
		{name: "a jwt for another resource", sa: "a", body: body("aForOther"), status: 422, code: CodeInvalidToken, class: "invalid_token", reason: "wrong audience"},
		{name: "a jwt for another resource, whose audience the caller names", sa: "a", body: body("aForOther", `"audiences":["https://other.example.com/mcp"]`), status: 422, code: CodeInvalidToken, class: "invalid_token", reason: "wrong audience"},
		{name: "replay of another instance's jwt", sa: "a", body: body("b"), status: 422, code: CodeInvalidToken, class: "invalid_token", reason: "unknown signing key"},
		{name: "replay of another instance's jwt for this resource", sa: "a", body: body("bForResource"), status: 422, code: CodeInvalidToken, class: "invalid_token", reason: "unknown signing key"},
		{name: "replay of another instance's opaque token", sa: "a", body: body("bOpaque"), status: 422, code: CodeInvalidToken, class: "invalid_token", reason: "unknown token"},
		{name: "replay of this instance's token by another instance's gateway", sa: "b", body: body("a"), status: 422, code: CodeInvalidToken, class: "invalid_token", reason: "unknown signing key"},
		{name: "oauth token of a user who did not connect", sa: "a", path: PathOAuthToken, body: body("a", `"provider":"oauth_github"`), status: 404, code: CodeNotConnected, class: "not_connected"},
		// What is allowed, for contrast.
		{name: "own instance's jwt", sa: "a", body: body("a"), status: 200},
		{name: "own instance's jwt for its resource", sa: "a", body: body("aForResource"), status: 200},
		{name: "own instance's opaque token", sa: "a", path: PathMemberships, body: body("aOpaque"), status: 200},
		{name: "own instance's token, verified", sa: "b", path: PathVerify, body: body("b"), status: 200},
	}
	// After every case: no log line quotes a token either.
	t.Cleanup(func() {
		logs := b.logs.String()
		if !strings.Contains(logs, "Refused broker request") {
			t.Errorf("the broker logged no refusal")
		}
		for _, secret := range append(mapValues(sa), mapValues(at)...) {
			if len(secret) > 8 && strings.Contains(logs, secret) {
				t.Errorf("a log line quotes a token")
			}
		}
	})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			method, path := tc.method, tc.path
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = PathUser
			}
			req := httptest.NewRequestWithContext(t.Context(), method, b.url+path, strings.NewReader(tc.body))
			req.RequestURI = ""
			if tc.auth != nil {
				for _, v := range tc.auth {
					req.Header.Add("Authorization", v)
				}
			} else {
				req.Header.Set("Authorization", "Bearer "+sa[tc.sa])
			}
			var resp *http.Response
			if tc.plain {
				rec := httptest.NewRecorder()
				req.TLS = nil
				b.ServeHTTP(rec, req)
				resp = rec.Result()
			} else {
				var err error
				if resp, err = hc.Do(req); err != nil {
					t.Fatal(err)
				}
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tc.status, got)
			}
			for _, secret := range append(mapValues(sa), mapValues(at)...) {
				if len(secret) > 8 && bytes.Contains(got, []byte(secret)) {
					t.Fatalf("answer quotes a token: %s", got)
				}
			}
			if tc.status == http.StatusOK {
				return
			}
			var er ErrorResponse
			if err := json.Unmarshal(got, &er); err != nil || er.Error.Code != tc.code {
				t.Fatalf("body = %s, want code %q", got, tc.code)
			}
			if er.Error.Reason != tc.reason {
				t.Fatalf("reason = %q, want %q", er.Error.Reason, tc.reason)
			}
			if class := errorClass(answerError(path, resp, got)); class != tc.class {
				t.Fatalf("the client restores %s, want %s", class, tc.class)
			}
		})
	}
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

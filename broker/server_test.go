package broker

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/clerk"
	"github.com/mcpgate/mcpgate/clerk/clerktest"
)

// failingResolver cannot answer, as when the operator's cache is not synced.
type failingResolver struct{}

func (failingResolver) Resolve(context.Context, Caller) (Instance, error) {
	return Instance{}, errors.New("informer not synced")
}

// TestServer_cannotTell checks that a broker that cannot tell who is
// calling, or what they may use, answers 503 with Retry-After: fail closed,
// and the gateway retries as after a Clerk outage.
func TestServer_cannotTell(t *testing.T) {
	t.Parallel()
	em := newEmulator(t)
	// Opaque: verifying it needs the Backend API, and so the secret key.
	tok := mint(t, em, clerktest.TokenRequest{Format: clerktest.FormatOpaque})
	broken := *instanceOf("broken", em)
	broken.BackendAPIURL = "not a url"
	tests := map[string]struct {
		saToken  string // staticAuth: "fail" fails, "sa" is gatewayA
		resolver Resolver
		status   int
		code     string
		class    string
	}{
		"api server unreachable": {saToken: "fail", resolver: NewStaticResolver(nil), status: 503, code: CodeUnavailable, class: "unavailable"},
		"resolver cannot answer": {saToken: "sa", resolver: failingResolver{}, status: 503, code: CodeUnavailable, class: "unavailable"},
		"instance misconfigured": {saToken: "sa", resolver: NewStaticResolver(map[Caller]Instance{gatewayA: broken}), status: 500, code: CodeInternal, class: "unavailable"},
		"secret key unreadable": {saToken: "sa", resolver: NewStaticResolver(map[Caller]Instance{gatewayA: {
			ID: "nokey", Issuer: em.FrontendAPIURL(), BackendAPIURL: em.BackendAPIURL(),
			SecretKey: func(context.Context) (string, error) { return "", errors.New("secret not mounted") },
		}}), status: 503, code: CodeUnavailable, class: "unavailable"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s, err := NewServer(Options{Authenticator: staticAuth{"sa": gatewayA}, Resolver: tc.resolver})
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodPost, "https://broker"+PathVerify, strings.NewReader(`{"access_token":"`+tok+`"}`))
			req.Header.Set("Authorization", "Bearer "+tc.saToken)
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			resp := rec.Result()
			body := rec.Body.Bytes()
			if resp.StatusCode != tc.status || !strings.Contains(string(body), `"code":"`+tc.code+`"`) {
				t.Fatalf("answer = %d %s, want %d %s", resp.StatusCode, body, tc.status, tc.code)
			}
			if tc.status == 503 && resp.Header.Get("Retry-After") == "" {
				t.Fatalf("503 without Retry-After")
			}
			if class := errorClass(answerError(PathVerify, resp, body)); class != tc.class {
				t.Fatalf("the client restores %s, want %s", class, tc.class)
			}
		})
	}
}

// TestServer_instances checks that each instance's verifier and directory
// are made once and kept, and that the least recently used goes first.
func TestServer_instances(t *testing.T) {
	t.Parallel()
	clock := time.Unix(1_800_000_000, 0)
	s, err := NewServer(Options{Authenticator: staticAuth{}, Resolver: NewStaticResolver(nil), MaxInstances: 2,
		Now: func() time.Time { clock = clock.Add(time.Second); return clock }})
	if err != nil {
		t.Fatal(err)
	}
	em := newEmulator(t)
	a, b, c := *instanceOf("a", em), *instanceOf("b", em), *instanceOf("c", em)
	get := func(inst Instance) *clerkInstance {
		t.Helper()
		ci, err := s.instance(inst)
		if err != nil {
			t.Fatal(err)
		}
		return ci
	}
	first := get(a)
	if get(a) != first {
		t.Fatal("the same instance got a new verifier")
	}
	rotated := a
	rotated.KeyRef = "a/clerk/new-secret-key"
	if get(rotated) == first {
		t.Fatal("another key source kept the old verifier")
	}
	// Each get is a tick later; with room for two, a new instance evicts
	// the one used longest ago.
	get(b) // evicts a
	get(a) // evicts rotated
	get(c) // evicts b
	if len(s.instances) != 2 {
		t.Fatalf("%d instances kept, want 2", len(s.instances))
	}
	for inst, want := range map[string]bool{"a": true, "c": true, "b": false, "rotated": false} {
		key := map[string]Instance{"a": a, "b": b, "c": c, "rotated": rotated}[inst].key()
		if _, ok := s.instances[key]; ok != want {
			t.Errorf("instance %s kept = %v, want %v", inst, ok, want)
		}
	}
}

// TestAnswerError checks how the client reads answers that are not 200,
// and that it fails closed on anything it cannot read.
func TestAnswerError(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		status     int
		retryAfter string // the header
		body       string
		class      string
		wantRetry  time.Duration // for "unavailable"; 0: not checked
		wantReason string        // for "invalid_token"
		wantIs     error
	}{
		"invalid token":              {status: 422, body: `{"error":{"code":"invalid_token","reason":"token expired"}}`, class: "invalid_token", wantReason: "token expired"},
		"invalid token, odd reason":  {status: 422, body: `{"error":{"code":"invalid_token","reason":"<script>"}}`, class: "invalid_token", wantReason: "rejected by broker"},
		"user not found":             {status: 404, body: `{"error":{"code":"user_not_found"}}`, class: "user_not_found"},
		"not connected":              {status: 404, body: `{"error":{"code":"not_connected"}}`, class: "not_connected"},
		"too many memberships":       {status: 422, body: `{"error":{"code":"too_many_memberships"}}`, class: "too_many_memberships"},
		"unavailable with header":    {status: 503, retryAfter: "7", body: `{"error":{"code":"unavailable","retry_after_seconds":7}}`, class: "unavailable", wantRetry: 7 * time.Second},
		"unavailable, body only":     {status: 503, body: `{"error":{"code":"unavailable","retry_after_seconds":3}}`, class: "unavailable", wantRetry: 3 * time.Second},
		"unavailable, absurd header": {status: 503, retryAfter: "99999999", body: `{"error":{"code":"unavailable"}}`, class: "unavailable", wantRetry: 10 * time.Minute},
		"unavailable, no hint":       {status: 503, body: `{"error":{"code":"unavailable"}}`, class: "unavailable", wantRetry: clientRetryAfter},
		"unauthenticated":            {status: 401, body: `{"error":{"code":"unauthenticated"}}`, class: "unavailable", wantRetry: clientRetryRefused, wantIs: ErrRefused},
		"forbidden":                  {status: 403, body: `{"error":{"code":"forbidden"}}`, class: "unavailable", wantRetry: clientRetryRefused, wantIs: ErrRefused},
		"internal":                   {status: 500, body: `{"error":{"code":"internal"}}`, class: "unavailable"},
		"a code from a newer broker": {status: 409, body: `{"error":{"code":"something_new"}}`, class: "unavailable"},
		"a proxy's html page":        {status: 502, body: `<html>bad gateway</html>`, class: "unavailable"},
		"empty body":                 {status: 404, class: "unavailable"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			resp := &http.Response{StatusCode: tc.status, Header: http.Header{}}
			if tc.retryAfter != "" {
				resp.Header.Set("Retry-After", tc.retryAfter)
			}
			err := answerError(PathUser, resp, []byte(tc.body))
			if class := errorClass(err); class != tc.class {
				t.Fatalf("class = %s (%v), want %s", class, err, tc.class)
			}
			var ue *clerk.UnavailableError
			if tc.wantRetry != 0 && (!errors.As(err, &ue) || ue.RetryAfter != tc.wantRetry) {
				t.Fatalf("error = %v, want RetryAfter %s", err, tc.wantRetry)
			}
			var ie *clerk.InvalidTokenError
			if tc.wantReason != "" && (!errors.As(err, &ie) || ie.Reason != tc.wantReason) {
				t.Fatalf("error = %v, want reason %q", err, tc.wantReason)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Fatalf("error = %v, want %v", err, tc.wantIs)
			}
		})
	}
}

func TestNewClient_options(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		opts   ClientOptions
		wantOK bool
	}{
		"https":            {opts: ClientOptions{URL: "https://mcpgate-broker.mcpgate-system.svc:8443", TokenFile: "t", CAFile: "c"}, wantOK: true},
		"plain http":       {opts: ClientOptions{URL: "http://mcpgate-broker:8443", TokenFile: "t", CAFile: "c"}},
		"credentials in":   {opts: ClientOptions{URL: "https://u:p@mcpgate-broker", TokenFile: "t", CAFile: "c"}},
		"no token file":    {opts: ClientOptions{URL: "https://mcpgate-broker", CAFile: "c"}},
		"no ca file":       {opts: ClientOptions{URL: "https://mcpgate-broker", TokenFile: "t"}},
		"negative timeout": {opts: ClientOptions{URL: "https://mcpgate-broker", TokenFile: "t", CAFile: "c", Timeout: -1}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := NewClient(tc.opts); (err == nil) != tc.wantOK {
				t.Fatalf("NewClient error = %v, want ok %v", err, tc.wantOK)
			}
		})
	}
}

// TestServer_noReuse checks that the broker keeps no answer a gateway
// caches itself: the gateway's TTLs (the McpServer's cacheTTL, the one
// minute of an opaque verdict) are the only ones, so a membership removed
// in Clerk is seen at the gateway's next lookup, and a revoked opaque token
// at its next verification.
func TestServer_noReuse(t *testing.T) {
	t.Parallel()
	em := newEmulator(t)
	gw := Caller{Namespace: "team-a", Name: "tools-gateway"}
	b := startBroker(t, staticAuth{"sa-token": gw}, NewStaticResolver(map[Caller]Instance{gw: *instanceOf("a", em)}))
	c := b.client(t, writeFile(t, "token", []byte("sa-token")), b.caFile)
	org, err := em.CreateOrganization("Acme", "acme", clerktest.DefaultUserID)
	if err != nil {
		t.Fatal(err)
	}
	at := AccessToken{Token: mint(t, em, clerktest.TokenRequest{Format: clerktest.FormatOpaque, TTL: time.Hour})}
	ctx := context.Background()
	lookup := func() []clerk.Membership {
		t.Helper()
		ms, err := c.Memberships(ctx, at)
		if err != nil {
			t.Fatal(err)
		}
		return ms
	}
	if ms := lookup(); len(ms) != 1 || ms[0].OrganizationID != org {
		t.Fatalf("memberships %+v, want acme", ms)
	}
	if err := em.RemoveMembership(org, clerktest.DefaultUserID); err != nil {
		t.Fatal(err)
	}
	if ms := lookup(); len(ms) != 0 {
		t.Fatalf("after removal, memberships %+v: the broker reused its answer", ms)
	}
	const verify = "POST /v1/oauth_applications/access_tokens/verify"
	if n := em.Calls(verify); n != 2 {
		t.Errorf("%d verifications of the opaque token for two lookups, want 2 (no verdict kept)", n)
	}
	if err := em.RevokeAccessToken(at.Token); err != nil {
		t.Fatal(err)
	}
	var invalid *clerk.InvalidTokenError
	if _, err := c.Verify(ctx, at); !errors.As(err, &invalid) {
		t.Fatalf("revoked token: %v, want an invalid token at once", err)
	}
}

// TestClient_otherSubject checks that the client hands on no answer about
// another user than the one the gateway verified the token for: the
// broker's answers name their subject, and a mismatch is a failure (the
// gateway then fails closed and caches nothing), never another user's
// facts or provider token.
func TestClient_otherSubject(t *testing.T) {
	t.Parallel()
	em := newEmulator(t)
	gw := Caller{Namespace: "team-a", Name: "tools-gateway"}
	b := startBroker(t, staticAuth{"sa-token": gw}, NewStaticResolver(map[Caller]Instance{gw: *instanceOf("a", em)}))
	c := b.client(t, writeFile(t, "token", []byte("sa-token")), b.caFile)
	if err := em.SetOAuthToken(clerktest.DefaultUserID, "oauth_github", clerktest.OAuthToken{Token: "gho_subject", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	token := mint(t, em, clerktest.TokenRequest{Format: clerktest.FormatJWT, TTL: time.Hour})
	ctx := context.Background()
	lookups := func(at AccessToken) []error {
		_, errU := c.User(ctx, at)
		_, errM := c.Memberships(ctx, at)
		_, errT := c.OAuthToken(ctx, at, "oauth_github")
		return []error{errU, errM, errT}
	}
	for i, err := range lookups(AccessToken{Token: token, Subject: clerktest.DefaultUserID}) {
		if err != nil {
			t.Errorf("lookup %d for the token's own subject: %v", i, err)
		}
	}
	for i, err := range lookups(AccessToken{Token: token, Subject: "user_someone_else"}) {
		var ue *clerk.UnavailableError
		if !errors.Is(err, ErrOtherSubject) || !errors.As(err, &ue) {
			t.Errorf("lookup %d for another subject: %v, want ErrOtherSubject as an unavailable error", i, err)
		}
	}
}

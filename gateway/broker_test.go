package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/broker"
	"github.com/mcpgate/mcpgate/clerk"
	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway"
	"github.com/mcpgate/mcpgate/gateway/config"
	"github.com/mcpgate/mcpgate/gateway/identity"
)

// verifyEndpoint is the Backend API's opaque token verification, as the
// emulator counts it.
const verifyEndpoint = "POST /v1/oauth_applications/access_tokens/verify"

// brokerCalls is a series of mcpgate_gateway_broker_calls_total.
func brokerCalls(t testing.TB, e *gwEnv, endpoint, outcome string) string {
	t.Helper()
	return scrape(t, e, `mcpgate_gateway_broker_calls_total{endpoint="`+endpoint+`",outcome="`+outcome+`"}`)
}

// send posts a tools/call with token and returns the response and body.
func send(t testing.TB, e *gwEnv, token string) (*http.Response, string) {
	t.Helper()
	req := newRequest(t, http.MethodPost, e.mcpURL(), toolCall("search"))
	req.Header.Set("Authorization", "Bearer "+token)
	return do(t, req)
}

// expectStatus sends token and checks the status; a 503 must say when to
// retry, and only a 200 may reach the upstream.
func expectStatus(t testing.TB, e *gwEnv, step, token string, status int) *http.Response {
	t.Helper()
	before := len(e.up.requests())
	resp, body := send(t, e, token)
	if resp.StatusCode != status {
		t.Fatalf("%s: status %d, want %d (%s)", step, resp.StatusCode, status, body)
	}
	reached := len(e.up.requests()) - before
	switch {
	case status == http.StatusOK && reached != 1:
		t.Errorf("%s: the upstream got %d requests, want 1", step, reached)
	case status != http.StatusOK && reached != 0:
		t.Errorf("%s: a refused request reached the upstream", step)
	case status == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "":
		t.Errorf("%s: 503 without Retry-After", step)
	}
	return resp
}

// TestBroker_noSecretKey checks that a gateway with a broker is configured
// with no secret key at all, and that gateway.New refuses a configuration
// whose access rules or user token need what only a key or a broker give.
func TestBroker_noSecretKey(t *testing.T) {
	t.Parallel()
	c := clerktest.NewServer()
	t.Cleanup(c.Close)
	e := newEnv(t, withClerk(c), withBroker(), withUserToken(t, github))
	b, err := config.Marshal(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if e.cfg.Clerk.SecretKeyFile != "" || e.keyFile != "" || strings.Contains(string(b), c.SecretKey()) || strings.Contains(string(b), "secretKeyFile") {
		t.Errorf("a gateway with a broker has a secret key in its configuration:\n%s", b)
	}

	base := e.cfg
	base.Broker = nil
	tests := map[string]struct {
		change func(*config.Config)
		// refused is a phrase of gateway.New's error; empty: accepted.
		refused string
	}{
		"user token": {change: func(*config.Config) {}, refused: "need clerk.secretKeyFile or broker"},
		"organization rule": {change: func(c *config.Config) {
			c.Upstream.Credentials = nil
			c.Access = &config.Access{Allow: []config.AccessRule{{Organization: "acme"}}, CacheTTLSeconds: 60}
		}, refused: "need clerk.secretKeyFile or broker"},
		"email domain rule": {change: func(c *config.Config) {
			c.Upstream.Credentials = nil
			c.Access = &config.Access{Allow: []config.AccessRule{{EmailDomain: "acme.com"}}, CacheTTLSeconds: 60}
		}, refused: "need clerk.secretKeyFile or broker"},
		"user rule needs no facts": {change: func(c *config.Config) {
			c.Upstream.Credentials = nil
			c.Access = &config.Access{Allow: []config.AccessRule{{User: clerktest.DefaultUserID}}, CacheTTLSeconds: 60}
		}},
		"JWTs only": {change: func(c *config.Config) { c.Upstream.Credentials = nil }},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := base
			tc.change(&cfg)
			_, err := gateway.New(cfg, gateway.Options{})
			switch {
			case tc.refused == "" && err != nil:
				t.Fatalf("gateway.New: %v", err)
			case tc.refused != "" && (err == nil || !strings.Contains(err.Error(), tc.refused)):
				t.Fatalf("gateway.New error = %v, want one saying %q", err, tc.refused)
			}
		})
	}
}

// TestNoSecretKeyNoBroker checks a gateway with neither a key nor a broker:
// JWTs pass, an opaque token is refused with 503 and Retry-After (the
// verifier's ErrNoSecretKey), never let through.
func TestNoSecretKeyNoBroker(t *testing.T) {
	t.Parallel()
	c := clerktest.NewServer()
	t.Cleanup(c.Close)
	e := newEnv(t, withClerk(c), withConfig(func(cfg *config.Config) { cfg.Clerk.SecretKeyFile = "" }))
	expectStatus(t, e, "JWT", e.token(t, clerktest.TokenRequest{Scopes: baseScopes, Format: clerktest.FormatJWT}), http.StatusOK)
	expectStatus(t, e, "opaque", e.token(t, clerktest.TokenRequest{Scopes: baseScopes, Format: clerktest.FormatOpaque}), http.StatusServiceUnavailable)
	if !strings.Contains(e.logs.String(), clerk.ErrNoSecretKey.Error()) {
		t.Errorf("the log does not say why the opaque token was refused:\n%s", e.logs)
	}
	if n := c.Calls(verifyEndpoint); n != 0 {
		t.Errorf("the Backend API was called %d times without a key", n)
	}
}

// TestBroker_opaqueToken verifies opaque tokens through the broker: once
// per token, the verdict cached in the gateway, good and bad alike; JWTs
// never reach it. The broker, not the gateway, calls the Backend API.
func TestBroker_opaqueToken(t *testing.T) {
	t.Parallel()
	c := clerktest.NewServer()
	t.Cleanup(c.Close)
	clock := newManualClock()
	e := newEnv(t, withClerk(c), withBroker(), withOptions(func(o *gateway.Options) { o.Now = clock.Now }))
	opaque := e.token(t, clerktest.TokenRequest{Scopes: baseScopes, Format: clerktest.FormatOpaque})
	jwt := e.token(t, clerktest.TokenRequest{Scopes: baseScopes, Format: clerktest.FormatJWT})

	for i := range 3 {
		expectStatus(t, e, "opaque token", opaque, http.StatusOK)
		if n := e.broker.Calls(broker.PathVerify); n != 1 {
			t.Fatalf("request %d: the broker verified the token %d times, want 1 (the verdict cached)", i, n)
		}
	}
	if h := e.up.requests()[0].Header; h.Get(identity.UserHeader) != clerktest.DefaultUserID {
		t.Errorf("upstream user header %q, want %s", h.Get(identity.UserHeader), clerktest.DefaultUserID)
	}
	expectStatus(t, e, "JWT", jwt, http.StatusOK)
	if n := e.broker.TotalCalls(); n != 1 {
		t.Errorf("the broker got %d calls, want 1: a JWT is verified locally", n)
	}
	if n := c.Calls(verifyEndpoint); n != 1 {
		t.Errorf("the Backend API verified %d tokens, want 1 (the broker's call)", n)
	}

	// An unknown token: refused as invalid, and the refusal cached too.
	unknown := "oat_" + strings.Repeat("0", 32)
	for range 2 {
		resp := expectStatus(t, e, "unknown opaque token", unknown, http.StatusUnauthorized)
		if _, params := parseChallenge(t, resp.Header.Get("WWW-Authenticate")); params["error"] != "invalid_token" {
			t.Errorf("challenge %v, want error=invalid_token", params)
		}
	}
	if n := e.broker.Calls(broker.PathVerify); n != 2 {
		t.Errorf("the broker verified %d times, want 2 (the refusal cached)", n)
	}
	// Past the cache, the good token is asked about again.
	clock.Step(clerk.DefaultOpaqueCacheTTL + time.Second)
	expectStatus(t, e, "opaque token after its verdict expired", opaque, http.StatusOK)
	if n := e.broker.Calls(broker.PathVerify); n != 3 {
		t.Errorf("the broker verified %d times, want 3", n)
	}
	if got := brokerCalls(t, e, "verify", "ok"); got != "2" {
		t.Errorf(`broker_calls_total{verify,ok} = %s, want 2`, got)
	}
	if got := brokerCalls(t, e, "verify", "invalid_token"); got != "1" {
		t.Errorf(`broker_calls_total{verify,invalid_token} = %s, want 1`, got)
	}
	// The gateway's own Clerk calls are the Frontend API's only.
	if n := c.Calls("GET /.well-known/jwks.json"); n == 0 {
		t.Error("the gateway never fetched the key set")
	}
}

// TestBroker_otherInstance checks that tokens of another Clerk instance are
// refused as invalid: an opaque one by the broker, which verifies it for
// this gateway's instance only, a JWT locally.
func TestBroker_otherInstance(t *testing.T) {
	t.Parallel()
	c := clerktest.NewServer()
	t.Cleanup(c.Close)
	other := clerktest.NewServer()
	t.Cleanup(other.Close)
	e := newEnv(t, withClerk(c), withBroker())
	for _, format := range []string{clerktest.FormatOpaque, clerktest.FormatJWT} {
		tok, err := other.MintAccessToken(clerktest.TokenRequest{Scopes: baseScopes, Format: format})
		if err != nil {
			t.Fatal(err)
		}
		resp := expectStatus(t, e, format+" of another instance", tok, http.StatusUnauthorized)
		if _, params := parseChallenge(t, resp.Header.Get("WWW-Authenticate")); params["error"] != "invalid_token" {
			t.Errorf("%s: challenge %v, want error=invalid_token", format, params)
		}
	}
	if n := e.broker.Calls(broker.PathVerify); n != 1 {
		t.Errorf("the broker verified %d tokens, want 1 (the opaque one)", n)
	}
	if n := other.Calls(verifyEndpoint); n != 0 {
		t.Errorf("the other instance was asked %d times", n)
	}
}

// TestBroker_accessRules judges organization and email rules on facts from
// the broker, looked up once per user and cached in the gateway.
func TestBroker_accessRules(t *testing.T) {
	t.Parallel()
	c, p := newPeople(t)
	e := newEnv(t, withClerk(c), withBroker(), withAccess(config.Access{
		Allow: []config.AccessRule{{Organization: "acme"}, {EmailDomain: "example.org"}},
	}))
	// Alice's JWT names this resource in aud: the broker, verifying it
	// again for the lookups, must be told the audience it was verified for.
	expectStatus(t, e, "alice, JWT with aud", e.token(t, clerktest.TokenRequest{
		Subject: p.alice, Scopes: baseScopes, Format: clerktest.FormatJWT, Audience: []string{e.mcpURL()},
	}), http.StatusOK)
	tests := []struct {
		user   string
		status int
	}{
		{p.alice, http.StatusOK}, // acme's admin
		{p.bob, http.StatusOK},   // acme's member
		{p.carol, http.StatusOK}, // example.org
		{p.alice, http.StatusOK}, // cached
		{"user_nobody", http.StatusForbidden},
	}
	for _, tc := range tests {
		resp, body := callAs(t, e, tc.user, toolCall("search"))
		if resp.StatusCode != tc.status {
			t.Fatalf("%s: status %d %q, want %d", tc.user, resp.StatusCode, body, tc.status)
		}
	}
	if got := e.up.requests()[0].Header.Get(identity.OrganizationsHeader); !strings.Contains(got, p.acmeID+":acme:org:admin") {
		t.Errorf("organizations header %q, want alice's acme membership", got)
	}
	// Four users, each looked up once, through the broker only.
	// The unknown user's memberships are not asked about.
	if u, m := e.broker.Calls(broker.PathUser), e.broker.Calls(broker.PathMemberships); u != 4 || m != 3 {
		t.Errorf("the broker got %d user and %d membership lookups, want 4 and 3", u, m)
	}
	if n := c.Calls(userEndpoint); n != 4 {
		t.Errorf("the Backend API got %d user lookups, want 4 (the broker's)", n)
	}
	if got := brokerCalls(t, e, "user", "user_not_found"); got != "1" {
		t.Errorf(`broker_calls_total{user,user_not_found} = %s, want 1`, got)
	}
}

// TestBroker_userToken sets the caller's provider token from the broker,
// asked once per user, and refuses a user without the connection.
func TestBroker_userToken(t *testing.T) {
	t.Parallel()
	c, p := newPeople(t)
	connect(t, c, p.alice, aliceGitHubToken)
	e := newEnv(t, withClerk(c), withBroker(), withUserToken(t, github))
	for i := range 2 {
		resp, body := callAs(t, e, p.alice, toolCall("search"))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("alice, request %d: status %d %q", i, resp.StatusCode, body)
		}
	}
	for i, r := range e.up.requests() {
		if got := r.Header.Get("Authorization"); got != "Bearer "+aliceGitHubToken {
			t.Errorf("request %d: Authorization %q, want alice's token", i, got)
		}
	}
	resp, body := callAs(t, e, p.bob, toolCall("search"))
	checkElicitation(t, resp, body, http.StatusOK, "1")
	if n := e.broker.Calls(broker.PathOAuthToken); n != 2 {
		t.Errorf("the broker got %d token lookups, want 2 (alice once, bob once)", n)
	}
	if got := brokerCalls(t, e, "oauth_token", "not_connected"); got != "1" {
		t.Errorf(`broker_calls_total{oauth_token,not_connected} = %s, want 1`, got)
	}
}

// TestBroker_outage stops the broker under a running gateway: cached
// answers keep serving, anything that needs the broker is a 503 with
// Retry-After (never a pass), also once the caches expire; when the broker
// is back on the same address the gateway recovers without a restart. A
// broker that refuses the gateway itself is a 503 as well.
func TestBroker_outage(t *testing.T) {
	t.Parallel()
	c, p := newPeople(t)
	clock := newManualClock()
	e := newEnv(t, withClerk(c), withBroker(), withOptions(func(o *gateway.Options) { o.Now = clock.Now }),
		withAccess(config.Access{Allow: []config.AccessRule{{Organization: "acme"}}}))
	alice := func(format string) string {
		return e.token(t, clerktest.TokenRequest{Subject: p.alice, Scopes: baseScopes, Format: format})
	}
	cachedOpaque, newOpaque, jwt := alice(clerktest.FormatOpaque), alice(clerktest.FormatOpaque), alice(clerktest.FormatJWT)
	expectStatus(t, e, "opaque token, broker up", cachedOpaque, http.StatusOK)
	expectStatus(t, e, "JWT, broker up", jwt, http.StatusOK)

	e.broker.Stop()
	// Readiness needs the key set only: neither a key nor the broker.
	calls := e.broker.TotalCalls()
	if resp, body := do(t, newRequest(t, http.MethodGet, e.health.URL+"/readyz", "")); resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz with the broker down: %d %q, want 200", resp.StatusCode, body)
	}
	expectStatus(t, e, "cached opaque token, broker down", cachedOpaque, http.StatusOK)
	expectStatus(t, e, "JWT with cached facts, broker down", jwt, http.StatusOK)
	expectStatus(t, e, "new opaque token, broker down", newOpaque, http.StatusServiceUnavailable)
	clock.Step(2 * time.Minute) // past the verdict and the facts
	expectStatus(t, e, "cached opaque token expired, broker down", cachedOpaque, http.StatusServiceUnavailable)
	expectStatus(t, e, "JWT with expired facts, broker down", jwt, http.StatusServiceUnavailable)
	if got := brokerCalls(t, e, "verify", "unavailable"); got == "0" {
		t.Error("broker_calls_total{verify,unavailable} = 0 after failed calls")
	}

	if n := e.broker.TotalCalls(); n != calls {
		t.Errorf("the broker, down, got %d calls", n-calls)
	}
	e.broker.Restart()
	clock.Step(time.Minute) // past any back-off
	expectStatus(t, e, "new opaque token, broker back", newOpaque, http.StatusOK)
	expectStatus(t, e, "JWT, broker back", jwt, http.StatusOK)

	// The broker refuses this gateway (its ServiceAccount no longer maps
	// to an instance): an operator's problem, a 503, never a pass.
	e.broker.Resolver.Set(e.broker.Caller, nil)
	clock.Step(2 * time.Minute)
	resp := expectStatus(t, e, "broker refuses the gateway", alice(clerktest.FormatOpaque), http.StatusServiceUnavailable)
	if got := resp.Header.Get("Retry-After"); got != "30" {
		t.Errorf("Retry-After %q when the broker refuses the gateway, want 30", got)
	}
	expectStatus(t, e, "JWT, broker refuses the gateway", jwt, http.StatusServiceUnavailable)
	if got := brokerCalls(t, e, "verify", "refused"); got != "1" {
		t.Errorf(`broker_calls_total{verify,refused} = %s, want 1`, got)
	}
}

// TestBroker_caRotation rotates the broker's CA and serving certificate
// under a running gateway, which trusts the new CA from its file without a
// restart; a client still trusting only the old CA is refused, so the
// rotation did matter.
func TestBroker_caRotation(t *testing.T) {
	t.Parallel()
	c := clerktest.NewServer()
	t.Cleanup(c.Close)
	e := newEnv(t, withClerk(c), withBroker())
	opaque := func() string {
		return e.token(t, clerktest.TokenRequest{Scopes: baseScopes, Format: clerktest.FormatOpaque})
	}
	expectStatus(t, e, "before the rotation", opaque(), http.StatusOK)

	oldCA := filepath.Join(t.TempDir(), "old-ca.crt")
	if err := os.WriteFile(oldCA, e.broker.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	stale, err := broker.NewClient(broker.ClientOptions{URL: e.broker.URL, TokenFile: e.broker.TokenFile, CAFile: oldCA})
	if err != nil {
		t.Fatal(err)
	}
	e.broker.RotateCA()
	expectStatus(t, e, "after the rotation", opaque(), http.StatusOK)
	var ue *clerk.UnavailableError
	if _, err := stale.Verify(context.Background(), broker.AccessToken{Token: opaque()}); !errors.As(err, &ue) {
		t.Fatalf("a client trusting the old CA: error %v, want unavailability", err)
	}
	if n := e.broker.Calls(broker.PathVerify); n != 2 {
		t.Errorf("the broker answered %d verifications, want 2", n)
	}
}

// TestBroker_restartUnderLoad restarts the broker while clients keep
// sending new opaque tokens: each request is either served or refused with
// 503 and Retry-After (never a pass, never another status), and once the
// broker is back every request is served again, without a gateway restart.
func TestBroker_restartUnderLoad(t *testing.T) {
	t.Parallel()
	c := clerktest.NewServer()
	t.Cleanup(c.Close)
	clock := newManualClock()
	e := newEnv(t, withClerk(c), withBroker(), withOptions(func(o *gateway.Options) { o.Now = clock.Now }))
	const workers, perWorker = 4, 30
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range perWorker {
				tok := e.token(t, clerktest.TokenRequest{Scopes: baseScopes, Format: clerktest.FormatOpaque})
				resp, _ := send(t, e, tok)
				if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
					t.Error("503 without Retry-After")
				}
				mu.Lock()
				statuses[resp.StatusCode]++
				mu.Unlock()
			}
		})
	}
	for range 3 {
		time.Sleep(20 * time.Millisecond)
		e.broker.Stop()
		time.Sleep(20 * time.Millisecond)
		e.broker.Restart()
	}
	wg.Wait()
	served := statuses[http.StatusOK]
	if served+statuses[http.StatusServiceUnavailable] != workers*perWorker {
		t.Errorf("statuses %v: only 200 and 503 may answer", statuses)
	}
	if got := len(e.up.requests()); got != served {
		t.Errorf("the upstream got %d requests, %d were served", got, served)
	}
	clock.Step(time.Minute) // past any back-off
	for i := range 5 {
		tok := e.token(t, clerktest.TokenRequest{Scopes: baseScopes, Format: clerktest.FormatOpaque})
		expectStatus(t, e, fmt.Sprintf("request %d after the restarts", i), tok, http.StatusOK)
	}
	t.Logf("statuses during the restarts: %v", statuses)
}

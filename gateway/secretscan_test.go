package gateway_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httputil"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway"
	"github.com/mcpgate/mcpgate/gateway/config"
	"github.com/mcpgate/mcpgate/internal/syncbuf"
)

// transcript records every response a client got, headers and body.
type transcript struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	base http.RoundTripper
}

func (tr *transcript) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := tr.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	dump, derr := httputil.DumpResponse(resp, true)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if derr != nil {
		return nil, derr
	}
	tr.buf.Write(dump)
	tr.buf.WriteByte('\n')
	return resp, nil
}

func (tr *transcript) String() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.buf.String()
}

// TestCredentialsNeverLeak runs the gateway through every path an upstream
// credential takes (set, rotated, missing, malformed, a user connected or
// not, Clerk down, the upstream failing) and then looks for every key and
// token in everything the gateway said: each log line, at debug level, each
// audit record, and each response to a client, headers and body, /readyz
// and /metrics included. None may be there.
func TestCredentialsNeverLeak(t *testing.T) {
	t.Parallel()
	c, p := newPeople(t)
	connect(t, c, p.alice, aliceGitHubToken)
	const carolToken, badKey = "gho_carol5d1e9a7c3b", "svc-key-bad-2c8f"
	connect(t, c, p.carol, carolToken)
	dir := t.TempDir()
	keyFile := credentialFile(t, dir, "api-key", apiKeyV1)
	clock := newManualClock()
	audit := &syncbuf.Buffer{}
	e := newEnv(t, withClerk(c), withOptions(func(o *gateway.Options) { o.Now, o.AuditOutput = clock.Now, audit }), withCredentials(config.Credentials{
		Headers:        []config.CredentialHeader{{Name: "X-Api-Key", File: keyFile, Prefix: "Key "}},
		UserOAuthToken: &github,
	}))
	tr := &transcript{base: http.DefaultTransport}
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var accessTokens []string
	send := func(user, method, target, body string) int {
		t.Helper()
		req := newRequest(t, method, target, body)
		if user != "" {
			tok := e.token(t, clerktest.TokenRequest{Subject: user, Scopes: baseScopes, Format: clerktest.FormatJWT})
			accessTokens = append(accessTokens, tok)
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	// changeKey changes the key file and lets the second pass after which
	// the gateway looks at it again.
	changeKey := func(change func()) func() {
		return func() { change(); clock.Step(time.Second) }
	}
	health := func() {
		send("", http.MethodGet, e.health.URL+"/readyz", "")
		send("", http.MethodGet, e.health.URL+"/metrics", "")
	}
	steps := []struct {
		name   string
		before func()
		user   string
		method string
		query  string
		body   string
		status int
	}{
		{name: "alice calls", user: p.alice, method: http.MethodPost, body: toolCall("search"), status: http.StatusOK},
		{name: "alice opens a stream", user: p.alice, method: http.MethodGet, status: http.StatusOK},
		{name: "bob, not connected", user: p.bob, method: http.MethodPost, body: toolCall("search"), status: http.StatusOK},
		{name: "bob's stream", user: p.bob, method: http.MethodGet, status: http.StatusForbidden},
		{name: "no token", method: http.MethodPost, body: toolCall("search"), status: http.StatusUnauthorized},
		{name: "upstream drops", user: p.alice, method: http.MethodPost, query: "?mode=drop", body: toolCall("search"), status: http.StatusBadGateway},
		{name: "upstream fails", user: p.alice, method: http.MethodPost, query: "?mode=status&code=500", body: toolCall("search"), status: http.StatusInternalServerError},
		{name: "rotated", before: changeKey(func() { writeKeyFile(t, keyFile, apiKeyV2) }), user: p.alice, method: http.MethodPost, body: toolCall("search"), status: http.StatusOK},
		{name: "malformed key", before: changeKey(func() { writeKeyFile(t, keyFile, badKey+"\nX-Injected: 1") }), user: p.alice, method: http.MethodPost, body: toolCall("search"), status: http.StatusServiceUnavailable},
		{name: "missing key", before: changeKey(func() { _ = os.Remove(keyFile) }), user: p.alice, method: http.MethodPost, body: toolCall("search"), status: http.StatusServiceUnavailable},
		{name: "Clerk down", before: func() {
			writeKeyFile(t, keyFile, apiKeyV1)
			c.SetFault(tokenEndpoint, clerktest.Fault{Outage: true})
		}, user: p.carol, method: http.MethodPost, body: toolCall("search"), status: http.StatusServiceUnavailable},
		{name: "cached through the outage", user: p.alice, method: http.MethodPost, body: toolCall("search"), status: http.StatusOK},
		{name: "Clerk back", before: func() {
			c.SetFault(tokenEndpoint, clerktest.Fault{})
			clock.Step(time.Minute) // past the outage's back-off
		}, user: p.carol, method: http.MethodPost, body: toolCall("search"), status: http.StatusOK},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		if got := send(s.user, s.method, e.mcpURL()+s.query, s.body); got != s.status {
			t.Errorf("%s: status %d, want %d", s.name, got, s.status)
		}
		health()
	}
	// Every step but alice's stream has its audit record.
	waitFor(t, "the audit records", 5*time.Second, func() bool { return strings.Count(audit.String(), "\n") >= len(steps)-1 })
	said := map[string]string{"log": e.logs.String(), "responses": tr.String(), "audit": audit.String()}
	if !strings.Contains(said["log"], "Served request") || !strings.Contains(said["responses"], "mcpgate_gateway_user_token_lookups_total") {
		t.Fatal("the transcript is missing what it should hold")
	}
	secrets := append([]string{apiKeyV1, apiKeyV2, badKey, aliceGitHubToken, carolToken, c.SecretKey()}, accessTokens...)
	for where, text := range said {
		for _, s := range secrets {
			if i := strings.Index(text, s); i >= 0 {
				t.Errorf("the %s holds the secret %.8s…: %q", where, s, text[max(0, i-200):min(len(text), i+len(s)+40)])
			}
		}
	}
	// The upstream did get them, which proves the scan looked for values
	// that were in play.
	var upstream strings.Builder
	for _, r := range e.up.requests() {
		upstream.WriteString(strings.Join(r.Header.Values("X-Api-Key"), " ") + " " + r.Header.Get("Authorization") + "\n")
	}
	for _, s := range []string{apiKeyV1, apiKeyV2, aliceGitHubToken, carolToken} {
		if !strings.Contains(upstream.String(), s) {
			t.Errorf("the upstream never got %.8s…; the scan proves nothing for it", s)
		}
	}
}

// TestBrokerPathNeverLeaks is TestCredentialsNeverLeak for a gateway that
// asks the key broker: through opaque and JWT access tokens, a user token
// found and not connected, an unknown token, the broker down and refusing
// the gateway, nothing the gateway or the broker says (logs at debug level,
// audit records, responses, /readyz, /metrics) holds an access token, a provider token,
// the gateway's ServiceAccount token or the secret key.
func TestBrokerPathNeverLeaks(t *testing.T) {
	t.Parallel()
	c, p := newPeople(t)
	connect(t, c, p.alice, aliceGitHubToken)
	const carolToken = "gho_carol3b7e1d9f5a"
	connect(t, c, p.carol, carolToken)
	clock := newManualClock()
	audit := &syncbuf.Buffer{}
	e := newEnv(t, withClerk(c), withBroker(), withUserToken(t, github), withOptions(func(o *gateway.Options) { o.Now, o.AuditOutput = clock.Now, audit }))
	tr := &transcript{base: http.DefaultTransport}
	client := &http.Client{Transport: tr}
	var accessTokens []string
	mint := func(user, format string) string {
		tok := e.token(t, clerktest.TokenRequest{Subject: user, Scopes: baseScopes, Format: format})
		accessTokens = append(accessTokens, tok)
		return tok
	}
	send := func(token, target string) int {
		t.Helper()
		req := newRequest(t, http.MethodPost, target, toolCall("search"))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	unknown := "oat_" + strings.Repeat("7", 32)
	accessTokens = append(accessTokens, unknown)
	steps := []struct {
		name   string
		before func()
		token  string
		status int
	}{
		{name: "alice, opaque", token: mint(p.alice, clerktest.FormatOpaque), status: http.StatusOK},
		{name: "carol, JWT", token: mint(p.carol, clerktest.FormatJWT), status: http.StatusOK},
		{name: "bob, not connected", token: mint(p.bob, clerktest.FormatOpaque), status: http.StatusOK},
		{name: "unknown token", token: unknown, status: http.StatusUnauthorized},
		{name: "broker down", before: func() { e.broker.Stop(); clock.Step(time.Minute) }, token: mint(p.alice, clerktest.FormatOpaque), status: http.StatusServiceUnavailable},
		// Verified locally, then a lookup that fails: the gateway holds the
		// token for the broker when it logs the failure.
		{name: "broker down, JWT", token: mint(p.bob, clerktest.FormatJWT), status: http.StatusServiceUnavailable},
		{name: "broker back", before: func() { e.broker.Restart(); clock.Step(time.Minute) }, token: mint(p.carol, clerktest.FormatOpaque), status: http.StatusOK},
		{name: "broker refuses", before: func() { e.broker.Resolver.Set(e.broker.Caller, nil) }, token: mint(p.alice, clerktest.FormatOpaque), status: http.StatusServiceUnavailable},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		if got := send(s.token, e.mcpURL()); got != s.status {
			t.Errorf("%s: status %d, want %d", s.name, got, s.status)
		}
		send("", e.health.URL+"/readyz")
		req := newRequest(t, http.MethodGet, e.health.URL+"/metrics", "")
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
	}
	saToken, err := os.ReadFile(e.broker.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the audit records", 5*time.Second, func() bool { return strings.Count(audit.String(), "\n") >= len(steps) })
	said := map[string]string{"gateway log": e.logs.String(), "broker log": e.broker.Logs(), "responses": tr.String(), "audit": audit.String()}
	if !strings.Contains(said["gateway log"], "Served request") || !strings.Contains(said["responses"], "mcpgate_gateway_broker_calls_total") ||
		!strings.Contains(said["broker log"], "Refused broker request") {
		t.Fatal("the transcript is missing what it should hold")
	}
	secrets := append([]string{aliceGitHubToken, carolToken, c.SecretKey(), strings.TrimSpace(string(saToken))}, accessTokens...)
	for where, text := range said {
		for _, s := range secrets {
			if i := strings.Index(text, s); i >= 0 {
				t.Errorf("the %s holds the secret %.8s…: %q", where, s, text[max(0, i-200):min(len(text), i+len(s)+40)])
			}
		}
	}
	var upstream strings.Builder
	for _, r := range e.up.requests() {
		upstream.WriteString(r.Header.Get("Authorization") + "\n")
	}
	for _, s := range []string{aliceGitHubToken, carolToken} {
		if !strings.Contains(upstream.String(), s) {
			t.Errorf("the upstream never got %.8s…; the scan proves nothing for it", s)
		}
	}
}

package gateway_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/mcpgate/mcpgate/broker/brokertest"
	"github.com/mcpgate/mcpgate/clerk"
	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway"
	"github.com/mcpgate/mcpgate/gateway/config"
	"github.com/mcpgate/mcpgate/internal/syncbuf"
)

// sharedClerk is the emulator of tests that neither inject faults nor count
// calls; each such test gets its own gateway, upstream and key file.
var sharedClerk *clerktest.Server

func TestMain(m *testing.M) {
	sharedClerk = clerktest.NewServer()
	code := m.Run()
	sharedClerk.Close()
	os.Exit(code)
}

// Test configuration: every token needs profile and email; two tools need more.
var (
	baseScopes = []string{"profile", "email"}
	toolScopes = []config.ToolScope{
		{Tool: "delete_repo", Scopes: []string{"repo:admin"}},
		{Tool: "read_secrets", Scopes: []string{"secrets:read", "repo:admin"}},
	}
	// allScopes is a token that may do anything.
	allScopes = []string{"profile", "email", "repo:admin", "secrets:read"}
)

// forgerKey signs tokens with claims the emulator would never issue; the
// gateway's Clerk client adds it to the emulator's JWKS under forgerKid
// (see forgerJWKS).
var (
	forgerKey   = sync.OnceValue(func() *rsa.PrivateKey { return mustRSAKey() })
	strangerKey = sync.OnceValue(func() *rsa.PrivateKey { return mustRSAKey() })
)

const forgerKid = "ins_testforger"

func mustRSAKey() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}

// newManualClock is a settable clock, starting now.
func newManualClock() *clocktesting.FakeClock { return clocktesting.NewFakeClock(time.Now()) }

// gwEnv is one gateway between a recording upstream and an emulated Clerk.
type gwEnv struct {
	clerk    *clerktest.Server
	up       *recordingUpstream
	cfg      config.Config
	gw       *gateway.Gateway
	srv      *httptest.Server // the gateway's traffic handler
	health   *httptest.Server // its health handler
	keyFile  string           // empty with a broker
	broker   *brokertest.Broker
	logs     *syncbuf.Buffer
	metaPath string // the resource metadata path of cfg.Path
}

// envSettings are what envOptions change before the gateway is built.
type envSettings struct {
	clerk *clerktest.Server
	cfg   func(*config.Config)
	opts  gateway.Options
	// broker puts a key broker for the env's emulator between the gateway
	// and the Backend API; the gateway then has no secret key file.
	broker bool
}

type envOption func(*envSettings)

// withClerk uses an emulator of the test's own, for faults and call counts.
func withClerk(c *clerktest.Server) envOption { return func(s *envSettings) { s.clerk = c } }

func withConfig(f func(*config.Config)) envOption { return func(s *envSettings) { s.cfg = f } }

func withOptions(f func(*gateway.Options)) envOption { return func(s *envSettings) { f(&s.opts) } }

// withBroker serves a key broker for the env's emulator (gwEnv.broker) and
// configures the gateway to ask it instead of holding the secret key.
func withBroker() envOption { return func(s *envSettings) { s.broker = true } }

// newEnv starts an upstream and a gateway for one test.
func newEnv(t testing.TB, options ...envOption) *gwEnv {
	t.Helper()
	s := envSettings{clerk: sharedClerk}
	for _, o := range options {
		o(&s)
	}
	e := &gwEnv{clerk: s.clerk, up: newRecordingUpstream(t), logs: &syncbuf.Buffer{}}
	if s.broker {
		e.broker = brokertest.Start(t, s.clerk)
	} else {
		e.keyFile = filepath.Join(t.TempDir(), "secret-key")
		writeKeyFile(t, e.keyFile, s.clerk.SecretKey())
	}
	e.cfg = config.Config{
		APIVersion:   config.APIVersion,
		Kind:         config.Kind,
		Server:       config.ServerRef{Namespace: "team-a", Name: "tools"},
		Listen:       config.Listen{Traffic: "127.0.0.1:0", Health: "127.0.0.1:0"},
		Path:         "/mcp",
		ResourceName: "team-a/tools",
		Upstream:     config.Upstream{URL: e.up.srv.URL + "/upstream/mcp"},
		Scopes:       baseScopes,
		ToolScopes:   toolScopes,
		Clerk:        config.Clerk{Issuer: s.clerk.FrontendAPIURL(), APIURL: s.clerk.BackendAPIURL(), SecretKeyFile: e.keyFile},
	}
	if e.broker != nil {
		e.cfg.Broker = &config.Broker{URL: e.broker.URL, CAFile: e.broker.CAFile, TokenFile: e.broker.TokenFile}
	}
	if s.cfg != nil {
		s.cfg(&e.cfg)
	}
	e.metaPath = "/.well-known/oauth-protected-resource" + e.cfg.Path
	s.opts.ClerkHTTPClient = withForgerJWKS(s.opts.ClerkHTTPClient, s.clerk)
	if s.opts.Logger == nil {
		s.opts.Logger = slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	gw, err := gateway.New(e.cfg, s.opts)
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	e.gw = gw
	e.srv = httptest.NewServer(gw.Handler())
	e.health = httptest.NewServer(gw.HealthHandler())
	t.Cleanup(e.health.Close)
	t.Cleanup(e.srv.Close)
	return e
}

// writeKeyFile replaces path atomically, as the kubelet updates a Secret volume.
func writeKeyFile(t testing.TB, path, key string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// mcpURL is the gateway's MCP endpoint.
func (e *gwEnv) mcpURL() string { return e.srv.URL + e.cfg.Path }

// metadataURL is the resource metadata URL the gateway derives for its test server.
func (e *gwEnv) metadataURL() string { return e.srv.URL + e.metaPath }

// token mints an access token at the env's emulator.
func (e *gwEnv) token(t testing.TB, req clerktest.TokenRequest) string {
	t.Helper()
	tok, err := e.clerk.MintAccessToken(req)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// forgerJWKS is a Clerk client transport that hands the verifier the
// emulator's Frontend API key set with one change: it also holds forgerKey,
// so tests can sign claims the emulator never would (a wrong issuer, a
// future nbf) and the real verifier checks them. Every request still
// reaches the emulator, which counts it and applies its faults.
type forgerJWKS struct {
	base http.RoundTripper
	url  string // the emulator's key set: <issuer>/.well-known/jwks.json
}

func (t forgerJWKS) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || req.URL.String() != t.url || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	defer resp.Body.Close()
	var set struct {
		Keys []any `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		return nil, fmt.Errorf("forger jwks: %w", err)
	}
	pub := &forgerKey().PublicKey
	set.Keys = append(set.Keys, map[string]string{
		"kid": forgerKid, "alg": "RS256", "use": "sig", "kty": "RSA",
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	})
	body, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("forger jwks: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// withForgerJWKS returns a copy of hc (nil: Clerk's default client) whose
// key set fetches from c also hold forgerKey (see forgerJWKS).
func withForgerJWKS(hc *http.Client, c *clerktest.Server) *http.Client {
	if hc == nil {
		hc = clerk.NewHTTPClient()
	}
	wrapped := *hc
	base := wrapped.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	wrapped.Transport = forgerJWKS{base: base, url: c.FrontendAPIURL() + "/.well-known/jwks.json"}
	return &wrapped
}

// forge signs claims with forgerKey (or key, when given) under header.
// Missing standard claims are filled in as a valid access token has them.
func forge(t testing.TB, issuer string, header, claims map[string]any, key *rsa.PrivateKey) string {
	t.Helper()
	now := time.Now().Unix()
	h := map[string]any{"alg": "RS256", "kid": forgerKid, "typ": "at+jwt"}
	for k, v := range header {
		h[k] = v
	}
	c := map[string]any{
		"iss": issuer, "sub": clerktest.DefaultUserID, "client_id": "client_forged",
		"scope": strings.Join(allScopes, " "), "jti": "oat_forged", "iat": now, "nbf": now, "exp": now + 3600,
	}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	input := b64json(t, h) + "." + b64json(t, c)
	if key == nil {
		key = forgerKey()
	}
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func b64json(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// seenRequest is what the upstream received.
type seenRequest struct {
	Method, Path, RawQuery, Host string
	Header                       http.Header
	Body                         []byte
}

// recordingUpstream is an MCP server stand-in that records every request.
// The query parameter "mode" picks its answer (see serve).
type recordingUpstream struct {
	srv *httptest.Server

	mu   sync.Mutex
	seen []seenRequest

	// gate holds an "sse" stream after its first event until closed.
	gate chan struct{}
	// received is signalled (non-blocking) on every request.
	received chan struct{}
	// cancelled is signalled when a "hang" request's context ends.
	cancelled chan struct{}
}

func newRecordingUpstream(t testing.TB) *recordingUpstream {
	t.Helper()
	u := &recordingUpstream{
		gate:      make(chan struct{}),
		received:  make(chan struct{}, 16),
		cancelled: make(chan struct{}, 16),
	}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *recordingUpstream) requests() []seenRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seenRequest(nil), u.seen...)
}

// serve answers by mode:
//
//	json (default)  200 application/json, a JSON-RPC result, MCP headers set
//	status&code=N   status N, no body
//	sse             three events; the second waits for gate to close
//	slow&delay=D    waits D, then as json
//	hang            waits for the request's context to end
//	drop            the connection drops before any response
//	die             one event, then the connection drops
func (u *recordingUpstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.seen = append(u.seen, seenRequest{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Host: r.Host, Header: r.Header.Clone(), Body: body})
	u.mu.Unlock()
	select {
	case u.received <- struct{}{}:
	default:
	}
	q := r.URL.Query()
	h := w.Header()
	// Headers the gateway must pass back, and one it must drop.
	h.Set("Mcp-Session-Id", "sess-upstream-1")
	h.Set("Mcp-Protocol-Version", "2025-11-25")
	h.Set("Access-Control-Allow-Origin", "*")
	switch q.Get("mode") {
	case "status":
		code, _ := strconv.Atoi(q.Get("code"))
		w.WriteHeader(code)
	case "sse":
		h.Set("Content-Type", "text/event-stream")
		flusher := http.NewResponseController(w)
		fmt.Fprint(w, "id: 1\ndata: {\"n\":1}\n\n")
		_ = flusher.Flush()
		select {
		case <-u.gate:
		case <-r.Context().Done():
			return
		}
		for n := 2; n <= 3; n++ {
			time.Sleep(20 * time.Millisecond)
			fmt.Fprintf(w, "id: %d\ndata: {\"n\":%d}\n\n", n, n)
			_ = flusher.Flush()
		}
	case "slow":
		d, _ := time.ParseDuration(q.Get("delay"))
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
		writeResult(w)
	case "hang":
		<-r.Context().Done()
		u.cancelled <- struct{}{}
	case "drop":
		panic(http.ErrAbortHandler) // no response at all
	case "die":
		h.Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "id: 1\ndata: {\"n\":1}\n\n")
		_ = http.NewResponseController(w).Flush()
		time.Sleep(20 * time.Millisecond)
		panic(http.ErrAbortHandler) // the server drops the connection
	default:
		writeResult(w)
	}
}

const toolResult = `{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"ok"}]}}`

func writeResult(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, toolResult)
}

// toolCall is a JSON-RPC tools/call body.
func toolCall(name string) string {
	return `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + name + `","arguments":{}}}`
}

// do sends a request built by the test and returns the response with its body read.
func do(t testing.TB, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, string(body)
}

// newRequest builds a request or fails the test.
func newRequest(t testing.TB, method, target, body string) *http.Request {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, target, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json, text/event-stream")
	return req
}

// parseChallenge parses a WWW-Authenticate value with one challenge into its
// scheme and auth-params, unquoting quoted-strings. It fails the test on
// anything RFC 9110 11.6.1 does not allow, and on repeated parameters.
func parseChallenge(t testing.TB, v string) (string, map[string]string) {
	t.Helper()
	scheme, rest, _ := strings.Cut(v, " ")
	params := map[string]string{}
	for i := 0; i < len(rest); {
		for i < len(rest) && (rest[i] == ' ' || rest[i] == ',') {
			i++
		}
		if i == len(rest) {
			break
		}
		eq := strings.IndexByte(rest[i:], '=')
		if eq <= 0 {
			t.Fatalf("challenge %q: no parameter name at %d", v, i)
		}
		name := rest[i : i+eq]
		if strings.ContainsAny(name, " \t\",") {
			t.Fatalf("challenge %q: bad parameter name %q", v, name)
		}
		i += eq + 1
		var val strings.Builder
		if i < len(rest) && rest[i] == '"' {
			i++
			closed := false
			for i < len(rest) {
				c := rest[i]
				i++
				if c == '\\' && i < len(rest) {
					val.WriteByte(rest[i])
					i++
					continue
				}
				if c == '"' {
					closed = true
					break
				}
				val.WriteByte(c)
			}
			if !closed {
				t.Fatalf("challenge %q: unterminated quoted-string", v)
			}
		} else {
			for i < len(rest) && rest[i] != ',' && rest[i] != ' ' {
				val.WriteByte(rest[i])
				i++
			}
		}
		if _, dup := params[name]; dup {
			t.Fatalf("challenge %q: parameter %q repeated", v, name)
		}
		params[name] = val.String()
	}
	return scheme, params
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

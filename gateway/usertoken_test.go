package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway"
	"github.com/mcpgate/mcpgate/gateway/config"
)

// tokenEndpoint is the Backend API endpoint of users' provider tokens, as
// the emulator counts it.
const tokenEndpoint = "GET /v1/users/{user_id}/oauth_access_tokens/{provider}"

// Users' GitHub tokens in the user token tests; secretScan looks for them.
const (
	aliceGitHubToken = "gho_alice0f3c9d2e7b5a41"
	bobGitHubToken   = "gho_bob8e4d1c6a2f9b07"
)

// connectURL is where the tests send a user to connect GitHub.
const connectURL = "https://accounts.example.com/user?connect=github"

// withUserToken configures a service key from a file and the caller's
// GitHub token, the combination a stock GitHub MCP server behind a
// metering proxy would need.
func withUserToken(t testing.TB, u config.UserOAuthToken) envOption {
	t.Helper()
	return withCredentials(config.Credentials{
		Headers:        []config.CredentialHeader{{Name: "X-Api-Key", File: credentialFile(t, t.TempDir(), "api-key", apiKeyV1)}},
		UserOAuthToken: &u,
	})
}

// github is the user token configuration of most tests.
var github = config.UserOAuthToken{Provider: "oauth_github", Header: "Authorization", Prefix: "Bearer ", ConnectURL: connectURL}

// connect gives user a GitHub token at the emulator, valid for an hour.
func connect(t testing.TB, c *clerktest.Server, user, token string) {
	t.Helper()
	if err := c.SetOAuthToken(user, "oauth_github", clerktest.OAuthToken{Token: token, Scopes: []string{"repo"}, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
}

// rpcErrData is a JSON-RPC error response with the data of -32042.
type rpcErrData struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Error   struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    *struct {
			Elicitations []map[string]any `json:"elicitations"`
		} `json:"data"`
	} `json:"error"`
}

// checkElicitation checks a -32042 answer: status, id, and one URL-mode
// elicitation to connectURL with an ID and a message, as MCP defines it.
func checkElicitation(t testing.TB, resp *http.Response, body string, status int, id string) {
	t.Helper()
	if resp.StatusCode != status || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, Content-Type %q, body %q; want %d application/json", resp.StatusCode, resp.Header.Get("Content-Type"), body, status)
	}
	var e rpcErrData
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	if e.JSONRPC != "2.0" || string(e.ID) != id || e.Error.Code != -32042 || !strings.Contains(e.Error.Message, "GitHub") {
		t.Fatalf("answer %s, want -32042 for id %s naming GitHub", body, id)
	}
	if e.Error.Data == nil || len(e.Error.Data.Elicitations) != 1 {
		t.Fatalf("answer %s, want one elicitation in error.data", body)
	}
	el := e.Error.Data.Elicitations[0]
	if el["mode"] != "url" || el["url"] != connectURL || el["elicitationId"] == "" || el["elicitationId"] == nil || !strings.Contains(el["message"].(string), "GitHub") {
		t.Errorf("elicitation %v, want mode url, url %s, an elicitationId and a message naming GitHub", el, connectURL)
	}
	if len(el) != 4 {
		t.Errorf("elicitation %v has members MCP does not define", el)
	}
}

// TestUserToken checks the caller's own token: set for the user who has
// connected the provider (and only theirs), asked of Clerk once per token,
// and an actionable -32042 for a user who has not, on every kind of
// request, before anything reaches the upstream.
func TestUserToken(t *testing.T) {
	t.Parallel()
	c, p := newPeople(t)
	connect(t, c, p.alice, aliceGitHubToken)
	connect(t, c, p.carol, "gho_carol")
	clock := newManualClock()
	e := newEnv(t, withClerk(c), withUserToken(t, github), withOptions(func(o *gateway.Options) { o.Now = clock.Now }))

	for i := range 2 {
		resp, body := callAs(t, e, p.alice, toolCall("search"))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("alice, request %d: status %d %q", i, resp.StatusCode, body)
		}
	}
	resp, body := callAs(t, e, p.carol, toolCall("search"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("carol: status %d %q", resp.StatusCode, body)
	}
	seen := e.up.requests()
	for i, want := range []string{aliceGitHubToken, aliceGitHubToken, "gho_carol"} {
		h := seen[i].Header
		if v := h.Values("Authorization"); len(v) != 1 || v[0] != "Bearer "+want {
			t.Errorf("request %d: Authorization %q, want the caller's own token", i, v)
		}
		if h.Get("X-Api-Key") != apiKeyV1 {
			t.Errorf("request %d: X-Api-Key %q, want the service key", i, h.Get("X-Api-Key"))
		}
	}
	if n := c.Calls(tokenEndpoint); n != 2 {
		t.Errorf("%d token lookups for alice twice and carol once, want 2", n)
	}

	// bob has not connected GitHub.
	resp, body = callAs(t, e, p.bob, `{"jsonrpc":"2.0","id":"init-1","method":"initialize","params":{}}`)
	checkElicitation(t, resp, body, http.StatusOK, `"init-1"`)
	resp, body = callAs(t, e, p.bob, toolCall("search"))
	checkElicitation(t, resp, body, http.StatusOK, "1")
	resp, body = callAs(t, e, p.bob, "") // a GET stream
	checkElicitation(t, resp, body, http.StatusForbidden, "null")
	resp, body = callAs(t, e, p.bob, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	checkElicitation(t, resp, body, http.StatusForbidden, "null")
	if n := len(e.up.requests()); n != 3 {
		t.Errorf("upstream got %d requests, want only the 3 with a token", n)
	}

	// bob connects: "not connected" is cached briefly, then asked again.
	connect(t, c, p.bob, bobGitHubToken)
	clock.Step(time.Minute)
	if resp, body := callAs(t, e, p.bob, toolCall("search")); resp.StatusCode != http.StatusOK || len(e.up.requests()) != 4 {
		t.Fatalf("bob connected: status %d %q, upstream got %d requests, want 4", resp.StatusCode, body, len(e.up.requests()))
	}
	if got := e.up.requests()[3].Header.Get("Authorization"); got != "Bearer "+bobGitHubToken {
		t.Errorf("bob connected: Authorization %q, want bob's token", got)
	}

	_, metrics := do(t, newRequest(t, http.MethodGet, e.health.URL+"/metrics", ""))
	for _, want := range []string{
		`mcpgate_gateway_user_token_lookups_total{result="found"} 4`,
		`mcpgate_gateway_user_token_lookups_total{result="unavailable"} 0`,
		`mcpgate_gateway_auth_total{outcome="denied",reason="not_connected"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestUserTokenNoConnectURL checks the answer when the gateway knows no
// page to send the user to: a JSON-RPC error naming the provider, since a
// -32042 needs a URL.
func TestUserTokenNoConnectURL(t *testing.T) {
	t.Parallel()
	c, p := newPeople(t)
	u := github
	u.ConnectURL = ""
	e := newEnv(t, withClerk(c), withUserToken(t, u))
	resp, body := callAs(t, e, p.bob, toolCall("search"))
	errs := checkRPCRefusalStatus(t, resp, body, http.StatusOK, -32005, "1")
	if msg := errs.Error.Message; !strings.Contains(msg, "GitHub") || !strings.Contains(msg, "oauth_github") {
		t.Errorf("message %q does not say which provider to connect", msg)
	}
	if len(e.up.requests()) != 0 {
		t.Error("a request without the user's token reached the upstream")
	}
}

// checkRPCRefusalStatus checks one JSON-RPC error answer.
func checkRPCRefusalStatus(t testing.TB, resp *http.Response, body string, status, code int, id string) rpcErrData {
	t.Helper()
	var e rpcErrData
	if resp.StatusCode != status {
		t.Fatalf("status %d %q, want %d", resp.StatusCode, body, status)
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	if e.Error.Code != code || string(e.ID) != id || e.Error.Data != nil {
		t.Fatalf("answer %s, want code %d for id %s without data", body, code, id)
	}
	return e
}

// TestUserTokenCollapse sends many first requests of a user at once: Clerk
// is asked once.
func TestUserTokenCollapse(t *testing.T) {
	t.Parallel()
	c, p := newPeople(t)
	connect(t, c, p.alice, aliceGitHubToken)
	c.SetFault(tokenEndpoint, clerktest.Fault{Latency: 100 * time.Millisecond})
	e := newEnv(t, withClerk(c), withUserToken(t, github))
	token := e.token(t, clerktest.TokenRequest{Subject: p.alice, Scopes: baseScopes, Format: clerktest.FormatJWT})
	const n = 100
	callAtOnce(t, e, token, n)
	if got := c.Calls(tokenEndpoint); got != 1 {
		t.Errorf("%d token lookups for %d concurrent requests, want 1", got, n)
	}
}

// TestUserTokenOutage checks that Clerk being unavailable is a 503 with
// Retry-After, never a request without the token.
func TestUserTokenOutage(t *testing.T) {
	t.Parallel()
	c, p := newPeople(t)
	connect(t, c, p.alice, aliceGitHubToken)
	c.SetFault(tokenEndpoint, clerktest.Fault{Outage: true})
	e := newEnv(t, withClerk(c), withUserToken(t, github))
	resp, body := callAs(t, e, p.alice, toolCall("search"))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d (Retry-After %q) %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if len(e.up.requests()) != 0 {
		t.Error("a request without the user's token reached the upstream")
	}
	_, metrics := do(t, newRequest(t, http.MethodGet, e.health.URL+"/metrics", ""))
	if want := `mcpgate_gateway_user_token_lookups_total{result="unavailable"} 1`; !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %q", want)
	}
}

// TestUserTokenGoSDK connects the MCP Go SDK's client as a user without
// the connection: it surfaces the gateway's answer as a JSON-RPC error
// with CodeURLElicitationRequired and the elicitation in its data.
func TestUserTokenGoSDK(t *testing.T) {
	t.Parallel()
	c, p := newPeople(t)
	e := newEnv(t, withClerk(c), withUserToken(t, github))
	token := e.token(t, clerktest.TokenRequest{Subject: p.bob, Scopes: baseScopes, Format: clerktest.FormatJWT})
	transport := &mcp.StreamableClientTransport{Endpoint: e.mcpURL(), HTTPClient: &http.Client{
		Transport: e2eRoundTripFunc(func(r *http.Request) (*http.Response, error) {
			r = r.Clone(r.Context())
			r.Header.Set("Authorization", "Bearer "+token)
			return http.DefaultTransport.RoundTrip(r)
		}),
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "usertoken-test", Version: "1"}, nil)
	cs, err := client.Connect(ctx, transport, nil)
	if err == nil {
		_ = cs.Close()
		t.Fatal("Connect succeeded for a user without the connection")
	}
	var rpcErr *jsonrpc.Error
	if !errors.As(err, &rpcErr) || rpcErr.Code != mcp.CodeURLElicitationRequired {
		t.Fatalf("Connect error %v (%T), want a JSON-RPC error with code %d", err, err, mcp.CodeURLElicitationRequired)
	}
	var data struct {
		Elicitations []mcp.ElicitParams `json:"elicitations"`
	}
	if err := json.Unmarshal(rpcErr.Data, &data); err != nil || len(data.Elicitations) != 1 ||
		data.Elicitations[0].Mode != "url" || data.Elicitations[0].URL != connectURL || data.Elicitations[0].ElicitationID == "" {
		t.Errorf("error data %s, want one URL elicitation to %s", rpcErr.Data, connectURL)
	}
}

package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway"
	"github.com/mcpgate/mcpgate/gateway/config"
	"github.com/mcpgate/mcpgate/gateway/identity"
)

// Backend API endpoints the access rules read, as the emulator counts them.
const (
	userEndpoint        = "GET /v1/users/{user_id}"
	membershipsEndpoint = "GET /v1/users/{user_id}/organization_memberships"
)

// people are the users of an emulator set up for access tests.
type people struct {
	// alice is an admin of acme, with a verified address at acme.com.
	alice string
	// bob is a member of acme, with a verified address at Example.COM.
	bob string
	// carol is in no organization; her example.org address is verified,
	// her acme.com one is not.
	carol string
	// acmeID is acme's organization ID.
	acmeID string
}

// newPeople starts an emulator of the test's own (for call counts and
// faults) holding the people.
func newPeople(t testing.TB, opts ...clerktest.Option) (*clerktest.Server, people) {
	t.Helper()
	c := clerktest.NewServer(opts...)
	t.Cleanup(c.Close)
	mustUser := func(p clerktest.UserParams) string {
		u, err := c.CreateUser(p)
		if err != nil {
			t.Fatal(err)
		}
		return u.ID
	}
	var p people
	p.alice = mustUser(clerktest.UserParams{Emails: []string{"alice@acme.com"}})
	p.bob = mustUser(clerktest.UserParams{Emails: []string{"bob@Example.COM"}})
	p.carol = mustUser(clerktest.UserParams{Emails: []string{"carol@example.org"}, UnverifiedEmails: []string{"carol@acme.com"}})
	var err error
	if p.acmeID, err = c.CreateOrganization("Acme", "acme", p.alice); err != nil {
		t.Fatal(err)
	}
	if err := c.SetMembership("acme", p.bob, clerktest.RoleMember); err != nil {
		t.Fatal(err)
	}
	return c, p
}

// withAccess configures access rules with a cache TTL of a minute.
func withAccess(a config.Access) envOption {
	return withConfig(func(c *config.Config) {
		if a.CacheTTLSeconds == 0 {
			a.CacheTTLSeconds = 60
		}
		c.Access = &a
	})
}

// callAs sends body (GET when empty) to the gateway as user, with the
// base scopes, and returns the response and its body.
func callAs(t testing.TB, e *gwEnv, user, body string) (*http.Response, string) {
	t.Helper()
	method := http.MethodPost
	if body == "" {
		method = http.MethodGet
	}
	req := newRequest(t, method, e.mcpURL(), body)
	req.Header.Set("Authorization", "Bearer "+e.token(t, clerktest.TokenRequest{Subject: user, Scopes: baseScopes, Format: clerktest.FormatJWT}))
	return do(t, req)
}

// rpcErr is a JSON-RPC error response.
type rpcErr struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Error   struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// checkRPCRefusal checks a refusal the gateway answered itself: status, a
// JSON-RPC error body with code and id (or, for a batch, one per id), no
// challenge, and whose message does not reveal secrets.
func checkRPCRefusal(t testing.TB, resp *http.Response, body string, status, code int, ids []string, hidden ...string) []rpcErr {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d %q, want %d", resp.StatusCode, body, status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if v := resp.Header.Values("WWW-Authenticate"); len(v) != 0 {
		t.Errorf("WWW-Authenticate %q on a refusal no token can change", v)
	}
	errs := decodeRPCErrors(t, body)
	if len(errs) != len(ids) {
		t.Fatalf("body %q: %d responses, want %d", body, len(errs), len(ids))
	}
	for i, e := range errs {
		if e.JSONRPC != "2.0" || e.Error.Code != code || string(e.ID) != ids[i] || e.Error.Message == "" {
			t.Errorf("response %d = %+v, want code %d, id %s", i, e, code, ids[i])
		}
		for _, h := range hidden {
			if strings.Contains(e.Error.Message, h) {
				t.Errorf("message %q reveals %q", e.Error.Message, h)
			}
		}
	}
	return errs
}

// decodeRPCErrors reads a JSON-RPC error body: one response, or a batch.
func decodeRPCErrors(t testing.TB, body string) []rpcErr {
	t.Helper()
	if strings.HasPrefix(body, "[") {
		var errs []rpcErr
		if err := json.Unmarshal([]byte(body), &errs); err != nil {
			t.Fatalf("body %q: %v", body, err)
		}
		return errs
	}
	var one rpcErr
	if err := json.Unmarshal([]byte(body), &one); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	return []rpcErr{one}
}

// TestAccessRules checks decisions end to end: the gateway asks the
// emulated Clerk and lets through, or refuses with a JSON-RPC error that
// names no rule, before anything reaches the upstream.
func TestAccessRules(t *testing.T) {
	t.Parallel()
	c, p := newPeople(t)
	adminOnlyDeploy := config.Access{
		Allow:      []config.AccessRule{{Organization: "acme"}},
		ToolAccess: []config.ToolAccess{{Tool: "deploy", Allow: []config.AccessRule{{Organization: p.acmeID, Roles: []string{clerktest.RoleAdmin}}}}},
	}
	tests := []struct {
		name   string
		access config.Access
		// user calls with body (GET when empty).
		user func(people) string
		body string
		// refusedIDs are the ids of the expected 403's responses; nil: 200.
		refusedIDs []string
		// tool is in the refusal's message.
		tool string
	}{
		{name: "member", access: adminOnlyDeploy, user: alice, body: toolCall("search")},
		{name: "member by organization ID", access: config.Access{Allow: []config.AccessRule{{Organization: p.acmeID}}}, user: bob, body: toolCall("search")},
		{name: "non-member, initialize", access: adminOnlyDeploy, user: carol, body: `{"jsonrpc":"2.0","id":"init-1","method":"initialize","params":{}}`, refusedIDs: []string{`"init-1"`}},
		{name: "non-member, GET stream", access: adminOnlyDeploy, user: carol, refusedIDs: []string{"null"}},
		{name: "non-member, notification", access: adminOnlyDeploy, user: carol, body: `{"jsonrpc":"2.0","method":"notifications/initialized"}`, refusedIDs: []string{"null"}},
		{name: "non-member, batch", access: adminOnlyDeploy, user: carol, body: `[{"jsonrpc":"2.0","id":7,"method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/progress"},` + toolCall("search") + `]`, refusedIDs: []string{"7", "1"}},
		{name: "admin-only tool, admin", access: adminOnlyDeploy, user: alice, body: toolCall("deploy")},
		{name: "admin-only tool, member", access: adminOnlyDeploy, user: bob, body: toolCall("deploy"), refusedIDs: []string{"1"}, tool: "deploy"},
		{name: "admin-only tool inside a batch", access: adminOnlyDeploy, user: bob, body: `[` + toolCall("search") + `,{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"deploy"}}]`, refusedIDs: []string{"1", "2"}, tool: "deploy"},
		{name: "member, other tool", access: adminOnlyDeploy, user: bob, body: toolCall("search")},
		{name: "role required, member", access: config.Access{Allow: []config.AccessRule{{Organization: "acme", Roles: []string{clerktest.RoleAdmin}}}}, user: bob, body: toolCall("search"), refusedIDs: []string{"1"}},
		{name: "permission held", access: config.Access{Allow: []config.AccessRule{{Organization: "acme", Permissions: []string{"org:sys_memberships:read"}}}}, user: bob, body: toolCall("search")},
		{name: "permission not held", access: config.Access{Allow: []config.AccessRule{{Organization: "acme", Permissions: []string{"org:sys_memberships:manage"}}}}, user: bob, body: toolCall("search"), refusedIDs: []string{"1"}},
		{name: "email domain, case-insensitive", access: config.Access{Allow: []config.AccessRule{{EmailDomain: "example.com"}}}, user: bob, body: toolCall("search")},
		{name: "email domain, other domain", access: config.Access{Allow: []config.AccessRule{{EmailDomain: "example.com"}}}, user: alice, body: toolCall("search"), refusedIDs: []string{"1"}},
		{name: "email domain, unverified address", access: config.Access{Allow: []config.AccessRule{{EmailDomain: "acme.com"}}}, user: carol, body: toolCall("search"), refusedIDs: []string{"1"}},
		{name: "user", access: config.Access{Allow: []config.AccessRule{{User: p.carol}}}, user: carol, body: toolCall("search")},
		{name: "other user", access: config.Access{Allow: []config.AccessRule{{User: p.carol}}}, user: bob, body: toolCall("search"), refusedIDs: []string{"1"}},
		{name: "tool rule only, anyone else may use the server", access: config.Access{ToolAccess: []config.ToolAccess{{Tool: "deploy", Allow: []config.AccessRule{{User: p.alice}}}}}, user: carol, body: toolCall("search")},
		{name: "tool rule only, tool refused", access: config.Access{ToolAccess: []config.ToolAccess{{Tool: "deploy", Allow: []config.AccessRule{{User: p.alice}}}}}, user: carol, body: toolCall("deploy"), refusedIDs: []string{"1"}, tool: "deploy"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, withClerk(c), withAccess(tc.access))
			resp, body := callAs(t, e, tc.user(p), tc.body)
			if tc.refusedIDs == nil {
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d %q, want 200", resp.StatusCode, body)
				}
				if n := len(e.up.requests()); n != 1 {
					t.Errorf("upstream got %d requests, want 1", n)
				}
				return
			}
			errs := checkRPCRefusal(t, resp, body, http.StatusForbidden, -32003, tc.refusedIDs, "acme", p.acmeID, "example", p.alice, p.carol)
			if tc.tool != "" && !strings.Contains(errs[0].Error.Message, `"`+tc.tool+`"`) {
				t.Errorf("message %q does not name the tool %q", errs[0].Error.Message, tc.tool)
			}
			if n := len(e.up.requests()); n != 0 {
				t.Errorf("upstream got %d refused requests", n)
			}
		})
	}
}

func alice(p people) string { return p.alice }
func bob(p people) string   { return p.bob }
func carol(p people) string { return p.carol }

// TestAccessLookups checks that the gateway asks Clerk only what its rules
// need, once per user and TTL.
func TestAccessLookups(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		access func(people) *config.Access
		// users and memberships are the Backend API calls expected for
		// two requests of one user.
		users, memberships int
	}{
		{name: "no access block", access: func(people) *config.Access { return nil }},
		{name: "no rules", access: func(people) *config.Access { return &config.Access{CacheTTLSeconds: 60} }},
		{name: "user rules", access: func(p people) *config.Access {
			return &config.Access{Allow: []config.AccessRule{{User: p.bob}}, CacheTTLSeconds: 60}
		}},
		{name: "email rules", users: 1, access: func(people) *config.Access {
			return &config.Access{Allow: []config.AccessRule{{EmailDomain: "example.com"}}, CacheTTLSeconds: 60}
		}},
		{name: "organization rules", memberships: 1, access: func(people) *config.Access {
			return &config.Access{Allow: []config.AccessRule{{Organization: "acme"}}, CacheTTLSeconds: 60}
		}},
		{name: "organization in a tool rule, email for the server", users: 1, memberships: 1, access: func(people) *config.Access {
			return &config.Access{
				Allow:           []config.AccessRule{{EmailDomain: "example.com"}},
				ToolAccess:      []config.ToolAccess{{Tool: "deploy", Allow: []config.AccessRule{{Organization: "acme"}}}},
				CacheTTLSeconds: 60,
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, p := newPeople(t)
			e := newEnv(t, withClerk(c), withConfig(func(cfg *config.Config) { cfg.Access = tc.access(p) }))
			for i := range 2 {
				if resp, body := callAs(t, e, p.bob, toolCall("search")); resp.StatusCode != http.StatusOK {
					t.Fatalf("request %d: status %d %q", i, resp.StatusCode, body)
				}
			}
			if n := c.Calls(userEndpoint); n != tc.users {
				t.Errorf("%d user lookups, want %d", n, tc.users)
			}
			if n := c.Calls(membershipsEndpoint); n != tc.memberships {
				t.Errorf("%d membership listings, want %d", n, tc.memberships)
			}
		})
	}
}

// TestAccessLookupsCollapse sends many first requests of a new user at once:
// Clerk is asked once per endpoint.
func TestAccessLookupsCollapse(t *testing.T) {
	t.Parallel()
	c, p := newPeople(t)
	c.SetFault(userEndpoint, clerktest.Fault{Latency: 100 * time.Millisecond})
	c.SetFault(membershipsEndpoint, clerktest.Fault{Latency: 100 * time.Millisecond})
	e := newEnv(t, withClerk(c), withAccess(config.Access{
		Allow:      []config.AccessRule{{EmailDomain: "acme.com"}},
		ToolAccess: []config.ToolAccess{{Tool: "search", Allow: []config.AccessRule{{Organization: "acme"}}}},
	}))
	token := e.token(t, clerktest.TokenRequest{Subject: p.alice, Scopes: baseScopes, Format: clerktest.FormatJWT})
	const n = 300
	callAtOnce(t, e, token, n)
	if u, m := c.Calls(userEndpoint), c.Calls(membershipsEndpoint); u != 1 || m != 1 {
		t.Errorf("%d user lookups and %d membership listings for %d concurrent requests, want 1 and 1", u, m, n)
	}
}

// TestAccessOverTime follows one gateway through changes in Clerk: a
// membership removed counts after the TTL, a deleted user is refused (and
// not asked about again within the TTL), an outage is covered by cached
// answers until they expire and is a 503 with Retry-After afterwards, and
// a 429's Retry-After reaches the client.
func TestAccessOverTime(t *testing.T) {
	t.Parallel()
	c, p := newPeople(t)
	clock := newManualClock()
	const ttl = time.Minute
	e := newEnv(t, withClerk(c), withOptions(func(o *gateway.Options) { o.Now = clock.Now }), withAccess(config.Access{
		Allow:           []config.AccessRule{{Organization: "acme"}},
		CacheTTLSeconds: int(ttl / time.Second),
	}))
	expect := func(step, user string, status int) *http.Response {
		t.Helper()
		resp, body := callAs(t, e, user, toolCall("search"))
		if resp.StatusCode != status {
			t.Fatalf("%s: status %d %q, want %d", step, resp.StatusCode, body, status)
		}
		return resp
	}
	expect("bob, a member", p.bob, http.StatusOK)
	expect("alice, a member", p.alice, http.StatusOK)
	if err := c.RemoveMembership("acme", p.bob); err != nil {
		t.Fatal(err)
	}
	expect("bob removed, within the TTL", p.bob, http.StatusOK)
	clock.Step(ttl + time.Second)
	expect("bob removed, after the TTL", p.bob, http.StatusForbidden)

	if err := c.DeleteUser(p.alice); err != nil {
		t.Fatal(err)
	}
	clock.Step(ttl + time.Second)
	expect("alice deleted", p.alice, http.StatusForbidden)
	before := c.Calls(clerktest.AllEndpoints)
	expect("alice deleted, again", p.alice, http.StatusForbidden)
	if n := c.Calls(clerktest.AllEndpoints) - before; n != 0 {
		t.Errorf("a deleted user cost %d more calls within the TTL", n)
	}

	if err := c.SetMembership("acme", p.bob, clerktest.RoleMember); err != nil {
		t.Fatal(err)
	}
	clock.Step(ttl + time.Second)
	expect("bob back", p.bob, http.StatusOK)
	c.SetFault(membershipsEndpoint, clerktest.Fault{Outage: true})
	expect("outage, within the TTL", p.bob, http.StatusOK)
	clock.Step(ttl + time.Second)
	resp := expect("outage, after the TTL", p.bob, http.StatusServiceUnavailable)
	if resp.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}

	c.SetFault(membershipsEndpoint, clerktest.Fault{Status: http.StatusTooManyRequests, RetryAfter: 7 * time.Second})
	clock.Step(time.Minute) // past the outage's back-off
	resp = expect("rate limited", p.bob, http.StatusServiceUnavailable)
	if got := resp.Header.Get("Retry-After"); got != "7" {
		t.Errorf("Retry-After %q after a 429 with 7, want 7", got)
	}
	if len(e.up.requests()) != 5 {
		t.Errorf("upstream got %d requests, want the 5 allowed", len(e.up.requests()))
	}
	_, metrics := do(t, newRequest(t, http.MethodGet, e.health.URL+"/metrics", ""))
	for _, want := range []string{
		`mcpgate_gateway_auth_total{outcome="denied",reason="access_denied"} 3`,
		`mcpgate_gateway_auth_total{outcome="error",reason="clerk_unavailable"} 2`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestAccessIdentityHeaders checks what the upstream learns about a caller
// the gateway looked up, and that clients cannot say it themselves.
func TestAccessIdentityHeaders(t *testing.T) {
	t.Parallel()
	c, p := newPeople(t)
	betaID, err := c.CreateOrganization("Beta", "beta", p.alice)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, withClerk(c), withAccess(config.Access{
		Allow: []config.AccessRule{{EmailDomain: "acme.com"}, {Organization: "acme"}},
	}))
	req := newRequest(t, http.MethodPost, e.mcpURL(), toolCall("search"))
	req.Header.Set("Authorization", "Bearer "+e.token(t, clerktest.TokenRequest{Subject: p.alice, Scopes: baseScopes}))
	for k, v := range map[string]string{
		"X_Mcpgate_User_Email":    "ceo@acme.com",
		"x-mcpgate-organizations": "org_evil:evil:org:admin",
		"X-MCPGATE-ORGANIZATIONS": "org_evil2:evil:org:admin",
	} {
		req.Header[k] = []string{v}
	}
	if resp, body := do(t, req); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d %q", resp.StatusCode, body)
	}
	got := e.up.requests()[0].Header
	if v := got.Values(identity.EmailHeader); len(v) != 1 || v[0] != "alice@acme.com" {
		t.Errorf("%s = %q, want alice@acme.com", identity.EmailHeader, v)
	}
	orgs := got.Values(identity.OrganizationsHeader)
	if len(orgs) != 1 {
		t.Fatalf("%s = %q, want one value", identity.OrganizationsHeader, orgs)
	}
	entries := strings.Split(orgs[0], ",")
	slices.Sort(entries)
	want := []string{p.acmeID + ":acme:org:admin", betaID + ":beta:org:admin"}
	slices.Sort(want)
	if !slices.Equal(entries, want) {
		t.Errorf("%s = %q, want the entries %q", identity.OrganizationsHeader, orgs[0], want)
	}
	for name := range got {
		folded := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
		if strings.HasPrefix(folded, "x-mcpgate-") && name != http.CanonicalHeaderKey(folded) {
			t.Errorf("upstream received the client's %s", name)
		}
	}
	if strings.Contains(fmt.Sprint(got), "evil") || strings.Contains(fmt.Sprint(got), "ceo@") {
		t.Errorf("a client-sent identity value reached the upstream: %v", got)
	}
}

// callAtOnce sends n tools/call requests of one token to e at once, each on
// a connection of its own, and requires every one to succeed.
func callAtOnce(t *testing.T, e *gwEnv, token string, n int) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	t.Cleanup(client.CloseIdleConnections)
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		wg.Go(func() {
			req := newRequest(t, http.MethodPost, e.mcpURL(), toolCall("search"))
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			_ = resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusOK {
			t.Fatalf("request %d: status %d", i, s)
		}
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway/config"
)

// The access mode's setting: an organization every bench user belongs to as
// a plain member, and the Backend API lookups its rules cost.
const (
	benchOrg            = "bench"
	memberRole          = "org:member"
	adminRole           = "org:admin"
	membershipsEndpoint = "GET /v1/users/{user_id}/organization_memberships"
	userEndpoint        = "GET /v1/users/{user_id}"
	// adminToolEvery: every adminToolEvery-th tool of pathToolsList's list
	// is for admins, so a member's tools/list through the access gateway
	// loses listedTools/adminToolEvery of them.
	adminToolEvery = 4
)

// benchAccess is the access gateways' rules: members of the bench
// organization may use the server and call echo (so every tools/call is
// judged against a tool rule, as the plain gateway judges it against
// toolScopes); delete_repo and a quarter of the listed tools are for its
// admins only.
func benchAccess() *config.Access {
	members := []config.AccessRule{{Organization: benchOrg}}
	admins := []config.AccessRule{{Organization: benchOrg, Roles: []string{adminRole}}}
	a := &config.Access{
		Allow:           members,
		CacheTTLSeconds: 60,
		ToolAccess: []config.ToolAccess{
			{Tool: "echo", Allow: members},
			{Tool: "delete_repo", Allow: admins},
		},
	}
	for i := 0; i < listedTools; i += adminToolEvery {
		a.ToolAccess = append(a.ToolAccess, config.ToolAccess{Tool: toolName(i), Allow: admins})
	}
	return a
}

// hiddenTools is how many of pathToolsList's tools a member does not see.
func hiddenTools() int { return (listedTools + adminToolEvery - 1) / adminToolEvery }

// createOrganization adds the bench organization to the emulator.
func (b *bench) createOrganization() error {
	if _, err := b.clerk.CreateOrganization("Bench", benchOrg, ""); err != nil {
		return fmt.Errorf("create organization %q: %w", benchOrg, err)
	}
	return nil
}

// newMembers creates n users, makes each a member of the bench
// organization and returns a JWT access token of each. The gateway has seen
// none of them, so each one's first request must look up its memberships.
func (b *bench) newMembers(n int) ([]string, error) {
	tokens := make([]string, n)
	for i := range tokens {
		tok, err := b.newUserToken(true)
		if err != nil {
			return nil, err
		}
		tokens[i] = tok
	}
	return tokens, nil
}

// newUserToken creates a user, a member of the bench organization or not,
// and mints a JWT access token for it.
func (b *bench) newUserToken(member bool) (string, error) {
	u, err := b.clerk.CreateUser(clerktest.UserParams{})
	if err != nil {
		return "", fmt.Errorf("create user: %w", err)
	}
	if member {
		if err := b.clerk.SetMembership(benchOrg, u.ID, memberRole); err != nil {
			return "", fmt.Errorf("add member: %w", err)
		}
	}
	tok, err := b.clerk.MintAccessToken(clerktest.TokenRequest{
		Subject: u.ID, Scopes: []string{"profile"}, TTL: time.Hour, Format: clerktest.FormatJWT,
	})
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	return tok, nil
}

// startAccessGateway starts a gateway with benchAccess's rules and checks
// that it enforces them: a gateway that admitted everyone would measure
// nothing.
func (b *bench) startAccessGateway(ctx context.Context, name, upstreamURL string) (*process, error) {
	p, err := b.startGateway(ctx, name, upstreamURL, func(_ string, c *config.Config) error {
		c.Access = benchAccess()
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := b.mustRefuseNewUser(ctx, p, fmt.Sprintf("admitted a user outside organization %q", benchOrg)); err != nil {
		return nil, err
	}
	return p, nil
}

// mustRefuseNewUser calls p's tools as a new user outside benchOrg who has
// connected no provider, whom p must refuse: a gateway that let everyone
// through would measure nothing. If p does not refuse, it is stopped and
// the error says what it did instead.
func (b *bench) mustRefuseNewUser(ctx context.Context, p *process, instead string) error {
	token, err := b.newUserToken(false)
	if err != nil {
		p.stop()
		return err
	}
	client := &http.Client{Timeout: 10 * time.Second}
	if _, err := callOnce(ctx, client, "http://"+p.addr+"/mcp", toolCallBody, token); err == nil {
		p.stop()
		return fmt.Errorf("%s %s", p.name, instead) // p.name is "gateway <name>"
	}
	return nil
}

// toolsListResult is the cost of filtering a long tools/list: the same list
// through the plain gateway (no tool rules, the list passes as is) and
// through the access gateway (a member's list loses the admins' tools), one
// client at a time, so that the difference is the filter's latency.
type toolsListResult struct {
	Tools            int          `json:"tools"`             // in the upstream's list
	Hidden           int          `json:"hidden"`            // for admins only, so hidden from members
	ListedUnfiltered int          `json:"listed_unfiltered"` // in the answer through the jwt gateway
	ListedFiltered   int          `json:"listed_filtered"`   // in a member's answer through the access gateway
	Concurrency      int          `json:"concurrency"`
	Rows             []gatewayRow `json:"rows"` // direct (when selected), jwt and access
	// AddedP50 is the access row's p50 minus the jwt row's, in ms: per
	// round, then the median over the rounds (see pairedDiff).
	AddedP50 float64 `json:"added_p50_ms"`
}

// runToolsList measures tools/list of pathToolsList's list through both
// gateways, each round interleaving the modes as the gateway table does.
func (b *bench) runToolsList(ctx context.Context) (toolsListResult, error) {
	res := toolsListResult{Tools: listedTools, Hidden: hiddenTools(), Concurrency: 1}
	gws, err := b.startGateways(ctx, "tools-list", "http://"+b.upstream.addr+pathToolsList)
	if err != nil {
		return res, err
	}
	defer gws.stop()
	plainToken, err := b.clerk.MintAccessToken(clerktest.TokenRequest{Scopes: []string{"profile"}, TTL: time.Hour, Format: clerktest.FormatJWT})
	if err != nil {
		return res, fmt.Errorf("mint token: %w", err)
	}
	memberToken, err := b.newUserToken(true)
	if err != nil {
		return res, err
	}
	if res.ListedUnfiltered, err = countTools(ctx, "http://"+gws.plain.addr+"/mcp", plainToken); err != nil {
		return res, fmt.Errorf("through the jwt gateway: %w", err)
	}
	if res.ListedFiltered, err = countTools(ctx, "http://"+gws.access.addr+"/mcp", memberToken); err != nil {
		return res, fmt.Errorf("through the access gateway: %w", err)
	}

	modes := []string{modeJWT, modeAccess}
	if slices.Contains(b.opts.modes, modeDirect) {
		modes = slices.Insert(modes, 0, modeDirect)
	}
	samples := map[string][]gatewayRow{}
	for range max(b.opts.rounds, 1) {
		for _, mode := range modes {
			row, err := b.measure(ctx, cell{mode: mode, gateways: gws, path: pathToolsList, body: toolsListBody, concurrency: res.Concurrency})
			if err != nil {
				return res, fmt.Errorf("%s: %w", mode, err)
			}
			samples[mode] = append(samples[mode], row)
		}
	}
	res.AddedP50 = pairedDiff(samples, modeAccess, modeJWT, func(r gatewayRow) float64 { return r.P50 })
	for _, mode := range modes {
		row := medianRow(samples[mode])
		row.Upstream, row.Response = "tools-list", "json"
		fmt.Fprintf(b.opts.log, "  tools/list of %d c=%d %-8s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms\n",
			res.Tools, res.Concurrency, mode, row.RPS, row.P50, row.P99)
		res.Rows = append(res.Rows, row)
	}
	return res, nil
}

// countTools sends one tools/list and counts the tools in the answer.
func countTools(ctx context.Context, target, token string) (int, error) {
	client := &http.Client{Timeout: 10 * time.Second}
	answer, err := callOnce(ctx, client, target, toolsListBody, token)
	if err != nil {
		return 0, err
	}
	var msg struct {
		Result struct {
			Tools []json.RawMessage `json:"tools"`
		} `json:"result"`
	}
	if err := json.Unmarshal(answer, &msg); err != nil {
		return 0, fmt.Errorf("tools/list answer: %w", err)
	}
	return len(msg.Result.Tools), nil
}

package access

import (
	"testing"

	"github.com/mcpgate/mcpgate/clerk"
	"github.com/mcpgate/mcpgate/gateway/config"
)

// Callers of the decision table.
var (
	// alice is an admin of acme (org_acme1) with a verified acme.com
	// address and an unverified other.com one (which Facts never list).
	alice = Facts{
		UserID: "user_alice",
		User:   &clerk.User{ID: "user_alice", PrimaryEmail: "alice@acme.com", VerifiedEmails: []string{"alice@acme.com"}},
		Memberships: []clerk.Membership{{
			OrganizationID: "org_acme1", OrganizationSlug: "acme", Role: "org:admin",
			Permissions: []string{"org:sys_memberships:manage", "org:tools:write"},
		}},
	}
	// bob is a plain member of acme and of beta (which has no slug), with
	// an address whose domain is spelled in capitals.
	bob = Facts{
		UserID: "user_bob",
		User:   &clerk.User{ID: "user_bob", VerifiedEmails: []string{"bob@Corp.Example.COM"}},
		Memberships: []clerk.Membership{
			{OrganizationID: "org_acme1", OrganizationSlug: "acme", Role: "org:member", Permissions: []string{"org:tools:read"}},
			{OrganizationID: "org_beta2", Role: "org:member"},
		},
	}
	// carol is in no organization; her verified addresses are in a subdomain, and one is no address at all.
	carol = Facts{
		UserID: "user_carol",
		User:   &clerk.User{ID: "user_carol", VerifiedEmails: []string{"carol@eu.acme.com", "acme.com"}},
	}
	// ghost is a user Clerk does not know (deleted): nothing but an ID.
	ghost = Facts{UserID: "user_ghost"}
)

func TestPolicyDecisions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// access is the configuration; nil is none.
		access *config.Access
		// facts is the caller.
		facts Facts
		// tool is the tool called; empty asks only about the server.
		tool string
		// want is the decision.
		want bool
	}{
		{name: "no access block admits everyone", access: nil, facts: ghost, want: true},
		{name: "empty allow admits everyone", access: &config.Access{}, facts: ghost, want: true},
		{name: "organization by slug, member", access: allow(org("acme")), facts: bob, want: true},
		{name: "organization by slug, non-member", access: allow(org("acme")), facts: carol, want: false},
		{name: "organization by ID, member", access: allow(org("org_acme1")), facts: bob, want: true},
		{name: "organization by ID of another organization", access: allow(org("org_acme2")), facts: bob, want: false},
		{name: "slug is not matched against IDs", access: allow(org("org_beta2x")), facts: bob, want: false},
		{name: "organization without slug, by ID", access: allow(org("org_beta2")), facts: bob, want: true},
		{name: "slug compared exactly", access: allow(org("ACME")), facts: bob, want: false},
		{name: "role held", access: allow(org("acme", roles("org:admin"))), facts: alice, want: true},
		{name: "role not held", access: allow(org("acme", roles("org:admin"))), facts: bob, want: false},
		{name: "any of several roles", access: allow(org("acme", roles("org:admin", "org:member"))), facts: bob, want: true},
		{name: "role held in another organization does not count", access: allow(org("org_beta2", roles("org:admin"))), facts: alice, want: false},
		{name: "permission held", access: allow(org("acme", perms("org:tools:write"))), facts: alice, want: true},
		{name: "any of several permissions", access: allow(org("acme", perms("org:tools:write", "org:tools:read"))), facts: bob, want: true},
		{name: "permission not held", access: allow(org("acme", perms("org:tools:write"))), facts: bob, want: false},
		{name: "role and permission both held", access: allow(org("acme", roles("org:admin"), perms("org:tools:write"))), facts: alice, want: true},
		{name: "role held, permission not", access: allow(org("acme", roles("org:member"), perms("org:tools:write"))), facts: bob, want: false},
		{name: "permission held, role not", access: allow(org("acme", roles("org:admin"), perms("org:tools:read"))), facts: bob, want: false},
		{name: "email domain", access: allow(config.AccessRule{EmailDomain: "acme.com"}), facts: alice, want: true},
		{name: "email domain compared without case", access: allow(config.AccessRule{EmailDomain: "corp.EXAMPLE.com"}), facts: bob, want: true},
		{name: "email subdomain does not match", access: allow(config.AccessRule{EmailDomain: "acme.com"}), facts: carol, want: false},
		{name: "email parent domain does not match", access: allow(config.AccessRule{EmailDomain: "example.com"}), facts: bob, want: false},
		{name: "unverified email does not match", access: allow(config.AccessRule{EmailDomain: "other.com"}), facts: alice, want: false},
		{name: "unknown user matches no email rule", access: allow(config.AccessRule{EmailDomain: "acme.com"}), facts: ghost, want: false},
		{name: "user ID", access: allow(config.AccessRule{User: "user_carol"}), facts: carol, want: true},
		{name: "other user ID", access: allow(config.AccessRule{User: "user_carol"}), facts: bob, want: false},
		{name: "user ID of a user Clerk does not know", access: allow(config.AccessRule{User: "user_ghost"}), facts: ghost, want: true},
		{name: "any entry admits", access: allow(org("beta"), config.AccessRule{User: "user_bob"}), facts: bob, want: true},
		{name: "unknown user is in no organization", access: allow(org("acme")), facts: ghost, want: false},
		{
			name: "tool without rules of its own: the server's", access: withTools(allow(org("acme")), tool("deploy", org("acme", roles("org:admin")))),
			facts: bob, tool: "search", want: true,
		},
		{
			name: "tool rule held", access: withTools(allow(org("acme")), tool("deploy", org("acme", roles("org:admin")))),
			facts: alice, tool: "deploy", want: true,
		},
		{
			name: "tool rule not held", access: withTools(allow(org("acme")), tool("deploy", org("acme", roles("org:admin")))),
			facts: bob, tool: "deploy", want: false,
		},
		{
			name: "tool rule held but outside the server's allow", access: withTools(allow(org("beta")), tool("deploy", config.AccessRule{User: "user_alice"})),
			facts: alice, tool: "deploy", want: false,
		},
		{
			name: "tool rule with no server allow", access: withTools(&config.Access{}, tool("deploy", config.AccessRule{EmailDomain: "acme.com"})),
			facts: alice, tool: "deploy", want: true,
		},
		{
			name: "tool names compared exactly", access: withTools(&config.Access{}, tool("deploy", config.AccessRule{User: "user_alice"})),
			facts: bob, tool: "Deploy", want: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := Compile(tc.access)
			got := p.MayUseServer(tc.facts)
			if tc.tool != "" {
				got = p.MayCall(tc.facts, tc.tool)
			}
			if got != tc.want {
				t.Errorf("decision = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPolicyNeeds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		access *config.Access
		want   Needs
		// toolRules is whether tools/list results need filtering.
		toolRules bool
	}{
		{name: "no access block", access: nil},
		{name: "no rules", access: &config.Access{CacheTTLSeconds: 60}},
		{name: "user IDs only", access: allow(config.AccessRule{User: "user_a"})},
		{name: "email domain", access: allow(config.AccessRule{EmailDomain: "acme.com"}), want: Needs{User: true}},
		{name: "organization", access: allow(org("acme")), want: Needs{Memberships: true}},
		{
			name:   "organization in a tool rule only",
			access: withTools(allow(config.AccessRule{User: "user_a"}), tool("deploy", org("acme"))),
			want:   Needs{Memberships: true}, toolRules: true,
		},
		{
			name:   "both kinds",
			access: withTools(allow(config.AccessRule{EmailDomain: "acme.com"}), tool("deploy", org("acme"))),
			want:   Needs{User: true, Memberships: true}, toolRules: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := Compile(tc.access)
			if got := p.Needs(); got != tc.want {
				t.Errorf("Needs() = %+v, want %+v", got, tc.want)
			}
			if got := p.HasToolRules(); got != tc.toolRules {
				t.Errorf("HasToolRules() = %v, want %v", got, tc.toolRules)
			}
		})
	}
}

func TestNilPolicyAdmitsEveryone(t *testing.T) {
	t.Parallel()
	var p *Policy
	if !p.MayUseServer(ghost) || !p.MayCall(ghost, "deploy") || p.Needs().Any() || p.HasToolRules() || p.RestrictsServer() {
		t.Error("a nil policy restricts something")
	}
}

func allow(rules ...config.AccessRule) *config.Access {
	return &config.Access{Allow: rules, CacheTTLSeconds: 60}
}

func withTools(a *config.Access, tools ...config.ToolAccess) *config.Access {
	a.ToolAccess = append(a.ToolAccess, tools...)
	return a
}

func tool(name string, rules ...config.AccessRule) config.ToolAccess {
	return config.ToolAccess{Tool: name, Allow: rules}
}

func org(name string, narrow ...func(*config.AccessRule)) config.AccessRule {
	r := config.AccessRule{Organization: name}
	for _, n := range narrow {
		n(&r)
	}
	return r
}

func roles(rs ...string) func(*config.AccessRule) {
	return func(r *config.AccessRule) { r.Roles = rs }
}

func perms(ps ...string) func(*config.AccessRule) {
	return func(r *config.AccessRule) { r.Permissions = ps }
}

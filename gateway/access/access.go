// Package access decides who may use an MCP server and its tools, from the
// facts Clerk holds about the caller: organization memberships (with role
// and permissions), verified email addresses, and the user ID.
//
// A Policy is compiled once from the gateway's configuration and is
// evaluated without I/O: the gateway looks up the facts the policy needs
// (Needs) and asks the policy about them. Keeping the decision pure keeps it
// testable as a table and keeps Clerk's failures out of it: a caller whose
// facts could not be learned is never judged at all.
package access

import (
	"slices"
	"strings"

	"github.com/mcpgate/mcpgate/clerk"
	"github.com/mcpgate/mcpgate/gateway/config"
)

// Needs says which facts about a caller a policy's rules read.
type Needs struct {
	// User: an emailDomain rule reads the user's verified emails.
	User bool
	// Memberships: an organization rule reads the user's memberships.
	Memberships bool
}

// Any reports whether the policy needs Clerk to be asked at all; rules that
// only name user IDs are decided from the verified token alone.
func (n Needs) Any() bool { return n.User || n.Memberships }

// Facts are what the gateway knows about one caller.
type Facts struct {
	// UserID is the token's subject, the Clerk user ID.
	UserID string
	// User is the caller's Clerk user; nil when it was not looked up
	// (not needed) or Clerk does not know the user. Nil matches no
	// emailDomain rule.
	User *clerk.User
	// Memberships are the caller's organization memberships; nil when not
	// looked up, or none.
	Memberships []clerk.Membership
}

// Policy is a compiled access configuration. The zero value and a nil
// *Policy admit everyone.
type Policy struct {
	// server is the server's allow list; empty admits every caller.
	server []rule
	// tools are the allow lists of the tools that have one.
	tools map[string][]rule
	needs Needs
}

// rule is one compiled config.AccessRule; exactly one of its kinds is set.
type rule struct {
	orgID, orgSlug string
	roles          []string
	permissions    []string
	// emailDomain is lower-cased.
	emailDomain string
	user        string
}

// Compile builds the policy of an access configuration; nil admits everyone
// and needs nothing. It trusts a configuration config.Validate accepted.
func Compile(a *config.Access) *Policy {
	p := &Policy{}
	if a == nil {
		return p
	}
	p.server = p.compileRules(a.Allow)
	for _, ta := range a.ToolAccess {
		if p.tools == nil {
			p.tools = map[string][]rule{}
		}
		p.tools[ta.Tool] = append(p.tools[ta.Tool], p.compileRules(ta.Allow)...)
	}
	return p
}

// compileRules compiles rules, noting the facts they need.
func (p *Policy) compileRules(in []config.AccessRule) []rule {
	out := make([]rule, 0, len(in))
	for _, r := range in {
		c := rule{
			roles:       slices.Clone(r.Roles),
			permissions: slices.Clone(r.Permissions),
			emailDomain: strings.ToLower(r.EmailDomain),
			user:        r.User,
		}
		// Clerk's organization IDs start with "org_"; a slug cannot (the
		// API allows only lowercase letters, digits and '-' in slugs).
		if strings.HasPrefix(r.Organization, "org_") {
			c.orgID = r.Organization
		} else {
			c.orgSlug = r.Organization
		}
		p.needs.Memberships = p.needs.Memberships || r.Organization != ""
		p.needs.User = p.needs.User || r.EmailDomain != ""
		out = append(out, c)
	}
	return out
}

// Needs reports which facts the rules read, the server's and every tool's:
// the gateway looks them up before the first decision of a request.
func (p *Policy) Needs() Needs {
	if p == nil {
		return Needs{}
	}
	return p.needs
}

// HasToolRules reports whether any tool has rules of its own, so that a
// tools/list result must be filtered per caller.
func (p *Policy) HasToolRules() bool { return p != nil && len(p.tools) > 0 }

// RestrictsServer reports whether the server has an allow list at all.
func (p *Policy) RestrictsServer() bool { return p != nil && len(p.server) > 0 }

// MayUseServer reports whether the caller may use the server at all: the
// server's allow list is empty, or one of its rules matches.
func (p *Policy) MayUseServer(f Facts) bool {
	return p == nil || len(p.server) == 0 || matchAny(p.server, f)
}

// MayCall reports whether the caller may call tool: they may use the
// server, and the tool has no rules of its own or one of them matches.
func (p *Policy) MayCall(f Facts, tool string) bool {
	if !p.MayUseServer(f) {
		return false
	}
	if p == nil {
		return true
	}
	rules, ok := p.tools[tool]
	return !ok || matchAny(rules, f)
}

func matchAny(rules []rule, f Facts) bool {
	for _, r := range rules {
		if r.matches(f) {
			return true
		}
	}
	return false
}

// matches reports whether the caller satisfies r.
func (r rule) matches(f Facts) bool {
	switch {
	case r.user != "":
		return f.UserID != "" && f.UserID == r.user
	case r.emailDomain != "":
		return f.User != nil && hasEmailIn(f.User.VerifiedEmails, r.emailDomain)
	case r.orgID == "" && r.orgSlug == "":
		return false // a rule of no kind matches nobody
	default:
		for _, m := range f.Memberships {
			if r.matchesMembership(m) {
				return true
			}
		}
		return false
	}
}

// matchesMembership reports whether m is in r's organization and, when r
// lists roles or permissions, has one of the roles and holds one of the
// permissions: each list given narrows the rule, as the API documents.
func (r rule) matchesMembership(m clerk.Membership) bool {
	if r.orgID != "" && m.OrganizationID != r.orgID {
		return false
	}
	if r.orgSlug != "" && (m.OrganizationSlug == "" || m.OrganizationSlug != r.orgSlug) {
		return false
	}
	if len(r.roles) > 0 && !slices.Contains(r.roles, m.Role) {
		return false
	}
	if len(r.permissions) > 0 && !slices.ContainsFunc(r.permissions, func(p string) bool { return slices.Contains(m.Permissions, p) }) {
		return false
	}
	return true
}

// hasEmailIn reports whether any of the verified addresses is in domain
// (lower-case), exactly: the part after the last '@', compared without
// regard to case. Subdomains do not match, so "corp.example.com" is not
// "example.com"; an address without '@' matches nothing.
func hasEmailIn(verified []string, domain string) bool {
	for _, e := range verified {
		at := strings.LastIndexByte(e, '@')
		if at >= 0 && strings.EqualFold(e[at+1:], domain) {
			return true
		}
	}
	return false
}

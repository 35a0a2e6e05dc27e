package gateway

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/mcpgate/mcpgate/clerk"
	"github.com/mcpgate/mcpgate/gateway/access"
	"github.com/mcpgate/mcpgate/gateway/identity"
)

// people answers what the access rules need to know about a user, and the
// user's token at an OAuth provider for the upstream credentials:
// *clerk.Directory, which caches and collapses lookups, and on a miss asks
// the Backend API with the secret key or the key broker in the operator's
// namespace (which answers only about the subject of the access token it is
// shown, so the subject carries it; see Gateway.subject). Errors:
// clerk.ErrUserNotFound for a user Clerk does not know,
// clerk.ErrNotConnected for a user without the provider,
// *clerk.UnavailableError when Clerk or the broker cannot be asked,
// *clerk.InvalidTokenError when the broker refuses the access token.
type people interface {
	UserOf(ctx context.Context, s clerk.Subject) (clerk.User, error)
	MembershipsOf(ctx context.Context, s clerk.Subject) ([]clerk.Membership, error)
	OAuthTokenOf(ctx context.Context, s clerk.Subject, provider string) (clerk.OAuthToken, error)
}

// subject is whom the request's people lookups are about: its verified
// user and, with a broker, the access token and audiences it was verified
// with, which the broker verifies again.
func (g *Gateway) subject(ri *requestInfo) clerk.Subject {
	return clerk.Subject{UserID: ri.userID, AccessToken: ri.accessToken, Audiences: ri.audiences}
}

// refuseLookup answers a failed people lookup: 401 when the broker refused
// the access token (as verification would have), else 503 with
// Retry-After. what is the log message.
func (g *Gateway) refuseLookup(w http.ResponseWriter, r *http.Request, err error, what string) {
	var invalid *clerk.InvalidTokenError
	if errors.As(err, &invalid) {
		g.refuseUnverified(w, r, err)
		return
	}
	g.refuseUnavailable(w, r, err, what)
}

// Identity lookups, the label values of mcpgate_gateway_identity_lookups_total.
const (
	lookupUser        = "user"
	lookupMemberships = "memberships"

	lookupFound       = "found"
	lookupNotFound    = "not_found"
	lookupUnavailable = "unavailable"
)

// identify looks up in Clerk what the access rules need to know about the
// caller, and only that: the user (for emailDomain rules) and their
// memberships (for organization rules). Without such rules it is not in the
// pipeline at all. A user Clerk does not know has no facts and so matches
// no rule that needs them; Clerk being unavailable is a 503 with
// Retry-After, never a decision on missing facts.
func (g *Gateway) identify(next http.Handler) http.Handler {
	needs := g.policy.Needs()
	if !needs.Any() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := infoFrom(r.Context())
		facts := &access.Facts{UserID: ri.userID}
		known := true
		subject := g.subject(ri)
		if needs.User {
			u, err := g.people.UserOf(r.Context(), subject)
			g.countLookup(lookupUser, err)
			switch {
			case errors.Is(err, clerk.ErrUserNotFound):
				known = false
			case err != nil:
				g.refuseLookup(w, r, err, "Could not look up a user")
				return
			default:
				facts.User = &u
			}
		}
		// NOTE: a user Clerk does not know has no memberships; not asking
		// saves a call for every request of a deleted user.
		if needs.Memberships && known {
			ms, err := g.people.MembershipsOf(r.Context(), subject)
			g.countLookup(lookupMemberships, err)
			switch {
			case errors.Is(err, clerk.ErrUserNotFound):
			case errors.Is(err, clerk.ErrTooManyMemberships):
				// No rule can be judged on part of the list: no
				// organization rule matches; others still may.
				g.log.LogAttrs(r.Context(), slog.LevelWarn, "Judging a user without their organization memberships: too many to list",
					slog.String("request_id", ri.id), slog.String("user_id", ri.userID))
			case err != nil:
				g.refuseLookup(w, r, err, "Could not look up a user's organization memberships")
				return
			default:
				facts.Memberships = ms
				ri.membershipsKnown = true
			}
		}
		ri.facts = facts
		next.ServeHTTP(w, r)
	})
}

// countLookup counts one identity lookup by its answer: found; not found,
// which is an answer (a deleted user, or more memberships than can be
// listed), cached like any other; or unavailable.
func (g *Gateway) countLookup(kind string, err error) {
	result := lookupFound
	switch {
	case errors.Is(err, clerk.ErrUserNotFound), errors.Is(err, clerk.ErrTooManyMemberships):
		result = lookupNotFound
	case err != nil:
		result = lookupUnavailable
	}
	g.metrics.identityLookups.WithLabelValues(kind, result).Inc()
}

// applyAccess enforces the access rules: a caller outside the server's
// allow list is refused on every request (initialize, GET and DELETE
// included), and a tools/call of a tool the caller may not call is
// refused. For tools/list results it leaves requestInfo.mayCall, when tools
// have rules of their own. Without rules it is not in the pipeline.
func (g *Gateway) applyAccess(next http.Handler) http.Handler {
	if !g.policy.RestrictsServer() && !g.policy.HasToolRules() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := infoFrom(r.Context())
		facts := access.Facts{UserID: ri.userID}
		if ri.facts != nil {
			facts = *ri.facts
		}
		if !g.policy.MayUseServer(facts) {
			ri.deniedBy = "server"
			g.refuseAccess(w, r, "Access denied: your account is not allowed to use this MCP server. "+askOwners)
			return
		}
		for _, t := range ri.tools {
			if !g.policy.MayCall(facts, t) {
				ri.deniedBy = "tool"
				g.refuseAccess(w, r, "Access denied: your account is not allowed to call the tool "+quoteTool(t)+" on this MCP server. "+askOwners)
				return
			}
		}
		if g.policy.HasToolRules() {
			ri.mayCall = func(tool string) bool { return g.policy.MayCall(facts, tool) }
		}
		next.ServeHTTP(w, r)
	})
}

// askOwners ends every access refusal: what a person can do about it. The
// message never names the organizations, domains or users of the rules.
const askOwners = "Ask the server's owners to grant your Clerk account access."

// quoteTool quotes a tool name the caller sent, shortened, for a message.
func quoteTool(t string) string {
	if r := []rune(t); len(r) > 64 {
		t = string(r[:64]) + "…"
	}
	return `"` + t + `"`
}

// refuseAccess answers a request the access rules refuse: 403 with a
// JSON-RPC error the client can show to its user, and no WWW-Authenticate
// challenge, since no token, however scoped, changes who the caller is.
func (g *Gateway) refuseAccess(w http.ResponseWriter, r *http.Request, msg string) {
	ri := infoFrom(r.Context())
	ri.auth = reasonAccessDenied
	g.metrics.countAuth(reasonAccessDenied)
	writeRPCError(w, http.StatusForbidden, ri.rpc, codeAccessDenied, msg)
}

// injectPeopleFacts tells the upstream the caller's primary verified email
// and organization memberships, when the gateway looked them up for its
// rules. It runs after stripInbound, so a client cannot set these headers.
func injectPeopleFacts(h http.Header, ri *requestInfo) {
	if ri.facts == nil {
		return
	}
	if u := ri.facts.User; u != nil && u.PrimaryEmail != "" {
		h.Set(identity.EmailHeader, encodeHeaderValue(u.PrimaryEmail))
	}
	if ri.membershipsKnown {
		entries := make([]string, 0, len(ri.facts.Memberships))
		for _, m := range ri.facts.Memberships {
			entries = append(entries, escapeOrgPart(m.OrganizationID, false)+":"+escapeOrgPart(m.OrganizationSlug, false)+":"+escapeOrgPart(m.Role, true))
		}
		h.Set(identity.OrganizationsHeader, strings.Join(entries, ","))
	}
}

// escapeOrgPart percent-encodes a part of an organizations header entry
// (see identity.OrganizationsHeader), leaving letters, digits, '-', '_',
// '.' and '~' as they are, and ':' in the role only, so that an entry splits
// at its first two ':' and the list at ','. Clerk's IDs, slugs and role keys
// hold nothing else, so the header reads as Clerk spells them.
func escapeOrgPart(s string, keepColon bool) string {
	plain := func(c byte) bool {
		return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '~' || c == ':' && keepColon
	}
	i := 0
	for i < len(s) && plain(s[i]) {
		i++
	}
	if i == len(s) {
		return s // what Clerk sends: nothing to escape, nothing to allocate
	}
	var b strings.Builder
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		if c := s[i]; plain(c) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// encodeHeaderValue writes v as the MCP transport writes header values:
// as is when it is visible ASCII with no surrounding space, else as
// "=?base64?<Base64 of UTF-8>?=", the form decodeHeaderValue reads.
func encodeHeaderValue(v string) string {
	plain := v != "" && v[0] != ' ' && v[len(v)-1] != ' ' &&
		!(strings.HasPrefix(v, "=?base64?") && strings.HasSuffix(v, "?="))
	for i := 0; i < len(v) && plain; i++ {
		plain = 0x20 <= v[i] && v[i] <= 0x7e
	}
	if plain {
		return v
	}
	return "=?base64?" + base64.StdEncoding.EncodeToString([]byte(v)) + "?="
}

// Package identity names the headers through which the gateway tells the
// upstream MCP server who is calling. The gateway removes any copies a client
// sends before it sets them, so an upstream behind the gateway may trust them;
// an upstream reachable without the gateway must not.
package identity

const (
	// UserHeader carries the token's subject, the Clerk user id (user_...).
	UserHeader = "X-Mcpgate-User-Id"
	// ClientHeader carries the OAuth client id the token was issued to.
	ClientHeader = "X-Mcpgate-Client-Id"
	// ScopesHeader carries the token's scopes, space-separated.
	ScopesHeader = "X-Mcpgate-Scopes"
	// EmailHeader carries the user's primary email address, when it is
	// verified and the gateway looked the user up for its access rules
	// (an emailDomain rule). An address that is not visible ASCII is sent
	// as "=?base64?<Base64 of UTF-8>?=", as MCP's transport encodes header
	// values.
	EmailHeader = "X-Mcpgate-User-Email"
	// OrganizationsHeader carries the user's organization memberships, when
	// the gateway looked them up for its access rules (an organization
	// rule): comma-separated entries "<org ID>:<slug>:<role>", such as
	// "org_2x:acme:org:admin,org_3y::org:member" (the slug is empty when the
	// organization has none). Split an entry at its first two ':'; bytes
	// other than letters, digits, "-_.~" (and ':' in the role) are
	// percent-encoded. Empty means no memberships.
	OrganizationsHeader = "X-Mcpgate-Organizations"
)

// Headers lists every identity header, for stripping them from requests.
func Headers() []string {
	return []string{UserHeader, ClientHeader, ScopesHeader, EmailHeader, OrganizationsHeader}
}

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
)

// Headers lists every identity header, for stripping them from requests.
func Headers() []string { return []string{UserHeader, ClientHeader, ScopesHeader} }

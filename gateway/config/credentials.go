package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/mcpgate/mcpgate/gateway/identity"
)

// Credentials are headers the gateway sets on forwarded requests: fixed
// service keys read from mounted Secret files, and the calling user's own
// token at an OAuth provider, from Clerk. Inbound headers of these names are
// removed first, so a client can never supply or override one.
type Credentials struct {
	// Headers are set from files (mounted Secret keys), re-read when the
	// kubelet updates them, so a rotated Secret needs no restart.
	Headers []CredentialHeader `json:"headers,omitempty"`
	// UserOAuthToken sets the caller's access token at a provider.
	UserOAuthToken *UserOAuthToken `json:"userOAuthToken,omitempty"`
}

// CredentialHeader is one header whose value comes from a file.
type CredentialHeader struct {
	// Name is the header name, such as X-Api-Key.
	Name string `json:"name"`
	// File is the path of the mounted file holding the value. The value
	// itself is never part of the configuration.
	File string `json:"file"`
	// Prefix goes before the file's content, such as "Bearer ".
	Prefix string `json:"prefix,omitempty"`
}

// UserOAuthToken is the calling user's token at an OAuth provider, which
// Clerk holds from the user's social sign-in.
type UserOAuthToken struct {
	// Provider is the provider as Clerk names it, such as oauth_github.
	Provider string `json:"provider"`
	// Header receives the token (Authorization unless set).
	Header string `json:"header"`
	// Prefix goes before the token ("Bearer " unless set).
	Prefix string `json:"prefix"`
	// ConnectURL is where a user who has not connected the provider goes
	// to connect it; empty when none is known.
	ConnectURL string `json:"connectURL,omitempty"`
}

// DefaultUserTokenHeader is the header that receives the user's token when
// UserOAuthToken.Header is empty.
const DefaultUserTokenHeader = "Authorization"

// HeaderName is the header the token goes in: Header, or
// DefaultUserTokenHeader when it is empty. Prefix has no such default: the
// controller writes "Bearer " unless told otherwise, so an empty Prefix
// means no prefix.
func (u *UserOAuthToken) HeaderName() string {
	if u.Header == "" {
		return DefaultUserTokenHeader
	}
	return u.Header
}

// reservedHeaders are names a credential may not take, by their folded
// form (see foldHeaderName): hop-by-hop headers and the framing ones the
// proxy and HTTP itself own, Cookie, which the gateway always removes, and
// the headers the gateway sets itself. The identity headers are added from
// package identity; reservedPrefixes covers the rest.
var reservedHeaders = []string{
	"host", "content-length", "transfer-encoding", "connection", "keep-alive",
	"te", "trailer", "upgrade", "cookie", "content-type", "forwarded", "x-request-id",
}

// reservedPrefixes start names a credential may not take, folded: the
// proxy's (Proxy-*, X-Forwarded-*), the gateway's identity headers
// (X-Mcpgate-*, today's and any later one) and the MCP transport's (Mcp-*).
// The McpServer API's validation refuses the same.
var reservedPrefixes = []string{"proxy-", "x-forwarded-", "x-mcpgate-", "mcp-"}

// foldHeaderName is how a credential name is compared: case-insensitively
// and with '_' read as '-', because CGI-style upstreams (WSGI, Rack, PHP)
// read X_Api_Key and X-Api-Key as one variable.
func foldHeaderName(name string) string {
	return strings.ToLower(strings.ReplaceAll(name, "_", "-"))
}

// validate reports the problems of a credentials block: each name must be
// a header name the proxy can set without breaking the exchange or
// impersonating the gateway, and no two may be the same header to an
// upstream, so that every credential has exactly one source.
func (c *Credentials) validate() []error {
	var errs []error
	seen := map[string]string{}
	name := func(field, n string) {
		if err := credentialHeaderName(n); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
			return
		}
		if other, dup := seen[foldHeaderName(n)]; dup {
			errs = append(errs, fmt.Errorf("%s: header %q is also set by %s", field, n, other))
			return
		}
		seen[foldHeaderName(n)] = field
	}
	for i, h := range c.Headers {
		field := fmt.Sprintf("upstream.credentials.headers[%d]", i)
		name(field+".name", h.Name)
		if !filepath.IsAbs(h.File) {
			errs = append(errs, fmt.Errorf("%s.file %q must be an absolute path", field, h.File))
		}
		if !validHeaderValue(h.Prefix) {
			errs = append(errs, fmt.Errorf("%s.prefix must be printable text", field))
		}
	}
	if u := c.UserOAuthToken; u != nil {
		const field = "upstream.credentials.userOAuthToken"
		name(field+".header", u.HeaderName())
		if !validProvider(u.Provider) {
			errs = append(errs, fmt.Errorf("%s.provider %q must be a Clerk provider such as oauth_github", field, u.Provider))
		}
		if !validHeaderValue(u.Prefix) {
			errs = append(errs, fmt.Errorf("%s.prefix must be printable text", field))
		}
		if u.ConnectURL != "" {
			if err := connectURL(u.ConnectURL); err != nil {
				errs = append(errs, fmt.Errorf("%s.connectURL: %w", field, err))
			}
		}
	}
	return errs
}

// credentialHeaderName checks that n is an RFC 9110 field name a
// credential may use.
func credentialHeaderName(n string) error {
	if n == "" {
		return errors.New("a header name is required")
	}
	for i := 0; i < len(n); i++ {
		if !isTokenChar(n[i]) {
			return fmt.Errorf("%q is not a valid header name", n)
		}
	}
	folded := foldHeaderName(n)
	reserved := reservedHeaders
	for _, id := range identity.Headers() {
		reserved = append(reserved[:len(reserved):len(reserved)], foldHeaderName(id))
	}
	for _, r := range reserved {
		if folded == r {
			return fmt.Errorf("header %q is reserved: the proxy or the gateway sets it", n)
		}
	}
	for _, prefix := range reservedPrefixes {
		if strings.HasPrefix(folded, prefix) {
			return fmt.Errorf("header %q is reserved: %s* headers belong to the proxy, the gateway or the MCP transport", n, prefix)
		}
	}
	return nil
}

// isTokenChar reports whether c may appear in an RFC 9110 token.
func isTokenChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// validHeaderValue reports whether s can be (part of) a header value
// without ending the header: visible ASCII, spaces and tabs.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '\t' && (c < 0x20 || c > 0x7e) {
			return false
		}
	}
	return true
}

// validProvider reports whether p can be a Clerk OAuth provider ID:
// "oauth_" and a lowercase key (oauth_github, oauth_custom_acme), the rule
// clerk.ValidOAuthProvider applies before p goes into a Backend API path.
func validProvider(p string) bool {
	key, ok := strings.CutPrefix(p, "oauth_")
	if !ok || key == "" || len(key) > 64 {
		return false
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// connectURL checks a URL the gateway sends people to: https, or http on
// a loopback host for development; never with user info, which would put
// a credential in front of every user.
func connectURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("parse %q: %w", raw, err)
	}
	switch {
	case u.Host == "" || u.User != nil:
		return fmt.Errorf("%q is not an absolute URL without user info", raw)
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	}
	return fmt.Errorf("%q must be https (http only on a loopback host)", raw)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Package config is the contract between the controller, which writes a
// gateway's configuration into a ConfigMap, and the gateway, which reads it.
//
// The format is versioned: a gateway refuses a configuration whose apiVersion
// or kind it does not know, and unknown fields, rather than guess at them.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/mcpgate/mcpgate/gateway/identity"
)

const (
	// APIVersion is the version of the format this package reads and writes.
	APIVersion = "gateway.mcpgate.dev/v1alpha1"
	// Kind names the document type.
	Kind = "GatewayConfig"
	// FileName is the key of the configuration in the gateway's ConfigMap and
	// the file name it is mounted under.
	FileName = "config.json"
)

// Config is the complete configuration of one gateway, the data plane of one McpServer.
type Config struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`

	// Server names the McpServer this gateway serves, for logs and metrics.
	Server ServerRef `json:"server"`

	// Listen holds the addresses the gateway binds.
	Listen Listen `json:"listen"`

	// Path is the public path of the MCP endpoint, such as /mcp.
	Path string `json:"path"`

	// PublicURL is the exact URL clients use for the MCP endpoint, when the
	// controller knows it (an Ingress host). Empty: derive it from requests.
	PublicURL string `json:"publicURL,omitempty"`

	// ResourceName is a human-readable name for the protected resource metadata.
	ResourceName string `json:"resourceName"`

	// Upstream is where authorized requests go.
	Upstream Upstream `json:"upstream"`

	// Scopes must all be present in every access token.
	Scopes []string `json:"scopes,omitempty"`

	// ToolScopes are the extra scopes that a tools/call for a tool needs.
	ToolScopes []ToolScope `json:"toolScopes,omitempty"`

	// ToolScopeChallenge says when clients are asked for the tool scopes:
	// ToolScopeChallengeStepUp (empty means the same) or
	// ToolScopeChallengeAtSignIn. Tokens need the same scopes either way.
	ToolScopeChallenge string `json:"toolScopeChallenge,omitempty"`

	// Access says who may call the server and each tool, by Clerk identity.
	// Nil: every user with a valid token (AnySignedInUser).
	Access *Access `json:"access,omitempty"`

	// Clerk is the authorization server.
	Clerk Clerk `json:"clerk"`

	// AllowedOrigins are the browser origins (scheme://host[:port]) allowed
	// to call the gateway, besides the origin of PublicURL. A request with
	// any other Origin header is refused; requests without one are allowed.
	AllowedOrigins []string `json:"allowedOrigins,omitempty"`

	// TrustForwardedHeaders derives the public URL from X-Forwarded-Proto and
	// X-Forwarded-Host when PublicURL is empty. Only safe behind a proxy that
	// sets them.
	TrustForwardedHeaders bool `json:"trustForwardedHeaders,omitempty"`
}

// ServerRef identifies an McpServer.
type ServerRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// Listen holds the gateway's listen addresses.
type Listen struct {
	// Traffic serves MCP clients.
	Traffic string `json:"traffic"`
	// Health serves probes and metrics.
	Health string `json:"health"`
}

// Upstream is the MCP server behind the gateway.
type Upstream struct {
	// URL is the absolute URL of the upstream MCP endpoint, path included.
	URL string `json:"url"`
	// Credentials are what the gateway adds to every forwarded request for
	// the upstream's own authentication; nil adds nothing.
	Credentials *Credentials `json:"credentials,omitempty"`
}

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

// The values of Config.ToolScopeChallenge.
const (
	// ToolScopeChallengeStepUp names only the scopes every request needs
	// in a 401 challenge; a tool's scopes are asked for by a 403
	// insufficient_scope when it is called (step-up authorization).
	ToolScopeChallengeStepUp = "StepUp"
	// ToolScopeChallengeAtSignIn names every tool scope in the 401
	// challenges too, so a client asks for them all when the user signs
	// in, for clients that cannot step up.
	ToolScopeChallengeAtSignIn = "AtSignIn"
)

// ToolScope lists the scopes one tool needs.
type ToolScope struct {
	Tool   string   `json:"tool"`
	Scopes []string `json:"scopes"`
}

// Access restricts callers by who they are in Clerk. Scopes bound what a
// client may do; these rules bound which person may use it.
type Access struct {
	// Allow admits a request when any rule matches; empty admits every
	// signed-in user (tool rules still apply).
	Allow []AccessRule `json:"allow,omitempty"`
	// ToolAccess adds rules for calling particular tools: a tools/call of
	// one needs a match in Allow (when set) and in the tool's rules.
	ToolAccess []ToolAccess `json:"toolAccess,omitempty"`
	// CacheTTLSeconds is how long what the gateway learned about a user
	// from Clerk is trusted.
	CacheTTLSeconds int `json:"cacheTTLSeconds"`
}

// AccessRule matches a user; exactly one of Organization, EmailDomain and
// User is set.
type AccessRule struct {
	// Organization is a Clerk organization slug or "org_" ID the user must
	// be a member of.
	Organization string `json:"organization,omitempty"`
	// Roles, with Organization, admits only members with any of these roles.
	Roles []string `json:"roles,omitempty"`
	// Permissions, with Organization, admits only members holding any of
	// these permissions.
	Permissions []string `json:"permissions,omitempty"`
	// EmailDomain admits users with a verified email address in this
	// domain (exact, case-insensitive).
	EmailDomain string `json:"emailDomain,omitempty"`
	// User admits one Clerk user ID ("user_...").
	User string `json:"user,omitempty"`
}

// ToolAccess lists who may call one tool.
type ToolAccess struct {
	Tool  string       `json:"tool"`
	Allow []AccessRule `json:"allow"`
}

// Clerk describes the Clerk instance that issues access tokens.
type Clerk struct {
	// Issuer is the Frontend API URL; tokens' iss must equal it exactly.
	Issuer string `json:"issuer"`
	// APIURL is the Backend API base URL, such as https://api.clerk.com/v1.
	APIURL string `json:"apiURL"`
	// SecretKeyFile is the path of the mounted file holding the secret key.
	// The key itself is never part of the configuration.
	SecretKeyFile string `json:"secretKeyFile"`
}

// Marshal encodes c as indented JSON, stamping apiVersion and kind. The output
// is deterministic, so a hash of it changes only when the configuration does.
func Marshal(c Config) ([]byte, error) {
	c.APIVersion, c.Kind = APIVersion, Kind
	if err := c.Validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode gateway config: %w", err)
	}
	return append(b, '\n'), nil
}

// Parse decodes and validates a configuration. It refuses other versions and
// unknown fields, so that a gateway never runs on a configuration it only
// partly understands.
func Parse(data []byte) (Config, error) {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return Config{}, fmt.Errorf("decode gateway config: %w", err)
	}
	if head.APIVersion != APIVersion || head.Kind != Kind {
		return Config{}, fmt.Errorf("unsupported gateway config %q, kind %q: this gateway reads apiVersion %q, kind %q",
			head.APIVersion, head.Kind, APIVersion, Kind)
	}
	var c Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("decode gateway config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Listen.Traffic == "" || c.Listen.Health == "" {
		errs = append(errs, errors.New("listen.traffic and listen.health are required"))
	}
	if !strings.HasPrefix(c.Path, "/") {
		errs = append(errs, fmt.Errorf("path %q must start with '/'", c.Path))
	}
	if c.PublicURL != "" {
		if err := absoluteHTTPURL(c.PublicURL); err != nil {
			errs = append(errs, fmt.Errorf("publicURL: %w", err))
		}
	}
	if err := absoluteHTTPURL(c.Upstream.URL); err != nil {
		errs = append(errs, fmt.Errorf("upstream.url: %w", err))
	}
	if err := absoluteHTTPURL(c.Clerk.Issuer); err != nil {
		errs = append(errs, fmt.Errorf("clerk.issuer: %w", err))
	}
	if err := absoluteHTTPURL(c.Clerk.APIURL); err != nil {
		errs = append(errs, fmt.Errorf("clerk.apiURL: %w", err))
	}
	if c.Clerk.SecretKeyFile == "" {
		errs = append(errs, errors.New("clerk.secretKeyFile is required"))
	}
	for i, o := range c.AllowedOrigins {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			errs = append(errs, fmt.Errorf("allowedOrigins[%d] %q is not an origin such as https://app.example.com", i, o))
		}
	}
	for i, ts := range c.ToolScopes {
		if ts.Tool == "" || len(ts.Scopes) == 0 {
			errs = append(errs, fmt.Errorf("toolScopes[%d]: tool and scopes are required", i))
		}
	}
	switch c.ToolScopeChallenge {
	case "", ToolScopeChallengeStepUp, ToolScopeChallengeAtSignIn:
	default:
		errs = append(errs, fmt.Errorf("toolScopeChallenge %q must be %q or %q", c.ToolScopeChallenge, ToolScopeChallengeStepUp, ToolScopeChallengeAtSignIn))
	}
	if c.Access != nil {
		errs = append(errs, c.Access.validate()...)
	}
	if c.Upstream.Credentials != nil {
		errs = append(errs, c.Upstream.Credentials.validate()...)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid gateway config: %w", err)
	}
	return nil
}

func absoluteHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("parse %q: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", raw)
	}
	return nil
}

// validate reports the problems of an access block.
func (a *Access) validate() []error {
	var errs []error
	if a.CacheTTLSeconds <= 0 {
		errs = append(errs, errors.New("access.cacheTTLSeconds must be positive"))
	}
	for i, r := range a.Allow {
		if err := r.validate(); err != nil {
			errs = append(errs, fmt.Errorf("access.allow[%d]: %w", i, err))
		}
	}
	seen := map[string]bool{}
	for i, ta := range a.ToolAccess {
		if ta.Tool == "" || len(ta.Allow) == 0 {
			errs = append(errs, fmt.Errorf("access.toolAccess[%d]: tool and allow are required", i))
		}
		if seen[ta.Tool] {
			errs = append(errs, fmt.Errorf("access.toolAccess[%d]: tool %q appears twice", i, ta.Tool))
		}
		seen[ta.Tool] = true
		for j, r := range ta.Allow {
			if err := r.validate(); err != nil {
				errs = append(errs, fmt.Errorf("access.toolAccess[%d].allow[%d]: %w", i, j, err))
			}
		}
	}
	return errs
}

// validate checks that r names exactly one kind of subject.
func (r AccessRule) validate() error {
	kinds := 0
	for _, v := range []string{r.Organization, r.EmailDomain, r.User} {
		if v != "" {
			kinds++
		}
	}
	switch {
	case kinds != 1:
		return errors.New("exactly one of organization, emailDomain and user must be set")
	case r.Organization == "" && (len(r.Roles) > 0 || len(r.Permissions) > 0):
		return errors.New("roles and permissions apply only to an organization rule")
	}
	return nil
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

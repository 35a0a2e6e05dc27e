package v1alpha1

import (
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Upstream is where the gateway sends traffic: a Service in the McpServer's
// namespace, or an external URL. Exactly one of service and url is set.
// +kubebuilder:validation:XValidation:rule="has(self.service) != has(self.url)",message="exactly one of upstream.service or upstream.url must be set"
// +kubebuilder:validation:XValidation:rule="!has(self.url) || !has(self.isolation) || !self.isolation.enabled",message="isolation applies to service upstreams: set upstream.isolation.enabled to false, or remove it, for a url upstream"
// +kubebuilder:validation:XValidation:rule="!has(self.credentials) || !has(self.url) || (isURL(self.url) && url(self.url).getScheme() == 'https')",message="credentials go only to an https url upstream or a Service upstream: a plain http url would send them in the clear",fieldPath=".credentials",reason=FieldValueForbidden
type Upstream struct {
	// service is a Service in the McpServer's namespace.
	// +optional
	Service *UpstreamService `json:"service,omitempty"`

	// url is the base of an upstream outside the cluster: an absolute http
	// or https URL of scheme, host and optional port only (no path, query,
	// fragment or user info), such as https://mcp.example.com. The endpoint
	// path goes in upstream.path.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https'] && size(url(self).getHostname()) > 0",message="must be an absolute http or https URL"
	// +kubebuilder:validation:XValidation:rule="!isURL(self) || ((url(self).getEscapedPath() == '/' || size(url(self).getEscapedPath()) == 0) && size(url(self).getQuery()) == 0 && !self.contains('#') && !self.contains('@'))",message="must hold only scheme, host and port (no path, query, fragment or user info); put the endpoint path in upstream.path"
	// +optional
	URL string `json:"url,omitempty"`

	// path is the upstream's MCP endpoint path.
	// +kubebuilder:default="/mcp"
	// +optional
	Path URLPath `json:"path,omitempty"`

	// isolation keeps everything but this McpServer's gateway away from a
	// service upstream, with NetworkPolicies. On by default for service
	// upstreams; it needs a CNI that enforces NetworkPolicy. With a url
	// upstream, leave it out or set enabled to false.
	// +optional
	Isolation *UpstreamIsolation `json:"isolation,omitempty"`

	// credentials are headers the gateway sets on every request it forwards
	// to the upstream, for the upstream's own authentication: service keys
	// from Secrets, and the calling user's own token at an OAuth provider,
	// which Clerk holds. Inbound headers of these names are removed first,
	// so a client can never supply or override one. Credentials go only to
	// a Service upstream or an https url upstream.
	// +optional
	Credentials *UpstreamCredentials `json:"credentials,omitempty"`
}

// UpstreamCredentials are what the gateway adds to forwarded requests. At
// least one of headers and userOAuthToken is set, and no two of them name
// the same header, compared without regard to case and with '_' read as
// '-' (as CGI-style upstreams read header names).
// +kubebuilder:validation:XValidation:rule="has(self.headers) || has(self.userOAuthToken)",message="credentials need headers or userOAuthToken; to send none, remove credentials",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="!has(self.headers) || self.headers.all(h, self.headers.exists_one(o, o.name.lowerAscii().replace('_', '-') == h.name.lowerAscii().replace('_', '-')))",message="each header appears once: names are compared without regard to case and with '_' read as '-'",fieldPath=".headers"
// +kubebuilder:validation:XValidation:rule="!has(self.headers) || !has(self.userOAuthToken) || !self.headers.exists(h, h.name.lowerAscii().replace('_', '-') == (has(self.userOAuthToken.header) ? self.userOAuthToken.header : 'Authorization').lowerAscii().replace('_', '-'))",message="userOAuthToken.header is also in headers: each header has one source",fieldPath=".userOAuthToken.header"
type UpstreamCredentials struct {
	// headers are set from keys of Secrets in the McpServer's namespace. Each
	// key reaches the gateway as a file from a read-only Secret volume, never
	// through a ConfigMap, an argument or the environment, and is read again
	// when the Secret changes: rotating a Secret needs no restart. A missing
	// Secret or key holds the McpServer at Ready=False (SecretNotFound).
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Headers []CredentialHeader `json:"headers,omitempty"`

	// userOAuthToken sets the calling user's access token at an OAuth
	// provider, which Clerk holds from the user's social connection, on
	// every request. A user who has not connected the provider gets an
	// error pointing at connectURL instead of an upstream failure.
	// +optional
	UserOAuthToken *UserOAuthToken `json:"userOAuthToken,omitempty"`
}

// CredentialHeader is one header the gateway sets from a Secret key.
type CredentialHeader struct {
	// name of the header, such as X-Api-Key.
	// +required
	Name HeaderName `json:"name"`

	// secretKeyRef selects the key of a Secret, in the McpServer's namespace,
	// that holds the header's value. Surrounding whitespace, such as a
	// trailing newline, is not part of the value, and an empty value is an
	// error: the gateway then refuses requests (503) rather than send them
	// without the credential.
	// +required
	SecretKeyRef SecretKeyReference `json:"secretKeyRef"`

	// prefix goes before the Secret's value, such as "Bearer " for an
	// Authorization header. Empty sends the value alone.
	// +optional
	Prefix HeaderValuePrefix `json:"prefix,omitempty"`
}

// UserOAuthToken is the calling user's token at an OAuth provider.
type UserOAuthToken struct {
	// provider is the OAuth provider as Clerk names it: oauth_ followed by
	// the provider, such as oauth_github, oauth_google or oauth_custom_acme.
	// +kubebuilder:validation:MaxLength=70
	// +kubebuilder:validation:XValidation:rule="self.matches('^oauth_[a-z0-9_]+$')",message="must be a Clerk OAuth provider such as oauth_github or oauth_custom_acme: 'oauth_' then lowercase letters, digits and '_'"
	// +required
	Provider string `json:"provider"`

	// header receives the token; Authorization by default.
	// +kubebuilder:default=Authorization
	// +optional
	Header HeaderName `json:"header,omitempty"`

	// prefix goes before the token; "Bearer " by default. Set it to "" to
	// send the token alone.
	// +kubebuilder:default="Bearer "
	// +optional
	Prefix *HeaderValuePrefix `json:"prefix,omitempty"`

	// connectURL is where a user who has not connected the provider is sent
	// to connect it, such as a page of your application: an absolute https
	// URL without user info, as every user sees it. Unset, it is the
	// Clerk instance's Account Portal profile page when the issuer is a
	// Clerk Frontend API host it can be derived from (clerk.<domain> or
	// <slug>.clerk.accounts.dev), where a user can connect social accounts;
	// otherwise there is none.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() == 'https' && size(url(self).getHostname()) > 0",message="must be an absolute https URL"
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z]+://[^/?#@]+([/?#].*)?$')",message="must not hold user info: it is shown to every user"
	// +optional
	ConnectURL string `json:"connectURL,omitempty"`
}

// HeaderName is an HTTP header name (an RFC 9110 token) that the gateway
// may set on forwarded requests. Names the proxy, HTTP itself or the
// gateway own are refused, compared without regard to case and with '_'
// read as '-': Host, Content-Length, Content-Type, Transfer-Encoding,
// Connection, Keep-Alive, TE, Trailer, Upgrade, Proxy-*, Cookie,
// Forwarded, X-Forwarded-*, X-Request-Id, the identity headers
// X-Mcpgate-* and the MCP transport's Mcp-*.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=128
// +kubebuilder:validation:XValidation:rule=`self.matches("^[-!#$%&'*+.^_|~0-9A-Za-z\x60]+$")`,message="must be an HTTP header name: letters, digits and !#$%&'*+-.^_`|~"
// +kubebuilder:validation:XValidation:rule="!(self.lowerAscii().replace('_', '-') in ['host', 'content-length', 'content-type', 'transfer-encoding', 'connection', 'keep-alive', 'te', 'trailer', 'upgrade', 'cookie', 'forwarded', 'x-request-id'])",message="is a header the proxy or HTTP itself sets; it cannot carry a credential"
// +kubebuilder:validation:XValidation:rule="!self.lowerAscii().replace('_', '-').startsWith('proxy-') && !self.lowerAscii().replace('_', '-').startsWith('x-forwarded-')",message="is a header the proxy sets (Proxy-*, X-Forwarded-*); it cannot carry a credential"
// +kubebuilder:validation:XValidation:rule="!self.lowerAscii().replace('_', '-').startsWith('x-mcpgate-') && !self.lowerAscii().replace('_', '-').startsWith('mcp-')",message="is reserved: X-Mcpgate-* are the gateway's identity headers and Mcp-* belong to the MCP transport"
type HeaderName string

// HeaderValuePrefix is text put before a credential in a header value:
// printable ASCII and spaces, such as "Bearer ".
// +kubebuilder:validation:MaxLength=64
// +kubebuilder:validation:XValidation:rule="self.matches('^[ -~]*$')",message="must be printable ASCII text such as 'Bearer '"
type HeaderValuePrefix string

// UpstreamIsolation configures the NetworkPolicies around a service upstream.
type UpstreamIsolation struct {
	// enabled applies a NetworkPolicy that admits traffic to the upstream
	// Service's pods only from this McpServer's gateway pods, on the
	// upstream port. false removes it.
	// +kubebuilder:default=true
	// +optional
	Enabled bool `json:"enabled"`

	// gatewayEgress also limits what the gateway pods may reach: the
	// upstream's pods on the upstream port, cluster DNS, and HTTPS (port
	// 443) anywhere, for Clerk. Off by default.
	// +optional
	GatewayEgress bool `json:"gatewayEgress,omitempty"`
}

// UpstreamService points at a port of a Service in the McpServer's namespace.
type UpstreamService struct {
	// name of the Service: lowercase letters, digits and '-', starting
	// with a letter.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="must be a Service name: lowercase letters, digits and '-', starting with a letter"
	// +required
	Name string `json:"name"`

	// port is the Service port, by number (1 to 65535, used as is) or by
	// name (looked up in the Service's spec.ports, not the target port).
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? (self >= 1 && self <= 65535) : (size(self) <= 15 && self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))",message="must be a port number from 1 to 65535 or a port name"
	// +required
	Port intstr.IntOrString `json:"port"`
}

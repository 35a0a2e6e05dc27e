package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// McpServerSpec declares one MCP server to publish behind an authenticating gateway.
// +kubebuilder:validation:XValidation:rule="!(has(self.ingress) && has(self.httpRoute))",message="set spec.ingress or spec.httpRoute, not both"
// +kubebuilder:validation:XValidation:rule="!has(self.toolScopeChallenge) || self.toolScopeChallenge != 'AtSignIn' || (has(self.toolScopes) && size(self.toolScopes) > 0)",message="toolScopeChallenge AtSignIn asks for the toolScopes at sign-in, and there are none: add toolScopes or set StepUp",fieldPath=".toolScopeChallenge",reason=FieldValueInvalid
type McpServerSpec struct {
	// upstream is the MCP server the gateway forwards authorized traffic to.
	// +required
	Upstream Upstream `json:"upstream"`

	// path is the public path of the MCP endpoint on the gateway.
	// +kubebuilder:default="/mcp"
	// +optional
	Path URLPath `json:"path,omitempty"`

	// scopes must all be present in every access token. They are advertised
	// in the protected resource metadata as scopes_supported.
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +optional
	Scopes []Scope `json:"scopes,omitempty"`

	// toolScopes asks for extra scopes before particular tools may be called
	// (step-up authorization): a tools/call for one of these tools needs both
	// spec.scopes and the tool's scopes.
	// +listType=map
	// +listMapKey=tool
	// +kubebuilder:validation:MaxItems=64
	// +optional
	ToolScopes []ToolScope `json:"toolScopes,omitempty"`

	// toolScopeChallenge says when clients are asked for the toolScopes;
	// AtSignIn needs toolScopes.
	// StepUp (the default) asks at sign-in for spec.scopes only, and for a
	// tool's scopes with a 403 insufficient_scope when it is called: least
	// privilege, but clients that register once, such as those built on
	// the TypeScript MCP SDK (Claude Desktop, Cursor, mcp-remote), may
	// never obtain them. AtSignIn names every tool scope in the sign-in
	// challenge too, so the person consents to them all once; it costs
	// least privilege, as every token then carries every tool's scopes.
	// Either way a token needs only the scopes of what it calls, and a
	// refusal tells the person what to do. See docs/step-up.md.
	// +kubebuilder:default=StepUp
	// +optional
	ToolScopeChallenge ToolScopeChallenge `json:"toolScopeChallenge,omitempty"`

	// access limits which users, among those holding a valid access token
	// with the scopes, may call the server and particular tools, by what
	// Clerk knows about them: organization membership (with a role or
	// permission), a verified email domain, or the user ID. A caller the
	// rules refuse gets a 403 with a JSON-RPC error, and tools/list shows
	// each caller only the tools they may call. Without access, every
	// signed-in user may call every tool (status.access AnySignedInUser).
	// +optional
	Access *AccessSpec `json:"access,omitempty"`

	// clerk names the Clerk instance that issues the access tokens.
	// +required
	Clerk ClerkSpec `json:"clerk"`

	// ingress publishes the gateway through an Ingress; set it or httpRoute,
	// not both. Without either, the gateway is reachable only through its
	// in-cluster Service.
	// +optional
	Ingress *IngressSpec `json:"ingress,omitempty"`

	// httpRoute publishes the gateway through a Gateway API HTTPRoute
	// (gateway.networking.k8s.io/v1) instead of an Ingress; set it or
	// ingress, not both. The public URL is https://<first hostname><path>.
	// The operator needs the Gateway API CRDs installed when it starts.
	// +optional
	HTTPRoute *HTTPRouteSpec `json:"httpRoute,omitempty"`

	// gateway tunes the gateway Deployment.
	// +kubebuilder:default={}
	// +optional
	Gateway GatewaySpec `json:"gateway,omitempty"`
}

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

// URLPath is an absolute URL path such as /mcp: either / or '/'-separated
// segments of URL path characters (A-Z a-z 0-9 . _ ~ ! $ & ( ) * + , ; = : @ % -),
// without empty segments, a trailing '/', '..', '?' or '#'.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=256
// +kubebuilder:validation:XValidation:rule="self.startsWith('/')",message="must start with '/'"
// +kubebuilder:validation:XValidation:rule="!self.contains('?') && !self.contains('#')",message="must not contain a query or fragment ('?' or '#')"
// +kubebuilder:validation:XValidation:rule="!self.contains('..')",message="must not contain '..'"
// +kubebuilder:validation:XValidation:rule="self == '/' || self.matches('^(/[A-Za-z0-9._~!$&()*+,;=:@%-]+)+$')",message="must be '/' or '/'-separated segments of URL path characters, without empty segments or a trailing '/'"
type URLPath string

// Scope is an OAuth scope token (RFC 6749 section 3.3): printable ASCII
// without spaces, quotes or backslashes.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=128
// +kubebuilder:validation:XValidation:rule=`self.matches('^[!#-\\[\\]-~]+$')`,message="must be a non-empty scope without spaces, quotes or backslashes"
type Scope string

// ToolName is an MCP tool name, as in tools/list: printable ASCII without spaces.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=128
// +kubebuilder:validation:XValidation:rule="self.matches('^[!-~]+$')",message="must be a tool name without spaces"
type ToolName string

// ToolScope is the set of scopes a tools/call for one tool needs, on top of spec.scopes.
type ToolScope struct {
	// tool is the MCP tool name, as in tools/list.
	// +required
	Tool ToolName `json:"tool"`

	// scopes the tool needs.
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +required
	Scopes []Scope `json:"scopes"`
}

// ToolScopeChallenge says when clients are asked for an McpServer's tool
// scopes: StepUp or AtSignIn.
// +kubebuilder:validation:Enum=StepUp;AtSignIn
type ToolScopeChallenge string

// The values of spec.toolScopeChallenge.
const (
	// ToolScopeChallengeStepUp asks for a tool's scopes when it is called,
	// with a 403 insufficient_scope (step-up authorization).
	ToolScopeChallengeStepUp ToolScopeChallenge = "StepUp"
	// ToolScopeChallengeAtSignIn asks for every tool's scopes at sign-in,
	// in the 401 challenge, for clients that cannot step up.
	ToolScopeChallengeAtSignIn ToolScopeChallenge = "AtSignIn"
)

// AccessSpec holds the rules on who may call an McpServer and its tools.
// Scopes bound what a client may do on a user's behalf; these rules bound
// which users may use the server at all. At least one of allow and
// toolAccess is set: to admit every signed-in user, leave access out.
// +kubebuilder:validation:XValidation:rule="has(self.allow) || has(self.toolAccess)",message="access needs access.allow or access.toolAccess rules; to admit every signed-in user, remove access",reason=FieldValueRequired
type AccessSpec struct {
	// allow admits a request when any entry matches the caller; every
	// other caller is refused. Unset, every signed-in user may call the
	// server, and only toolAccess restricts particular tools.
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +optional
	Allow []AccessRule `json:"allow,omitempty"`

	// toolAccess restricts who may call particular tools: a tools/call of
	// a listed tool needs a match in allow (when set) and in the tool's own
	// allow. Tools not listed need only a match in allow. A tool appears at
	// most once.
	// +listType=map
	// +listMapKey=tool
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +optional
	ToolAccess []ToolAccess `json:"toolAccess,omitempty"`

	// cacheTTL is how long a gateway trusts what it learned about a user
	// from Clerk (verified email addresses, organization memberships, roles
	// and permissions) before asking again. It bounds how long a user keeps
	// access after leaving an organization or losing a role. From 5s to 1h;
	// default 60s.
	// +kubebuilder:default="60s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$')",message="must be a duration such as 60s, 5m or 1h"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || (duration(self) >= duration('5s') && duration(self) <= duration('1h'))",message="must be from 5s to 1h"
	// +optional
	CacheTTL *metav1.Duration `json:"cacheTTL,omitempty"`
}

// ToolAccess lists who may call one tool.
type ToolAccess struct {
	// tool is the MCP tool name, as in tools/list.
	// +required
	Tool ToolName `json:"tool"`

	// allow admits a tools/call of the tool when any entry matches the
	// caller (who must also match spec.access.allow, when set).
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +required
	Allow []AccessRule `json:"allow"`
}

// AccessRule matches callers by one fact Clerk holds about them. Exactly one
// of organization, emailDomain and user is set; roles and permissions
// narrow an organization entry. To admit callers matching any of several
// facts, list several entries.
// +kubebuilder:validation:XValidation:rule="has(self.organization) || has(self.emailDomain) || has(self.user)",message="an access entry must set one of organization, emailDomain or user",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="(has(self.organization) ? 1 : 0) + (has(self.emailDomain) ? 1 : 0) + (has(self.user) ? 1 : 0) <= 1",message="an access entry sets only one of organization, emailDomain or user; list several entries to admit any of them",reason=FieldValueForbidden
// +kubebuilder:validation:XValidation:rule="!has(self.roles) || has(self.organization)",message="roles apply only to an organization entry",fieldPath=".roles",reason=FieldValueForbidden
// +kubebuilder:validation:XValidation:rule="!has(self.permissions) || has(self.organization)",message="permissions apply only to an organization entry",fieldPath=".permissions",reason=FieldValueForbidden
type AccessRule struct {
	// organization admits members of a Clerk organization, given by its ID
	// (org_...) or its slug. With roles or permissions, only members who
	// also have one of those roles and hold one of those permissions.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('org_') || self.matches('^org_[A-Za-z0-9]+$')",message="must be an organization ID (org_ followed by letters and digits) or slug"
	// +kubebuilder:validation:XValidation:rule="self.startsWith('org_') || self.matches('^[a-z0-9-]+$')",message="must be an organization slug (lowercase letters, digits and '-') or ID (org_...)"
	// +optional
	Organization string `json:"organization,omitempty"`

	// roles, in an organization entry, admits only members whose role is
	// any of these keys, such as org:admin or org:member.
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Roles []OrganizationRole `json:"roles,omitempty"`

	// permissions, in an organization entry, admits only members whose role
	// grants any of these permission keys, such as org:tools:write or
	// org:sys_memberships:manage.
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Permissions []OrganizationPermission `json:"permissions,omitempty"`

	// emailDomain admits users with a verified email address in exactly
	// this domain, such as example.com (not its subdomains), compared
	// without regard to case. Dot-separated DNS labels, without '@', a
	// wildcard or a trailing dot.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?([.][A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)+$')",message="must be an email domain such as example.com: dot-separated DNS labels, without '@', a wildcard or a trailing dot"
	// +optional
	EmailDomain string `json:"emailDomain,omitempty"`

	// user admits one Clerk user, by ID (user_...).
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^user_[A-Za-z0-9]+$')",message="must be a Clerk user ID: user_ followed by letters and digits"
	// +optional
	User string `json:"user,omitempty"`
}

// OrganizationRole is a Clerk organization role key: org: followed by
// lowercase letters, digits and '_', such as org:admin.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=128
// +kubebuilder:validation:XValidation:rule="self.matches('^org:[a-z0-9_]+$')",message="must be an organization role key such as org:admin: 'org:' then lowercase letters, digits and '_'"
type OrganizationRole string

// OrganizationPermission is a Clerk organization permission key,
// org:<feature>:<action>, such as org:tools:write.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=128
// +kubebuilder:validation:XValidation:rule="self.matches('^org:[a-z0-9_]+:[a-z0-9_]+$')",message="must be an organization permission key such as org:tools:write: 'org:', a feature and an action of lowercase letters, digits and '_', separated by ':'"
type OrganizationPermission string

// ClerkSpec identifies the Clerk instance that is the authorization server:
// either by reference to a ClerkInstance or ClusterClerkInstance the platform
// team defined once, or inline. Inline, the token issuer comes from
// publishableKey or is given as issuer, never both.
// +kubebuilder:validation:XValidation:rule="!has(self.instanceRef) || !(has(self.publishableKey) || has(self.issuer) || has(self.secretKeyRef) || has(self.dynamicClientRegistration) || has(self.clientIdMetadataDocuments) || has(self.jwtAccessTokens))",message="set clerk.instanceRef or the inline fields (publishableKey or issuer, secretKeyRef and the settings), not both",fieldPath=".instanceRef",reason=FieldValueForbidden
// +kubebuilder:validation:XValidation:rule="has(self.instanceRef) || has(self.publishableKey) != has(self.issuer)",message="exactly one of clerk.publishableKey or clerk.issuer must be set, unless clerk.instanceRef is"
// +kubebuilder:validation:XValidation:rule="has(self.instanceRef) || has(self.secretKeyRef)",message="clerk.secretKeyRef is required, unless clerk.instanceRef is set",fieldPath=".secretKeyRef",reason=FieldValueRequired
type ClerkSpec struct {
	// instanceRef uses a ClerkInstance in the McpServer's namespace, or a
	// ClusterClerkInstance, for the issuer, the secret key and the instance
	// settings. The instance object owns the settings, so McpServers that
	// share it cannot disagree about them.
	// +optional
	InstanceRef *ClerkInstanceReference `json:"instanceRef,omitempty"`

	// publishableKey is the instance's publishable key (pk_test_... or
	// pk_live_...); it encodes the Frontend API host, which is the issuer.
	// +optional
	PublishableKey PublishableKey `json:"publishableKey,omitempty"`

	// issuer is the Frontend API URL, for Clerk proxy and custom-domain setups.
	// It must equal the iss claim of the instance's tokens. https is required,
	// except for loopback hosts (localhost, 127.0.0.1, ::1) in local development.
	// +optional
	Issuer IssuerURL `json:"issuer,omitempty"`

	// secretKeyRef selects the key of a Secret, in the McpServer's namespace,
	// that holds the instance's secret key (sk_...). The gateway reads it from
	// a mounted file; it never appears in a ConfigMap, an argument or an
	// environment value. Required without instanceRef.
	// +optional
	SecretKeyRef SecretKeyReference `json:"secretKeyRef,omitzero"`

	ClerkSettings `json:",inline"`
}

// ClerkInstanceReference names a ClerkInstance in the McpServer's namespace
// or a ClusterClerkInstance.
type ClerkInstanceReference struct {
	// kind of the instance object.
	// +kubebuilder:validation:Enum=ClerkInstance;ClusterClerkInstance
	// +kubebuilder:default=ClerkInstance
	// +optional
	Kind string `json:"kind,omitempty"`

	// name of the instance object (a lowercase DNS subdomain).
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="must be an object name (a lowercase DNS subdomain)"
	// +required
	Name string `json:"name"`
}

// Kinds an McpServer's clerk.instanceRef may name.
const (
	KindClerkInstance        = "ClerkInstance"
	KindClusterClerkInstance = "ClusterClerkInstance"
)

// PublishableKey is a Clerk publishable key.
// +kubebuilder:validation:MaxLength=512
// +kubebuilder:validation:XValidation:rule="self.matches('^pk_(test|live)_[A-Za-z0-9+/_=-]+$')",message="must be a Clerk publishable key: pk_test_... or pk_live_..."
type PublishableKey string

// IssuerURL is a Clerk Frontend API URL, exactly as in the tokens' iss
// claim: https (plain http only for localhost, 127.0.0.1 and ::1), without
// a trailing '/', a query or a fragment.
// +kubebuilder:validation:MaxLength=512
// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https'] && size(url(self).getHostname()) > 0",message="must be an absolute https URL"
// +kubebuilder:validation:XValidation:rule="!isURL(self) || url(self).getScheme() == 'https' || url(self).getHostname() in ['localhost', '127.0.0.1', '::1']",message="must use https; plain http is allowed only for the loopback hosts localhost, 127.0.0.1 and ::1"
// +kubebuilder:validation:XValidation:rule="!self.endsWith('/') && !self.contains('?') && !self.contains('#')",message="must not end with '/' or hold a query or fragment: it must equal the tokens' iss claim exactly"
type IssuerURL string

// ClerkSettings are the OAuth application settings of a Clerk instance that
// mcpgate keeps. An unset field leaves the instance's setting alone.
type ClerkSettings struct {
	// dynamicClientRegistration turns the instance's RFC 7591 dynamic client
	// registration (dynamic_oauth_client_registration) on or off, which MCP
	// clients such as Claude and Cursor use to register themselves. Unset
	// leaves the instance setting alone.
	// +optional
	DynamicClientRegistration *bool `json:"dynamicClientRegistration,omitempty"`

	// clientIdMetadataDocuments makes the instance advertise support for
	// OAuth Client ID Metadata Documents
	// (client_id_metadata_documents_advertised). Unset leaves the setting
	// alone.
	// +optional
	ClientIDMetadataDocuments *bool `json:"clientIdMetadataDocuments,omitempty"`

	// jwtAccessTokens makes the instance issue JWT access tokens (verified by
	// the gateway locally) rather than opaque ones (verified with a Backend
	// API call, then cached): oauth_jwt_access_tokens. Unset leaves the
	// setting alone.
	// +optional
	JWTAccessTokens *bool `json:"jwtAccessTokens,omitempty"`
}

// SecretKeyReference selects one key of a Secret in the same namespace. The
// name is a lowercase DNS subdomain; the key holds letters, digits, '-', '_'
// and '.'.
type SecretKeyReference struct {
	// name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="must be a Secret name (a lowercase DNS subdomain)"
	// +required
	Name string `json:"name"`

	// key within the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[-._a-zA-Z0-9]+$')",message="must be a Secret key: letters, digits, '-', '_' and '.'"
	// +required
	Key string `json:"key"`
}

// IngressSpec publishes the gateway on a host through an Ingress.
type IngressSpec struct {
	// host is the public DNS name clients connect to: lowercase, without a
	// wildcard.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="must be a lowercase DNS name such as tools.example.com"
	// +required
	Host string `json:"host"`

	// className is the IngressClass; empty uses the cluster's default class.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ClassName *string `json:"className,omitempty"`

	// tls terminates TLS for host with a certificate from a Secret, and
	// makes status.url https.
	// +optional
	TLS *IngressTLS `json:"tls,omitempty"`

	// annotations are copied onto the Ingress (for the ingress controller,
	// cert-manager and the like).
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// IngressTLS names the Secret holding the certificate for the Ingress host.
type IngressTLS struct {
	// secretName of a kubernetes.io/tls Secret in the McpServer's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	SecretName string `json:"secretName"`
}

// GatewaySpec tunes the gateway Deployment.
// +kubebuilder:validation:XValidation:rule="!has(self.autoscaling) || (has(self.resources) && has(self.resources.requests) && 'cpu' in self.resources.requests)",message="autoscaling on CPU needs resources.requests.cpu"
type GatewaySpec struct {
	// replicas of the gateway. With more than one, a PodDisruptionBudget keeps
	// one available during voluntary disruptions. Ignored while autoscaling
	// is set.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// resources of the gateway container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// autoscaling hands the number of gateway pods to a
	// HorizontalPodAutoscaler that follows their CPU use. It needs
	// resources.requests.cpu; while it is set, replicas is ignored and the
	// autoscaler owns the Deployment's replica count.
	// +optional
	Autoscaling *GatewayAutoscaling `json:"autoscaling,omitempty"`

	// allowedOrigins are browser origins, such as https://inspector.example.com,
	// allowed to call the MCP endpoint besides the endpoint's own. A request
	// with any other Origin header is refused (403), which defeats DNS
	// rebinding; requests without an Origin header, as from most MCP clients,
	// are not affected.
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +optional
	AllowedOrigins []Origin `json:"allowedOrigins,omitempty"`
}

// GatewayAutoscaling bounds the gateway pods and sets the CPU utilization
// (of resources.requests.cpu) the autoscaler aims for.
// +kubebuilder:validation:XValidation:rule="self.minReplicas <= self.maxReplicas",message="minReplicas must not exceed maxReplicas"
type GatewayAutoscaling struct {
	// minReplicas is the fewest gateway pods. With more than one, a
	// PodDisruptionBudget keeps one available during voluntary disruptions.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	MinReplicas int32 `json:"minReplicas,omitempty"`

	// maxReplicas is the most gateway pods.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +required
	MaxReplicas int32 `json:"maxReplicas"`

	// targetCPUUtilizationPercentage is the average CPU use, as a percentage
	// of the requested CPU, that the autoscaler keeps the pods at.
	// +kubebuilder:default=80
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	TargetCPUUtilizationPercentage int32 `json:"targetCPUUtilizationPercentage,omitempty"`
}

// HTTPRouteSpec attaches the gateway to Gateway API Gateways.
type HTTPRouteSpec struct {
	// parentRefs are the Gateways, or their listeners, the route attaches to.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +required
	ParentRefs []ParentReference `json:"parentRefs"`

	// hostnames the route serves; the first is the public host of the
	// endpoint and of its resource metadata.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +listType=set
	// +required
	Hostnames []RouteHostname `json:"hostnames"`
}

// ParentReference names a Gateway API parent, as in HTTPRoute's parentRefs.
type ParentReference struct {
	// group of the parent.
	// +kubebuilder:default="gateway.networking.k8s.io"
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Group string `json:"group,omitempty"`
	// kind of the parent.
	// +kubebuilder:default="Gateway"
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Kind string `json:"kind,omitempty"`
	// namespace of the parent; the McpServer's when empty. The Gateway must
	// allow routes from this namespace.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// name of the parent.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
	// sectionName is a listener of the parent.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	SectionName string `json:"sectionName,omitempty"`
	// port is a listener port of the parent.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port *int32 `json:"port,omitempty"`
}

// RouteHostname is a DNS name a route serves, in lowercase, without a
// wildcard.
// +kubebuilder:validation:MaxLength=253
// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="must be a lowercase DNS name such as tools.example.com"
type RouteHostname string

// Origin is a web origin: scheme, host and optional port.
// +kubebuilder:validation:MaxLength=512
// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https'] && size(url(self).getHostname()) > 0 && size(url(self).getEscapedPath()) == 0 && size(url(self).getQuery()) == 0 && !self.contains('#')",message="must be an origin such as https://app.example.com: scheme, host and optional port, nothing else"
type Origin string

// McpServerStatus is what the controller observed and built.
type McpServerStatus struct {
	// observedGeneration is the generation of the spec this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// url is the MCP endpoint clients connect to: https://host/path behind an
	// Ingress with TLS or an HTTPRoute, http://host/path behind an Ingress
	// without TLS, and http://<name>-gateway.<namespace>.svc/path otherwise.
	// It is derived from the spec alone, so it is set even while the
	// McpServer is not ready.
	// +optional
	URL string `json:"url,omitempty"`

	// resourceMetadataURL is where the RFC 9728 protected resource metadata is
	// served: url's origin plus /.well-known/oauth-protected-resource and the
	// path (no suffix when the path is /).
	// +optional
	ResourceMetadataURL string `json:"resourceMetadataURL,omitempty"`

	// issuer is the token issuer (the Clerk Frontend API URL) the gateway
	// accepts: spec.clerk.issuer, decoded from the publishable key, or the
	// instance object's.
	// +optional
	Issuer string `json:"issuer,omitempty"`

	// readyReplicas is the number of gateway pods ready to serve.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`

	// access is Restricted when spec.access has rules on who may call the
	// server or some of its tools, and AnySignedInUser when every user with
	// a valid access token (and the scopes) may call every tool. kubectl get
	// shows it as ACCESS.
	// +optional
	Access AccessMode `json:"access,omitempty"`

	// conditions: Ready, ClerkConfigured, GatewayAvailable, IngressReady
	// with an Ingress, HTTPRouteReady with an HTTPRoute, UpstreamIsolated
	// while isolation is enabled, and the kstatus Reconciling and Stalled
	// while they apply. docs/conditions.md lists their reasons.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// AccessMode summarizes spec.access for status.access and kubectl get.
// +kubebuilder:validation:Enum=Restricted;AnySignedInUser
type AccessMode string

// The values of status.access.
const (
	// AccessRestricted: spec.access has allow or toolAccess rules.
	AccessRestricted AccessMode = "Restricted"
	// AccessAnySignedInUser: no access rules; a valid token with the
	// scopes is enough.
	AccessAnySignedInUser AccessMode = "AnySignedInUser"
)

// McpServer publishes an MCP server behind a gateway that requires Clerk-issued
// OAuth access tokens, as the MCP authorization specification describes.
// Namespaced; short name mcps; category mcpgate, so kubectl get mcpgate
// lists it with the Clerk instance objects. Its name is at most 55
// characters, starts with a letter and holds no '.', because it names the
// gateway's Service, <name>-gateway.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mcps,categories=mcpgate
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.status.url`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Access",type=string,JSONPath=`.status.access`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 55 && !self.metadata.name.contains('.') && self.metadata.name.charAt(0) >= 'a' && self.metadata.name.charAt(0) <= 'z'",message="metadata.name must be at most 55 characters, start with a letter and contain no '.': it names the gateway's Service (<name>-gateway)"
type McpServer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the MCP server to publish.
	// +required
	Spec McpServerSpec `json:"spec"`

	// status is what the controller observed.
	// +optional
	Status McpServerStatus `json:"status,omitempty"`
}

// McpServerList is a list of McpServer.
//
// +kubebuilder:object:root=true
type McpServerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []McpServer `json:"items"`
}

func init() {
	SchemeBuilder.Register(&McpServer{}, &McpServerList{})
}

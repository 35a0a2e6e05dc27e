package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
// +kubebuilder:validation:XValidation:rule="!has(self.autoscaling) || !has(self.resources) || (!has(self.resources.limits) && !has(self.resources.requests) && !has(self.resources.claims)) || (has(self.resources.requests) && 'cpu' in self.resources.requests)",message="autoscaling on CPU needs resources.requests.cpu when resources are set (leave resources out for the default requests, which include CPU)"
type GatewaySpec struct {
	// replicas of the gateway. With more than one, a PodDisruptionBudget keeps
	// one available during voluntary disruptions. Ignored while autoscaling
	// is set.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// resources of the gateway container. Left out (or empty), the gateway
	// gets requests of 100m CPU and 64Mi memory and a 256Mi memory limit, so
	// that it is not BestEffort and CPU autoscaling works; set any field to
	// replace these defaults as a whole.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// autoscaling hands the number of gateway pods to a
	// HorizontalPodAutoscaler that follows their CPU use, measured against
	// resources.requests.cpu (the default requests have it); while it is
	// set, replicas is ignored and the autoscaler owns the Deployment's
	// replica count.
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

	// audit tunes the gateway's audit stream of MCP requests and refusals,
	// on by default, without tool arguments. See docs/observability.md.
	// +optional
	Audit *GatewayAudit `json:"audit,omitempty"`

	// tracing sends the gateway's OpenTelemetry spans to an OTLP/HTTP
	// receiver. Unset: the operator's default (chart value
	// tracing.gatewayDefaults), which is off unless the platform team set one.
	// +optional
	Tracing *GatewayTracing `json:"tracing,omitempty"`
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

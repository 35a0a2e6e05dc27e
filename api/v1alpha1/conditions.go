package v1alpha1

// Condition types of an McpServer. All have positive polarity: True is good.
const (
	// ConditionReady is True when the gateway serves the MCP endpoint at
	// status.url: its Secrets are in place, it is available and, with an
	// Ingress, the Ingress has an address.
	ConditionReady = "Ready"

	// ConditionGatewayAvailable mirrors the Available condition of the
	// gateway Deployment.
	ConditionGatewayAvailable = "GatewayAvailable"

	// ConditionClerkConfigured is True when the Clerk instance's OAuth
	// application settings match what the McpServers using it declare, or
	// when this McpServer declares none.
	ConditionClerkConfigured = "ClerkConfigured"

	// ConditionIngressReady is True when the Ingress has a load balancer
	// address. It is present only when spec.ingress is set.
	ConditionIngressReady = "IngressReady"

	// ConditionHTTPRouteReady is True when every parent Gateway has
	// accepted the HTTPRoute. It is present only when spec.httpRoute is set.
	ConditionHTTPRouteReady = "HTTPRouteReady"

	// ConditionReconciling is True while the McpServer is on its way to
	// Ready (kstatus convention); its reason and message are Ready's. It is
	// absent otherwise.
	ConditionReconciling = "Reconciling"

	// ConditionStalled is True when the McpServer cannot become Ready until
	// someone changes something (kstatus convention): an invalid spec, a
	// host and path another McpServer holds, a Clerk key or settings that
	// Clerk refuses. It is absent otherwise.
	ConditionStalled = "Stalled"

	// ConditionUpstreamIsolated is True when a NetworkPolicy admits only the
	// gateway to the upstream's pods. It is present only while isolation is
	// enabled for a service upstream; it does not gate Ready.
	ConditionUpstreamIsolated = "UpstreamIsolated"
)

// Condition reasons of an McpServer.
const (
	// ReasonRouteAccepted: every parent accepted the route (HTTPRouteReady=True).
	ReasonRouteAccepted = "Accepted"
	// ReasonRoutePending: a parent has not reported on the route yet (HTTPRouteReady=False).
	ReasonRoutePending = "Pending"
	// ReasonRouteNotAccepted: a parent refused the route; the message says why (HTTPRouteReady=False).
	ReasonRouteNotAccepted = "NotAccepted"
	// ReasonGatewayAPIUnavailable: the cluster has no HTTPRoute API (the
	// Gateway API CRDs are not installed), so spec.httpRoute cannot be served
	// (HTTPRouteReady=False).
	ReasonGatewayAPIUnavailable = "GatewayAPIUnavailable"
	// ReasonPolicyApplied: the upstream's pods admit only the gateway (UpstreamIsolated=True).
	ReasonPolicyApplied = "PolicyApplied"
	// ReasonNoSelector: the upstream Service selects no pods itself (its
	// endpoints are managed elsewhere), so no policy can name them (UpstreamIsolated=False).
	ReasonNoSelector = "NoSelector"
	// ReasonUpstreamNotFound: the upstream Service does not exist (UpstreamIsolated=False).
	ReasonUpstreamNotFound = "UpstreamNotFound"
	// ReasonReady: every part is in place (Ready=True).
	ReasonReady = "Ready"
	// ReasonInvalidSpec: the spec passed validation but cannot be acted on,
	// such as a publishable key that does not decode (Ready=False).
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonSecretNotFound: the Clerk Secret, or its key, or that of an
	// upstream credential header, does not exist (Ready=False). The message
	// names the Secret, the key and, for a credential, the header.
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonClerkInstanceNotFound: the ClerkInstance or ClusterClerkInstance
	// that spec.clerk.instanceRef names does not exist (Ready=False,
	// ClerkConfigured=False). What was built is left as it is.
	ReasonClerkInstanceNotFound = "ClerkInstanceNotFound"
	// ReasonBrokerRequired: the McpServer references a ClusterClerkInstance
	// and the operator runs without the Clerk key broker, the only way a
	// gateway may use a key kept in the operator's namespace (Ready=False).
	// What was built is left as it is.
	ReasonBrokerRequired = "BrokerRequired"
	// ReasonUpstreamPortNotFound: the named upstream port cannot be resolved
	// from the upstream Service (Ready=False).
	ReasonUpstreamPortNotFound = "UpstreamPortNotFound"
	// ReasonDeploymentAvailable: the gateway Deployment is Available (GatewayAvailable=True).
	ReasonDeploymentAvailable = "DeploymentAvailable"
	// ReasonDeploymentUnavailable: the Deployment is not yet, or no longer, Available.
	ReasonDeploymentUnavailable = "DeploymentUnavailable"
	// ReasonScaledToZero: spec.gateway.replicas is 0 (GatewayAvailable=False).
	ReasonScaledToZero = "ScaledToZero"
	// ReasonAddressAssigned: the Ingress has a load balancer address (IngressReady=True).
	ReasonAddressAssigned = "AddressAssigned"
	// ReasonAddressPending: the ingress controller has not yet given the Ingress an address.
	ReasonAddressPending = "AddressPending"
	// ReasonHostPathConflict: another McpServer already serves the same host
	// and path; this one gets no Ingress until the conflict is resolved.
	ReasonHostPathConflict = "HostPathConflict"
	// ReasonReconcileError: a step failed, such as an API call; it is retried
	// with backoff and the message holds the error (Ready=False).
	ReasonReconcileError = "ReconcileError"
	// ReasonSettingsSynced: the instance settings match the declared ones (ClerkConfigured=True).
	ReasonSettingsSynced = "Synced"
	// ReasonNothingToConfigure: the McpServer declares no instance settings (ClerkConfigured=True).
	ReasonNothingToConfigure = "NothingToConfigure"
	// ReasonConflict: another McpServer using the same Clerk instance declares a
	// different value for a setting; neither value is applied (ClerkConfigured=False).
	ReasonConflict = "Conflict"
	// ReasonClerkUnauthorized: the Backend API refused the secret key (ClerkConfigured=False).
	ReasonClerkUnauthorized = "ClerkUnauthorized"
	// ReasonClerkRateLimited: the Backend API answered 429; retried after Retry-After (ClerkConfigured=False).
	ReasonClerkRateLimited = "ClerkRateLimited"
	// ReasonClerkUnavailable: the Backend API failed or could not be reached;
	// retried with backoff (ClerkConfigured=False).
	ReasonClerkUnavailable = "ClerkUnavailable"
	// ReasonClerkRejected: the Backend API refused the request, such as a 422 (ClerkConfigured=False).
	ReasonClerkRejected = "ClerkRejected"
	// ReasonProgressing: the reconciler has not yet observed every part (Ready=False).
	ReasonProgressing = "Progressing"
)

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ClerkInstanceSpec declares one Clerk instance: how to find its tokens'
// issuer, where its secret key is, and the OAuth application settings mcpgate
// keeps on it. The issuer comes from publishableKey or is given as issuer,
// never both.
// +kubebuilder:validation:XValidation:rule="has(self.publishableKey) != has(self.issuer)",message="exactly one of publishableKey or issuer must be set"
type ClerkInstanceSpec struct {
	// publishableKey is the instance's publishable key (pk_test_... or
	// pk_live_...); it encodes the Frontend API host, which is the issuer.
	// +optional
	PublishableKey PublishableKey `json:"publishableKey,omitempty"`

	// issuer is the Frontend API URL, for Clerk proxy and custom-domain setups.
	// It must equal the iss claim of the instance's tokens. https is required,
	// except for loopback hosts (localhost, 127.0.0.1, ::1) in local development.
	// +optional
	Issuer IssuerURL `json:"issuer,omitempty"`

	// secretKeyRef selects the key of a Secret that holds the instance's
	// secret key (sk_...). For a ClerkInstance the Secret is in the same
	// namespace. For a ClusterClerkInstance it is in the operator's cluster
	// resource namespace, which service teams need no access to: each
	// referencing McpServer's gateway gets a copy in its own namespace.
	// +required
	SecretKeyRef SecretKeyReference `json:"secretKeyRef"`

	ClerkSettings `json:",inline"`

	// defaultScopes are the scopes the instance grants a client that asks
	// for none (default_scopes), compared as a set. Unset leaves the
	// instance setting alone.
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +optional
	DefaultScopes []Scope `json:"defaultScopes,omitempty"`
}

// ObservedClerkSettings are the instance's OAuth application settings as the
// Backend API last returned them.
type ObservedClerkSettings struct {
	// dynamicClientRegistration is dynamic_oauth_client_registration.
	DynamicClientRegistration bool `json:"dynamicClientRegistration"`
	// clientIdMetadataDocuments is client_id_metadata_documents_advertised.
	ClientIDMetadataDocuments bool `json:"clientIdMetadataDocuments"`
	// jwtAccessTokens is oauth_jwt_access_tokens.
	JWTAccessTokens bool `json:"jwtAccessTokens"`
	// defaultScopes is default_scopes.
	// +listType=atomic
	// +optional
	DefaultScopes []string `json:"defaultScopes,omitempty"`
}

// ClerkInstanceStatus is what the controller last observed of the instance.
type ClerkInstanceStatus struct {
	// observedGeneration is the generation of the spec this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// issuer is the token issuer (the Clerk Frontend API URL).
	// +optional
	Issuer string `json:"issuer,omitempty"`

	// settings are the instance's OAuth application settings as last read
	// from Clerk, also those the object declares nothing about.
	// +optional
	Settings *ObservedClerkSettings `json:"settings,omitempty"`

	// lastSyncTime is when the settings were last read from, or written to,
	// Clerk successfully.
	// +optional
	LastSyncTime *metav1.Time `json:"lastSyncTime,omitempty"`

	// conditions: Ready, and the kstatus Reconciling and Stalled.
	// docs/conditions.md lists their reasons.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ClerkInstance is a Clerk instance defined once for the McpServers of its
// namespace, which name it in spec.clerk.instanceRef. It owns the instance's
// OAuth application settings. Namespaced; short name clerk; category mcpgate.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=clerk,categories=mcpgate
// +kubebuilder:printcolumn:name="Issuer",type=string,JSONPath=`.status.issuer`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Last Sync",type=date,JSONPath=`.status.lastSyncTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClerkInstance struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the Clerk instance.
	// +required
	Spec ClerkInstanceSpec `json:"spec"`

	// status is what the controller observed.
	// +optional
	Status ClerkInstanceStatus `json:"status,omitempty"`
}

// ClerkInstanceList is a list of ClerkInstance.
//
// +kubebuilder:object:root=true
type ClerkInstanceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClerkInstance `json:"items"`
}

// ClusterClerkInstance is a Clerk instance defined once for the McpServers of
// every namespace. Its secret key stays in the operator's namespace; each
// referencing McpServer gets a copy for its gateway. Cluster-scoped; short
// name cclerk; category mcpgate.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=cclerk,categories=mcpgate
// +kubebuilder:printcolumn:name="Issuer",type=string,JSONPath=`.status.issuer`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Last Sync",type=date,JSONPath=`.status.lastSyncTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterClerkInstance struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the Clerk instance.
	// +required
	Spec ClerkInstanceSpec `json:"spec"`

	// status is what the controller observed.
	// +optional
	Status ClerkInstanceStatus `json:"status,omitempty"`
}

// ClusterClerkInstanceList is a list of ClusterClerkInstance.
//
// +kubebuilder:object:root=true
type ClusterClerkInstanceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterClerkInstance `json:"items"`
}

// GenericClerkInstance is what a ClerkInstance and a ClusterClerkInstance
// have in common, so that one reconciler serves both.
// +kubebuilder:object:generate=false
type GenericClerkInstance interface {
	metav1.Object
	GetInstanceSpec() *ClerkInstanceSpec
	GetInstanceStatus() *ClerkInstanceStatus
}

// GetInstanceSpec returns the spec.
func (c *ClerkInstance) GetInstanceSpec() *ClerkInstanceSpec { return &c.Spec }

// GetInstanceStatus returns the status.
func (c *ClerkInstance) GetInstanceStatus() *ClerkInstanceStatus { return &c.Status }

// GetInstanceSpec returns the spec.
func (c *ClusterClerkInstance) GetInstanceSpec() *ClerkInstanceSpec { return &c.Spec }

// GetInstanceStatus returns the status.
func (c *ClusterClerkInstance) GetInstanceStatus() *ClerkInstanceStatus { return &c.Status }

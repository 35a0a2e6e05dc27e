package v1alpha1

// AuditMode turns a gateway's audit stream on or off.
// +kubebuilder:validation:Enum=Enabled;Disabled
type AuditMode string

const (
	// AuditEnabled writes one audit record per MCP request that matters.
	AuditEnabled AuditMode = "Enabled"
	// AuditDisabled writes none.
	AuditDisabled AuditMode = "Disabled"
)

// GatewayAudit tunes the gateway's audit stream: one JSON record per
// initialize, tools/list and tools/call, and per refusal of any kind,
// written to the gateway's stdout with "log":"audit". Records never hold a
// token, a secret or a credential header.
type GatewayAudit struct {
	// mode turns the audit stream on (Enabled, the default) or off.
	// +kubebuilder:default=Enabled
	// +optional
	Mode AuditMode `json:"mode,omitempty"`

	// argumentsMaxBytes records a tools/call's arguments, as JSON, when they
	// are at most this many bytes (larger arguments are recorded as
	// truncated, without their content). 0, the default, never records
	// arguments. Arguments can hold personal data or secrets a user typed:
	// whoever reads the gateway's logs then reads them too.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65536
	// +optional
	ArgumentsMaxBytes int32 `json:"argumentsMaxBytes,omitempty"`
}

// GatewayTracing sends the gateway's OpenTelemetry spans to an OTLP/HTTP
// receiver.
type GatewayTracing struct {
	// endpoint is the OTLP/HTTP base URL of a trace receiver, such as
	// http://otel-collector.observability:4318; spans are posted to
	// <endpoint>/v1/traces.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https'] && size(url(self).getHostname()) > 0",message="must be an absolute http or https URL"
	// +required
	Endpoint string `json:"endpoint"`

	// samplingRatio is the share of new traces the gateway records, a
	// decimal from "0" to "1" written as a string, such as "0.01". A
	// request that carries a sampled W3C traceparent is always recorded,
	// one that carries an unsampled one never (parent-based sampling).
	// +kubebuilder:default="1"
	// +kubebuilder:validation:MaxLength=12
	// +kubebuilder:validation:Pattern=`^(0(\.[0-9]{1,10})?|1(\.0{1,10})?)$`
	// +optional
	SamplingRatio string `json:"samplingRatio,omitempty"`

	// headersSecretRef names a Secret in the McpServer's namespace whose
	// keys and values are sent as HTTP headers with every export, such as
	// an API key of a hosted tracing service.
	// +optional
	HeadersSecretRef *LocalSecretReference `json:"headersSecretRef,omitempty"`
}

// LocalSecretReference names a Secret in the object's namespace.
type LocalSecretReference struct {
	// name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
}

package config

import "fmt"

// Audit configures the gateway's audit stream. The zero value writes the
// stream without tool arguments, so a configuration without the block audits.
type Audit struct {
	// Disabled turns the audit stream off.
	Disabled bool `json:"disabled,omitempty"`
	// ArgumentsMaxBytes records a tools/call's arguments when they are at
	// most this many bytes of JSON; 0 never records them.
	ArgumentsMaxBytes int `json:"argumentsMaxBytes,omitempty"`
}

// Tracing configures OpenTelemetry trace export; nil exports nothing.
type Tracing struct {
	// Endpoint is the OTLP/HTTP base URL; spans go to Endpoint + "/v1/traces".
	Endpoint string `json:"endpoint"`
	// SamplingRatio is the share of new traces recorded, from 0 to 1.
	// Requests with a W3C traceparent follow its sampled flag.
	SamplingRatio float64 `json:"samplingRatio"`
	// HeadersDir is a directory of files, one per export header: the file
	// name is the header name, its content the value. Empty: no headers.
	HeadersDir string `json:"headersDir,omitempty"`
}

// AuditDroppedMetric counts audit records dropped because stdout could not
// keep up; the dashboards and alerts read it.
const AuditDroppedMetric = "mcpgate_gateway_audit_records_dropped_total"

// MaxAuditArgumentsBytes is the largest ArgumentsMaxBytes, as the CRD's:
// arguments beyond it make a record too large for most log pipelines.
const MaxAuditArgumentsBytes = 65536

func (a Audit) validate() []error {
	if a.ArgumentsMaxBytes < 0 || a.ArgumentsMaxBytes > MaxAuditArgumentsBytes {
		return []error{fmt.Errorf("audit.argumentsMaxBytes %d must be from 0 to %d", a.ArgumentsMaxBytes, MaxAuditArgumentsBytes)}
	}
	return nil
}

func (t *Tracing) validate() []error { return nil }

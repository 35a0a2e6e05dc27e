package config

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"path"
)

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

// validate checks what the gateway needs to export: an absolute http or
// https endpoint (spans go to its /v1/traces), a ratio from 0 to 1, and an
// absolute headers directory when there is one.
func (t *Tracing) validate() []error {
	var errs []error
	// NOTE: the endpoint is named only redacted: it may hold a password.
	if u, err := url.Parse(t.Endpoint); err != nil {
		errs = append(errs, errors.New("tracing.endpoint must be an absolute http or https URL"))
	} else if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("tracing.endpoint %q must be an absolute http or https URL", u.Redacted()))
	} else if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		errs = append(errs, fmt.Errorf("tracing.endpoint %q must have no query, fragment or user info", u.Redacted()))
	}
	if math.IsNaN(t.SamplingRatio) || t.SamplingRatio < 0 || t.SamplingRatio > 1 {
		errs = append(errs, fmt.Errorf("tracing.samplingRatio %v must be from 0 to 1", t.SamplingRatio))
	}
	if t.HeadersDir != "" && !path.IsAbs(t.HeadersDir) {
		errs = append(errs, fmt.Errorf("tracing.headersDir %q must be an absolute path", t.HeadersDir))
	}
	return errs
}

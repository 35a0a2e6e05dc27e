package tracing

import (
	"encoding/hex"
	"net/http"

	"go.opentelemetry.io/otel/trace"
)

// The W3C trace context headers, in http.Header's canonical spelling.
const (
	headerTraceparent = "Traceparent"
	headerTracestate  = "Tracestate"
)

// HeaderCarrier is propagation.HeaderCarrier without its cost on every
// request: the TraceContext propagator asks for "traceparent" and
// "tracestate" in lower case, and http.Header canonicalizes a lower-case
// name into a new string on each Get and Set. HeaderCarrier maps those two
// names to their canonical spelling first, so extracting from a request
// with no trace context allocates nothing.
type HeaderCarrier http.Header

// canonical is key in http.Header's spelling, for the names the propagator
// uses; any other name is left to http.Header to canonicalize.
func canonical(key string) string {
	switch key {
	case "traceparent":
		return headerTraceparent
	case "tracestate":
		return headerTracestate
	}
	return key
}

// Get returns the first value of key.
func (c HeaderCarrier) Get(key string) string { return http.Header(c).Get(canonical(key)) }

// Set sets key to value, replacing what it had.
func (c HeaderCarrier) Set(key, value string) { http.Header(c).Set(canonical(key), value) }

// Keys lists the header names.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// traceparentLen is the length of a version 00 traceparent:
// 2 + 1 + 32 + 1 + 16 + 1 + 2.
const traceparentLen = 55

// SetTraceContext writes sc into h as W3C traceparent (and tracestate when
// sc has one), replacing what h had, as the TraceContext propagator's
// Inject does, but without its per-call costs: the name's
// canonicalization and a strings.Builder. It costs two allocations (the
// value and its slice). Of the flags only sampled is sent, as the W3C
// version 00 format has it. An invalid sc writes nothing.
func SetTraceContext(h http.Header, sc trace.SpanContext) {
	if !sc.IsValid() {
		return
	}
	if ts := sc.TraceState(); ts.Len() > 0 {
		h[headerTracestate] = []string{ts.String()}
	}
	h[headerTraceparent] = []string{Traceparent(sc)}
}

// Traceparent is sc as a version 00 W3C traceparent value.
func Traceparent(sc trace.SpanContext) string {
	var b [traceparentLen]byte
	tid, sid := sc.TraceID(), sc.SpanID()
	b[0], b[1], b[2] = '0', '0', '-'
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	flags := [1]byte{byte(sc.TraceFlags() & trace.FlagsSampled)}
	hex.Encode(b[53:55], flags[:])
	return string(b[:])
}

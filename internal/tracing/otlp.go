package tracing

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protowire"
)

// The OTLP/HTTP exporter is mcpgate's own, and small: it encodes the SDK's
// spans as an OTLP ExportTraceServiceRequest in binary protobuf with
// protowire (already in the binary through client-go) and posts it. The
// upstream otlptracehttp exporter would link gRPC's client (its options
// share a config package with the gRPC exporter): some 18 MB of binary and
// several MiB of idle memory in every gateway, tracing or not. The
// encoding is checked against the OpenTelemetry Collector's own receiver
// (TestTracingToReceiver and internal/tracing's tests).

// otlpExporter posts spans to an OTLP/HTTP receiver.
type otlpExporter struct {
	url    string
	client *http.Client
	// retryFor bounds the retries of one export (429, 502, 503, 504 and
	// transport errors).
	retryFor time.Duration
}

// ExportSpans encodes and posts spans, retrying transient failures with
// backoff until retryFor has passed or ctx ends.
func (e *otlpExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if len(spans) == 0 {
		return nil
	}
	body := encodeSpans(spans)
	deadline := time.Now().Add(e.retryFor)
	wait := 500 * time.Millisecond
	for {
		retry, err := e.post(ctx, body)
		if err == nil {
			return nil
		}
		if !retry || time.Now().Add(wait).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// post sends one export; retry says whether a failure may pass.
func (e *otlpExporter) post(ctx context.Context, body []byte) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("build export request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := e.client.Do(req)
	if err != nil {
		return true, fmt.Errorf("post spans: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusBadGateway,
		resp.StatusCode == http.StatusServiceUnavailable, resp.StatusCode == http.StatusGatewayTimeout:
		return true, fmt.Errorf("post spans: receiver answered %d", resp.StatusCode)
	default:
		return false, fmt.Errorf("post spans: receiver answered %d", resp.StatusCode)
	}
}

// Shutdown has nothing to release: the client's idle connections close
// with the process.
func (e *otlpExporter) Shutdown(context.Context) error {
	e.client.CloseIdleConnections()
	return nil
}

// OTLP field numbers (opentelemetry/proto/trace/v1/trace.proto,
// common/v1/common.proto, resource/v1/resource.proto, and
// collector/trace/v1/trace_service.proto).
const (
	fRequestResourceSpans = 1 // ExportTraceServiceRequest.resource_spans

	fResourceSpansResource   = 1
	fResourceSpansScopeSpans = 2
	fResourceSpansSchemaURL  = 3

	fResourceAttributes = 1

	fScopeSpansScope     = 1
	fScopeSpansSpans     = 2
	fScopeSpansSchemaURL = 3

	fScopeName    = 1
	fScopeVersion = 2

	fSpanTraceID                = 1
	fSpanSpanID                 = 2
	fSpanTraceState             = 3
	fSpanParentSpanID           = 4
	fSpanName                   = 5
	fSpanKind                   = 6
	fSpanStartTime              = 7
	fSpanEndTime                = 8
	fSpanAttributes             = 9
	fSpanDroppedAttributesCount = 10
	fSpanEvents                 = 11
	fSpanDroppedEventsCount     = 12
	fSpanLinks                  = 13
	fSpanDroppedLinksCount      = 14
	fSpanStatus                 = 15
	fSpanFlags                  = 16

	fEventTime       = 1
	fEventName       = 2
	fEventAttributes = 3

	fLinkTraceID    = 1
	fLinkSpanID     = 2
	fLinkTraceState = 3
	fLinkAttributes = 4
	fLinkFlags      = 6

	fStatusMessage = 2
	fStatusCode    = 3

	fKeyValueKey   = 1
	fKeyValueValue = 2

	fAnyString = 1
	fAnyBool   = 2
	fAnyInt    = 3
	fAnyDouble = 4
	fAnyArray  = 5

	fArrayValues = 1
)

// Span flags: the W3C trace flags in the low byte, and whether the
// parent is known to be remote or local.
const (
	flagsContextHasIsRemote = 0x100
	flagsContextIsRemote    = 0x200
)

// encodeSpans encodes spans as one ExportTraceServiceRequest, grouped by
// resource and then by instrumentation scope, in the order first seen.
func encodeSpans(spans []sdktrace.ReadOnlySpan) []byte {
	type scopeGroup struct {
		name, version, schemaURL string
		spans                    []sdktrace.ReadOnlySpan
	}
	type resourceGroup struct {
		attrs     []attribute.KeyValue
		schemaURL string
		scopes    []*scopeGroup
	}
	var groups []*resourceGroup
	byResource := map[attribute.Distinct]*resourceGroup{}
	for _, s := range spans {
		res := s.Resource()
		key := res.Equivalent()
		rg, ok := byResource[key]
		if !ok {
			rg = &resourceGroup{attrs: res.Attributes(), schemaURL: res.SchemaURL()}
			byResource[key] = rg
			groups = append(groups, rg)
		}
		sc := s.InstrumentationScope()
		var sg *scopeGroup
		for _, g := range rg.scopes {
			if g.name == sc.Name && g.version == sc.Version && g.schemaURL == sc.SchemaURL {
				sg = g
			}
		}
		if sg == nil {
			sg = &scopeGroup{name: sc.Name, version: sc.Version, schemaURL: sc.SchemaURL}
			rg.scopes = append(rg.scopes, sg)
		}
		sg.spans = append(sg.spans, s)
	}
	var out []byte
	for _, rg := range groups {
		var rs []byte
		rs = appendMessage(rs, fResourceSpansResource, func(b []byte) []byte {
			return appendAttributes(b, fResourceAttributes, rg.attrs)
		})
		for _, sg := range rg.scopes {
			rs = appendMessage(rs, fResourceSpansScopeSpans, func(b []byte) []byte {
				b = appendMessage(b, fScopeSpansScope, func(b []byte) []byte {
					b = appendString(b, fScopeName, sg.name)
					return appendString(b, fScopeVersion, sg.version)
				})
				for _, s := range sg.spans {
					b = appendMessage(b, fScopeSpansSpans, func(b []byte) []byte { return appendSpan(b, s) })
				}
				return appendString(b, fScopeSpansSchemaURL, sg.schemaURL)
			})
		}
		rs = appendString(rs, fResourceSpansSchemaURL, rg.schemaURL)
		out = protowire.AppendTag(out, fRequestResourceSpans, protowire.BytesType)
		out = protowire.AppendBytes(out, rs)
	}
	return out
}

// appendSpan encodes one Span's fields.
func appendSpan(b []byte, s sdktrace.ReadOnlySpan) []byte {
	sc := s.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	b = appendBytes(b, fSpanTraceID, tid[:])
	b = appendBytes(b, fSpanSpanID, sid[:])
	b = appendString(b, fSpanTraceState, sc.TraceState().String())
	flags := uint32(sc.TraceFlags()) | flagsContextHasIsRemote
	if p := s.Parent(); p.IsValid() {
		psid := p.SpanID()
		b = appendBytes(b, fSpanParentSpanID, psid[:])
		if p.IsRemote() {
			flags |= flagsContextIsRemote
		}
	}
	b = appendString(b, fSpanName, s.Name())
	if k := s.SpanKind(); k != trace.SpanKindUnspecified {
		b = protowire.AppendTag(b, fSpanKind, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(k)) // the SDK's kinds number as OTLP's
	}
	b = appendFixed64(b, fSpanStartTime, unixNano(s.StartTime()))
	b = appendFixed64(b, fSpanEndTime, unixNano(s.EndTime()))
	b = appendAttributes(b, fSpanAttributes, s.Attributes())
	b = appendCount(b, fSpanDroppedAttributesCount, s.DroppedAttributes())
	for _, e := range s.Events() {
		b = appendMessage(b, fSpanEvents, func(b []byte) []byte {
			b = appendFixed64(b, fEventTime, unixNano(e.Time))
			b = appendString(b, fEventName, e.Name)
			return appendAttributes(b, fEventAttributes, e.Attributes)
		})
	}
	b = appendCount(b, fSpanDroppedEventsCount, s.DroppedEvents())
	for _, l := range s.Links() {
		b = appendMessage(b, fSpanLinks, func(b []byte) []byte {
			ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
			b = appendBytes(b, fLinkTraceID, ltid[:])
			b = appendBytes(b, fLinkSpanID, lsid[:])
			b = appendString(b, fLinkTraceState, l.SpanContext.TraceState().String())
			b = appendAttributes(b, fLinkAttributes, l.Attributes)
			b = protowire.AppendTag(b, fLinkFlags, protowire.Fixed32Type)
			return protowire.AppendFixed32(b, uint32(l.SpanContext.TraceFlags()))
		})
	}
	b = appendCount(b, fSpanDroppedLinksCount, s.DroppedLinks())
	if st := s.Status(); st.Code != codes.Unset {
		b = appendMessage(b, fSpanStatus, func(b []byte) []byte {
			b = appendString(b, fStatusMessage, st.Description)
			code := uint64(1) // STATUS_CODE_OK
			if st.Code == codes.Error {
				code = 2 // STATUS_CODE_ERROR
			}
			b = protowire.AppendTag(b, fStatusCode, protowire.VarintType)
			return protowire.AppendVarint(b, code)
		})
	}
	b = protowire.AppendTag(b, fSpanFlags, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, flags)
}

// appendAttributes encodes each attribute as a KeyValue in field.
func appendAttributes(b []byte, field protowire.Number, attrs []attribute.KeyValue) []byte {
	for _, kv := range attrs {
		if !kv.Valid() {
			continue
		}
		b = appendMessage(b, field, func(b []byte) []byte {
			b = appendString(b, fKeyValueKey, string(kv.Key))
			return appendMessage(b, fKeyValueValue, func(b []byte) []byte { return appendValue(b, kv.Value) })
		})
	}
	return b
}

// appendValue encodes an AnyValue's one field.
func appendValue(b []byte, v attribute.Value) []byte {
	switch v.Type() {
	case attribute.BOOL:
		b = protowire.AppendTag(b, fAnyBool, protowire.VarintType)
		return protowire.AppendVarint(b, protowire.EncodeBool(v.AsBool()))
	case attribute.INT64:
		b = protowire.AppendTag(b, fAnyInt, protowire.VarintType)
		return protowire.AppendVarint(b, uint64(v.AsInt64()))
	case attribute.FLOAT64:
		b = protowire.AppendTag(b, fAnyDouble, protowire.Fixed64Type)
		return protowire.AppendFixed64(b, math.Float64bits(v.AsFloat64()))
	case attribute.STRING:
		b = protowire.AppendTag(b, fAnyString, protowire.BytesType)
		return protowire.AppendString(b, v.AsString())
	case attribute.BOOLSLICE, attribute.INT64SLICE, attribute.FLOAT64SLICE, attribute.STRINGSLICE:
		return appendMessage(b, fAnyArray, func(b []byte) []byte {
			for _, item := range sliceValues(v) {
				b = appendMessage(b, fArrayValues, func(b []byte) []byte { return appendValue(b, item) })
			}
			return b
		})
	default:
		b = protowire.AppendTag(b, fAnyString, protowire.BytesType)
		return protowire.AppendString(b, v.Emit())
	}
}

// sliceValues splits a slice attribute into its elements.
func sliceValues(v attribute.Value) []attribute.Value {
	switch v.Type() {
	case attribute.BOOLSLICE:
		return values(v.AsBoolSlice(), attribute.BoolValue)
	case attribute.INT64SLICE:
		return values(v.AsInt64Slice(), attribute.Int64Value)
	case attribute.FLOAT64SLICE:
		return values(v.AsFloat64Slice(), attribute.Float64Value)
	case attribute.STRINGSLICE:
		return values(v.AsStringSlice(), attribute.StringValue)
	}
	return nil
}

// values makes an attribute value of each element.
func values[T any](xs []T, value func(T) attribute.Value) []attribute.Value {
	out := make([]attribute.Value, len(xs))
	for i, x := range xs {
		out[i] = value(x)
	}
	return out
}

// appendMessage encodes an embedded message in field, built by fill.
func appendMessage(b []byte, field protowire.Number, fill func([]byte) []byte) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	// Reserve one length byte; most messages are shorter than 128 bytes,
	// and the rest are moved once.
	start := len(b)
	b = append(b, 0)
	b = fill(b)
	n := len(b) - start - 1
	if n < 128 {
		b[start] = byte(n)
		return b
	}
	size := protowire.SizeVarint(uint64(n))
	b = append(b, make([]byte, size-1)...)
	copy(b[start+size:], b[start+1:start+1+n])
	protowire.AppendVarint(b[start:start], uint64(n))
	return b
}

func appendString(b []byte, field protowire.Number, s string) []byte {
	if s == "" {
		return b // proto3: the default is not sent
	}
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendBytes(b []byte, field protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendFixed64(b []byte, field protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, field, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, v)
}

func appendCount(b []byte, field protowire.Number, n int) []byte {
	if n <= 0 {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(n))
}

func unixNano(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixNano())
}

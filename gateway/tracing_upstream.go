package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httputil"
	"strings"

	"go.opentelemetry.io/otel/trace"

	"github.com/mcpgate/mcpgate/internal/tracing"
)

// metaTraceVersion is the first MCP version whose _meta carries W3C trace
// context (traceparent, tracestate and baggage are reserved keys there, as
// an exception to the prefix rule). Versions are dates, so they compare as
// strings.
const metaTraceVersion = "2026-07-28"

// traceUpstream gives the upstream the request's trace context, from the
// proxy's Rewrite (whose outbound request has headers of its own to set).
// A recorded request gets a client span for the upstream call, named for
// the MCP method and tool, ended by upstreamTracing's transport when the
// response headers are in; its context goes upstream in traceparent (and
// tracestate) and, for MCP 2026-07-28 and later, in params._meta. An
// unrecorded one passes its server span's context, unsampled, in the
// header alone: the upstream joins the same trace and records nothing. The
// client's own traceparent and tracestate are replaced either way.
func (g *Gateway) traceUpstream(pr *httputil.ProxyRequest) {
	if g.tr == nil {
		return
	}
	out := pr.Out
	out.Header.Del("Traceparent")
	out.Header.Del("Tracestate")
	ctx := out.Context()
	if server := trace.SpanFromContext(ctx); !server.IsRecording() {
		tracing.SetTraceContext(out.Header, server.SpanContext())
		return
	}
	ri := infoFrom(ctx)
	ctx, span := g.tr.tracer.Start(ctx, spanName(ri, out.Method), g.tr.clientSpan...)
	ctx = context.WithValue(ctx, upstreamSpanKey{}, span)
	out = out.WithContext(ctx)
	pr.Out = out
	tracing.SetTraceContext(out.Header, span.SpanContext())
	injected := false
	if carriesMetaTrace(pr.In, ri) {
		// A client that sent its context in _meta alone began a trace the
		// gateway's spans are not part of (they follow the header); its
		// _meta.traceparent is left for the upstream to continue.
		keepClient := pr.In.Header.Get("Traceparent") == ""
		injected = setMetaTrace(out, out.Header.Get("Traceparent"), out.Header.Get("Tracestate"), keepClient)
	}
	span.SetAttributes(tracing.ClientAttributes(out)...)
	span.SetAttributes(mcpAttributes(pr.In, ri)...)
	span.SetAttributes(attrMetaTrace.Bool(injected))
}

// upstreamSpanKey keys the upstream call's span in the outbound request's
// context, for upstreamTracing to end.
type upstreamSpanKey struct{}

// upstreamTracing wraps the proxy's transport so that the upstream span
// traceUpstream started ends with the response headers (or the failure),
// with the status. Without tracing it returns base.
func (g *Gateway) upstreamTracing(base http.RoundTripper) http.RoundTripper {
	if g.tr == nil {
		return base
	}
	return endUpstreamSpan{base: base}
}

type endUpstreamSpan struct{ base http.RoundTripper }

func (t endUpstreamSpan) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	ctx := req.Context()
	if !trace.SpanFromContext(ctx).IsRecording() {
		// An unsampled request has no upstream span; the span in its
		// context is found near the top, where the key's look-up would
		// walk the whole chain to miss.
		return resp, err
	}
	if span, ok := ctx.Value(upstreamSpanKey{}).(trace.Span); ok {
		tracing.EndClientSpan(span, resp, err)
		span.End()
	}
	return resp, err
}

// carriesMetaTrace reports whether the request is one JSON-RPC message of
// a protocol version whose _meta carries trace context.
func carriesMetaTrace(req *http.Request, ri *requestInfo) bool {
	v := req.Header.Get("Mcp-Protocol-Version")
	return req.Method == http.MethodPost && req.GetBody != nil && len(v) == len(metaTraceVersion) && v >= metaTraceVersion &&
		ri.rpc != nil && !ri.rpc.batch && len(ri.rpc.messages) == 1 && ri.rpc.messages[0].method != ""
}

// setMetaTrace puts traceparent (and tracestate, when set) into the body's
// params._meta. The body is left as it is when it cannot be done without
// ambiguity (see withMetaTrace), and, with keepClient, when _meta holds a
// traceparent already.
func setMetaTrace(out *http.Request, traceparent, tracestate string, keepClient bool) bool {
	if traceparent == "" {
		return false
	}
	rc, err := out.GetBody()
	if err != nil {
		return false
	}
	body, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil {
		return false
	}
	if keepClient && metaHasTraceparent(body) {
		return false
	}
	nb, ok := withMetaTrace(body, traceparent, tracestate)
	if !ok {
		return false
	}
	out.Body = io.NopCloser(bytes.NewReader(nb))
	out.ContentLength = int64(len(nb))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(nb)), nil }
	return true
}

// withMetaTrace returns body, one JSON-RPC message, with traceparent and
// tracestate added at the end of params._meta (creating _meta, or params,
// when absent). It splices bytes rather than decoding and encoding, so the
// upstream reads every other byte as the gateway's checks read it. Added
// last, the gateway's members win over any the client put there, for the
// parsers that take the last of duplicate keys (encoding/json, JSON.parse,
// Python's json). Bodies where that would be ambiguous are refused (ok
// false): params or _meta present more than once (in any letter case), or
// not an object.
func withMetaTrace(body []byte, traceparent, tracestate string) ([]byte, bool) {
	if !json.Valid(body) {
		return nil, false
	}
	msg := trimSpace(body)
	fields, ok := objectFields(msg)
	if !ok {
		return nil, false
	}
	members := jsonMember("traceparent", traceparent)
	if tracestate != "" {
		members += "," + jsonMember("tracestate", tracestate)
	}
	params, n := onlyMember(fields, "params")
	switch {
	case n > 1:
		return nil, false
	case n == 0:
		return spliceMember(body, msg, `"params":{"_meta":{`+members+`}}`), true
	}
	pf, ok := objectFields(params)
	if !ok {
		return nil, false
	}
	meta, n := onlyMember(pf, "_meta")
	switch {
	case n > 1:
		return nil, false
	case n == 0:
		return spliceMember(body, params, `"_meta":{`+members+`}`), true
	}
	if _, ok := objectFields(meta); !ok {
		return nil, false
	}
	return spliceMember(body, meta, members), true
}

// metaHasTraceparent reports whether body, one JSON-RPC message, has a
// params._meta with a traceparent member (in any letter case).
func metaHasTraceparent(body []byte) bool {
	if !json.Valid(body) {
		return false
	}
	meta, ok := memberPath(trimSpace(body), "params", "_meta")
	if !ok {
		return false
	}
	mf, ok := objectFields(meta)
	if !ok {
		return false
	}
	_, n := onlyMember(mf, "traceparent")
	return n > 0
}

// memberPath follows keys from the JSON object obj, one member per step,
// and returns the last member's value; false unless every step is an
// object holding exactly one member of that key.
func memberPath(obj []byte, keys ...string) ([]byte, bool) {
	for _, key := range keys {
		fields, ok := objectFields(obj)
		if !ok {
			return nil, false
		}
		v, n := onlyMember(fields, key)
		if n != 1 {
			return nil, false
		}
		obj = v
	}
	return obj, true
}

// onlyMember returns the value of the member named key (matched in any
// letter case, as encoding/json matches struct fields) and how many there are.
func onlyMember(fields []field, key string) ([]byte, int) {
	var v []byte
	n := 0
	for _, f := range fields {
		if strings.EqualFold(f.key, key) {
			v = f.value
			n++
		}
	}
	return v, n
}

// spliceMember inserts member (one or more "key":value pairs) at the end of
// obj, an object inside body (a subslice of it), with a comma when obj has
// members already.
func spliceMember(body, obj []byte, member string) []byte {
	closing := cap(body) - cap(obj) + len(obj) - 1 // obj's '}' in body
	sep := ","
	if len(trimSpace(obj[1:len(obj)-1])) == 0 {
		sep = ""
	}
	out := make([]byte, 0, len(body)+len(sep)+len(member))
	out = append(out, body[:closing]...)
	out = append(out, sep...)
	out = append(out, member...)
	return append(out, body[closing:]...)
}

// jsonMember is "key":"value" with value escaped as JSON.
func jsonMember(key, value string) string {
	v, _ := json.Marshal(value) // a string always marshals
	return `"` + key + `":` + string(v)
}

package gateway

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.39.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpgate/mcpgate/clerk"
	"github.com/mcpgate/mcpgate/gateway/config"
	"github.com/mcpgate/mcpgate/internal/tracing"
	"github.com/mcpgate/mcpgate/internal/version"
)

// Tracing: with config.Tracing set, the gateway records a server span per
// request (continuing the caller's W3C traceparent), a span per step that
// decides (token verification, the people lookups, the access and scope
// decisions, the upstream credentials), a client span per Clerk or broker
// call, and a client span for the upstream call, whose context it passes on
// in traceparent (and, for MCP 2026-07-28, in params._meta). Without it
// there is no provider: every hook below is either left out of the chain
// when the gateway is built or ends at a nil check.
//
// Attributes follow OpenTelemetry's HTTP and MCP semantic conventions
// (semconv v1.39.0). None holds a token, a secret, a header value of the
// client's or a tool's arguments.

// Span names of the gateway's steps.
const (
	spanVerify      = "mcpgate.verify_token"
	spanIdentify    = "mcpgate.identify"
	spanAccess      = "mcpgate.access"
	spanScopes      = "mcpgate.scopes"
	spanCredentials = "mcpgate.upstream_credentials"
)

// Attributes of mcpgate's own, where the conventions have none.
const (
	attrRequestID  = attribute.Key("mcpgate.request_id")
	attrMcpServer  = attribute.Key("mcpgate.mcpserver")
	attrDecision   = attribute.Key("mcpgate.decision")
	attrClientID   = attribute.Key("mcpgate.client_id")
	attrTokenKind  = attribute.Key("mcpgate.token.format")
	attrCache      = attribute.Key("mcpgate.cache")
	attrClerkCalls = attribute.Key("mcpgate.clerk.calls")
	attrMetaTrace  = attribute.Key("mcpgate.meta_trace_context")
)

// gatewayTracer is the gateway's tracing; nil when tracing is off.
type gatewayTracer struct {
	provider *tracing.Provider
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	server   string // namespace/name, on every server span
	// serverSpan and clientSpan are the start options of the server and
	// client spans, built once: passed as a literal, each Start would
	// allocate the option and its slice, for sampled or not.
	serverSpan, clientSpan []trace.SpanStartOption
}

// newGatewayTracer builds the tracer of cfg.Tracing; nil without one.
func newGatewayTracer(cfg config.Config, log *slog.Logger) (*gatewayTracer, error) {
	if cfg.Tracing == nil {
		return nil, nil
	}
	server := cfg.Server.Namespace + "/" + cfg.Server.Name
	p, err := tracing.New(tracing.Config{
		Endpoint:      cfg.Tracing.Endpoint,
		SamplingRatio: cfg.Tracing.SamplingRatio,
		HeadersDir:    cfg.Tracing.HeadersDir,
		ServiceName:   "mcpgate-gateway",
		Attributes: []attribute.KeyValue{
			semconv.ServiceVersion(version.Get().Version),
			semconv.K8SNamespaceName(cfg.Server.Namespace),
			attrMcpServer.String(server),
		},
		OnError: func(err error) {
			log.Warn("Could not export spans; dropping them", "error", err.Error())
		},
	})
	if err != nil {
		return nil, err //nolint:wrapcheck // tracing's errors name the setting
	}
	return &gatewayTracer{
		provider: p, tracer: p.Tracer(), prop: tracing.Propagator(), server: server,
		serverSpan: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)},
		clientSpan: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)},
	}, nil
}

// shutdownTracing exports the spans still queued; Serve calls it last.
func (g *Gateway) shutdownTracing(ctx context.Context) {
	if g.tr == nil {
		return
	}
	if err := g.tr.provider.Shutdown(ctx); err != nil {
		g.log.Warn("Could not export the last spans", "error", err.Error())
	}
}

// startRequestSpan starts the request's server span, the child of the
// caller's traceparent when it sent one; nil with tracing off.
// withRequestInfo, the outermost handler, calls it and ends the span once
// the request is logged, so that everything inside (the audit record among
// them) finds the span in the request's context, which it puts there
// together with the request's info: one copy of the request for both.
// annotateRequest, inside withRequestInfo, adds what the gateway learned.
//
// Most requests are not sampled, so what every request pays is kept to the
// span the SDK makes (its context goes upstream): the carrier finds no
// trace context without allocating, and the start options are built once.
func (g *Gateway) startRequestSpan(r *http.Request) (context.Context, trace.Span) {
	if g.tr == nil {
		return r.Context(), nil
	}
	t := g.tr
	ctx := t.prop.Extract(r.Context(), tracing.HeaderCarrier(r.Header))
	ctx, span := t.tracer.Start(ctx, r.Method, t.serverSpan...)
	if span.IsRecording() {
		span.SetAttributes(serverAttributes(r)...)
		span.SetAttributes(attrMcpServer.String(t.server))
	}
	return ctx, span
}

// serverAttributes are the HTTP server span's request attributes. The
// query is left out: clients put nothing there the gateway uses, and a
// misbehaving one could put a token there.
func serverAttributes(r *http.Request) []attribute.KeyValue {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	attrs := []attribute.KeyValue{
		semconv.HTTPRequestMethodKey.String(r.Method),
		semconv.URLPath(r.URL.Path),
		semconv.URLScheme(scheme),
		semconv.NetworkProtocolVersion(strings.TrimPrefix(r.Proto, "HTTP/")),
	}
	if ua := r.UserAgent(); ua != "" {
		attrs = append(attrs, semconv.UserAgentOriginal(ua))
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		attrs = append(attrs, semconv.ClientAddress(host))
	}
	return attrs
}

// annotateRequest names the server span for its route and, once the
// request is done, records its outcome: status, the auth decision, who
// called (Clerk user and OAuth client ids), and the MCP method, tool and
// request id the body named.
func (g *Gateway) annotateRequest(next http.Handler) http.Handler {
	if g.tr == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		span := trace.SpanFromContext(r.Context())
		if !span.IsRecording() {
			next.ServeHTTP(w, r)
			return
		}
		sw, _ := w.(*statusWriter)
		defer func() {
			ri := infoFrom(r.Context())
			g.annotateSpan(span, r, ri, sw)
		}()
		next.ServeHTTP(w, r)
	})
}

// annotateSpan sets the server span's name and its outcome's attributes.
func (g *Gateway) annotateSpan(span trace.Span, r *http.Request, ri *requestInfo, sw *statusWriter) {
	route := ""
	switch ri.route {
	case routeMCP:
		route = g.cfg.Path
	case routeResourceMetadata, routeASMetadata, routeOpenIDConfig:
		route = r.URL.Path // a fixed set of paths, so a low-cardinality name
	}
	if route != "" {
		span.SetName(r.Method + " " + route)
		span.SetAttributes(semconv.HTTPRoute(route))
	}
	span.SetAttributes(attrRequestID.String(ri.id))
	if sw != nil {
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		span.SetAttributes(semconv.HTTPResponseStatusCode(status))
		if status >= 500 {
			span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(status)))
			span.SetStatus(codes.Error, "")
		}
	}
	if ri.auth != "" {
		span.SetAttributes(attrDecision.String(ri.auth))
	}
	if ri.userID != "" {
		span.SetAttributes(semconv.UserID(ri.userID), attrClientID.String(ri.clientID))
	}
	span.SetAttributes(mcpAttributes(r, ri)...)
}

// mcpAttributes are the MCP conventions' attributes of a request: its
// method, the tool a tools/call calls, the JSON-RPC id and the protocol
// version. A batch is described by its first message.
func mcpAttributes(r *http.Request, ri *requestInfo) []attribute.KeyValue {
	var attrs []attribute.KeyValue
	if v := r.Header.Get("Mcp-Protocol-Version"); v != "" && len(v) <= 32 {
		attrs = append(attrs, semconv.McpProtocolVersion(v))
	}
	if ri.rpc == nil || len(ri.rpc.messages) == 0 {
		return attrs
	}
	m := ri.rpc.messages[0]
	if m.method != "" {
		attrs = append(attrs, semconv.McpMethodNameKey.String(clipAttr(m.method)))
	}
	if m.tool != "" {
		attrs = append(attrs, semconv.GenAIToolName(clipAttr(m.tool)), semconv.GenAIOperationNameExecuteTool)
	}
	if len(m.id) > 0 && len(m.id) <= 128 {
		attrs = append(attrs, semconv.JSONRPCRequestID(strings.Trim(string(m.id), `"`)))
	}
	return attrs
}

// clipAttr bounds a client-chosen string put in an attribute.
func clipAttr(s string) string {
	if len(s) > 256 {
		return s[:256]
	}
	return s
}

// spanName is an MCP span's name as the conventions have it: the method,
// and the tool it calls.
func spanName(ri *requestInfo, fallback string) string {
	if ri.rpc == nil || len(ri.rpc.messages) == 0 || ri.rpc.messages[0].method == "" {
		return fallback
	}
	m := ri.rpc.messages[0]
	if m.tool != "" {
		return clipAttr(m.method) + " " + clipAttr(m.tool)
	}
	return clipAttr(m.method)
}

// traceStep wraps a step of the MCP pipeline in a span that ends when the
// step has decided: when it hands the request on (decision "ok") or
// answers it itself (the reason it recorded, such as invalid_token). The
// steps after it are not its children. A step that leaves itself out of
// the chain (identify without rules that need Clerk) gets no span; with
// tracing off the step is returned as it is.
//
// The step is built twice: into passed for recorded requests, and straight
// into next for the others, whose steps would be unsampled too: they get no
// span, allocate nothing, and hand the request on without passed's look-up
// of a step in their context.
func (g *Gateway) traceStep(name string, mw func(http.Handler) http.Handler) func(http.Handler) http.Handler {
	if g.tr == nil {
		return mw
	}
	tracer := g.tr.tracer
	return func(next http.Handler) http.Handler {
		passed := &stepPassed{next: next}
		inner := mw(passed)
		if inner == http.Handler(passed) {
			return next
		}
		plain := mw(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			parent := r.Context()
			if !trace.SpanFromContext(parent).IsRecording() {
				plain.ServeHTTP(w, r)
				return
			}
			ctx, span := tracer.Start(parent, name)
			st := &stepState{span: span, parent: parent, asksClerk: name == spanVerify || name == spanIdentify || name == spanCredentials}
			if span.IsRecording() && name == spanVerify {
				// The token itself never goes near the span, only its kind.
				span.SetAttributes(attrTokenKind.String(string(clerk.FormatOf(infoFrom(parent).token))))
			}
			inner.ServeHTTP(w, r.WithContext(context.WithValue(ctx, stepKey{}, st)))
			st.end(infoFrom(parent).auth)
		})
	}
}

// stepKey keys a request's current step in its context.
type stepKey struct{}

// stepState is one step's span, and the Clerk or broker calls made while
// it ran (which tell a cache hit from a miss).
type stepState struct {
	span   trace.Span
	parent context.Context
	calls  atomic.Int32
	ended  bool
	// asksClerk: the step may ask Clerk or the broker, so its span says
	// whether it did (a cache miss) or not (a hit).
	asksClerk bool
}

// end ends the span once, with the step's decision.
func (s *stepState) end(reason string) {
	if s.ended {
		return
	}
	s.ended = true
	if s.span.IsRecording() {
		if reason == "" {
			reason = reasonOK
		}
		s.span.SetAttributes(attrDecision.String(reason))
		if s.asksClerk {
			calls := int(s.calls.Load())
			cache := "hit"
			if calls > 0 {
				cache = "miss"
			}
			s.span.SetAttributes(attrClerkCalls.Int(calls), attrCache.String(cache))
		}
		if authOutcome[reason] == outcomeError {
			s.span.SetStatus(codes.Error, reason)
		}
	}
	s.span.End()
}

// stepPassed ends the step's span as passed and hands the request on, in
// the context the step started from.
type stepPassed struct{ next http.Handler }

func (p *stepPassed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if st, ok := r.Context().Value(stepKey{}).(*stepState); ok {
		st.end(reasonOK)
		r = r.WithContext(st.parent)
	}
	p.next.ServeHTTP(w, r)
}

// countStepCall notes a Clerk or broker call made in the current step.
func countStepCall(ctx context.Context) {
	if st, ok := ctx.Value(stepKey{}).(*stepState); ok {
		st.calls.Add(1)
	}
}

// clerkTransport makes each call to Clerk (Backend API, JWKS, metadata) a
// client span, counted against the step it was made in. Clerk gets no
// traceparent: it is a third party with no use for ours.
func (g *Gateway) clerkTransport(base http.RoundTripper) http.RoundTripper {
	if g.tr == nil {
		return base
	}
	return tracing.Transport(base, g.tr.tracer, tracing.ClientOptions{
		Peer:   "clerk",
		OnCall: func(r *http.Request) { countStepCall(r.Context()) },
	})
}

// startBrokerSpan starts a client span for a call to the key broker,
// counted against the current step; its end takes the call's error.
func (g *Gateway) startBrokerSpan(ctx context.Context, endpoint string) (context.Context, func(error)) {
	if g.tr == nil {
		return ctx, func(error) {}
	}
	countStepCall(ctx)
	ctx, span := g.tr.tracer.Start(ctx, "broker "+endpoint, g.tr.clientSpan...)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("mcpgate.peer", "broker"))
	}
	return ctx, func(err error) {
		if err != nil && span.IsRecording() {
			span.SetStatus(codes.Error, "")
		}
		span.End()
	}
}

// FlushSpans exports the spans queued so far, for a test or a benchmark
// that reads them from the receiver; without tracing it does nothing.
func (g *Gateway) FlushSpans(ctx context.Context) error {
	if g.tr == nil {
		return nil
	}
	return g.tr.provider.ForceFlush(ctx) //nolint:wrapcheck // tracing's own error
}

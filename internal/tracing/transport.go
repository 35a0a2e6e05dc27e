package tracing

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.39.0"
	"go.opentelemetry.io/otel/trace"
)

// headersTransport adds the export headers of a directory to each export.
type headersTransport struct {
	dir  string
	base http.RoundTripper
}

func (t headersTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	h, err := ReadHeaders(t.dir)
	if err != nil {
		return nil, err
	}
	if len(h) == 0 {
		return t.base.RoundTrip(req)
	}
	out := req.Clone(req.Context())
	for name, v := range h {
		out.Header[name] = v
	}
	return t.base.RoundTrip(out)
}

// ReadHeaders reads a directory of export headers: one file per header,
// named for it, holding its value (a trailing newline is dropped). Files
// whose name is no header name or whose content is no header value are
// skipped, as are dot-files and directories. The error, when reading the
// directory fails, names the directory only, never a value.
func ReadHeaders(dir string) (http.Header, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err //nolint:wrapcheck // *PathError names the directory
	}
	h := http.Header{}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || e.IsDir() || !validHeaderName(name) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue // a directory behind a symlink, or gone since the listing
		}
		v := strings.TrimRight(string(b), "\r\n")
		if !validHeaderValue(v) {
			continue
		}
		h.Set(name, v)
	}
	return h, nil
}

// validHeaderName reports an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validHeaderValue refuses control characters (CR and LF above all), which
// would split the request.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// ClientOptions tune Transport.
type ClientOptions struct {
	// Peer names the service called, the span attribute mcpgate.peer
	// (such as "clerk").
	Peer string
	// Inject sends the span's context to the server in traceparent; off
	// for third-party services, which have no use for it.
	Inject bool
	// OnCall is told of each call, with the request's context, before it
	// is made (a step counting the calls it caused).
	OnCall func(*http.Request)
}

// Transport wraps base so that each request is a client span, a child of
// the span in the request's context, named for the method as OpenTelemetry's
// HTTP conventions name client spans, with the method, the URL without its
// query, the server and the response status. A nil tracer returns base.
func Transport(base http.RoundTripper, tracer trace.Tracer, opts ClientOptions) http.RoundTripper {
	if tracer == nil {
		return base
	}
	if base == nil {
		base = http.DefaultTransport
	}
	return &clientTransport{base: base, tracer: tracer, opts: opts, start: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}}
}

type clientTransport struct {
	base   http.RoundTripper
	tracer trace.Tracer
	opts   ClientOptions
	start  []trace.SpanStartOption // built once, not per call
}

func (t *clientTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.opts.OnCall != nil {
		t.opts.OnCall(req)
	}
	ctx, span := t.tracer.Start(req.Context(), req.Method, t.start...)
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(ClientAttributes(req)...)
		if t.opts.Peer != "" {
			span.SetAttributes(attribute.String("mcpgate.peer", t.opts.Peer))
		}
	}
	out := req.WithContext(ctx)
	if t.opts.Inject {
		out.Header = req.Header.Clone()
		SetTraceContext(out.Header, span.SpanContext())
	}
	resp, err := t.base.RoundTrip(out)
	EndClientSpan(span, resp, err)
	return resp, err
}

// ClientAttributes are an HTTP client span's request attributes: method,
// URL without query or user info, server address and port.
func ClientAttributes(req *http.Request) []attribute.KeyValue {
	u := *req.URL
	u.RawQuery, u.ForceQuery, u.Fragment, u.User = "", false, "", nil
	host, port := u.Hostname(), u.Port()
	if port == "" {
		switch u.Scheme {
		case "http":
			port = "80"
		case "https":
			port = "443"
		}
	}
	attrs := []attribute.KeyValue{
		semconv.HTTPRequestMethodKey.String(req.Method),
		semconv.URLFull(u.String()),
		semconv.ServerAddress(host),
	}
	if p, err := strconv.Atoi(port); err == nil {
		attrs = append(attrs, semconv.ServerPort(p))
	}
	return attrs
}

// EndClientSpan records the outcome of a client call on span: the status,
// and for a failure (a transport error or a 4xx/5xx) error.type and an
// Error status, as the HTTP conventions ask of client spans.
func EndClientSpan(span trace.Span, resp *http.Response, err error) {
	if !span.IsRecording() {
		return
	}
	switch {
	case err != nil:
		span.SetAttributes(semconv.ErrorTypeKey.String(errorType(err)))
		span.SetStatus(codes.Error, errorType(err))
	case resp.StatusCode >= 400:
		span.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode), semconv.ErrorTypeKey.String(strconv.Itoa(resp.StatusCode)))
		span.SetStatus(codes.Error, "")
	default:
		span.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode))
	}
}

// errorType is a low-cardinality name for a transport error: timeout or
// connection failure, never the message (which may hold addresses).
func errorType(err error) string {
	if ne, ok := err.(net.Error); ok && ne.Timeout() { //nolint:errorlint // url.Error implements net.Error
		return "timeout"
	}
	return "connection_error"
}

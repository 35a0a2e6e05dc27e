// Package tracing sets up OpenTelemetry trace export for mcpgate's
// processes (a gateway, the manager): a tracer provider that samples
// parent-based with a ratio for new traces and exports over OTLP/HTTP
// (binary protobuf, otlp.go) in the background, and an HTTP client
// transport that records a span per call. Nothing here is global: each process builds its Provider and hands
// its Tracer to whoever makes spans.
//
// Export never blocks or fails the work being traced: spans queue in a
// bounded buffer and are dropped when the receiver cannot keep up, and
// export errors go to a callback, never to the caller.
package tracing

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.39.0"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of mcpgate's spans.
const ScopeName = "github.com/mcpgate/mcpgate"

// TracesPath is where OTLP/HTTP receivers take spans, under their base URL.
const TracesPath = "/v1/traces"

// Config says where spans go and which are kept.
type Config struct {
	// Endpoint is the receiver's OTLP/HTTP base URL, http or https;
	// spans are posted to Endpoint + TracesPath.
	Endpoint string
	// SamplingRatio is the share of new traces recorded, 0 to 1. A span
	// with a parent (a W3C traceparent from the caller) follows the
	// parent's sampled flag instead.
	SamplingRatio float64
	// HeadersDir, when set, holds one file per export header: the file
	// name is the header name, its content the value. The directory is
	// read at each export, so a rotated Secret takes effect without a
	// restart. Dot-files (a projected volume's bookkeeping) are skipped.
	HeadersDir string
	// ServiceName and Attributes describe the process (the resource).
	ServiceName string
	Attributes  []attribute.KeyValue
	// OnError hears of failed exports, at most once per ErrorInterval;
	// nil ignores them. The error never holds a header value.
	OnError func(error)
	// ErrorInterval spaces OnError calls; 0 means one minute.
	ErrorInterval time.Duration
}

// Provider is a process's tracer provider. A nil *Provider is tracing off.
type Provider struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
}

// New builds a Provider exporting to cfg.Endpoint. It makes no network call.
func New(cfg Config) (*Provider, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("tracing endpoint %q: not an absolute http or https URL", cfg.Endpoint)
	}
	if cfg.SamplingRatio < 0 || cfg.SamplingRatio > 1 {
		return nil, fmt.Errorf("tracing sampling ratio %v: not between 0 and 1", cfg.SamplingRatio)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + TracesPath
	u.RawQuery, u.Fragment = "", ""
	client := &http.Client{Timeout: 10 * time.Second}
	if cfg.HeadersDir != "" {
		client.Transport = headersTransport{dir: cfg.HeadersDir, base: http.DefaultTransport}
	}
	// A receiver that is down must not hold the queue for long: spans that
	// cannot go are dropped, never waited for by requests.
	exp := &otlpExporter{url: u.String(), client: client, retryFor: 15 * time.Second}
	interval := cfg.ErrorInterval
	if interval <= 0 {
		interval = time.Minute
	}
	res := resource.NewWithAttributes(semconv.SchemaURL,
		append([]attribute.KeyValue{semconv.ServiceName(cfg.ServiceName)}, cfg.Attributes...)...)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SamplingRatio))),
		// The batcher never blocks a span's End: a full queue drops.
		sdktrace.WithBatcher(&reportingExporter{SpanExporter: exp, onError: cfg.OnError, interval: interval},
			sdktrace.WithMaxQueueSize(4096), sdktrace.WithBatchTimeout(2*time.Second)),
	)
	return &Provider{tp: tp, tracer: tp.Tracer(ScopeName)}, nil
}

// Tracer returns the provider's tracer; nil for a nil Provider.
func (p *Provider) Tracer() trace.Tracer {
	if p == nil {
		return nil
	}
	return p.tracer
}

// Shutdown exports what is queued and stops; a nil Provider does nothing.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil {
		return nil
	}
	if err := p.tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("shut tracing down: %w", err)
	}
	return nil
}

// ForceFlush exports what is queued now; a nil Provider does nothing.
func (p *Provider) ForceFlush(ctx context.Context) error {
	if p == nil {
		return nil
	}
	return p.tp.ForceFlush(ctx)
}

// Propagator reads and writes W3C traceparent and tracestate. It is the
// only propagation format mcpgate speaks; baggage passes untouched.
func Propagator() propagation.TextMapPropagator { return propagation.TraceContext{} }

// reportingExporter hands export errors to onError, rate-limited, instead
// of OpenTelemetry's global error handler (which logs each one to stderr).
type reportingExporter struct {
	sdktrace.SpanExporter
	onError  func(error)
	interval time.Duration

	mu       sync.Mutex
	last     time.Time
	suppress int
}

func (e *reportingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	if err == nil || e.onError == nil {
		return nil
	}
	e.mu.Lock()
	now := time.Now()
	report := now.Sub(e.last) >= e.interval
	dropped := e.suppress
	if report {
		e.last, e.suppress = now, 0
	} else {
		e.suppress++
	}
	e.mu.Unlock()
	if report {
		if dropped > 0 {
			err = fmt.Errorf("%w (and %d more failed exports since the last report)", err, dropped)
		}
		e.onError(fmt.Errorf("export %d spans: %w", len(spans), err))
	}
	// NOTE: nil, so the SDK does not report it again to the global handler.
	return nil
}

package tracing_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpgate/mcpgate/internal/tracing"
	"github.com/mcpgate/mcpgate/internal/tracing/tracingtest"
)

// TestExportToReceiver exports spans with every kind of attribute value,
// an event, a link, an error status, a remote parent and values longer than
// one length byte, and reads them back from the OpenTelemetry Collector's
// own OTLP receiver: what the hand-written protobuf encoding says is what
// the collector decodes.
func TestExportToReceiver(t *testing.T) {
	t.Parallel()
	recv := tracingtest.StartT(t, "x-api-key", "authorization")
	headers := t.TempDir()
	if err := os.WriteFile(filepath.Join(headers, "X-Api-Key"), []byte("k-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{".hidden": "x", "Bad Name": "x", "Authorization": "a\r\nInjected: yes"} {
		if err := os.WriteFile(filepath.Join(headers, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tp, err := tracing.New(tracing.Config{
		Endpoint: recv.Endpoint, SamplingRatio: 1, HeadersDir: headers,
		ServiceName: "tracing-test", Attributes: []attribute.KeyValue{attribute.String("k8s.namespace.name", "team-a")},
	})
	if err != nil {
		t.Fatal(err)
	}
	tracer := tp.Tracer()
	long := strings.Repeat("x", 20000) // a length of three varint bytes
	remote := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, SpanID: trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
		TraceFlags: trace.FlagsSampled, Remote: true,
	})
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), remote)
	ctx, parent := tracer.Start(ctx, "parent", trace.WithSpanKind(trace.SpanKindServer))
	_, child := tracer.Start(ctx, "child", trace.WithSpanKind(trace.SpanKindClient), trace.WithLinks(trace.Link{SpanContext: remote}))
	child.SetAttributes(
		attribute.String("s", "v"), attribute.Bool("b", true), attribute.Int("i", -42), attribute.Float64("f", 1.5),
		attribute.StringSlice("ss", []string{"a", "b"}), attribute.Int64Slice("is", []int64{1, 2}), attribute.String("long", long),
	)
	child.AddEvent("happened", trace.WithAttributes(attribute.String("e", "1")))
	child.SetStatus(codes.Error, "went wrong")
	child.End()
	parent.End()
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	spans, err := recv.WaitForSpans(10*time.Second, func(s []tracingtest.Span) bool { return len(s) == 2 })
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]tracingtest.Span{}
	for _, s := range spans {
		byName[s.Name] = s
	}
	p, c := byName["parent"], byName["child"]
	if p.TraceID != "0102030405060708090a0b0c0d0e0f10" || p.ParentSpanID != "0102030405060708" || p.Kind != 2 {
		t.Errorf("parent = %+v, want the remote parent's trace and span, kind server", p)
	}
	if c.ParentSpanID != p.SpanID || c.Kind != 3 || c.StatusCode != 2 {
		t.Errorf("child = %+v, want under parent, kind client, status error", c)
	}
	want := map[string]string{"s": "v", "b": "true", "i": "-42", "f": "1.5", "long": long}
	for k, v := range want {
		if c.Attributes[k] != v {
			t.Errorf("child attribute %s = %.40q, want %.40q", k, c.Attributes[k], v)
		}
	}
	for _, k := range []string{"ss", "is"} {
		if !strings.Contains(c.Attributes[k], "values") {
			t.Errorf("child attribute %s = %q, want an array", k, c.Attributes[k])
		}
	}
	if p.Resource["service.name"] != "tracing-test" || p.Resource["k8s.namespace.name"] != "team-a" {
		t.Errorf("resource = %v", p.Resource)
	}
	exports, _ := recv.Exports()
	for _, e := range exports {
		if got := e.Headers["x-api-key"]; len(got) != 1 || got[0] != "k-123" {
			t.Errorf("x-api-key = %q, want the file's value", got)
		}
		if got := e.Headers["authorization"]; len(got) != 0 {
			t.Errorf("a header file with CR LF was sent: %q", got)
		}
	}
}

// TestExportFailureReported: a receiver that refuses exports reaches
// OnError (once per interval), and never the code that makes spans.
func TestExportFailureReported(t *testing.T) {
	t.Parallel()
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
	}))
	t.Cleanup(refusing.Close)
	errs := make(chan error, 10)
	tp, err := tracing.New(tracing.Config{Endpoint: refusing.URL, SamplingRatio: 1, ServiceName: "t", OnError: func(err error) { errs <- err }})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		_, span := tp.Tracer().Start(context.Background(), "s")
		span.End()
		_ = tp.ForceFlush(context.Background())
	}
	_ = tp.Shutdown(context.Background())
	close(errs)
	var got []error
	for err := range errs {
		got = append(got, err)
	}
	if len(got) != 1 || !strings.Contains(got[0].Error(), "400") {
		t.Errorf("OnError got %v, want one report of the 400", got)
	}
}

func TestNewRefuses(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]tracing.Config{
		"no scheme":   {Endpoint: "collector:4318", SamplingRatio: 1},
		"grpc":        {Endpoint: "grpc://collector:4317", SamplingRatio: 1},
		"ratio above": {Endpoint: "http://c:4318", SamplingRatio: 2},
	} {
		if _, err := tracing.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	var p *tracing.Provider
	if p.Tracer() != nil || p.Shutdown(context.Background()) != nil || p.ForceFlush(context.Background()) != nil {
		t.Error("a nil Provider is not tracing off")
	}
}

func TestReadHeaders(t *testing.T) {
	t.Parallel()
	if _, err := tracing.ReadHeaders(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing directory: %v", err)
	}
}

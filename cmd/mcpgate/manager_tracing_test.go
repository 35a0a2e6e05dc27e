package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/clerk"
	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/internal/tracing"
	"github.com/mcpgate/mcpgate/internal/tracing/tracingtest"
)

// TestParseManagerTracingFlags checks the tracing flags: off by default,
// ratio 1, and the values refused, each naming its flag.
func TestParseManagerTracingFlags(t *testing.T) {
	t.Setenv("MCPGATE_BROKER_URL", "")
	f, err := parseManagerFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if f.gatewayTracingEndpoint != "" || f.tracingEndpoint != "" || f.gatewayTracingRatio != 1 || f.tracingRatio != 1 {
		t.Errorf("defaults = %q %v %q %v; want no endpoints, ratios 1", f.gatewayTracingEndpoint, f.gatewayTracingRatio, f.tracingEndpoint, f.tracingRatio)
	}
	f, err = parseManagerFlags([]string{
		"--gateway-tracing-endpoint=http://otel-collector.observability:4318", "--gateway-tracing-sampling-ratio=0.01",
		"--tracing-endpoint=https://otlp.example.com/otlp", "--tracing-sampling-ratio=0",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if f.gatewayTracingEndpoint != "http://otel-collector.observability:4318" || f.gatewayTracingRatio != 0.01 ||
		f.tracingEndpoint != "https://otlp.example.com/otlp" || f.tracingRatio != 0 {
		t.Errorf("flags = %+v", f)
	}
	refused := map[string]struct {
		args []string
		flag string // the flag the error must name
	}{
		"gateway endpoint without scheme": {[]string{"--gateway-tracing-endpoint=otel-collector:4318"}, "--gateway-tracing-endpoint"},
		"gateway endpoint with a query":   {[]string{"--gateway-tracing-endpoint=http://c:4318/?a=b"}, "--gateway-tracing-endpoint"},
		"manager endpoint grpc":           {[]string{"--tracing-endpoint=grpc://c:4317"}, "--tracing-endpoint"},
		"manager endpoint credentials":    {[]string{"--tracing-endpoint=http://u:p@c:4318"}, "--tracing-endpoint"},
		"gateway ratio above one":         {[]string{"--gateway-tracing-sampling-ratio=1.5"}, "--gateway-tracing-sampling-ratio"},
		"manager ratio negative":          {[]string{"--tracing-sampling-ratio=-0.5"}, "--tracing-sampling-ratio"},
		"manager ratio NaN":               {[]string{"--tracing-sampling-ratio=NaN"}, "--tracing-sampling-ratio"},
	}
	for name, tc := range refused {
		_, err := parseManagerFlags(tc.args, io.Discard)
		if err == nil {
			t.Errorf("%s: %v accepted", name, tc.args)
			continue
		}
		if !strings.Contains(err.Error(), tc.flag) || strings.Contains(err.Error(), "u:p@") {
			t.Errorf("%s: error %q does not name %s, or repeats credentials", name, err, tc.flag)
		}
	}
}

// TestManagerClerkClientTraced: with tracing, the manager's Clerk calls are
// client spans under the reconcile that makes them, read back from the
// real OTLP receiver, without the secret key; without tracing the
// controllers' default client is kept.
func TestManagerClerkClientTraced(t *testing.T) {
	if managerClerkClient(nil) != nil {
		t.Fatal("a client without tracing")
	}
	recv := tracingtest.StartT(t)
	tp, err := tracing.New(tracing.Config{Endpoint: recv.Endpoint, SamplingRatio: 1, ServiceName: "mcpgate-manager"})
	if err != nil {
		t.Fatal(err)
	}
	em := clerktest.NewServer()
	t.Cleanup(em.Close)

	ctx, reconcile := tp.Tracer().Start(t.Context(), "reconcile McpServer")
	if _, err := clerk.NewSettingsClient(em.BackendAPIURL(), em.SecretKey(), managerClerkClient(tp)).Get(ctx); err != nil {
		t.Fatal(err)
	}
	reconcile.End()
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans, err := recv.WaitForSpans(10*time.Second, func(s []tracingtest.Span) bool { return len(s) == 2 })
	if err != nil {
		t.Fatal(err)
	}
	var root, call *tracingtest.Span
	for i := range spans {
		switch spans[i].Name {
		case "reconcile McpServer":
			root = &spans[i]
		case "GET":
			call = &spans[i]
		}
	}
	if root == nil || call == nil || call.ParentSpanID != root.SpanID || call.Attributes["mcpgate.peer"] != "clerk" ||
		!strings.HasSuffix(call.Attributes["url.full"], "/instance/oauth_application_settings") || call.Attributes["http.response.status_code"] != "200" {
		t.Fatalf("spans = %+v, want a Clerk GET under the reconcile", spans)
	}
	for k, v := range call.Attributes {
		if strings.Contains(v, em.SecretKey()) {
			t.Errorf("attribute %s holds the secret key", k)
		}
	}
}

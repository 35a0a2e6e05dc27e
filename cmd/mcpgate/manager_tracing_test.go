package main

import (
	"io"
	"strings"
	"testing"
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

package config

import (
	"strings"
	"testing"
)

func TestTracingValidate(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		tracing Tracing
		// wantErr is a fragment of the error; empty for a valid block.
		wantErr string
	}{
		"collector":        {tracing: Tracing{Endpoint: "http://otel-collector.observability:4318", SamplingRatio: 1}},
		"https with path":  {tracing: Tracing{Endpoint: "https://otlp.example.com/otlp", SamplingRatio: 0.01, HeadersDir: "/var/run/mcpgate/tracing-headers"}},
		"ratio zero":       {tracing: Tracing{Endpoint: "http://127.0.0.1:4318"}},
		"no scheme":        {tracing: Tracing{Endpoint: "otel-collector:4318", SamplingRatio: 1}, wantErr: "tracing.endpoint"},
		"grpc scheme":      {tracing: Tracing{Endpoint: "grpc://otel-collector:4317", SamplingRatio: 1}, wantErr: "tracing.endpoint"},
		"query":            {tracing: Tracing{Endpoint: "http://c:4318/?k=v", SamplingRatio: 1}, wantErr: "no query"},
		"ratio above one":  {tracing: Tracing{Endpoint: "http://c:4318", SamplingRatio: 1.5}, wantErr: "samplingRatio"},
		"ratio negative":   {tracing: Tracing{Endpoint: "http://c:4318", SamplingRatio: -0.1}, wantErr: "samplingRatio"},
		"relative headers": {tracing: Tracing{Endpoint: "http://c:4318", SamplingRatio: 1, HeadersDir: "headers"}, wantErr: "headersDir"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := validConfig()
			cfg.Tracing = &tc.tracing
			err := cfg.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Validate() = %v, want an error naming %q", err, tc.wantErr)
			}
		})
	}
}

// TestTracingEndpointPasswordNotEchoed: an endpoint with user info is
// refused without repeating its password.
func TestTracingEndpointPasswordNotEchoed(t *testing.T) {
	t.Parallel()
	cfg := validConfig()
	cfg.Tracing = &Tracing{Endpoint: "http://user:hunter2@c:4318/?x=1", SamplingRatio: 1}
	err := cfg.Validate()
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Validate() = %v, want an error without the password", err)
	}
}

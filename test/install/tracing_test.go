package install_test

import (
	"slices"
	"strings"
	"testing"
)

// TestHelmTemplate_tracing: the tracing values become the manager's flags,
// only when an endpoint is set, and the schema refuses what the flags would.
func TestHelmTemplate_tracing(t *testing.T) {
	t.Parallel()
	tracingFlags := func(args []string) []string {
		return slices.DeleteFunc(slices.Clone(args), func(a string) bool {
			return !strings.HasPrefix(a, "--tracing-") && !strings.HasPrefix(a, "--gateway-tracing-")
		})
	}
	tests := map[string]struct {
		set  []string
		want []string
	}{
		"off by default": {},
		"gateway defaults": {
			set:  []string{"tracing.gatewayDefaults.endpoint=http://otel-collector.observability:4318", "tracing.gatewayDefaults.samplingRatio=0.01"},
			want: []string{"--gateway-tracing-endpoint=http://otel-collector.observability:4318", "--gateway-tracing-sampling-ratio=0.01"},
		},
		"the manager's own spans": {
			set:  []string{"tracing.manager.endpoint=https://otlp.example.com"},
			want: []string{"--tracing-endpoint=https://otlp.example.com", "--tracing-sampling-ratio=1"},
		},
		"a ratio without an endpoint does nothing": {
			set: []string{"tracing.manager.samplingRatio=0.5"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var args []string
			for _, s := range tc.set {
				args = append(args, "--set-string", s)
			}
			deployment := one(t, decodeAll(t, helmTemplate(t, "mcpgate-system", args...)), "Deployment", "mcpgate-system/mcpgate")
			if got := tracingFlags(containerArgs(t, deployment)); !slices.Equal(got, tc.want) {
				t.Errorf("tracing flags = %q, want %q", got, tc.want)
			}
		})
	}
	for name, set := range map[string]string{
		"ratio above 1":      "tracing.gatewayDefaults.samplingRatio=1.5",
		"ratio not a number": "tracing.manager.samplingRatio=often",
		"typo in a key":      "tracing.gatewayDefault.endpoint=http://x:4318",
	} {
		t.Run("refused: "+name, func(t *testing.T) {
			t.Parallel()
			_, stderr, err := runCmd(helmEnv(t), nil, findTools(t).helm, "template", "mcpgate", chartDir, "--set-string", set)
			if err == nil || !strings.Contains(stderr, "schema") || !strings.Contains(stderr, "tracing") {
				t.Errorf("helm template --set-string %s: err = %v\n%s", set, err, stderr)
			}
		})
	}
}

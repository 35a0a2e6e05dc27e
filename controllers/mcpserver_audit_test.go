package controllers

import (
	"strings"
	"testing"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/gateway/config"
)

// TestBuildAudit checks spec.gateway.audit's translation into the gateway's
// audit block, and that a server without the block gets a configuration
// without one (so an operator upgrade does not roll its gateway).
func TestBuildAudit(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		audit *mcpv1.GatewayAudit
		want  config.Audit
		// inConfig is whether the gateway's configuration names audit.
		inConfig bool
	}{
		"no block":           {},
		"enabled by default": {audit: &mcpv1.GatewayAudit{}},
		"enabled":            {audit: &mcpv1.GatewayAudit{Mode: mcpv1.AuditEnabled}},
		"disabled": {
			audit:    &mcpv1.GatewayAudit{Mode: mcpv1.AuditDisabled},
			want:     config.Audit{Disabled: true},
			inConfig: true,
		},
		"arguments": {
			audit:    &mcpv1.GatewayAudit{Mode: mcpv1.AuditEnabled, ArgumentsMaxBytes: 2048},
			want:     config.Audit{ArgumentsMaxBytes: 2048},
			inConfig: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := buildAudit(tc.audit); got != tc.want {
				t.Errorf("buildAudit = %+v, want %+v", got, tc.want)
			}
			mcp := newMcpServer("team-a", "tools")
			mcp.Spec.Gateway.Audit = tc.audit
			data, err := config.Marshal(buildGatewayConfig(mcp, testOptions, testIssuer, "http://upstream.team-a.svc:8080/mcp"))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(string(data), `"audit"`); got != tc.inConfig {
				t.Errorf("configuration names audit: %v, want %v:\n%s", got, tc.inConfig, data)
			}
		})
	}
}

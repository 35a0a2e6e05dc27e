package controllers

import (
	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/gateway/config"
)

// buildAudit is the gateway's audit block for spec.gateway.audit.
func buildAudit(audit *mcpv1.GatewayAudit) config.Audit {
	if audit == nil {
		return config.Audit{}
	}
	return config.Audit{
		Disabled:          audit.Mode == mcpv1.AuditDisabled,
		ArgumentsMaxBytes: int(audit.ArgumentsMaxBytes),
	}
}

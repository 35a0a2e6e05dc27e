package controllers

import (
	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/gateway/config"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
)

// buildTracing is the gateway's tracing block for spec.gateway.tracing,
// falling back to the operator's default. Nil: no tracing.
// TODO(issue 18): the operator's default and the sampling ratio.
func buildTracing(tracing *mcpv1.GatewayTracing, opts Options) *config.Tracing {
	if tracing == nil {
		return nil
	}
	return &config.Tracing{Endpoint: tracing.Endpoint, SamplingRatio: 1}
}

// tracingHeadersVolume is the volume and mount of the tracing headers'
// Secret, or nil when there is none.
// TODO(issue 18): project spec.gateway.tracing.headersSecretRef.
func tracingHeadersVolume(mcp *mcpv1.McpServer) (*corev1ac.VolumeApplyConfiguration, *corev1ac.VolumeMountApplyConfiguration) {
	return nil, nil
}

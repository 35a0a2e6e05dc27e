package controllers

import (
	"context"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/gateway/config"
)

// Where the tracing headers' Secret is mounted in the gateway: one file per
// key, the key being the header's name.
const (
	tracingHeadersVolumeName = "tracing-headers"
	tracingHeadersDir        = "/etc/mcpgate/tracing-headers"
)

// TracingDefaults is the tracing of gateways whose McpServer sets no
// spec.gateway.tracing (the manager's --gateway-tracing-* flags). The zero
// value traces nothing.
type TracingDefaults struct {
	// Endpoint is the OTLP/HTTP base URL; empty: no default tracing.
	Endpoint string
	// SamplingRatio is the share of new traces recorded, 0 to 1.
	SamplingRatio float64
}

// buildTracing is the gateway's tracing block: spec.gateway.tracing when
// set, else the operator's default (opts.GatewayTracing), else nil (no
// tracing). samplingRatio is the CRD's decimal string; empty (an object the
// API server did not default) is 1, as the CRD's default.
func buildTracing(tracing *mcpv1.GatewayTracing, opts Options) *config.Tracing {
	if tracing == nil {
		if opts.GatewayTracing.Endpoint == "" {
			return nil
		}
		return &config.Tracing{Endpoint: opts.GatewayTracing.Endpoint, SamplingRatio: opts.GatewayTracing.SamplingRatio}
	}
	out := &config.Tracing{Endpoint: tracing.Endpoint, SamplingRatio: parseSamplingRatio(tracing.SamplingRatio)}
	if tracing.HeadersSecretRef != nil {
		out.HeadersDir = tracingHeadersDir
	}
	return out
}

// parseSamplingRatio reads a samplingRatio the CRD's pattern admitted
// ("0" to "1"); empty, or anything that slipped past the pattern, is 1,
// clamped to [0, 1].
func parseSamplingRatio(s string) float64 {
	r, err := strconv.ParseFloat(s, 64)
	if err != nil || r != r { // r != r: NaN
		return 1
	}
	return min(max(r, 0), 1)
}

// tracingHeadersVolume is the volume and mount of the tracing headers'
// Secret, or nil when there is none. Every key becomes a file, readable by
// the gateway's group only (as the credentials are). The Secret is
// optional: a missing one must not keep the gateway from serving, since
// tracing is no part of what it serves; reconcileTracing reports it, and
// the kubelet fills the files in when it appears.
func tracingHeadersVolume(mcp *mcpv1.McpServer) (*corev1ac.VolumeApplyConfiguration, *corev1ac.VolumeMountApplyConfiguration) {
	t := mcp.Spec.Gateway.Tracing
	if t == nil || t.HeadersSecretRef == nil {
		return nil, nil
	}
	volume := corev1ac.Volume().WithName(tracingHeadersVolumeName).WithProjected(
		corev1ac.ProjectedVolumeSource().WithDefaultMode(0o440).WithSources(
			corev1ac.VolumeProjection().WithSecret(
				corev1ac.SecretProjection().WithName(t.HeadersSecretRef.Name).WithOptional(true))))
	mount := corev1ac.VolumeMount().WithName(tracingHeadersVolumeName).WithMountPath(tracingHeadersDir).WithReadOnly(true)
	return volume, mount
}

// tracingSecretName is the tracing headers' Secret, "" when there is none.
func tracingSecretName(mcp *mcpv1.McpServer) string {
	if t := mcp.Spec.Gateway.Tracing; t != nil && t.HeadersSecretRef != nil {
		return t.HeadersSecretRef.Name
	}
	return ""
}

// reconcileTracing checks that the tracing headers' Secret exists. A
// missing one blocks Ready (reason SecretNotFound), as a credential's does,
// but nothing else: the gateway serves and exports without the headers
// (the receiver may refuse them) until the Secret appears, which the Secret
// watch brings back here. Values are never read.
func (r *McpServerReconciler) reconcileTracing(ctx context.Context, mcp *mcpv1.McpServer, st *reconcileState) error {
	name := tracingSecretName(mcp)
	if name == "" {
		return nil
	}
	err := r.Get(ctx, types.NamespacedName{Namespace: mcp.Namespace, Name: name}, &corev1.Secret{})
	switch {
	case apierrors.IsNotFound(err):
		st.block(mcpv1.ReasonSecretNotFound, fmt.Sprintf("spec.gateway.tracing.headersSecretRef: Secret %q not found", name))
	case err != nil:
		return fmt.Errorf("tracing headers secret %s: %w", name, err)
	}
	return nil
}

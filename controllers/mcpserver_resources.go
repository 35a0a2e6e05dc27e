package controllers

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
)

// defaultGatewayResources are the gateway container's resources when the
// spec sets none: requests, so the pods are not BestEffort and a CPU
// autoscaler has a base, near what a gateway uses under moderate load (an
// idle one holds about 30 MiB), and a memory limit well above what
// the bounded caches and request buffers need, so a leak is contained.
func defaultGatewayResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("100m"),
			corev1.ResourceMemory: resource.MustParse("64Mi"),
		},
		Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
	}
}

// buildResources is the gateway container's resources: the spec's, or the
// defaults when it sets none.
func buildResources(r corev1.ResourceRequirements) *corev1ac.ResourceRequirementsApplyConfiguration {
	if len(r.Limits) == 0 && len(r.Requests) == 0 && len(r.Claims) == 0 {
		r = defaultGatewayResources()
	}
	ac := corev1ac.ResourceRequirements()
	if len(r.Limits) > 0 {
		ac.WithLimits(r.Limits)
	}
	if len(r.Requests) > 0 {
		ac.WithRequests(r.Requests)
	}
	for _, c := range r.Claims {
		claim := corev1ac.ResourceClaim().WithName(c.Name)
		if c.Request != "" {
			claim.WithRequest(c.Request)
		}
		ac.WithClaims(claim)
	}
	return ac
}

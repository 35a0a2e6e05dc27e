package controllers

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/gateway/config"
)

// The Gateway API is optional in a cluster, so HTTPRoutes are handled as
// unstructured objects: no generated types, and the manager starts (and
// serves Ingress-based McpServers) when the CRDs are absent.
var httpRouteGVK = schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "HTTPRoute"}

func newHTTPRoute() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(httpRouteGVK)
	return u
}

// httpRouteAPIAvailable asks the API server whether it serves HTTPRoutes.
func httpRouteAPIAvailable(mapper meta.RESTMapper) (bool, error) {
	_, err := mapper.RESTMapping(httpRouteGVK.GroupKind(), httpRouteGVK.Version)
	switch {
	case err == nil:
		return true, nil
	case meta.IsNoMatchError(err):
		return false, nil
	default:
		return false, fmt.Errorf("look up the HTTPRoute API: %w", err)
	}
}

// reconcileHTTPRoute keeps the HTTPRoute in line with spec.httpRoute and
// reports the parents' verdict in HTTPRouteReady.
func (r *McpServerReconciler) reconcileHTTPRoute(ctx context.Context, mcp *mcpv1.McpServer, st *reconcileState) error {
	if mcp.Spec.HTTPRoute == nil {
		meta.RemoveStatusCondition(&mcp.Status.Conditions, mcpv1.ConditionHTTPRouteReady)
		if !r.httpRoutes {
			return nil
		}
		if err := r.deleteIfOwned(ctx, mcp, newHTTPRoute()); err != nil {
			return fmt.Errorf("delete httproute: %w", err)
		}
		return nil
	}
	if !r.httpRoutes {
		msg := "spec.httpRoute needs the Gateway API (gateway.networking.k8s.io/v1 HTTPRoute), which this cluster does not serve; " +
			"install its CRDs and restart the operator, or use spec.ingress"
		r.setCondition(mcp, mcpv1.ConditionHTTPRouteReady, metav1.ConditionFalse, mcpv1.ReasonGatewayAPIUnavailable, msg)
		st.block(mcpv1.ReasonGatewayAPIUnavailable, msg)
		return nil
	}

	route := buildHTTPRoute(mcp)
	if err := r.Apply(ctx, client.ApplyConfigurationFromUnstructured(route), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply httproute: %w", err)
	}
	status, reason, message := routeAcceptance(route, mcp.Spec.HTTPRoute.ParentRefs)
	r.setCondition(mcp, mcpv1.ConditionHTTPRouteReady, status, reason, message)
	return nil
}

// buildHTTPRoute routes the endpoint and its resource metadata, exactly, from
// the hostnames on the parents to the gateway Service.
func buildHTTPRoute(mcp *mcpv1.McpServer) *unstructured.Unstructured {
	spec := mcp.Spec.HTTPRoute
	parents := make([]any, 0, len(spec.ParentRefs))
	for _, p := range spec.ParentRefs {
		ref := map[string]any{"name": p.Name}
		for key, value := range map[string]string{"group": p.Group, "kind": p.Kind, "namespace": p.Namespace, "sectionName": p.SectionName} {
			if value != "" {
				ref[key] = value
			}
		}
		if p.Port != nil {
			ref["port"] = int64(*p.Port)
		}
		parents = append(parents, ref)
	}
	hostnames := make([]any, 0, len(spec.Hostnames))
	for _, h := range spec.Hostnames {
		hostnames = append(hostnames, string(h))
	}
	exact := func(path string) map[string]any {
		return map[string]any{"path": map[string]any{"type": "Exact", "value": path}}
	}
	path := mcpPath(mcp)
	route := newHTTPRoute()
	route.SetName(gatewayName(mcp))
	route.SetNamespace(mcp.Namespace)
	labels := map[string]string{}
	for k, v := range objectLabels(mcp) {
		labels[k] = v
	}
	route.SetLabels(labels)
	route.SetOwnerReferences([]metav1.OwnerReference{{
		APIVersion: mcpv1.GroupVersion.String(), Kind: "McpServer", Name: mcp.Name, UID: mcp.UID,
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
	}})
	route.Object["spec"] = map[string]any{
		"parentRefs": parents,
		"hostnames":  hostnames,
		"rules": []any{map[string]any{
			"matches":     []any{exact(path), exact(config.ResourceMetadataPath(path))},
			"backendRefs": []any{map[string]any{"name": gatewayName(mcp), "port": int64(servicePort)}},
		}},
	}
	return route
}

// routeAcceptance reads the parents' Accepted conditions off an HTTPRoute:
// True when every parent accepted it, False naming the first that did not.
func routeAcceptance(route *unstructured.Unstructured, want []mcpv1.ParentReference) (metav1.ConditionStatus, string, string) {
	parents, _, _ := unstructured.NestedSlice(route.Object, "status", "parents")
	accepted := 0
	for _, p := range parents {
		entry, _ := p.(map[string]any)
		conditions, _, _ := unstructured.NestedSlice(entry, "conditions")
		for _, c := range conditions {
			cond, _ := c.(map[string]any)
			if cond["type"] != "Accepted" {
				continue
			}
			if cond["status"] != "True" {
				name, _, _ := unstructured.NestedString(entry, "parentRef", "name")
				return metav1.ConditionFalse, mcpv1.ReasonRouteNotAccepted,
					fmt.Sprintf("Gateway %s did not accept the route: %v: %v", name, cond["reason"], cond["message"])
			}
			accepted++
		}
	}
	if accepted < len(want) {
		names := make([]string, 0, len(want))
		for _, p := range want {
			names = append(names, p.Name)
		}
		return metav1.ConditionFalse, mcpv1.ReasonRoutePending,
			fmt.Sprintf("Waiting for %s to accept the route (%d of %d have)", strings.Join(names, ", "), accepted, len(want))
	}
	return metav1.ConditionTrue, mcpv1.ReasonRouteAccepted, fmt.Sprintf("Accepted by %d parent(s)", accepted)
}

package controllers

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
)

func withHTTPRoute(hosts ...mcpv1.RouteHostname) mcpOption {
	return func(m *mcpv1.McpServer) {
		m.Spec.HTTPRoute = &mcpv1.HTTPRouteSpec{
			ParentRefs: []mcpv1.ParentReference{{Name: "public", Namespace: "gateways", SectionName: "https"}},
			Hostnames:  hosts,
		}
	}
}

// TestMcpServerReconciler_httpRoute follows an McpServer published through
// the Gateway API: the HTTPRoute routes exactly the endpoint and its
// metadata to the gateway Service, Ready waits for the parent Gateway to
// accept the route, and removing spec.httpRoute removes the route.
func TestMcpServerReconciler_httpRoute(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.createSecret("clerk", map[string]string{"secret-key": "sk_test_x"})
	f.create(newMcpServer(f.ns, "tools", withHTTPRoute("tools.example.com", "mcp.example.com")))

	route := waitFor(f, "tools-gateway", newHTTPRoute(), nil)
	spec := route.Object["spec"].(map[string]any)
	wantParents := []any{map[string]any{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public", "namespace": "gateways", "sectionName": "https"}}
	if !reflect.DeepEqual(spec["parentRefs"], wantParents) || !reflect.DeepEqual(spec["hostnames"], []any{"tools.example.com", "mcp.example.com"}) {
		t.Errorf("parentRefs %v, hostnames %v", spec["parentRefs"], spec["hostnames"])
	}
	rules, _, _ := unstructured.NestedSlice(route.Object, "spec", "rules")
	if len(rules) != 1 {
		t.Fatalf("rules = %v", rules)
	}
	rule := rules[0].(map[string]any)
	var paths []string
	for _, m := range rule["matches"].([]any) {
		p := m.(map[string]any)["path"].(map[string]any)
		paths = append(paths, fmt.Sprint(p["type"], " ", p["value"]))
	}
	backend := rule["backendRefs"].([]any)[0].(map[string]any)
	if !reflect.DeepEqual(paths, []string{"Exact /mcp", "Exact /.well-known/oauth-protected-resource/mcp"}) ||
		backend["name"] != "tools-gateway" || backend["port"] != int64(80) {
		t.Errorf("rule matches %v to %v", paths, backend)
	}
	mcp := f.waitMcp("tools", condition(mcpv1.ConditionHTTPRouteReady, metav1.ConditionFalse, mcpv1.ReasonRoutePending))
	if mcp.Status.URL != "https://tools.example.com/mcp" {
		t.Errorf("status.url = %q, want the first hostname over https", mcp.Status.URL)
	}

	// Play the Gateway controller: the parent accepts the route.
	f.setDeploymentAvailable("tools-gateway", 1)
	eventually(t, func() error {
		r := newHTTPRoute()
		if err := f.get("tools-gateway", r); err != nil {
			return err
		}
		r.Object["status"] = map[string]any{"parents": []any{map[string]any{
			"parentRef":      map[string]any{"name": "public", "namespace": "gateways", "sectionName": "https"},
			"controllerName": "example.com/gateway-controller",
			"conditions": []any{map[string]any{
				"type": "Accepted", "status": "True", "reason": "Accepted", "message": "Route is accepted",
				"observedGeneration": r.GetGeneration(), "lastTransitionTime": metav1.Now().UTC().Format("2006-01-02T15:04:05Z"),
			}},
		}}}
		return f.tc.client.Status().Update(context.Background(), r)
	})
	f.waitMcp("tools", condition(mcpv1.ConditionReady, metav1.ConditionTrue, mcpv1.ReasonReady))
	if err := f.get("tools-gateway", &networkingv1.Ingress{}); err == nil {
		t.Error("an Ingress was made for an McpServer published through an HTTPRoute")
	}

	f.updateMcp("tools", func(m *mcpv1.McpServer) { m.Spec.HTTPRoute = nil })
	f.waitGone("tools-gateway", newHTTPRoute())
	f.waitMcp("tools", absent(mcpv1.ConditionHTTPRouteReady))
	if err := f.get("tools-gateway", &appsv1.Deployment{}); err != nil {
		t.Errorf("the gateway went with the route: %v", err)
	}
}

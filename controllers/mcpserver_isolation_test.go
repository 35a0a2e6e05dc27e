package controllers

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
)

func TestUpstreamTargetPort(t *testing.T) {
	t.Parallel()
	svc := &corev1.Service{Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
		{Name: "http", Port: 8080, TargetPort: intstr.FromString("mcp")},
		{Name: "metrics", Port: 9090, TargetPort: intstr.FromInt32(9091)},
		{Name: "plain", Port: 7070},
	}}}
	tests := map[string]struct {
		want   intstr.IntOrString
		wantOK bool
		port   intstr.IntOrString
	}{
		"by number, named target":  {port: intstr.FromInt32(8080), want: intstr.FromString("mcp"), wantOK: true},
		"by name, numbered target": {port: intstr.FromString("metrics"), want: intstr.FromInt32(9091), wantOK: true},
		"no targetPort":            {port: intstr.FromString("plain"), want: intstr.FromInt32(7070), wantOK: true},
		"unknown":                  {port: intstr.FromInt32(1234)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, ok := upstreamTargetPort(svc, tc.port)
			if ok != tc.wantOK || (ok && got != tc.want) {
				t.Errorf("upstreamTargetPort(%s) = %s, %v; want %s, %v", tc.port.String(), got.String(), ok, tc.want.String(), tc.wantOK)
			}
		})
	}
}

// TestBuildNetworkPolicies checks what each policy admits, field by field.
func TestBuildNetworkPolicies(t *testing.T) {
	t.Parallel()
	mcp := newMcpServer("team-a", "tools")
	upstream := map[string]string{"app": "github-mcp"}
	gatewayPods := metav1.LabelSelector{MatchLabels: selectorLabels(mcp)}
	tcp := corev1.ProtocolTCP
	port := intstr.FromString("mcp")

	in := typed[networkingv1.NetworkPolicy](t, buildUpstreamPolicy(mcp, upstream, port))
	assertOwnedBy(t, in.ObjectMeta, mcp)
	want := networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: upstream},
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		Ingress: []networkingv1.NetworkPolicyIngressRule{{
			From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &gatewayPods}},
			Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}},
		}},
	}
	if in.Name != "tools-upstream" || !reflect.DeepEqual(in.Spec, want) {
		t.Errorf("upstream policy %s = %+v\nwant %+v", in.Name, in.Spec, want)
	}

	out := typed[networkingv1.NetworkPolicy](t, buildGatewayEgressPolicy(mcp, upstream, port, testOptions))
	assertOwnedBy(t, out.ObjectMeta, mcp)
	if out.Name != "tools-gateway-egress" || !reflect.DeepEqual(out.Spec.PodSelector, gatewayPods) ||
		!reflect.DeepEqual(out.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}) || len(out.Spec.Egress) != 3 {
		t.Fatalf("egress policy %s = %+v", out.Name, out.Spec)
	}
	toUpstream, toDNS, toHTTPS := out.Spec.Egress[0], out.Spec.Egress[1], out.Spec.Egress[2]
	if !reflect.DeepEqual(toUpstream.To[0].PodSelector.MatchLabels, upstream) || *toUpstream.Ports[0].Port != port {
		t.Errorf("egress to the upstream = %+v", toUpstream)
	}
	var dnsPorts []string
	for _, p := range toDNS.Ports {
		dnsPorts = append(dnsPorts, string(*p.Protocol)+"/"+p.Port.String())
	}
	if want := []string{"UDP/53", "TCP/53", "UDP/dns", "TCP/dns-tcp"}; toDNS.To[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "kube-system" ||
		!reflect.DeepEqual(dnsPorts, want) {
		t.Errorf("egress to DNS: %v, ports %v; want kube-system's DNS pods on %v", toDNS.To[0], dnsPorts, want)
	}
	if len(toHTTPS.To) != 0 || toHTTPS.Ports[0].Port.IntVal != 443 {
		t.Errorf("egress to Clerk = %+v", toHTTPS)
	}
}

// TestMcpServerReconciler_isolation follows the policies through the
// McpServer's life: applied for a service upstream, the egress one on
// request, both gone when isolation is turned off, and a condition, not a
// silent gap, for a Service that selects no pods.
func TestMcpServerReconciler_isolation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.createSecret("clerk", map[string]string{"secret-key": "sk_test_x"})
	f.create(&corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "upstream"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "github-mcp"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 8080, TargetPort: intstr.FromString("mcp")}},
		},
	})
	f.create(newMcpServer(f.ns, "tools"))

	policy := waitFor(f, "tools-upstream", &networkingv1.NetworkPolicy{}, nil)
	mcp := &mcpv1.McpServer{}
	if err := f.get("tools", mcp); err != nil {
		t.Fatal(err)
	}
	if !metav1.IsControlledBy(policy, mcp) || !reflect.DeepEqual(policy.Spec.PodSelector.MatchLabels, map[string]string{"app": "github-mcp"}) ||
		!reflect.DeepEqual(policy.Spec.Ingress[0].From[0].PodSelector.MatchLabels, selectorLabels(mcp)) || policy.Spec.Ingress[0].Ports[0].Port.StrVal != "mcp" {
		t.Errorf("upstream policy = %+v", policy.Spec)
	}
	f.waitMcp("tools", condition(mcpv1.ConditionUpstreamIsolated, metav1.ConditionTrue, mcpv1.ReasonPolicyApplied))
	if err := f.get("tools-gateway-egress", &networkingv1.NetworkPolicy{}); !apierrors.IsNotFound(err) {
		t.Errorf("egress policy without gatewayEgress: err = %v, want NotFound", err)
	}

	f.updateMcp("tools", func(m *mcpv1.McpServer) {
		m.Spec.Upstream.Isolation = &mcpv1.UpstreamIsolation{Enabled: true, GatewayEgress: true}
	})
	waitFor(f, "tools-gateway-egress", &networkingv1.NetworkPolicy{}, nil)

	f.updateMcp("tools", func(m *mcpv1.McpServer) { m.Spec.Upstream.Isolation = &mcpv1.UpstreamIsolation{Enabled: false} })
	for _, name := range []string{"tools-upstream", "tools-gateway-egress"} {
		f.waitGone(name, &networkingv1.NetworkPolicy{})
	}
	f.waitMcp("tools", func(m *mcpv1.McpServer) error {
		if c := meta.FindStatusCondition(m.Status.Conditions, mcpv1.ConditionUpstreamIsolated); c != nil {
			return fmt.Errorf("UpstreamIsolated still present: %+v", c)
		}
		return nil
	})

	// A Service without a selector: its endpoints are someone else's.
	f.create(&corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "external"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}},
	})
	f.create(newMcpServer(f.ns, "other", func(m *mcpv1.McpServer) { m.Spec.Upstream.Service.Name = "external" }))
	f.waitMcp("other", condition(mcpv1.ConditionUpstreamIsolated, metav1.ConditionFalse, mcpv1.ReasonNoSelector))
	if err := f.get("other-upstream", &networkingv1.NetworkPolicy{}); !apierrors.IsNotFound(err) {
		t.Errorf("policy for a Service without selector: err = %v, want NotFound", err)
	}
}

// TestMcpServerReconciler_autoscaling: autoscaling brings a
// HorizontalPodAutoscaler (and a PDB for a floor above one); removing it
// removes the autoscaler and gives replicas back to the spec.
func TestMcpServerReconciler_autoscaling(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.createSecret("clerk", map[string]string{"secret-key": "sk_test_x"})
	f.create(newMcpServer(f.ns, "tools", func(m *mcpv1.McpServer) {
		m.Spec.Gateway.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m")}
		m.Spec.Gateway.Autoscaling = &mcpv1.GatewayAutoscaling{MinReplicas: 2, MaxReplicas: 6}
	}))
	hpa := waitFor(f, "tools-gateway", &autoscalingv2.HorizontalPodAutoscaler{}, nil)
	if *hpa.Spec.MinReplicas != 2 || hpa.Spec.MaxReplicas != 6 || *hpa.Spec.Metrics[0].Resource.Target.AverageUtilization != 80 {
		t.Errorf("hpa = %+v, want 2-6 at the default 80%% CPU", hpa.Spec)
	}
	waitFor(f, "tools-gateway", &policyv1.PodDisruptionBudget{}, nil)

	// The autoscaler changes the replicas (envtest runs none: play it); the
	// operator must not take them back.
	eventually(t, func() error {
		d := &appsv1.Deployment{}
		if err := f.get("tools-gateway", d); err != nil {
			return err
		}
		d.Spec.Replicas = ptr.To(int32(4))
		return f.tc.client.Update(context.Background(), d, client.FieldOwner("horizontal-pod-autoscaler"))
	})
	f.updateMcp("tools", func(m *mcpv1.McpServer) { m.Spec.Gateway.AllowedOrigins = []mcpv1.Origin{"https://app.example.com"} })
	f.waitMcp("tools", func(m *mcpv1.McpServer) error {
		if m.Status.ObservedGeneration != m.Generation {
			return fmt.Errorf("generation %d not observed yet", m.Generation)
		}
		return nil
	})
	if d := waitFor(f, "tools-gateway", &appsv1.Deployment{}, nil); *d.Spec.Replicas != 4 {
		t.Errorf("replicas = %d after a reconcile, want the autoscaler's 4", *d.Spec.Replicas)
	}

	f.updateMcp("tools", func(m *mcpv1.McpServer) { m.Spec.Gateway.Autoscaling = nil; m.Spec.Gateway.Replicas = ptr.To(int32(1)) })
	f.waitGone("tools-gateway", &autoscalingv2.HorizontalPodAutoscaler{})
	f.waitGone("tools-gateway", &policyv1.PodDisruptionBudget{})
	waitFor(f, "tools-gateway", &appsv1.Deployment{}, func(d *appsv1.Deployment) error {
		if *d.Spec.Replicas != 1 {
			return fmt.Errorf("replicas = %d, want spec.gateway.replicas 1", *d.Spec.Replicas)
		}
		return nil
	})
}

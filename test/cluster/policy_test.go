//go:build cluster

package cluster_test

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestNetworkPolicyEnforced: kube-router's firewall enforces a NetworkPolicy
// that admits only pods labelled role=gateway to the upstream: such a pod
// connects, another pod of the same namespace does not, nor does a pod of
// another namespace; deleting the policy opens the upstream again.
func TestNetworkPolicyEnforced(t *testing.T) {
	ctx := testContext(t, 4*time.Minute)
	ns := restrictedNamespace(t, "policy")
	other := restrictedNamespace(t, "policy-other")

	upstream := netcheckPod("upstream", map[string]string{"app": "upstream"}, corev1.RestartPolicyAlways, "serve", ":8080")
	upstream.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(8080)}},
		PeriodSeconds: 1,
	}
	if _, err := kube.CoreV1().Pods(ns).Create(ctx, upstream, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create upstream: %v", err)
	}
	p := waitPod(ctx, t, ns, "upstream", "Ready", podReady)
	target := p.Status.PodIP + ":8080"

	policy := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "upstream-only-from-gateway"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "upstream"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{{
					PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "gateway"}},
				}},
			}},
		},
	}
	if _, err := kube.NetworkingV1().NetworkPolicies(ns).Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create policy: %v", err)
	}
	// NOTE: kube-router applies a policy, and admits a new pod's address,
	// asynchronously.

	probes := []struct {
		name, ns string
		labels   map[string]string
		ok       bool
	}{
		{"gateway", ns, map[string]string{"role": "gateway"}, true},
		{"bystander", ns, map[string]string{"role": "other"}, false},
		{"other-namespace", other, map[string]string{"role": "gateway"}, false},
	}
	// The admitted probe goes first and retries: once it connects, the policy
	// is in force, and a refused probe after it is refused by the policy.
	for _, pr := range probes {
		args := []string{"-timeout", "3s", "dial", target}
		if pr.ok {
			args = append([]string{"-retry", "-timeout", "20s"}, args[2:]...)
		}
		out, ok := runProbe(ctx, t, pr.ns, pr.name, pr.labels, args...)
		if ok != pr.ok {
			t.Errorf("%s (namespace %s) dialling the upstream: connected=%v, want %v\n%s", pr.name, pr.ns, ok, pr.ok, out)
		}
	}

	if err := kube.NetworkingV1().NetworkPolicies(ns).Delete(ctx, policy.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete policy: %v", err)
	}
	if out, ok := runProbe(ctx, t, ns, "bystander-after", map[string]string{"role": "other"}, "-retry", "-timeout", "20s", "dial", target); !ok {
		t.Errorf("with the policy deleted, a bystander still cannot reach the upstream:\n%s", out)
	}
}

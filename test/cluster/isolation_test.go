//go:build cluster

package cluster_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
)

// TestUpstreamIsolation: the operator's NetworkPolicies, enforced by
// kube-router on the node, keep everything but the McpServer's gateway away
// from the upstream: the gateway reaches it (a client's tools/call goes
// through), a bystander pod of the same namespace cannot open a connection,
// nor can a pod of another namespace that carries the gateway's labels;
// turning isolation off opens the upstream again; gatewayEgress limits the
// gateway's pods to the upstream, cluster DNS and Clerk's HTTPS port.
func TestUpstreamIsolation(t *testing.T) {
	ctx := testContext(t, 10*time.Minute)
	ns := teamNamespace(ctx, t, "iso", true)
	other := restrictedNamespace(t, "iso-other")
	const name = "isolated"
	host := "iso-" + strings.TrimPrefix(ns, "iso-") + "." + ingressDomain
	kubectl(ctx, t, mcpServerManifest(ns, name, "", ingressPublish(host)), "apply", "-f", "-")
	url := waitMcpServerReady(ctx, t, ns, name)
	waitRouted(ctx, t, url)
	kubectl(ctx, t, "", "wait", "mcpserver/"+name, "-n", ns, "--for=condition=UpstreamIsolated", "--timeout=60s")

	client, _ := clusterHTTPClient(ctx, t)
	callEcho(ctx, t, connect(ctx, t, client, url), "through the isolated gateway")

	upstream := samplePodIP(ctx, t, ns) + fmt.Sprint(":", samplePort)
	gatewayLabels := policySelector(ctx, t, ns, name+"-upstream")
	refused := func(probe, probeNS string, labels map[string]string, target string) {
		t.Helper()
		if out, ok := runProbe(ctx, t, probeNS, probe, labels, "-timeout", "3s", "dial", target); ok {
			t.Errorf("%s (namespace %s) opened a connection to %s, which the policies should refuse:\n%s", probe, probeNS, target, out)
		}
	}
	admitted := func(probe, probeNS string, labels map[string]string, target string) {
		t.Helper()
		// A new pod's address is admitted a moment after it starts.
		if out, ok := runProbe(ctx, t, probeNS, probe, labels, "-retry", "-timeout", "30s", "dial", target); !ok {
			t.Errorf("%s (namespace %s) could not connect to %s:\n%s", probe, probeNS, target, out)
		}
	}
	refused("bystander", ns, map[string]string{"app": "bystander"}, upstream)
	refused("gateway-lookalike", other, gatewayLabels, upstream)

	kubectl(ctx, t, "", "patch", "mcpserver", name, "-n", ns, "--type=merge", "-p", `{"spec":{"upstream":{"isolation":{"enabled":false}}}}`)
	waitNoPolicy(ctx, t, ns, name+"-upstream")
	admitted("bystander-after", ns, map[string]string{"app": "bystander"}, upstream)

	// gatewayEgress: a pod with the gateway's labels gets the gateway's
	// egress policy. It reaches the upstream by its Service name (DNS and
	// the upstream), and Clerk on 443 by name, and nothing else: not a pod
	// in another namespace, not Clerk's Backend API port on the node.
	server := netcheckPod("elsewhere", map[string]string{"app": "elsewhere"}, corev1.RestartPolicyAlways, "serve", ":8080")
	server.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(8080)}},
		PeriodSeconds: 1,
	}
	if _, err := kube.CoreV1().Pods(other).Create(ctx, server, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create a server in %s: %v", other, err)
	}
	elsewhere := waitPod(ctx, t, other, server.Name, "Ready", podReady).Status.PodIP + ":8080"

	// A policy takes hold of a new pod a moment after it starts, and until
	// then the pod may go anywhere; so one probe pod with the gateway's
	// labels lives through the checks, which run in it with kubectl exec.
	prober := netcheckPod("egress-probe", gatewayLabels, corev1.RestartPolicyAlways, "sleep")
	if _, err := kube.CoreV1().Pods(ns).Create(ctx, prober, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create the egress probe: %v", err)
	}
	waitPod(ctx, t, ns, prober.Name, "Ready", podReady)
	probe := func(args ...string) (string, bool) {
		return execNetcheck(ctx, ns, prober.Name, args...)
	}
	if out, ok := probe("-timeout", "3s", "dial", elsewhere); !ok {
		t.Fatalf("without gatewayEgress the probe cannot reach %s:\n%s", elsewhere, out)
	}

	kubectl(ctx, t, "", "patch", "mcpserver", name, "-n", ns, "--type=merge", "-p",
		`{"spec":{"upstream":{"isolation":{"enabled":true,"gatewayEgress":true}}}}`)
	waitPolicy(ctx, t, ns, name+"-gateway-egress")
	err := wait.PollUntilContextTimeout(ctx, time.Second, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, ok := probe("-timeout", "2s", "dial", elsewhere)
		return !ok, nil
	})
	if err != nil {
		t.Fatalf("with gatewayEgress, a pod with the gateway's labels still reaches %s in another namespace after a minute", elsewhere)
	}
	for _, c := range []struct {
		target string
		ok     bool
	}{
		{fmt.Sprintf("%s.%s.svc.cluster.local:%d", sampleName, ns, samplePort), true}, // DNS, then the upstream
		{fmt.Sprintf("%s:%d", clerkHost, clerkFrontendPort), true},                    // DNS, then Clerk on 443
		{fmt.Sprintf("%s:%d", bridgeIP, clerkBackendPort), false},                     // the node, another port
		{elsewhere, false},
	} {
		if out, ok := probe("-timeout", "3s", "dial", c.target); ok != c.ok {
			t.Errorf("with gatewayEgress, a pod with the gateway's labels dialling %s: connected=%v, want %v\n%s", c.target, ok, c.ok, out)
		}
	}
	// And the gateway itself still serves: Clerk's keys, DNS, the upstream.
	callEcho(ctx, t, connect(ctx, t, client, url), "through the egress-limited gateway")
}

// execNetcheck runs the network probe in a running netcheck pod with kubectl
// exec, and reports its output and whether it succeeded.
func execNetcheck(ctx context.Context, ns, pod string, args ...string) (string, bool) {
	cmd := exec.CommandContext(ctx, os.Getenv("KUBECTL"), append([]string{"--kubeconfig", kubeconfigPath(),
		"exec", "-n", ns, pod, "--", "/netcheck"}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

// samplePodIP is the address of the sample server's pod in ns.
func samplePodIP(ctx context.Context, t *testing.T, ns string) string {
	t.Helper()
	pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + sampleName})
	if err != nil || len(pods.Items) == 0 || pods.Items[0].Status.PodIP == "" {
		t.Fatalf("the sample server's pod in %s: %v (%d pods)", ns, err, len(pods.Items))
	}
	return pods.Items[0].Status.PodIP
}

// policySelector is the pod selector of the NetworkPolicy's ingress peer:
// the labels that admit a pod to the upstream.
func policySelector(ctx context.Context, t *testing.T, ns, name string) map[string]string {
	t.Helper()
	p, err := kube.NetworkingV1().NetworkPolicies(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("NetworkPolicy %s/%s: %v", ns, name, err)
	}
	if len(p.Spec.Ingress) != 1 || len(p.Spec.Ingress[0].From) != 1 || p.Spec.Ingress[0].From[0].PodSelector == nil {
		t.Fatalf("NetworkPolicy %s/%s admits %+v, want one pod selector", ns, name, p.Spec.Ingress)
	}
	return p.Spec.Ingress[0].From[0].PodSelector.MatchLabels
}

func waitPolicy(ctx context.Context, t *testing.T, ns, name string) {
	t.Helper()
	waitPolicyState(ctx, t, ns, name, true)
}

func waitNoPolicy(ctx context.Context, t *testing.T, ns, name string) {
	t.Helper()
	waitPolicyState(ctx, t, ns, name, false)
}

func waitPolicyState(ctx context.Context, t *testing.T, ns, name string, exists bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := kube.NetworkingV1().NetworkPolicies(ns).Get(ctx, name, metav1.GetOptions{})
		return (err == nil) == exists, nil
	})
	if err != nil {
		t.Fatalf("NetworkPolicy %s/%s: exists=%v never came: %v", ns, name, exists, err)
	}
}

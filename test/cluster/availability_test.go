//go:build cluster

package cluster_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
)

// steadyLoad is how long a test lets the load run before and after the
// change it makes, so the report covers calls on both sides of it.
const steadyLoad = 3 * time.Second

// twoReplicaServer creates an McpServer with two gateway replicas behind an
// Ingress, waits for it, and returns its namespace, name and URL.
func twoReplicaServer(ctx context.Context, t *testing.T, prefix string) (ns, name, url string) {
	t.Helper()
	ns = teamNamespace(ctx, t, prefix, true)
	name = "available"
	host := prefix + "-" + strings.TrimPrefix(ns, prefix+"-") + "." + ingressDomain
	kubectl(ctx, t, mcpServerManifest(ns, name, "", ingressPublish(host)+"  gateway: {replicas: 2}\n"), "apply", "-f", "-")
	url = waitMcpServerReady(ctx, t, ns, name)
	waitRolledOut(ctx, t, ns, name)
	waitRouted(ctx, t, url)
	return ns, name, url
}

// changeAndRollOut applies a change to the McpServer that changes its
// gateway Deployment, and waits until the operator has updated the
// Deployment and it has rolled out.
func changeAndRollOut(ctx context.Context, t *testing.T, ns, name, patch string) {
	t.Helper()
	before := gatewayDeployment(ctx, t, ns, name).Generation
	kubectl(ctx, t, "", "patch", "mcpserver", name, "-n", ns, "--type=merge", "-p", patch)
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		return gatewayDeployment(ctx, t, ns, name).Generation > before, nil
	})
	if err != nil {
		t.Fatalf("the operator never updated the gateway Deployment of %s/%s after %s", ns, name, patch)
	}
	waitRolledOut(ctx, t, ns, name)
}

// waitRolledOut waits until the gateway Deployment has its replicas all
// updated and Ready, and no pod of an earlier template is left.
func waitRolledOut(ctx context.Context, t *testing.T, ns, name string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		d, err := kube.AppsV1().Deployments(ns).Get(ctx, name+"-gateway", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		want := *d.Spec.Replicas
		s := d.Status
		return s.ObservedGeneration == d.Generation && s.UpdatedReplicas == want && s.ReadyReplicas == want &&
			s.Replicas == want && s.UnavailableReplicas == 0, nil
	})
	if err != nil {
		t.Fatalf("the gateway of %s/%s never rolled out: %v", ns, name, err)
	}
}

// TestGatewayRolloutUnderLoad: while a client makes steady tools/calls and
// holds SSE streams through the Ingress, a change to the McpServer rolls its
// two gateway pods, then `helm upgrade` restarts the operator: no call and no
// stream fails.
func TestGatewayRolloutUnderLoad(t *testing.T) {
	ctx := testContext(t, 10*time.Minute)
	ns, name, url := twoReplicaServer(ctx, t, "roll")
	before := podNames(gatewayPods(ctx, t, ns, name))

	l := startLoad(ctx, t, url)
	time.Sleep(steadyLoad)
	l.phase("change the gateway resources")
	// New resources change the pod template, as a change to the gateway's
	// configuration would (through the config hash annotation).
	changeAndRollOut(ctx, t, ns, name,
		`{"spec":{"gateway":{"resources":{"requests":{"cpu":"60m","memory":"48Mi"},"limits":{"memory":"200Mi"}}}}}`)
	l.phase("the gateways rolled out")
	after := podNames(gatewayPods(ctx, t, ns, name))
	for n := range after {
		if before[n] {
			t.Errorf("gateway pod %s outlived the change: the gateways did not roll", n)
		}
	}
	time.Sleep(steadyLoad)

	// The operator restarts (a new pod annotation); its gateways go on.
	l.phase("helm upgrade")
	if _, err := helmRun(ctx, operatorHelmArgs(t, imageTag(t),
		fmt.Sprintf("podAnnotations.restartedAt=t%d", time.Now().Unix()))...); err != nil {
		t.Fatalf("helm upgrade: %v", err)
	}
	l.phase("helm upgrade done")
	time.Sleep(steadyLoad)
	checkLoad(t, "rollout and operator upgrade", l.finish())
}

// TestGatewayPodLoss: with two gateway replicas, the PodDisruptionBudget lets
// one be evicted and refuses the second eviction while the first is being
// replaced; deleting a pod under load fails no call, the other replica
// carrying the traffic.
func TestGatewayPodLoss(t *testing.T) {
	ctx := testContext(t, 10*time.Minute)
	ns, name, url := twoReplicaServer(ctx, t, "loss")

	l := startLoad(ctx, t, url)
	time.Sleep(steadyLoad)
	pods := gatewayPods(ctx, t, ns, name)
	if len(pods) != 2 {
		t.Fatalf("gateway pods: %d, want 2", len(pods))
	}
	l.phase("evict " + pods[0].Name)
	if err := evict(ctx, ns, pods[0].Name); err != nil {
		t.Fatalf("evict %s with both replicas Ready: %v", pods[0].Name, err)
	}
	if err := evict(ctx, ns, pods[1].Name); !apierrors.IsTooManyRequests(err) {
		t.Errorf("evict %s right after %s: %v, want 429 Too Many Requests from the PodDisruptionBudget", pods[1].Name, pods[0].Name, err)
	}
	waitRolledOut(ctx, t, ns, name)
	l.phase("replaced")
	time.Sleep(steadyLoad)

	victim := gatewayPods(ctx, t, ns, name)[0].Name
	l.phase("delete " + victim)
	if err := kube.CoreV1().Pods(ns).Delete(ctx, victim, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete gateway pod %s: %v", victim, err)
	}
	waitRolledOut(ctx, t, ns, name)
	l.phase("replaced")
	time.Sleep(steadyLoad)
	checkLoad(t, "eviction and pod deletion", l.finish())
}

func evict(ctx context.Context, ns, pod string) error {
	return kube.PolicyV1().Evictions(ns).Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: pod, Namespace: ns}})
}

func podNames(pods []corev1.Pod) map[string]bool {
	names := make(map[string]bool, len(pods))
	for _, p := range pods {
		names[p.Name] = true
	}
	return names
}

// TestGatewayReadiness: a gateway that cannot fetch Clerk's signing keys is
// not Ready, so its Service has no ready endpoint and the ingress controller
// sends it nothing (a 503 of its own instead of the gateway's 401); when
// Clerk answers again the gateway becomes Ready and serves.
func TestGatewayReadiness(t *testing.T) {
	ctx := testContext(t, 10*time.Minute)
	ns := teamNamespace(ctx, t, "ready", true)
	const name = "waiting"
	host := "ready-" + strings.TrimPrefix(ns, "ready-") + "." + ingressDomain
	url := "https://" + host + "/mcp"

	const jwks = "GET /.well-known/jwks.json"
	nodeClerk.SetFault(jwks, clerktest.Fault{Outage: true})
	t.Cleanup(func() { nodeClerk.SetFault(jwks, clerktest.Fault{}) })
	kubectl(ctx, t, mcpServerManifest(ns, name, "", ingressPublish(host)), "apply", "-f", "-")

	// The pod runs, its readiness probe fails while Clerk is out.
	var pod corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := listGatewayPods(ctx, ns, name)
		if err != nil || len(pods) == 0 || !allContainersStarted(&pods[0]) {
			return false, nil
		}
		pod = pods[0]
		return true, nil
	})
	if err != nil {
		t.Fatalf("no running gateway pod for %s/%s: %v", ns, name, err)
	}
	client, _ := clusterHTTPClient(ctx, t)
	// Long enough for several readiness probes and for the ingress
	// controller to have seen the Service.
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		p, err := kube.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get gateway pod: %v", err)
		}
		if podReady(p) {
			t.Fatalf("gateway pod %s is Ready while Clerk's keys cannot be fetched", pod.Name)
		}
		if n := readyEndpoints(ctx, t, ns, name+"-gateway"); n != 0 {
			t.Fatalf("the gateway Service has %d ready endpoints while its only pod is not Ready", n)
		}
		time.Sleep(time.Second)
	}
	if status, challenge := postWithoutToken(ctx, t, client, url); status == http.StatusUnauthorized || challenge != "" {
		t.Errorf("through the ingress while the gateway is not Ready: status %d, WWW-Authenticate %q; want no answer from the gateway", status, challenge)
	}
	if nodeClerk.Calls(jwks) == 0 {
		t.Errorf("the gateway never asked Clerk for its keys")
	}

	nodeClerk.SetFault(jwks, clerktest.Fault{})
	waitPod(ctx, t, ns, pod.Name, "Ready once Clerk answers", podReady)
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		status, _ := postWithoutToken(ctx, t, client, url)
		return status == http.StatusUnauthorized, nil
	})
	if err != nil {
		t.Errorf("the recovered gateway never answered through the ingress with its 401 challenge")
	}
}

func allContainersStarted(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) == 0 {
		return false
	}
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Running == nil {
			return false
		}
	}
	return true
}

// readyEndpoints counts the ready endpoints of the Service's EndpointSlices.
func readyEndpoints(ctx context.Context, t *testing.T, ns, service string) int {
	t.Helper()
	slices, err := kube.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + service})
	if err != nil {
		t.Fatalf("list EndpointSlices of %s/%s: %v", ns, service, err)
	}
	n := 0
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready {
				n++
			}
		}
	}
	return n
}

// postWithoutToken sends an MCP request without a token and returns the
// status and challenge.
func postWithoutToken(ctx context.Context, t *testing.T, client *http.Client, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		return 0, ""
	}
	_ = resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

//go:build cluster

package cluster_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

const (
	// leaseName is the operator's leader election lease (cmd/mcpgate).
	leaseName = "mcpgate.mcpgate.dev"
	// operatorRelease and operatorNamespace are where the tests install the chart.
	operatorRelease   = "mcpgate"
	operatorNamespace = "mcpgate-system"
)

// imageTag is the tag that hack/cluster/test.sh gives the mcpgate image it
// builds from this checkout (hack/cluster/images.sh mcpgate TAG).
func imageTag(t *testing.T) string {
	t.Helper()
	tag := os.Getenv("MCPGATE_CLUSTER_IMAGE_TAG")
	if tag == "" {
		t.Fatal("MCPGATE_CLUSTER_IMAGE_TAG is not set: hack/cluster/test.sh builds and imports the image and sets it")
	}
	return tag
}

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// helmRun runs the helm binary that hack/setup-helm.sh built.
func helmRun(ctx context.Context, args ...string) (string, error) {
	bin := os.Getenv("HELM")
	if bin == "" {
		return "", fmt.Errorf("HELM is not set: hack/cluster/test.sh sets it from hack/setup-helm.sh")
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", kubeconfigPath()}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// operatorInstall is the chart's install, done once for the tests that
// need the operator, whichever runs first.
var operatorInstall struct {
	once sync.Once
	err  error
}

// installOperator installs charts/mcpgate with the image built from this
// checkout into a namespace that enforces the restricted Pod Security
// Standard, with the Clerk key broker on (the chart's default) and the
// Backend API URL of the emulator on the node, and waits for it.
func installOperator(t *testing.T) {
	t.Helper()
	tag := imageTag(t)
	operatorInstall.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		ensureRestrictedNamespace(ctx, t, operatorNamespace)
		// upgrade --install: the chart's CRDs outlive a release, so the
		// operator is installed once per cluster under one name, and a
		// re-run against the same cluster upgrades it.
		_, operatorInstall.err = helmRun(ctx, operatorHelmArgs(t, tag)...)
	})
	if operatorInstall.err != nil {
		t.Fatalf("install the operator: %v", operatorInstall.err)
	}
}

// operatorHelmArgs are the arguments of `helm upgrade --install` of the
// operator with the image tagged tag, and extra --set values.
func operatorHelmArgs(t *testing.T, tag string, set ...string) []string {
	args := []string{"upgrade", "--install", operatorRelease, filepath.Join(repoRoot(t), "charts", "mcpgate"),
		"--namespace", operatorNamespace, "--wait", "--timeout", "3m",
		"--set", "image.repository=mcpgate.local/mcpgate", "--set", "image.tag=" + tag, "--set", "image.pullPolicy=Never",
		"--set", "gatewayImage.repository=mcpgate.local/mcpgate", "--set", "gatewayImage.tag=" + tag,
		"--set", "gatewayImage.pullPolicy=Never",
		"--set", "clerkApiURL=" + nodeClerk.BackendAPIURL()}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return args
}

// TestOperatorInstall: `helm install` of charts/mcpgate with the image built
// from this checkout, into a namespace that enforces the restricted Pod
// Security Standard: the operator pod becomes Ready, holds the leader lease,
// and its metrics answer; the Clerk key broker is Ready too.
func TestOperatorInstall(t *testing.T) {
	ctx := testContext(t, 5*time.Minute)
	installOperator(t)
	ns := operatorNamespace

	pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{
		FieldSelector: "status.phase=Running", LabelSelector: "app.kubernetes.io/component=manager"})
	if err != nil {
		t.Fatalf("list operator pods: %v", err)
	}
	var current []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			current = append(current, p)
		}
	}
	if len(current) != 1 {
		t.Fatalf("running operator pods in %s: %d, want 1", ns, len(current))
	}
	pod := waitPod(ctx, t, ns, current[0].Name, "Ready", podReady)

	var holder string
	err = wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		l, err := kube.CoordinationV1().Leases(ns).Get(ctx, leaseName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		if l.Spec.HolderIdentity != nil {
			holder = *l.Spec.HolderIdentity
		}
		return strings.HasPrefix(holder, pod.Name), nil
	})
	if err != nil {
		t.Fatalf("lease %s/%s: holder %q, want the operator pod %s", ns, leaseName, holder, pod.Name)
	}

	brokers, err := kube.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=broker"})
	if err != nil || len(brokers.Items) != 1 || brokers.Items[0].Status.ReadyReplicas == 0 {
		t.Errorf("the Clerk key broker in %s: %v, %d Deployments, want one with Ready replicas", ns, err, len(brokers.Items))
	}

	// The test runs on the node, so it reaches the pod's address directly.
	port := metricsPort(pod)
	resp, err := http.Get(fmt.Sprintf("http://%s:%d/metrics", pod.Status.PodIP, port))
	if err != nil {
		t.Fatalf("operator metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "controller_runtime_") {
		t.Fatalf("operator metrics: status %d, body without controller_runtime_ metrics:\n%.500s", resp.StatusCode, body)
	}
}

func kubeconfigPath() string {
	if p := os.Getenv("MCPGATE_CLUSTER_KUBECONFIG"); p != "" {
		return p
	}
	return defaultKubeconfig
}

func metricsPort(p *corev1.Pod) int32 {
	for _, c := range p.Spec.Containers {
		for _, port := range c.Ports {
			if port.Name == "metrics" {
				return port.ContainerPort
			}
		}
	}
	return 8080
}

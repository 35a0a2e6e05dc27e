//go:build cluster

package cluster_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

// defaultKubeconfig is where hack/cluster/up.sh writes the admin kubeconfig.
const defaultKubeconfig = "/var/lib/mcpgate-cluster/admin.kubeconfig"

// netcheckImage is the network probe that hack/cluster/images.sh imports.
const netcheckImage = "mcpgate.local/netcheck:1"

var (
	restConfig *rest.Config
	kube       *kubernetes.Clientset
)

func TestMain(m *testing.M) {
	path := os.Getenv("MCPGATE_CLUSTER_KUBECONFIG")
	if path == "" {
		path = defaultKubeconfig
	}
	if _, err := os.Stat(path); err != nil {
		fmt.Fprintf(os.Stderr, "test/cluster: no cluster kubeconfig at %s: start one with hack/cluster/up.sh\n", path)
		os.Exit(1)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "test/cluster: %v\n", err)
		os.Exit(1)
	}
	restConfig = cfg
	kube = kubernetes.NewForConfigOrDie(cfg)
	clerk, err := startNodeClerk()
	if err != nil {
		fmt.Fprintf(os.Stderr, "test/cluster: the Clerk emulator on the node: %v\n", err)
		os.Exit(1)
	}
	nodeClerk = clerk
	code := m.Run()
	clerk.Close()
	os.Exit(code)
}

func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// restrictedNamespace creates a namespace that enforces the restricted Pod
// Security Standard and deletes it when the test ends.
func restrictedNamespace(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	name := prefix + "-" + hex.EncodeToString(b)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
	}}}
	if _, err := kube.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = kube.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return name
}

// ensureRestrictedNamespace creates the namespace, enforcing the restricted
// Pod Security Standard, unless it exists; it stays for the cluster's life.
func ensureRestrictedNamespace(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
	}}}
	if _, err := kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}

// restrictedSecurity is a container securityContext that the restricted
// Pod Security Standard admits.
func restrictedSecurity() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		RunAsNonRoot:             ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// netcheckPod is a pod of the network probe with the given arguments.
func netcheckPod(name string, labels map[string]string, restart corev1.RestartPolicy, args ...string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: corev1.PodSpec{
			RestartPolicy:                 restart,
			TerminationGracePeriodSeconds: ptr.To[int64](2),
			Containers: []corev1.Container{{
				Name:            "netcheck",
				Image:           netcheckImage,
				ImagePullPolicy: corev1.PullNever,
				Args:            args,
				SecurityContext: restrictedSecurity(),
			}},
		},
	}
}

// waitPod waits until cond holds for the pod, and fails the test with the
// pod's status otherwise.
func waitPod(ctx context.Context, t *testing.T, ns, name, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var last *corev1.Pod
	err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		p, err := kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		last = p
		return cond(p), nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s never became %s: %v\nstatus: %+v", ns, name, what, err, podStatus(last))
	}
	return last
}

func podStatus(p *corev1.Pod) string {
	if p == nil {
		return "(never seen)"
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "phase=%s ip=%s", p.Status.Phase, p.Status.PodIP)
	for _, c := range p.Status.Conditions {
		fmt.Fprintf(&b, " %s=%s(%s)", c.Type, c.Status, c.Message)
	}
	for _, cs := range p.Status.ContainerStatuses {
		fmt.Fprintf(&b, " container %s: ready=%v state=%+v", cs.Name, cs.Ready, cs.State)
	}
	return b.String()
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podDone(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// runProbe runs netcheck once in a pod of the namespace and returns its
// output and whether it succeeded.
func runProbe(ctx context.Context, t *testing.T, ns, name string, labels map[string]string, args ...string) (string, bool) {
	t.Helper()
	pod := netcheckPod(name, labels, corev1.RestartPolicyNever, args...)
	if _, err := kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod %s: %v", name, err)
	}
	p := waitPod(ctx, t, ns, name, "done", podDone)
	logs, err := kube.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		logs = []byte(fmt.Sprintf("(no logs: %v)", err))
	}
	return string(logs), p.Status.Phase == corev1.PodSucceeded
}

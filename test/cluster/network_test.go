//go:build cluster

package cluster_test

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestNetwork: a pod runs on the node with an address from the pod network, a
// Service in front of it answers another pod by its DNS name, cluster names
// resolve, and a name outside the cluster does not (CoreDNS forwards nowhere,
// so no query leaves the machine).
func TestNetwork(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	ns := restrictedNamespace(t, "network")

	labels := map[string]string{"app": "echo"}
	server := netcheckPod("echo", labels, corev1.RestartPolicyAlways, "serve", ":8080")
	server.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080}}
	server.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(8080)}},
		PeriodSeconds: 1,
	}
	if _, err := kube.CoreV1().Pods(ns).Create(ctx, server, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create server pod: %v", err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "echo"},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if _, err := kube.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create service: %v", err)
	}
	p := waitPod(ctx, t, ns, "echo", "Ready", podReady)
	if !strings.HasPrefix(p.Status.PodIP, "10.217.0.") {
		t.Errorf("server pod IP = %q, want one from the node's pod network 10.217.0.0/24", p.Status.PodIP)
	}

	tests := map[string]struct {
		args   []string // netcheck's arguments
		ok     bool     // whether the probe must succeed
		output string   // what its output must contain
	}{
		"service by DNS name":      {args: []string{"get", "http://echo." + ns + ".svc.cluster.local/"}, ok: true, output: "echo"},
		"service by short name":    {args: []string{"get", "http://echo/"}, ok: true, output: "echo"},
		"pod by IP":                {args: []string{"get", "http://" + p.Status.PodIP + ":8080/"}, ok: true, output: "echo"},
		"kubernetes service":       {args: []string{"lookup", "kubernetes.default.svc.cluster.local"}, ok: true, output: "10.218.0.1"},
		"name outside the cluster": {args: []string{"lookup", "example.com."}, ok: false},
	}
	i := 0
	for name, tc := range tests {
		i++
		t.Run(name, func(t *testing.T) {
			out, ok := runProbe(ctx, t, ns, "probe-"+string(rune('a'+i)), nil, tc.args...)
			if ok != tc.ok {
				t.Fatalf("netcheck %s: succeeded=%v, want %v; output:\n%s", strings.Join(tc.args, " "), ok, tc.ok, out)
			}
			if !strings.Contains(out, tc.output) {
				t.Errorf("netcheck %s: output %q lacks %q", strings.Join(tc.args, " "), out, tc.output)
			}
		})
	}
}

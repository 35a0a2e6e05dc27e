package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

// TestManagerBinary builds mcpgate, runs `mcpgate manager` against a real API
// server through a kubeconfig, as a user would, and checks that it reconciles
// an McpServer with the flags given and shuts down cleanly on SIGTERM.
func TestManagerBinary(t *testing.T) {
	cluster := testenv.StartCluster(t, testenv.Options{CRDs: true})
	mgr := testenv.StartManager(t, "manager", cluster.Kubeconfig, "manager", "--metrics-bind-address=0", "--health-probe-bind-address=127.0.0.1:0",
		"--gateway-image=registry.example/mcpgate:test", "--clerk-api-url=http://127.0.0.1:9/v1")

	c := cluster.Admin
	ctx := context.Background()
	mcp := &mcpv1.McpServer{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "tools"},
		Spec: mcpv1.McpServerSpec{
			Upstream: mcpv1.Upstream{Service: &mcpv1.UpstreamService{Name: "upstream", Port: intstr.FromInt32(8080)}},
			Clerk: mcpv1.ClerkSpec{
				Issuer:       "http://127.0.0.1:4455",
				SecretKeyRef: mcpv1.SecretKeyReference{Name: "clerk", Key: "secret-key"},
			},
		},
	}
	if err := c.Create(ctx, mcp); err != nil {
		t.Fatal(err)
	}

	deploy := &appsv1.Deployment{}
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "tools-gateway"}, deploy)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the manager made no gateway Deployment: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if img := deploy.Spec.Template.Spec.Containers[0].Image; img != "registry.example/mcpgate:test" {
		t.Errorf("gateway image = %q, want the --gateway-image flag", img)
	}
	cm := &corev1.ConfigMap{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "tools-gateway"}, cm); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cm.Data["config.json"], `"apiURL": "http://127.0.0.1:9/v1"`) {
		t.Errorf("gateway config does not carry --clerk-api-url:\n%s", cm.Data["config.json"])
	}

	if !mgr.Stop(30 * time.Second) {
		t.Fatal("manager did not stop within 30s of SIGTERM")
	}
	if err := mgr.ExitErr(); err != nil {
		t.Errorf("manager exited with %v after SIGTERM", err)
	}
}

// TestParseManagerBrokerFlags checks the broker flags: off by default, the
// TLS Secret's default name, and the values refused.
func TestParseManagerBrokerFlags(t *testing.T) {
	t.Setenv("MCPGATE_BROKER_URL", "")
	t.Setenv("POD_NAMESPACE", "mcpgate-system")
	f, err := parseManagerFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if f.brokerURL != "" || f.brokerTLSSecret != "mcpgate-broker-tls" {
		t.Errorf("defaults: broker url %q, tls secret %q; want none and mcpgate-broker-tls", f.brokerURL, f.brokerTLSSecret)
	}
	f, err = parseManagerFlags([]string{"--broker-url=https://mcpgate-broker.mcpgate-system.svc:8443", "--broker-tls-secret=broker-serving"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if f.brokerURL != "https://mcpgate-broker.mcpgate-system.svc:8443" || f.brokerTLSSecret != "broker-serving" {
		t.Errorf("flags = %+v", f)
	}
	t.Setenv("MCPGATE_BROKER_URL", "https://broker.example:8443")
	if f, err = parseManagerFlags(nil, io.Discard); err != nil || f.brokerURL != "https://broker.example:8443" {
		t.Errorf("MCPGATE_BROKER_URL: %q, %v", f.brokerURL, err)
	}
	t.Setenv("MCPGATE_BROKER_URL", "")

	refused := map[string][]string{
		"plain http":            {"--broker-url=http://mcpgate-broker.mcpgate-system.svc:8443"},
		"no host":               {"--broker-url=https:///x"},
		"credentials":           {"--broker-url=https://u:p@mcpgate-broker:8443"},
		"query":                 {"--broker-url=https://mcpgate-broker:8443/?a=b"},
		"no resource namespace": {"--broker-url=https://mcpgate-broker:8443", "--cluster-resource-namespace="},
		"bad secret name":       {"--broker-tls-secret=Not_A_Name"},
	}
	for name, args := range refused {
		_, err := parseManagerFlags(args, io.Discard)
		if err == nil {
			t.Errorf("%s: %v accepted", name, args)
			continue
		}
		if want := "--broker-"; !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %q does not name the flag", name, err)
		}
	}
}

// TestManagerBinary_broker runs `mcpgate manager --broker-url` and checks the
// wiring: the broker's TLS Secret appears in the cluster resource namespace,
// and the gateway runs as its own ServiceAccount with the broker's CA bundle
// and no Clerk secret key.
func TestManagerBinary_broker(t *testing.T) {
	cluster := testenv.StartCluster(t, testenv.Options{CRDs: true})
	c := cluster.Admin
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "mcpgate-system"}}); err != nil {
		t.Fatal(err)
	}
	mgr := testenv.StartManager(t, "manager", cluster.Kubeconfig, "manager", "--metrics-bind-address=0", "--health-probe-bind-address=127.0.0.1:0",
		"--gateway-image=registry.example/mcpgate:test", "--clerk-api-url=http://127.0.0.1:9/v1",
		"--cluster-resource-namespace=mcpgate-system", "--broker-url=https://mcpgate-broker.mcpgate-system.svc:8443")

	mcp := &mcpv1.McpServer{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "tools"},
		Spec: mcpv1.McpServerSpec{
			Upstream: mcpv1.Upstream{Service: &mcpv1.UpstreamService{Name: "upstream", Port: intstr.FromInt32(8080)}},
			Clerk: mcpv1.ClerkSpec{
				Issuer:       "http://127.0.0.1:4455",
				SecretKeyRef: mcpv1.SecretKeyReference{Name: "clerk", Key: "secret-key"},
			},
		},
	}
	if err := c.Create(ctx, mcp); err != nil {
		t.Fatal(err)
	}
	waitGet := func(key client.ObjectKey, obj client.Object, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			err := c.Get(ctx, key, obj)
			if err == nil && ok() {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%T %s: %v", obj, key, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	tlsSecret := &corev1.Secret{}
	waitGet(client.ObjectKey{Namespace: "mcpgate-system", Name: "mcpgate-broker-tls"}, tlsSecret, func() bool { return len(tlsSecret.Data["ca.crt"]) > 0 })
	cm := &corev1.ConfigMap{}
	waitGet(client.ObjectKey{Namespace: "default", Name: "tools-gateway"}, cm, func() bool { return cm.Data["broker-ca.crt"] == string(tlsSecret.Data["ca.crt"]) })
	if !strings.Contains(cm.Data["config.json"], `"url": "https://mcpgate-broker.mcpgate-system.svc:8443"`) || strings.Contains(cm.Data["config.json"], "secretKeyFile") {
		t.Errorf("gateway config has no broker block, or a key file:\n%s", cm.Data["config.json"])
	}
	deploy := &appsv1.Deployment{}
	waitGet(client.ObjectKey{Namespace: "default", Name: "tools-gateway"}, deploy, func() bool { return true })
	if sa := deploy.Spec.Template.Spec.ServiceAccountName; sa != "tools-gateway" {
		t.Errorf("the gateway runs as %q, want its own ServiceAccount", sa)
	}
	waitGet(client.ObjectKey{Namespace: "default", Name: "tools-gateway"}, &corev1.ServiceAccount{}, func() bool { return true })

	if !mgr.Stop(30 * time.Second) {
		t.Fatal("manager did not stop within 30s of SIGTERM")
	}
	if err := mgr.ExitErr(); err != nil {
		t.Errorf("manager exited with %v after SIGTERM", err)
	}
}

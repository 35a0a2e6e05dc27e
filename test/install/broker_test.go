package install_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mcpgate/mcpgate/broker"
	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway/config"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

// brokerContainer returns the one container of the rendered or installed
// broker Deployment.
func brokerContainer(t *testing.T, deployment *unstructured.Unstructured) map[string]any {
	t.Helper()
	containers, _, _ := unstructured.NestedSlice(deployment.Object, "spec", "template", "spec", "containers")
	if len(containers) != 1 {
		t.Fatalf("the broker Deployment has %d containers", len(containers))
	}
	return containers[0].(map[string]any)
}

func brokerArgs(t *testing.T, deployment *unstructured.Unstructured) []string {
	t.Helper()
	args, _, _ := unstructured.NestedStringSlice(brokerContainer(t, deployment), "args")
	return args
}

// TestHelmTemplateBroker checks the objects of the Clerk key broker as the
// chart renders them: a Deployment of the operator's image under the
// restricted Pod Security Standard that mounts the operator's TLS Secret,
// a Service and a PodDisruptionBudget that select exactly its pods, a
// NetworkPolicy that admits gateways and the scraper only, its RBAC, and the
// manager pointed at the Service.
func TestHelmTemplateBroker(t *testing.T) {
	t.Parallel()
	t.Run("defaults", func(t *testing.T) {
		t.Parallel()
		objs := decodeAll(t, helmTemplate(t, "mcpgate-system"))
		d := one(t, objs, "Deployment", "mcpgate-system/mcpgate-broker")
		if n := number(d, "spec", "replicas"); n != 2 {
			t.Errorf("broker replicas = %v, want 2", n)
		}
		args := brokerArgs(t, d)
		for _, want := range []string{
			"broker", "--listen=:8443", "--health-listen=:8081",
			"--tls-cert-file=/etc/mcpgate/tls/tls.crt", "--tls-key-file=/etc/mcpgate/tls/tls.key",
			"--cluster-resource-namespace=mcpgate-system", "--log-level=info",
		} {
			if !slices.Contains(args, want) {
				t.Errorf("broker args %q lack %q", args, want)
			}
		}
		manager := one(t, objs, "Deployment", "mcpgate-system/mcpgate")
		if got, want := brokerContainer(t, d)["image"], managerContainer(t, manager)["image"]; got != want {
			t.Errorf("broker image %v, want the operator's %v", got, want)
		}
		checkRestricted(t, d)
		checkBrokerProbes(t, brokerContainer(t, d))
		if sa, _, _ := unstructured.NestedString(d.Object, "spec", "template", "spec", "serviceAccountName"); sa != "mcpgate-broker" {
			t.Errorf("broker serviceAccountName = %q", sa)
		}
		one(t, objs, "ServiceAccount", "mcpgate-system/mcpgate-broker")
		checkTLSVolume(t, d, "mcpgate-broker-tls")

		// The manager names the Service and the Secret the broker uses.
		margs := containerArgs(t, manager)
		for _, want := range []string{"--broker-url=https://mcpgate-broker.mcpgate-system.svc:8443", "--broker-tls-secret=mcpgate-broker-tls"} {
			if !slices.Contains(margs, want) {
				t.Errorf("manager args %q lack %q", margs, want)
			}
		}

		podLabels, _, _ := unstructured.NestedStringMap(d.Object, "spec", "template", "metadata", "labels")
		managerPodLabels, _, _ := unstructured.NestedStringMap(manager.Object, "spec", "template", "metadata", "labels")
		selector, _, _ := unstructured.NestedStringMap(d.Object, "spec", "selector", "matchLabels")
		svc := one(t, objs, "Service", "mcpgate-system/mcpgate-broker")
		svcSelector, _, _ := unstructured.NestedStringMap(svc.Object, "spec", "selector")
		pdb := one(t, objs, "PodDisruptionBudget", "mcpgate-system/mcpgate-broker")
		pdbSelector, _, _ := unstructured.NestedStringMap(pdb.Object, "spec", "selector", "matchLabels")
		np := one(t, objs, "NetworkPolicy", "mcpgate-system/mcpgate-broker")
		npSelector, _, _ := unstructured.NestedStringMap(np.Object, "spec", "podSelector", "matchLabels")
		for what, sel := range map[string]map[string]string{"Deployment": selector, "Service": svcSelector, "PodDisruptionBudget": pdbSelector, "NetworkPolicy": npSelector} {
			if !selects(sel, podLabels) || selects(sel, managerPodLabels) {
				t.Errorf("the broker %s selects %v: broker pods %t, manager pods %t; want only the broker's", what, sel, selects(sel, podLabels), selects(sel, managerPodLabels))
			}
		}
		if sel, _, _ := unstructured.NestedStringMap(manager.Object, "spec", "selector", "matchLabels"); selects(sel, podLabels) {
			t.Errorf("the manager Deployment's selector %v selects the broker's pods", sel)
		}
		if min := number(pdb, "spec", "minAvailable"); min != 1 {
			t.Errorf("PodDisruptionBudget minAvailable = %v, want 1", min)
		}
		ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
		wantPorts := []any{
			map[string]any{"name": "https", "port": float64(8443), "targetPort": "https", "protocol": "TCP", "appProtocol": "https"},
			map[string]any{"name": "metrics", "port": float64(8081), "targetPort": "metrics", "protocol": "TCP"},
		}
		if !reflect.DeepEqual(ports, wantPorts) {
			t.Errorf("broker Service ports = %v, want %v", ports, wantPorts)
		}

		ingress, _, _ := unstructured.NestedSlice(np.Object, "spec", "ingress")
		wantIngress := []any{
			map[string]any{
				"from": []any{map[string]any{
					"namespaceSelector": map[string]any{},
					"podSelector":       map[string]any{"matchLabels": map[string]any{config.LabelManagedBy: config.ManagedByValue}},
				}},
				"ports": []any{map[string]any{"port": "https", "protocol": "TCP"}},
			},
			map[string]any{
				"from": []any{map[string]any{
					"namespaceSelector": map[string]any{},
					"podSelector":       map[string]any{"matchLabels": map[string]any{"app.kubernetes.io/name": "prometheus"}},
				}},
				"ports": []any{map[string]any{"port": "metrics", "protocol": "TCP"}},
			},
		}
		if !reflect.DeepEqual(ingress, wantIngress) {
			t.Errorf("broker NetworkPolicy ingress = %v\nwant %v", ingress, wantIngress)
		}
		if types, _, _ := unstructured.NestedStringSlice(np.Object, "spec", "policyTypes"); !slices.Equal(types, []string{"Ingress"}) {
			t.Errorf("broker NetworkPolicy policyTypes = %v", types)
		}
		// The chart's own pods (managed by Helm) are not gateways.
		if podLabels[config.LabelManagedBy] == config.ManagedByValue {
			t.Errorf("the broker's pods carry %s=%s, which admits them as gateways", config.LabelManagedBy, config.ManagedByValue)
		}

		role := one(t, objs, "ClusterRole", "/mcpgate-broker")
		checkRules(t, role, []rbacv1.PolicyRule{
			{APIGroups: []string{"mcpgate.dev"}, Resources: []string{"mcpservers", "clerkinstances", "clusterclerkinstances"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}},
		})
		checkBinding(t, one(t, objs, "ClusterRoleBinding", "/mcpgate-broker"), "ClusterRole", "mcpgate-broker", "mcpgate-system", "mcpgate-broker")
		checkBinding(t, one(t, objs, "ClusterRoleBinding", "/mcpgate-broker-auth-delegator"), "ClusterRole", "system:auth-delegator", "mcpgate-system", "mcpgate-broker")
		if n := len(find(objs, "ServiceMonitor")); n != 0 {
			t.Errorf("%d ServiceMonitors rendered by default", n)
		}
	})

	t.Run("custom values", func(t *testing.T) {
		t.Parallel()
		objs := decodeAll(t, helmTemplate(t, "ops", "--values", filepath.Join("testdata", "values-custom.yaml")))
		d := one(t, objs, "Deployment", "ops/mcpgate-broker")
		if n := number(d, "spec", "replicas"); n != 3 {
			t.Errorf("broker replicas = %v, want 3", n)
		}
		args := brokerArgs(t, d)
		for _, want := range []string{"--cluster-resource-namespace=ops", "--clerk-api-url=https://clerk-egress.platform.svc/v1", "--log-level=debug"} {
			if !slices.Contains(args, want) {
				t.Errorf("broker args %q lack %q", args, want)
			}
		}
		spec, _, _ := unstructured.NestedMap(d.Object, "spec", "template", "spec")
		if spec["priorityClassName"] != "system-node-critical" || spec["affinity"] == nil || spec["topologySpreadConstraints"] != nil {
			t.Errorf("broker pod spec: priority %v, affinity %v, spread %v", spec["priorityClassName"], spec["affinity"], spec["topologySpreadConstraints"])
		}
		res, _, _ := unstructured.NestedMap(brokerContainer(t, d), "resources")
		if fmt.Sprint(res) != "map[limits:map[memory:128Mi] requests:map[cpu:20m memory:32Mi]]" {
			t.Errorf("broker resources = %v", res)
		}
		one(t, objs, "ServiceMonitor", "ops/mcpgate-broker")
		if len(find(objs, "NetworkPolicy")) != 0 {
			t.Error("a NetworkPolicy is rendered with broker.networkPolicy.enabled=false")
		}

		// With watchNamespaces, Secrets only in those and the release
		// namespace; the operator's TLS Secrets in the release namespace.
		role := one(t, objs, "ClusterRole", "/mcpgate-broker")
		checkRules(t, role, []rbacv1.PolicyRule{
			{APIGroups: []string{"mcpgate.dev"}, Resources: []string{"mcpservers", "clerkinstances", "clusterclerkinstances"}, Verbs: []string{"get", "list", "watch"}},
		})
		for _, ns := range []string{"team-a", "team-b", "ops"} {
			checkRules(t, one(t, objs, "Role", ns+"/mcpgate-broker-secrets"), []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}},
			})
			checkBinding(t, one(t, objs, "RoleBinding", ns+"/mcpgate-broker-secrets"), "Role", "mcpgate-broker-secrets", "ops", "mcpgate-broker")
		}
		checkBinding(t, one(t, objs, "RoleBinding", "ops/mcpgate-broker-tls"), "Role", "mcpgate-broker-tls", "ops", "mcpgate")
	})

	t.Run("one replica, no NetworkPolicy scrapers", func(t *testing.T) {
		t.Parallel()
		objs := decodeAll(t, helmTemplate(t, "mcpgate-system", "--set", "broker.replicaCount=1", "--set", "broker.networkPolicy.metricsFrom=null"))
		if n := len(find(objs, "PodDisruptionBudget")); n != 0 {
			t.Errorf("%d PodDisruptionBudgets for one broker replica: it could never be evicted", n)
		}
		np := one(t, objs, "NetworkPolicy", "mcpgate-system/mcpgate-broker")
		if ingress, _, _ := unstructured.NestedSlice(np.Object, "spec", "ingress"); len(ingress) != 1 {
			t.Errorf("with no scrapers the NetworkPolicy has %d ingress rules, want the gateways' only: %v", len(ingress), ingress)
		}
	})

	t.Run("broker.enabled=false", func(t *testing.T) {
		t.Parallel()
		objs := decodeAll(t, helmTemplate(t, "mcpgate-system", "--set", "broker.enabled=false"))
		for _, o := range objs {
			if strings.Contains(o.GetName(), "broker") {
				t.Errorf("%s %s rendered without the broker", o.GetKind(), o.GetName())
			}
		}
		for _, arg := range containerArgs(t, one(t, objs, "Deployment", "mcpgate-system/mcpgate")) {
			if strings.HasPrefix(arg, "--broker") {
				t.Errorf("the manager gets %q without the broker", arg)
			}
		}
	})
}

// number reads a number of a decoded object (JSON numbers decode as
// float64); -1 when there is none.
func number(o *unstructured.Unstructured, fields ...string) float64 {
	v, _, _ := unstructured.NestedFieldNoCopy(o.Object, fields...)
	switch n := v.(type) {
	case float64:
		return n
	case int64:
		return float64(n)
	}
	return -1
}

// selects reports whether a matchLabels selector selects labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// checkRestricted checks a rendered Deployment's pod against the restricted
// Pod Security Standard's fields, and for a read-only root filesystem.
func checkRestricted(t *testing.T, d *unstructured.Unstructured) {
	t.Helper()
	pod, _, _ := unstructured.NestedMap(d.Object, "spec", "template", "spec", "securityContext")
	seccomp, _, _ := unstructured.NestedString(pod, "seccompProfile", "type")
	if pod["runAsNonRoot"] != true || seccomp != "RuntimeDefault" {
		t.Errorf("%s pod securityContext = %v", d.GetName(), pod)
	}
	c := brokerContainer(t, d)
	sc, _, _ := unstructured.NestedMap(c, "securityContext")
	drop, _, _ := unstructured.NestedStringSlice(sc, "capabilities", "drop")
	if sc["allowPrivilegeEscalation"] != false || sc["readOnlyRootFilesystem"] != true || sc["runAsNonRoot"] != true || !slices.Equal(drop, []string{"ALL"}) {
		t.Errorf("%s container securityContext = %v", d.GetName(), sc)
	}
}

// checkBrokerProbes: liveness on /healthz, readiness on /readyz, both on the
// metrics port, which serves them.
func checkBrokerProbes(t *testing.T, c map[string]any) {
	t.Helper()
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		get, _, _ := unstructured.NestedMap(c, probe, "httpGet")
		if get["path"] != path || get["port"] != "metrics" {
			t.Errorf("broker %s = %v, want %s on port metrics", probe, get, path)
		}
	}
}

// checkTLSVolume: the TLS Secret is mounted read-only, not optional (the
// pod waits for it), with the certificate and key only: not ca.crt.
func checkTLSVolume(t *testing.T, d *unstructured.Unstructured, secret string) {
	t.Helper()
	volumes, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "volumes")
	if len(volumes) != 1 {
		t.Fatalf("broker volumes = %v", volumes)
	}
	v, _, _ := unstructured.NestedMap(volumes[0].(map[string]any), "secret")
	if v["secretName"] != secret || v["optional"] == true {
		t.Errorf("broker TLS volume = %v, want Secret %s, not optional", v, secret)
	}
	items, _ := v["items"].([]any)
	var keys []string
	for _, it := range items {
		keys = append(keys, it.(map[string]any)["key"].(string))
	}
	if !slices.Equal(keys, []string{"tls.crt", "tls.key"}) {
		t.Errorf("broker TLS volume keys = %v, want tls.crt and tls.key", keys)
	}
	mounts, _, _ := unstructured.NestedSlice(brokerContainer(t, d), "volumeMounts")
	if len(mounts) != 1 || mounts[0].(map[string]any)["mountPath"] != "/etc/mcpgate/tls" || mounts[0].(map[string]any)["readOnly"] != true {
		t.Errorf("broker volume mounts = %v", mounts)
	}
}

// checkRules compares a rendered role's rules with want.
func checkRules(t *testing.T, role *unstructured.Unstructured, want []rbacv1.PolicyRule) {
	t.Helper()
	var got struct {
		Rules []rbacv1.PolicyRule `json:"rules"`
	}
	if err := runtimeConvert(role, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Rules, want) {
		t.Errorf("%s %s rules = %+v\nwant %+v", role.GetKind(), role.GetName(), got.Rules, want)
	}
}

// checkBinding checks that a rendered binding grants role (of kind) to the
// ServiceAccount namespace/name and nobody else.
func checkBinding(t *testing.T, binding *unstructured.Unstructured, kind, role, namespace, name string) {
	t.Helper()
	var got rbacv1.RoleBinding
	if err := runtimeConvert(binding, &got); err != nil {
		t.Fatal(err)
	}
	want := []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: namespace}}
	if got.RoleRef.Kind != kind || got.RoleRef.Name != role || !reflect.DeepEqual(got.Subjects, want) {
		t.Errorf("%s %s binds %s %s to %+v; want %s %s to %+v", binding.GetKind(), binding.GetName(),
			got.RoleRef.Kind, got.RoleRef.Name, got.Subjects, kind, role, want)
	}
}

func runtimeConvert(u *unstructured.Unstructured, into any) error {
	data, err := u.MarshalJSON()
	if err != nil {
		return err
	}
	return json.Unmarshal(data, into)
}

// TestChartBrokerPermissionsAreEnough installs the chart, then runs the
// broker with the arguments of the broker Deployment the chart installed,
// as the chart's broker ServiceAccount with a token the API server issued
// for it: it must become ready (its cache of McpServers and Clerk
// instances synced with list and watch) and answer a gateway's question
// (a TokenReview of the gateway's token, the McpServer, the secret key
// read from the team's namespace, the Backend API). It must not be able to
// do more, and without the auth-delegator binding it cannot authenticate
// gateways at all.
func TestChartBrokerPermissionsAreEnough(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	emu := clerktest.NewServer(clerktest.WithJWTAccessTokens(false))
	t.Cleanup(emu.Close)
	ctx := context.Background()

	installChart(t, c, emu)
	c.createNamespaces(t, nil, "team-a")
	c.declare(t, emu, newMcpServer("team-a", "tools", false, ""))
	// What the operator makes for a gateway that uses the broker.
	if err := c.admin.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "tools-gateway"}}); err != nil {
		t.Fatal(err)
	}

	brokerSA := "system:serviceaccount:" + releaseNamespace + ":mcpgate-broker"
	for _, check := range []struct {
		args []string
		want string
	}{
		{[]string{"create", "tokenreviews.authentication.k8s.io"}, "yes"},
		{[]string{"list", "mcpservers.mcpgate.dev", "--all-namespaces"}, "yes"},
		{[]string{"watch", "clusterclerkinstances.mcpgate.dev"}, "yes"},
		{[]string{"get", "secrets", "-n", "team-a"}, "yes"},
		{[]string{"list", "secrets", "-n", "team-a"}, "no"},
		{[]string{"watch", "secrets", "--all-namespaces"}, "no"},
		{[]string{"create", "secrets", "-n", releaseNamespace}, "no"},
		{[]string{"patch", "mcpservers.mcpgate.dev", "-n", "team-a"}, "no"},
		{[]string{"create", "serviceaccounts/token", "-n", "team-a"}, "no"},
	} {
		out, _, _ := c.kubectl(t, nil, append([]string{"auth", "can-i", "--as", brokerSA}, check.args...)...)
		if got := strings.TrimSpace(out); got != check.want {
			t.Errorf("can the broker %s? %q, want %q", strings.Join(check.args, " "), got, check.want)
		}
	}

	deployment := &unstructured.Unstructured{}
	deployment.SetAPIVersion("apps/v1")
	deployment.SetKind("Deployment")
	if err := c.admin.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: "mcpgate-broker"}, deployment); err != nil {
		t.Fatalf("the chart installed no broker Deployment: %v", err)
	}
	tlsDir := t.TempDir()
	caFile := writeServingCertificate(t, tlsDir)
	// Later flags win: only the addresses, the files and the kubeconfig change.
	args := append(brokerArgs(t, deployment),
		"--listen=127.0.0.1:0", "--health-listen=127.0.0.1:0",
		"--tls-cert-file="+filepath.Join(tlsDir, "tls.crt"), "--tls-key-file="+filepath.Join(tlsDir, "tls.key"),
		"--kubeconfig="+c.serviceAccountKubeconfig(t, releaseNamespace, "mcpgate-broker"))
	b := testenv.StartProcess(t, "broker", []string{"HOME=" + t.TempDir()}, testenv.Binary(t, "./cmd/mcpgate"), args...)
	var addrs struct {
		Listen string `json:"listen"`
		Health string `json:"health"`
	}
	b.JSONLine(t, &addrs)
	eventually(t, "the broker's /readyz", func() error {
		resp, err := http.Get("http://" + addrs.Health + "/readyz")
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}, b.Logs.String)

	verify := func() error {
		token := strings.TrimSpace(c.mustKubectl(t, nil, "-n", "team-a", "create", "token", "tools-gateway",
			"--audience", config.BrokerAudience, "--duration=10m"))
		bc, err := broker.NewClient(broker.ClientOptions{
			URL: "https://" + addrs.Listen, CAFile: caFile, TokenFile: writeTemp(t, "token", []byte(token)),
		})
		if err != nil {
			t.Fatal(err)
		}
		at, err := emu.MintAccessToken(clerktest.TokenRequest{Format: clerktest.FormatOpaque, Scopes: []string{"profile"}})
		if err != nil {
			t.Fatal(err)
		}
		id, err := bc.Verify(ctx, broker.AccessToken{Token: at})
		if err == nil && id.UserID == "" {
			err = errors.New("no user")
		}
		return err
	}
	if err := verify(); err != nil {
		t.Fatalf("a gateway's verification through the broker, as the chart's ServiceAccount: %v\n%s", err, testenv.LastLines(b.Logs.String(), 30))
	}
	if logs := b.Logs.String(); strings.Contains(logs, "forbidden") {
		t.Errorf("the broker was refused something:\n%s", logs)
	}

	// Without system:auth-delegator the broker cannot review a gateway's
	// token: a new one (not in its review cache) is turned away.
	if err := c.admin.Delete(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "mcpgate-broker-auth-delegator"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a refusal without the auth-delegator binding", func() error {
		if err := verify(); err == nil {
			return errors.New("the broker still verified a token")
		}
		return nil
	}, b.Logs.String)
}

// writeServingCertificate writes a self-signed certificate for 127.0.0.1
// as tls.crt and tls.key into dir, and returns the path of its CA file.
func writeServingCertificate(t *testing.T, dir string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mcpgate-broker"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	writeFileIn(t, dir, "tls.crt", certPEM)
	writeFileIn(t, dir, "tls.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	return writeFileIn(t, dir, "ca.crt", certPEM)
}

func writeFileIn(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

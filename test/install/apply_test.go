package install_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// prometheusOperator is the module whose ServiceMonitor CRD the chart's
// ServiceMonitor is checked against: the real one, from the Go module proxy.
const prometheusOperator = "github.com/prometheus-operator/prometheus-operator@v0.85.0"

// serviceMonitorCRD returns the path of the Prometheus Operator's
// ServiceMonitor CRD in the module cache, downloading the module if needed.
func serviceMonitorCRD(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "mod", "download", "-json", prometheusOperator).Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v\n%s", prometheusOperator, err, out)
	}
	var dir string
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), `"Dir": "`); ok {
			dir = strings.TrimSuffix(v, `",`)
		}
	}
	if dir == "" {
		t.Fatalf("go mod download %s printed no Dir:\n%s", prometheusOperator, out)
	}
	return filepath.Join(dir, "example", "prometheus-operator-crd", "monitoring.coreos.com_servicemonitors.yaml")
}

// TestServerSideDryRun applies everything mcpgate ships for installation to
// a real kube-apiserver with a server-side dry run: each object must be
// accepted by this Kubernetes version's validation, and the operator's pods
// must meet the restricted Pod Security Standard without a warning.
func TestServerSideDryRun(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	c.mustKubectl(t, nil, "apply", "--server-side", "-f", serviceMonitorCRD(t))
	c.mustKubectl(t, nil, "wait", "--for=condition=Established", "crd/servicemonitors.monitoring.coreos.com", "--timeout=60s")
	c.createNamespaces(t, restrictedPSS, "mcpgate-system", "ops")
	c.createNamespaces(t, nil, "team-a", "team-b")

	dist := t.TempDir()
	release := exec.Command(filepath.Join(repoRoot, "hack", "release.sh"),
		"--version", "v0.0.1-test.1", "--image", "registry.example/mcpgate:v0.0.1-test.1", "--out", dist)
	release.Env = append(c.helmEnv, "HELM="+c.tools.helm, "KUBECTL="+c.tools.kubectl)
	if out, err := release.CombinedOutput(); err != nil {
		t.Fatalf("hack/release.sh: %v\n%s", err, out)
	}
	installYAML := readFile(t, filepath.Join(dist, "install.yaml"))
	kustomized := c.mustKubectl(t, nil, "kustomize", filepath.Join(repoRoot, "config", "default"))

	tests := []struct {
		name     string
		manifest []byte
		wantKind []string // kinds that must be among the objects
	}{
		{"chart defaults", helmTemplate(t, "mcpgate-system"),
			[]string{"CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "Service"}},
		{"chart custom values", helmTemplate(t, "ops", "--values", filepath.Join("testdata", "values-custom.yaml")),
			[]string{"CustomResourceDefinition", "ServiceAccount", "Role", "RoleBinding", "Deployment", "Service", "ServiceMonitor"}},
		{"packaged chart", helmTemplateFile(t, c, filepath.Join(dist, "mcpgate-0.0.1-test.1.tgz")),
			[]string{"CustomResourceDefinition", "ClusterRole", "Deployment"}},
		{"dist/install.yaml", installYAML,
			[]string{"Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "Service"}},
		{"kustomize config/default", []byte(kustomized),
			[]string{"Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "Deployment", "Service"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objs := decodeAll(t, tc.manifest)
			for _, kind := range tc.wantKind {
				if len(find(objs, kind)) == 0 {
					t.Errorf("no %s among the objects", kind)
				}
			}
			stdout, stderr, err := c.kubectl(t, tc.manifest, "apply", "--server-side", "--dry-run=server", "--field-manager=install-test", "-f", "-")
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(stderr, "Warning") {
				t.Errorf("the API server warned:\n%s", stderr)
			}
			if n := strings.Count(stdout, "(server dry run)"); n != len(objs) {
				t.Errorf("%d of %d objects applied:\n%s", n, len(objs), stdout)
			}
		})
	}

	// The images follow --image in both artifacts.
	for name, manifest := range map[string][]byte{"install.yaml": installYAML, "packaged chart": tests[2].manifest} {
		if strings.Contains(string(manifest), "ghcr.io/mcpgate/mcpgate") || !strings.Contains(string(manifest), "registry.example/mcpgate:v0.0.1-test.1") {
			t.Errorf("%s does not use the release image everywhere", name)
		}
	}
}

// helmTemplateFile renders a packaged chart.
func helmTemplateFile(t *testing.T, c *cluster, chart string) []byte {
	t.Helper()
	out, _, err := runCmd(c.helmEnv, nil, c.tools.helm, "template", "mcpgate", chart, "--namespace", "mcpgate-system")
	if err != nil {
		t.Fatal(err)
	}
	return []byte(out)
}

package install_test

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// TestChartCRDsAreTheGeneratedOnes: the chart installs exactly the CRDs and
// manager rules that `make manifests` generates, both as files and as
// rendered, so the chart can never drift from the API or the controller.
func TestChartCRDsAreTheGeneratedOnes(t *testing.T) {
	t.Parallel()
	generated, _ := filepath.Glob(filepath.Join(repoRoot, "config", "crd", "bases", "*.yaml"))
	copies, _ := filepath.Glob(filepath.Join(chartDir, "files", "crds", "*.yaml"))
	if len(generated) == 0 || len(generated) != len(copies) {
		t.Fatalf("generated CRDs %v, chart CRDs %v: run make manifests", generated, copies)
	}
	rendered := decodeAll(t, helmTemplate(t, "mcpgate-system"))
	for _, path := range generated {
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(chartDir, "files", "crds", filepath.Base(path)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("charts/mcpgate/files/crds/%s differs from %s (%v): run make manifests", filepath.Base(path), path, err)
			continue
		}
		var crd unstructured.Unstructured
		if err := yaml.Unmarshal(want, &crd.Object); err != nil {
			t.Fatal(err)
		}
		out := one(t, rendered, "CustomResourceDefinition", "/"+crd.GetName())
		if !reflect.DeepEqual(out.Object["spec"], crd.Object["spec"]) {
			t.Errorf("the rendered CRD %s has another spec than the generated one", crd.GetName())
		}
		if out.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
			t.Errorf("CRD %s is not kept on uninstall by default: annotations %v", crd.GetName(), out.GetAnnotations())
		}
	}

	role, err := os.ReadFile(filepath.Join(repoRoot, "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var generatedRole unstructured.Unstructured
	if err := yaml.Unmarshal(role, &generatedRole.Object); err != nil {
		t.Fatal(err)
	}
	clusterRole := one(t, rendered, "ClusterRole", "/mcpgate-manager")
	if !reflect.DeepEqual(clusterRole.Object["rules"], generatedRole.Object["rules"]) {
		t.Errorf("the chart's manager rules differ from config/rbac/role.yaml:\n%v\n%v", clusterRole.Object["rules"], generatedRole.Object["rules"])
	}
}

// TestHelmLint lints the chart with its defaults and with every value changed.
func TestHelmLint(t *testing.T) {
	t.Parallel()
	for name, args := range map[string][]string{
		"defaults":      nil,
		"custom values": {"--values", filepath.Join("testdata", "values-custom.yaml")},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out, _, err := runCmd(helmEnv(t), nil, findTools(t).helm, append([]string{"lint", "--strict", chartDir}, args...)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if !strings.Contains(out, "1 chart(s) linted, 0 chart(s) failed") {
				t.Errorf("helm lint:\n%s", out)
			}
		})
	}
}

// TestHelmRefusesBadValues: values.schema.json turns a mistake into an error
// that names the value, before anything reaches the cluster.
func TestHelmRefusesBadValues(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		set      string
		wantPath string
	}{
		"negative replicas":           {"replicaCount=-1", "replicaCount"},
		"unknown pull policy":         {"image.pullPolicy=Sometimes", "pullPolicy"},
		"namespace not a DNS label":   {"watchNamespaces[0]=Team_A", "watchNamespaces"},
		"watchNamespaces as a string": {"watchNamespaces=team-a", "watchNamespaces"},
		"unknown log level":           {"logLevel=verbose", "logLevel"},
		"typo in a top-level key":     {"replicas=2", "replicas"},
		"typo in a nested key":        {"metrics.serviceMonitor.enable=true", "enable"},
		"Clerk API URL not http(s)":   {"clerkApiURL=ftp://clerk.example", "clerkApiURL"},
		"metrics on the probe port":   {"metrics.port=8081", "port"},
		"malformed digest":            {"gatewayImage.digest=sha256:beef", "digest"},
		"pull secret as a string":     {"imagePullSecrets[0]=regcred", "imagePullSecrets"},
		"resync not a duration":       {"clerkResyncInterval=often", "clerkResyncInterval"},
		"zero concurrency":            {"concurrency=0", "concurrency"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, stderr, err := runCmd(helmEnv(t), nil, findTools(t).helm, "template", "mcpgate", chartDir, "--set", tc.set)
			if err == nil {
				t.Fatalf("helm template --set %s succeeded", tc.set)
			}
			if !strings.Contains(stderr, "schema") || !strings.Contains(stderr, tc.wantPath) {
				t.Errorf("helm template --set %s: the error does not name %q:\n%s", tc.set, tc.wantPath, stderr)
			}
		})
	}
	t.Run("ServiceMonitor without metrics", func(t *testing.T) {
		t.Parallel()
		_, stderr, err := runCmd(helmEnv(t), nil, findTools(t).helm, "template", "mcpgate", chartDir,
			"--set", "metrics.enabled=false", "--set", "metrics.serviceMonitor.enabled=true")
		if err == nil || !strings.Contains(stderr, "metrics.serviceMonitor.enabled needs metrics.enabled") {
			t.Errorf("err = %v\n%s", err, stderr)
		}
	})
}

// managerContainer returns the one container of a rendered or installed
// operator Deployment.
func managerContainer(t *testing.T, deployment *unstructured.Unstructured) map[string]any {
	t.Helper()
	containers, _, _ := unstructured.NestedSlice(deployment.Object, "spec", "template", "spec", "containers")
	if len(containers) != 1 {
		t.Fatalf("the operator Deployment has %d containers", len(containers))
	}
	return containers[0].(map[string]any)
}

func containerArgs(t *testing.T, deployment *unstructured.Unstructured) []string {
	t.Helper()
	args, _, _ := unstructured.NestedStringSlice(managerContainer(t, deployment), "args")
	return args
}

// TestHelmTemplate checks how values shape the rendered objects: the RBAC
// scope that watchNamespaces selects, the images and the manager's flags.
func TestHelmTemplate(t *testing.T) {
	t.Parallel()
	t.Run("defaults: cluster-wide", func(t *testing.T) {
		t.Parallel()
		objs := decodeAll(t, helmTemplate(t, "mcpgate-system"))
		one(t, objs, "ClusterRole", "/mcpgate-manager")
		one(t, objs, "ClusterRoleBinding", "/mcpgate-manager")
		one(t, objs, "Role", "mcpgate-system/mcpgate-leader-election")
		for key := range find(objs, "Role") {
			if key != "mcpgate-system/mcpgate-leader-election" {
				t.Errorf("unexpected Role %s", key)
			}
		}
		if len(find(objs, "ServiceMonitor")) != 0 {
			t.Error("a ServiceMonitor is rendered by default")
		}
		d := one(t, objs, "Deployment", "mcpgate-system/mcpgate")
		args := containerArgs(t, d)
		for _, want := range []string{
			"manager", "--leader-elect", "--leader-election-namespace=mcpgate-system", "--metrics-bind-address=:8080",
			"--cluster-resource-namespace=mcpgate-system",
			"--gateway-image=ghcr.io/mcpgate/mcpgate:" + chartAppVersion(t), "--zap-log-level=info",
		} {
			if !slices.Contains(args, want) {
				t.Errorf("args %q lack %q", args, want)
			}
		}
		for _, arg := range args {
			if strings.HasPrefix(arg, "--watch-namespaces") || strings.HasPrefix(arg, "--clerk-api-url") {
				t.Errorf("default args carry %q", arg)
			}
		}
		if image := managerContainer(t, d)["image"]; image != "ghcr.io/mcpgate/mcpgate:"+chartAppVersion(t) {
			t.Errorf("image = %q, want the chart's appVersion as the tag", image)
		}
	})
	t.Run("watchNamespaces: Roles, and reading ClusterClerkInstances", func(t *testing.T) {
		t.Parallel()
		objs := decodeAll(t, helmTemplate(t, "ops", "--values", filepath.Join("testdata", "values-custom.yaml")))
		// The one cluster-wide grant of the manager: the cluster-scoped
		// ClusterClerkInstances. (The broker reads the mcpgate kinds
		// cluster-wide, and nothing else: TestHelmTemplateBroker.)
		for key, role := range find(objs, "ClusterRole") {
			if key == "/mcpgate-broker" {
				continue
			}
			rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
			for _, rule := range rules {
				resources, _, _ := unstructured.NestedStringSlice(rule.(map[string]any), "resources")
				for _, res := range resources {
					if !strings.HasPrefix(res, "clusterclerkinstances") {
						t.Errorf("ClusterRole %s grants %s with watchNamespaces", key, res)
					}
				}
			}
		}
		one(t, objs, "ClusterRole", "/mcpgate-cluster-instances")
		var bindings []string
		for key := range find(objs, "ClusterRoleBinding") {
			bindings = append(bindings, key)
		}
		slices.Sort(bindings)
		if want := []string{"/mcpgate-broker", "/mcpgate-broker-auth-delegator", "/mcpgate-cluster-instances"}; !slices.Equal(bindings, want) {
			t.Errorf("ClusterRoleBindings rendered with watchNamespaces: %v, want the ClusterClerkInstance reader's and the broker's only: %v", bindings, want)
		}
		one(t, objs, "Role", "ops/mcpgate-cluster-instance-secrets")
		for _, ns := range []string{"team-a", "team-b"} {
			one(t, objs, "Role", ns+"/mcpgate-manager")
			binding := one(t, objs, "RoleBinding", ns+"/mcpgate-manager")
			subjects, _, _ := unstructured.NestedSlice(binding.Object, "subjects")
			if len(subjects) != 1 || subjects[0].(map[string]any)["namespace"] != "ops" || subjects[0].(map[string]any)["name"] != "mcpgate" {
				t.Errorf("RoleBinding %s/mcpgate-manager binds %v, want the ServiceAccount ops/mcpgate", ns, subjects)
			}
		}
		args := containerArgs(t, one(t, objs, "Deployment", "ops/mcpgate"))
		for _, want := range []string{
			"--watch-namespaces=team-a,team-b", "--leader-election-namespace=ops", "--metrics-bind-address=:9090",
			"--gateway-image=registry.example:5000/platform/mcpgate@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			"--gateway-image-pull-policy=Always", "--gateway-image-pull-secrets=regcred,mirror",
			"--clerk-api-url=https://clerk-egress.platform.svc/v1", "--cluster-resource-namespace=ops", "--concurrency=8", "--clerk-resync-interval=2m30s", "--zap-log-level=debug",
		} {
			if !slices.Contains(args, want) {
				t.Errorf("args %q lack %q", args, want)
			}
		}
		one(t, objs, "ServiceMonitor", "ops/mcpgate")
		crd := one(t, objs, "CustomResourceDefinition", "/mcpservers.mcpgate.dev")
		if _, kept := crd.GetAnnotations()["helm.sh/resource-policy"]; kept {
			t.Error("crds.keep=false still keeps the CRD")
		}
	})
	t.Run("crds.enabled=false", func(t *testing.T) {
		t.Parallel()
		objs := decodeAll(t, helmTemplate(t, "mcpgate-system", "--set", "crds.enabled=false"))
		if n := len(find(objs, "CustomResourceDefinition")); n != 0 {
			t.Errorf("%d CRDs rendered with crds.enabled=false", n)
		}
	})
}

func chartAppVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(data, &chart); err != nil || chart.AppVersion == "" {
		t.Fatalf("Chart.yaml appVersion: %q, %v", chart.AppVersion, err)
	}
	return chart.AppVersion
}

// TestInstallDocDocumentsEveryValue: each value of the chart, by its full
// dotted path, is in the values table of docs/install.md.
func TestInstallDocDocumentsEveryValue(t *testing.T) {
	t.Parallel()
	var values map[string]any
	if err := yaml.Unmarshal(readFile(t, filepath.Join(chartDir, "values.yaml")), &values); err != nil {
		t.Fatal(err)
	}
	doc := string(readFile(t, filepath.Join(repoRoot, "docs", "install.md")))
	paths := valuePaths("", values)
	if len(paths) < 30 {
		t.Fatalf("found only %d value paths in values.yaml: %v", len(paths), paths)
	}
	for _, path := range paths {
		if !strings.Contains(doc, "`"+path+"`") {
			t.Errorf("docs/install.md does not document the chart value `%s`", path)
		}
	}
}

// valuePaths lists the leaves of a values tree as dotted paths; lists and
// empty maps are leaves.
func valuePaths(prefix string, v any) []string {
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		return []string{prefix}
	}
	var paths []string
	for k, child := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		paths = append(paths, valuePaths(p, child)...)
	}
	slices.Sort(paths)
	return paths
}

package install_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mcpgate/mcpgate/internal/testenv"
)

// repoRoot is the repository, relative to this package.
var repoRoot = filepath.Join("..", "..")

const chartDir = "../../charts/mcpgate"

// tools are the programs the tests drive, as a user would.
type tools struct {
	helm, kubectl, assets string
}

var (
	toolsOnce sync.Once
	toolsVal  tools
	toolsErr  error
)

// findTools returns helm and the envtest binaries: $HELM and
// $KUBEBUILDER_ASSETS when set (make test sets both), otherwise what the
// setup scripts build or find in the cache.
func findTools(t *testing.T) tools {
	t.Helper()
	toolsOnce.Do(func() {
		toolsVal.helm, toolsErr = testenv.FromEnvOrScript(repoRoot, "HELM", "setup-helm.sh")
		if toolsErr == nil {
			toolsVal.assets, toolsErr = testenv.Assets(repoRoot)
		}
		toolsVal.kubectl = filepath.Join(toolsVal.assets, "kubectl")
	})
	if toolsErr != nil {
		t.Fatal(toolsErr)
	}
	return toolsVal
}

// helmEnv keeps helm's cache, config and data out of the user's home.
func helmEnv(t *testing.T) []string {
	dir := t.TempDir()
	return append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(dir, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(dir, "config"),
		"HELM_DATA_HOME="+filepath.Join(dir, "data"),
	)
}

// runCmd runs a program and returns its stdout and stderr separately, so
// that warnings on stderr can be told apart from results.
func runCmd(env []string, stdin []byte, name string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), errOut.String(), err
}

// helmTemplate renders the chart as release "mcpgate" in namespace ns.
func helmTemplate(t *testing.T, ns string, args ...string) []byte {
	t.Helper()
	out, _, err := runCmd(helmEnv(t), nil, findTools(t).helm,
		append([]string{"template", "mcpgate", chartDir, "--namespace", ns}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(out)
}

// decodeAll splits a multi-document YAML stream into objects.
func decodeAll(t *testing.T, manifest []byte) []*unstructured.Unstructured {
	t.Helper()
	objs, err := testenv.DecodeObjects(manifest)
	if err != nil {
		t.Fatalf("decode manifest: %v", err)
	}
	return objs
}

// find returns the objects of a kind, by namespace/name.
func find(objs []*unstructured.Unstructured, kind string) map[string]*unstructured.Unstructured {
	found := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		if o.GetKind() == kind {
			found[o.GetNamespace()+"/"+o.GetName()] = o
		}
	}
	return found
}

func one(t *testing.T, objs []*unstructured.Unstructured, kind, key string) *unstructured.Unstructured {
	t.Helper()
	o, ok := find(objs, kind)[key]
	if !ok {
		t.Fatalf("no %s %s among the rendered objects", kind, key)
	}
	return o
}

// cluster is a real kube-apiserver (envtest) with RBAC, and an admin's
// kubeconfig for kubectl and helm.
type cluster struct {
	tools      tools
	cfg        *rest.Config
	admin      client.Client
	kubeconfig string
	helmEnv    []string
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	tl := findTools(t)
	ec := testenv.StartCluster(t, testenv.Options{Root: repoRoot, AssetsDir: tl.assets})
	return &cluster{tools: tl, cfg: ec.Config, admin: ec.Admin, kubeconfig: ec.Kubeconfig,
		helmEnv: append(helmEnv(t), "KUBECONFIG="+ec.Kubeconfig)}
}

// kubectl runs the real kubectl as the cluster admin. Its discovery cache
// lives in a temporary directory, not in ~/.kube.
func (c *cluster) kubectl(t *testing.T, stdin []byte, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return runCmd(os.Environ(), stdin, c.tools.kubectl,
		append([]string{"--kubeconfig", c.kubeconfig, "--cache-dir", t.TempDir()}, args...)...)
}

func (c *cluster) mustKubectl(t *testing.T, stdin []byte, args ...string) string {
	t.Helper()
	out, _, err := c.kubectl(t, stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (c *cluster) helm(t *testing.T, args ...string) string {
	t.Helper()
	out, _, err := runCmd(c.helmEnv, nil, c.tools.helm, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// createNamespaces creates namespaces with the given labels.
func (c *cluster) createNamespaces(t *testing.T, labels map[string]string, names ...string) {
	t.Helper()
	for _, name := range names {
		args := []string{"create", "namespace", name}
		c.mustKubectl(t, nil, args...)
		for k, v := range labels {
			c.mustKubectl(t, nil, "label", "namespace", name, k+"="+v)
		}
	}
}

// restrictedPSS makes a namespace enforce, and warn about, the restricted
// Pod Security Standard. Pod Security Admission does not refuse Deployments
// whose pods would violate it; it warns, and the tests fail on warnings.
var restrictedPSS = map[string]string{
	"pod-security.kubernetes.io/enforce": "restricted",
	"pod-security.kubernetes.io/warn":    "restricted",
}

// serviceAccountKubeconfig writes a kubeconfig that authenticates with a
// token the API server issues for the ServiceAccount (TokenRequest), exactly
// what a pod of that ServiceAccount would present.
func (c *cluster) serviceAccountKubeconfig(t *testing.T, namespace, name string) string {
	t.Helper()
	token := strings.TrimSpace(c.mustKubectl(t, nil, "-n", namespace, "create", "token", name, "--duration=1h"))
	cluster := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: envtest
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: %s
  user:
    token: %s
contexts:
- name: sa
  context: {cluster: envtest, user: %s}
current-context: sa
`, c.cfg.Host, writeTemp(t, "ca.crt", c.cfg.CAData), name, token, name)
	return writeTemp(t, "sa-kubeconfig", []byte(cluster))
}

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// manager is `mcpgate manager` running as a subprocess.
type manager = testenv.Manager

// startManager runs the manager with the arguments of the chart's Deployment
// container (as installed in the cluster), with a kubeconfig in place of the
// in-cluster ServiceAccount. Only the listen addresses change, to free
// loopback ports: later flags win.
func startManager(t *testing.T, kubeconfig string, chartArgs []string) *manager {
	t.Helper()
	if len(chartArgs) == 0 || chartArgs[0] != "manager" {
		t.Fatalf("the chart's container args %q do not start the manager", chartArgs)
	}
	args := append(append([]string{}, chartArgs...), "--metrics-bind-address=0", "--health-probe-bind-address=127.0.0.1:0")
	return testenv.StartManager(t, "chart", kubeconfig, args...)
}

// eventually retries check until it succeeds or a minute has passed.
func eventually(t *testing.T, what string, check func() error, logs func() string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v\nmanager output (last lines):\n%s", what, err, testenv.LastLines(logs(), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

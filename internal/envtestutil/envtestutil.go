// Package envtestutil starts a real kube-apiserver and etcd (envtest) for a
// test and hands it what it drives them with: a cluster admin's client and
// kubeconfig file. The test packages that run mcpgate as its users would
// (test/install, test/faults) share it; FromEnvOrScript also serves the
// controllers suite.
package envtestutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
)

// Cluster is a running envtest control plane.
type Cluster struct {
	Env    *envtest.Environment
	Config *rest.Config
	// Admin is a client in the system:masters group, knowing the built-in,
	// CRD and mcpgate types.
	Admin client.Client
	// Kubeconfig is the path of a cluster admin's kubeconfig, for kubectl,
	// helm and the manager binary.
	Kubeconfig string
}

// FromEnvOrScript returns $env when it is set (make test sets KUBEBUILDER_ASSETS
// and HELM), otherwise the path that hack/<script> under repoRoot prints:
// the setup scripts build or find the tool in the cache, so that a plain
// `go test ./...` works too.
func FromEnvOrScript(repoRoot, env, script string) (string, error) {
	if v := os.Getenv(env); v != "" {
		return v, nil
	}
	out, err := exec.Command(filepath.Join(repoRoot, "hack", script)).Output()
	if err != nil {
		return "", fmt.Errorf("hack/%s: %w", script, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Scheme knows the built-in, CRD and mcpgate types.
func Scheme() *runtime.Scheme {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))
	utilruntime.Must(mcpv1.AddToScheme(scheme))
	return scheme
}

// Start starts env, configured as the test needs (its
// BinaryAssetsDirectory must be set), and stops it when the test ends.
func Start(t testing.TB, env *envtest.Environment) *Cluster {
	t.Helper()
	t.Cleanup(func() { _ = env.Stop() }) // also after a failed start, which can leave processes behind
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start envtest: %v", err)
	}
	user, err := env.AddUser(envtest.User{Name: "cluster-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	admin, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return &Cluster{Env: env, Config: cfg, Admin: admin, Kubeconfig: path}
}

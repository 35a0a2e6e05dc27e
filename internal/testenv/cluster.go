// Package testenv is the one harness of the tests that run mcpgate as its
// users would: it finds the module root, builds the repository's commands
// once per test process, starts a real kube-apiserver and etcd (envtest)
// and hands out a cluster admin's client and kubeconfig, and runs
// `mcpgate manager` and the hack/ commands as subprocesses. The
// controllers suite, cmd/mcpgate, test/install, test/faults and the hack/
// command tests use it; internal/localstack and hack/bench build and start
// their control plane with it too.
package testenv

import (
	"errors"
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
	// tempDir, when set, holds the kubeconfig and goes with Stop.
	tempDir string
}

// Options configure a cluster.
type Options struct {
	// Root is the module root (empty: ModuleRoot finds it).
	Root string
	// AssetsDir holds etcd, kube-apiserver and kubectl (empty: Assets finds it).
	AssetsDir string
	// CRDs installs the CRDs of config/crd/bases and those at ExtraCRDs
	// (files or directories) before Start returns. Without it the cluster
	// has none, as a fresh cluster for `helm install` or `kubectl apply -k`.
	CRDs      bool
	ExtraCRDs []string
	// User names the admin of Admin and Kubeconfig (empty: "cluster-admin").
	User string
	// Kubeconfig is where the admin's kubeconfig is written (empty: a
	// temporary directory that Stop removes).
	Kubeconfig string
	// Configure, if set, changes the environment before it starts: API
	// server flags, a certificate directory kept across restarts.
	Configure func(*envtest.Environment)
}

// Assets returns the directory of etcd, kube-apiserver and kubectl:
// $KUBEBUILDER_ASSETS, or what hack/setup-envtest.sh under root prints.
func Assets(root string) (string, error) {
	return FromEnvOrScript(root, "KUBEBUILDER_ASSETS", "setup-envtest.sh")
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

// NewCluster starts a control plane as opts say; the caller stops it. It is
// for what outlives one test (a suite's TestMain, the demo, the benchmark);
// a test uses StartCluster.
func NewCluster(opts Options) (c *Cluster, err error) {
	root, err := ModuleRoot(opts.Root)
	if err != nil {
		return nil, err
	}
	if opts.AssetsDir == "" {
		if opts.AssetsDir, err = Assets(root); err != nil {
			return nil, err
		}
	}
	env := &envtest.Environment{BinaryAssetsDirectory: opts.AssetsDir, Scheme: Scheme()}
	if opts.CRDs {
		env.CRDDirectoryPaths = append([]string{filepath.Join(root, "config", "crd", "bases")}, opts.ExtraCRDs...)
		env.ErrorIfCRDPathMissing = true
	}
	if opts.Configure != nil {
		opts.Configure(env)
	}
	c = &Cluster{Env: env, Kubeconfig: opts.Kubeconfig}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Stop())
		}
	}()
	// NOTE: a failed start (a CRD the API server refuses, say) can leave
	// etcd or kube-apiserver running; the deferred Stop ends them.
	if c.Config, err = env.Start(); err != nil {
		return c, fmt.Errorf("start kube-apiserver and etcd: %w", err)
	}
	user := opts.User
	if user == "" {
		user = "cluster-admin"
	}
	admin, err := env.AddUser(envtest.User{Name: user, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return c, fmt.Errorf("add the admin user: %w", err)
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return c, fmt.Errorf("the admin's kubeconfig: %w", err)
	}
	if c.Kubeconfig == "" {
		if c.tempDir, err = os.MkdirTemp("", "testenv-"); err != nil {
			return c, fmt.Errorf("create a directory for the kubeconfig: %w", err)
		}
		c.Kubeconfig = filepath.Join(c.tempDir, "kubeconfig")
	}
	if err := os.WriteFile(c.Kubeconfig, kubeconfig, 0o600); err != nil {
		return c, fmt.Errorf("write the admin's kubeconfig: %w", err)
	}
	if c.Admin, err = client.New(c.Config, client.Options{Scheme: env.Scheme}); err != nil {
		return c, fmt.Errorf("create the admin's client: %w", err)
	}
	return c, nil
}

// Stop stops the control plane and removes what NewCluster wrote.
func (c *Cluster) Stop() error {
	err := c.Env.Stop()
	if c.tempDir != "" {
		err = errors.Join(err, os.RemoveAll(c.tempDir))
	}
	if err != nil {
		return fmt.Errorf("stop envtest: %w", err)
	}
	return nil
}

// StartCluster starts a control plane for one test and stops it when the
// test ends.
func StartCluster(t testing.TB, opts Options) *Cluster {
	t.Helper()
	c, err := NewCluster(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Log(err)
		}
	})
	return c
}

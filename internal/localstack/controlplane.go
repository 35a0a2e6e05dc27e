package localstack

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

// EnvtestAssets returns the directory holding etcd, kube-apiserver and
// kubectl, found as Start finds it (see Options.AssetsDir). Callers that
// start several stacks resolve it once, so that a cold cache is filled once.
func EnvtestAssets(ctx context.Context, opts Options) (string, error) {
	opts = opts.withDefaults()
	root, err := testenv.ModuleRoot(opts.RepoRoot)
	if err != nil {
		return "", err
	}
	return envtestAssets(ctx, opts.AssetsDir, root, testenv.CacheDir(opts.CacheDir), opts.Progress)
}

// envtestAssets returns dir, else $KUBEBUILDER_ASSETS when it holds every
// binary, else what hack/setup-envtest.sh prints. The script may take
// minutes on a first run (it builds the binaries); its progress is passed
// on line by line.
func envtestAssets(ctx context.Context, dir, root, cache string, progress func(string)) (string, error) {
	if dir != "" {
		if !hasAssets(dir) {
			return "", fmt.Errorf("%s lacks etcd, kube-apiserver or kubectl", dir)
		}
		return dir, nil
	}
	if env := os.Getenv("KUBEBUILDER_ASSETS"); env != "" && hasAssets(env) {
		return env, nil
	}
	cmd := exec.CommandContext(ctx, filepath.Join(root, "hack", "setup-envtest.sh"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "MCPGATE_CACHE_DIR="+cache)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &lineWriter{fn: func(line string) { progress("  " + line) }}
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("hack/setup-envtest.sh: %w", err)
	}
	assets := strings.TrimSpace(stdout.String())
	if !hasAssets(assets) {
		return "", fmt.Errorf("hack/setup-envtest.sh printed %q, which lacks etcd, kube-apiserver or kubectl", assets)
	}
	return assets, nil
}

// hasAssets reports whether dir holds what envtest and the stack run.
func hasAssets(dir string) bool {
	for _, b := range []string{"etcd", "kube-apiserver", "kubectl"} {
		if info, err := os.Stat(filepath.Join(dir, b)); err != nil || info.IsDir() {
			return false
		}
	}
	return true
}

// newScheme knows the built-in kinds and McpServer.
func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(mcpv1.AddToScheme(s))
	return s
}

// startControlPlane starts etcd and kube-apiserver and writes a cluster
// admin's kubeconfig to path. The CRDs are not part of it: they are applied
// afterwards with kubectl, as `make install` does.
func startControlPlane(root, assets, kubeconfigPath string) (*envtest.Environment, error) {
	c, err := testenv.NewCluster(testenv.Options{Root: root, AssetsDir: assets, User: "localstack-admin", Kubeconfig: kubeconfigPath})
	if err != nil {
		return nil, err
	}
	return c.Env, nil
}

// kubectlRunner runs the real kubectl against the stack.
type kubectlRunner struct {
	bin, kubeconfig string
	// cacheDir keeps kubectl's discovery cache out of ~/.kube/cache, which
	// would otherwise collect an entry for every stack's random port.
	cacheDir string
}

// run returns kubectl's combined output; errors carry the output too.
func (k kubectlRunner) run(ctx context.Context, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, k.bin, append([]string{"--kubeconfig", k.kubeconfig, "--cache-dir", k.cacheDir}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// installCRDs applies config/crd the way `make install` does and waits
// until the API server serves McpServers.
func installCRDs(ctx context.Context, k kubectlRunner, root string) error {
	if _, err := k.run(ctx, nil, "apply", "--server-side", "-k", filepath.Join(root, "config", "crd")); err != nil {
		return err
	}
	_, err := k.run(ctx, nil, "wait", "--for=condition=Established", "--timeout=60s",
		"customresourcedefinition/mcpservers.mcpgate.dev")
	return err
}

// lineWriter calls fn for each complete line written to it; a line split
// across writes is put back together.
type lineWriter struct {
	mu      sync.Mutex
	fn      func(line string)
	partial []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		if line := strings.TrimSpace(string(w.partial[:i])); line != "" {
			w.fn(line)
		}
		w.partial = w.partial[i+1:]
	}
}

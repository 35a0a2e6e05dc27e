package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

// testOptions are the reconciler options of the envtest manager.
// The manager's Clerk Backend API is a Clerk emulator started with the
// cluster; McpServers that declare no instance settings never call it.
// testClusterResourceNamespace is the operator's namespace in the test
// cluster, where ClusterClerkInstances keep their Secrets.
const testClusterResourceNamespace = "mcpgate-system"

var testOptions = Options{
	GatewayImage:   "example.test/mcpgate:test",
	ClerkAPIURL:    "https://api.clerk.test/v1",
	ClerkRetryBase: 200 * time.Millisecond,
	ClerkRetryMax:  2 * time.Second,
}

// testCluster is a real kube-apiserver and etcd with the CRDs installed and
// the reconciler running in a manager. It is started by the first test that
// needs it, so unit tests of the builders run without one.
type testCluster struct {
	cluster    *testenv.Cluster
	env        *envtest.Environment
	cfg        *rest.Config
	clerk      *clerktest.Server // the Clerk instance behind the manager's --clerk-api-url
	client     client.Client     // uncached: what tests read is what the API server holds
	mgrClient  client.Client     // the manager's cached client, as the reconciler sees it
	reconciler *McpServerReconciler
	cancel     context.CancelFunc
	done       chan error
	// addUserMu serializes envtest's AddUser, which is not safe for concurrent use.
	addUserMu sync.Mutex
}

var (
	clusterOnce sync.Once
	cluster     *testCluster
	clusterErr  error
	nsCounter   atomic.Int64

	// brokerClusterOnce starts brokerCluster, a cluster of its own whose
	// manager runs with a broker (testBrokerURL): the shared cluster's
	// manager reconciles every McpServer without one, and two managers
	// would fight over each object.
	brokerClusterOnce sync.Once
	brokerCluster     *testCluster
	brokerClusterErr  error
)

func TestMain(m *testing.M) {
	level := zapcore.ErrorLevel // TEST_LOG=1 shows the controller's logs
	if os.Getenv("TEST_LOG") != "" {
		level = zapcore.DebugLevel
	}
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(level)))
	code := m.Run()
	for _, tc := range []*testCluster{cluster, brokerCluster} {
		if tc == nil {
			continue
		}
		tc.cancel()
		if err := <-tc.done; err != nil {
			fmt.Fprintf(os.Stderr, "manager: %v\n", err)
		}
		tc.clerk.Close()
		if err := tc.cluster.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "%v\n", err)
		}
	}
	os.Exit(code)
}

// gatewayAPIModule provides the Gateway API CRDs the tests install.
const gatewayAPIModule = "sigs.k8s.io/gateway-api@v1.4.0"

// gatewayAPIHTTPRouteCRD returns the path of the real HTTPRoute CRD in the
// module cache, downloading the module if needed.
func gatewayAPIHTTPRouteCRD() (string, error) {
	out, err := exec.Command("go", "mod", "download", "-json", gatewayAPIModule).Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s: %w", gatewayAPIModule, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return "", fmt.Errorf("go mod download %s printed no Dir: %s", gatewayAPIModule, out)
	}
	return filepath.Join(mod.Dir, "config", "crd", "standard", "gateway.networking.k8s.io_httproutes.yaml"), nil
}

// envCluster returns the shared test cluster, starting it on first use.
func envCluster(t *testing.T) *testCluster {
	t.Helper()
	clusterOnce.Do(func() { cluster, clusterErr = startCluster() })
	if clusterErr != nil {
		t.Fatalf("start envtest: %v", clusterErr)
	}
	return cluster
}

func startCluster() (*testCluster, error) {
	routes, err := gatewayAPIHTTPRouteCRD()
	if err != nil {
		return nil, err
	}
	// The Gateway API's HTTPRoute CRD, from its Go module, so that
	// spec.httpRoute is served; test/install runs without it.
	c, err := testenv.NewCluster(testenv.Options{CRDs: true, ExtraCRDs: []string{routes}})
	if err != nil {
		return nil, err
	}
	tc, err := startManager(c, testOptions, nil)
	if err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	return tc, nil
}

// startManager runs the reconciler in a manager against cfg, with opts
// (the Clerk API URL and the cluster resource namespace set here); setup,
// if set, registers more with the manager.
func startManager(c *testenv.Cluster, opts Options, setup func(ctrl.Manager, *McpServerReconciler) error) (*testCluster, error) {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(mcpv1.AddToScheme(scheme))

	mgr, err := ctrl.NewManager(c.Config, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  CacheOptions(testClusterResourceNamespace),
		// The broker cluster's manager registers controllers of the same
		// names in this process.
		Controller: ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return nil, err
	}
	emulator := clerktest.NewServer()
	opts.ClerkAPIURL = emulator.BackendAPIURL()
	opts.ClusterResourceNamespace = testClusterResourceNamespace
	r := &McpServerReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("mcpgate"),
		Clock:     clock.RealClock{},
		Options:   opts,
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := setupReconcilers(ctx, mgr, r); err != nil {
		cancel()
		return nil, err
	}
	if setup != nil {
		if err := setup(mgr, r); err != nil {
			cancel()
			return nil, err
		}
	}
	operatorNS := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testClusterResourceNamespace}}
	if err := c.Admin.Create(ctx, operatorNS); err != nil {
		cancel()
		return nil, fmt.Errorf("create namespace %s: %w", testClusterResourceNamespace, err)
	}
	tc := &testCluster{cluster: c, env: c.Env, cfg: c.Config, clerk: emulator, client: c.Admin, mgrClient: mgr.GetClient(), reconciler: r, cancel: cancel, done: make(chan error, 1)}
	go func() { tc.done <- mgr.Start(ctx) }()
	// Sync every informer the controller watches before any test runs, so
	// tests start from a warm cache and a short run does not stop the manager
	// while its watches are still starting.
	for _, obj := range []client.Object{&mcpv1.McpServer{}, &corev1.ConfigMap{}, &appsv1.Deployment{}, &corev1.Service{},
		&networkingv1.Ingress{}, &policyv1.PodDisruptionBudget{}, &corev1.Secret{}, &mcpv1.ClerkInstance{}, &mcpv1.ClusterClerkInstance{}} {
		if _, err := mgr.GetCache().GetInformer(ctx, obj); err != nil {
			cancel()
			return nil, fmt.Errorf("sync informer for %T: %w", obj, err)
		}
	}
	return tc, nil
}

// newNamespace creates a namespace of its own for one test.
func (tc *testCluster) newNamespace(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%s", nsCounter.Add(1), dnsSafe(t.Name()))
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := tc.client.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return name
}

// dnsSafe lowercases s and turns everything but letters and digits into '-'.
func dnsSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(s))
}

// eventually retries check until it returns nil or the time is up. Waiting
// is for the controller to act, never a measure of speed: the limit is generous.
func eventually(t *testing.T, check func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = check(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("condition not met within 30s: %v", err)
}

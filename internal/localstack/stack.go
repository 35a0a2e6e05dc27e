package localstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway/config"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

// Stack is a running local mcpgate installation. Its methods are safe for
// concurrent use; Close stops everything it started.
type Stack struct {
	opts       Options
	root       string
	workDir    string
	ownWorkDir bool
	logDir     string
	kubectl    kubectlRunner
	env        *envtest.Environment
	client     client.Client
	clerk      *clerkEmulator
	sample     *sampleServer
	broker     *brokerProcess // nil with Options.NoBroker
	manager    *Manager
	kubelet    *kubelet

	// teardown holds what Close undoes, in the order it was started.
	teardown  []teardownStep
	closeOnce sync.Once
	closeErr  error
}

type teardownStep struct {
	what string
	fn   func() error
}

// Start starts the stack, in order: the control plane (etcd and
// kube-apiserver, with an admin kubeconfig written to a file), the CRDs, the
// Clerk emulator, the sample MCP server with its Service, the Secret holding
// the emulator's secret key, `mcpgate manager`, `mcpgate broker` (unless
// Options.NoBroker) and the kubelet emulation.
// If any step fails, whatever started is stopped again and the error
// returned. ctx bounds the start only; the stack runs until Close.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	opts = opts.withDefaults()
	s := &Stack{opts: opts}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Close())
		}
	}()
	started := time.Now()
	if s.root, err = testenv.ModuleRoot(opts.RepoRoot); err != nil {
		return nil, err
	}
	if err := s.makeWorkDir(); err != nil {
		return nil, err
	}

	bins := opts.Binaries
	if bins.missing(opts) {
		binDir := filepath.Join(testenv.CacheDir(opts.CacheDir), "bin")
		what := "Building mcpgate into " + binDir + " (go build relinks only what changed)"
		if _, err := os.Stat(filepath.Join(binDir, "mcpgate")); err != nil {
			what = "Building mcpgate into " + binDir + " (a first build, which takes a minute or two)"
		}
		build := func() (berr error) {
			bins, berr = Build(ctx, BuildOptions{
				RepoRoot: s.root, CacheDir: opts.CacheDir,
				ClerkEmulator: opts.Clerk.Mode == Subprocess, SampleServer: opts.Sample.Mode == Subprocess,
			})
			return berr
		}
		if err := s.step(what, build); err != nil {
			return nil, err
		}
	}

	var assets string
	find := func() (aerr error) {
		assets, aerr = envtestAssets(ctx, opts.AssetsDir, s.root, testenv.CacheDir(opts.CacheDir), opts.Progress)
		return aerr
	}
	if opts.AssetsDir != "" {
		err = find()
	} else {
		err = s.step("Finding etcd, kube-apiserver and kubectl (hack/setup-envtest.sh; when they are not cached yet, it downloads or builds them, which can take a few minutes)", find)
	}
	if err != nil {
		return nil, err
	}
	s.kubectl = kubectlRunner{
		bin:        filepath.Join(assets, "kubectl"),
		kubeconfig: filepath.Join(s.workDir, "kubeconfig"),
		cacheDir:   filepath.Join(s.workDir, "kubectl-cache"),
	}

	steps := []struct {
		what string
		fn   func(context.Context, string, Binaries) error
	}{
		{"Starting the control plane (etcd, kube-apiserver)", s.startControlPlane},
		{"Installing the CRDs (kubectl apply --server-side -k config/crd)", func(ctx context.Context, _ string, _ Binaries) error {
			return installCRDs(ctx, s.kubectl, s.root)
		}},
		{fmt.Sprintf("Starting the Clerk emulator (%s)", opts.Clerk.Mode), s.startClerk},
		{fmt.Sprintf("Starting the sample MCP server (%s) behind Service %s/%s", opts.Sample.Mode, opts.Namespace, opts.Sample.ServiceName), s.startSample},
		{fmt.Sprintf("Creating Secret %s/%s with the emulator's secret key", opts.Namespace, SecretName), s.createSecret},
		{"Starting mcpgate manager", s.startManager},
		{"Starting mcpgate broker (once the operator has created its TLS Secret)", s.startBroker},
		{"Starting the kubelet emulation (gateway Deployments run as local processes)", s.startKubelet},
	}
	for _, st := range steps {
		if err := s.step(st.what, func() error { return st.fn(ctx, assets, bins) }); err != nil {
			return nil, err
		}
	}
	opts.Progress(fmt.Sprintf("Local stack up in %s", round(time.Since(started))))
	return s, nil
}

// step runs fn, reporting it and how long it took.
func (s *Stack) step(what string, fn func() error) error {
	s.opts.Progress(what + " ...")
	start := time.Now()
	if err := fn(); err != nil {
		return fmt.Errorf("%s: %w", strings.ToLower(what[:1])+what[1:], err)
	}
	s.opts.Progress(fmt.Sprintf("  done in %s", round(time.Since(start))))
	return nil
}

// onClose registers what Close must undo for a step that succeeded.
func (s *Stack) onClose(what string, fn func() error) {
	s.teardown = append(s.teardown, teardownStep{what, fn})
}

func (s *Stack) makeWorkDir() error {
	s.workDir = s.opts.WorkDir
	if s.workDir == "" {
		dir, err := os.MkdirTemp("", "mcpgate-localstack-")
		if err != nil {
			return fmt.Errorf("create the work directory: %w", err)
		}
		s.workDir, s.ownWorkDir = dir, true
	} else if err := os.MkdirAll(s.workDir, 0o755); err != nil {
		return fmt.Errorf("create the work directory: %w", err)
	}
	s.logDir = filepath.Join(s.workDir, "logs")
	if err := os.MkdirAll(s.logDir, 0o755); err != nil {
		return fmt.Errorf("create the log directory: %w", err)
	}
	return nil
}

func (s *Stack) startControlPlane(_ context.Context, assets string, _ Binaries) error {
	env, err := startControlPlane(s.root, assets, s.kubectl.kubeconfig)
	if err != nil {
		return err
	}
	s.env = env
	s.onClose("the control plane", env.Stop)
	s.client, err = client.New(env.Config, client.Options{Scheme: newScheme()})
	if err != nil {
		return fmt.Errorf("create a client: %w", err)
	}
	return nil
}

func (s *Stack) startClerk(ctx context.Context, _ string, bins Binaries) error {
	c, err := startClerk(ctx, s.opts.Clerk, bins.ClerkEmulator, s.logDir)
	if err != nil {
		return err
	}
	s.clerk = c
	s.onClose("the Clerk emulator", c.stop)
	return nil
}

// startSample starts the sample server and the Service McpServers name as
// their upstream. The Service has no selector and no endpoints; its
// targetPort is the server's loopback port, which is how the kubelet
// emulation finds it (see resolveArg).
func (s *Stack) startSample(ctx context.Context, _ string, bins Binaries) error {
	srv, err := startSample(ctx, s.opts.Sample.Mode, bins.SampleServer, s.logDir)
	if err != nil {
		return err
	}
	s.sample = srv
	s.onClose("the sample MCP server", srv.stop)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.opts.Namespace}}
	if err := s.client.Create(ctx, ns); err != nil {
		return fmt.Errorf("create namespace %s: %w", ns.Name, err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name: s.opts.Sample.ServiceName, Namespace: s.opts.Namespace,
			Labels: map[string]string{"app.kubernetes.io/name": "sample-mcp-server", "app.kubernetes.io/part-of": "mcpgate-localstack"},
		},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
			Name: "http", Port: s.opts.Sample.ServicePort, TargetPort: intstr.FromInt32(srv.port), Protocol: corev1.ProtocolTCP,
		}}},
	}
	if err := s.client.Create(ctx, svc); err != nil {
		return fmt.Errorf("create service %s: %w", svc.Name, err)
	}
	return nil
}

func (s *Stack) createSecret(ctx context.Context, _ string, _ Binaries) error {
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: SecretName, Namespace: s.opts.Namespace},
		Data:       map[string][]byte{SecretKey: []byte(s.clerk.instance.SecretKey)},
	}
	if err := s.client.Create(ctx, sec); err != nil {
		return fmt.Errorf("create secret %s: %w", sec.Name, err)
	}
	return nil
}

// startManager creates the operator's namespace and runs the manager in
// it. With the broker, the broker's address is taken first: it is the
// manager's --broker-url, and the name in the certificate the manager makes.
func (s *Stack) startManager(ctx context.Context, _ string, bins Binaries) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: OperatorNamespace}}
	if err := s.client.Create(ctx, ns); err != nil {
		return fmt.Errorf("create namespace %s: %w", ns.Name, err)
	}
	opts := ManagerOptions{
		Binary: bins.Mcpgate, Kubeconfig: s.kubectl.kubeconfig, ClerkAPIURL: s.clerk.instance.BackendAPIURL,
		ClerkResync: s.opts.ClerkResyncInterval, LogPath: filepath.Join(s.logDir, "manager.log"),
		ClusterResourceNamespace: OperatorNamespace,
	}
	if !s.opts.NoBroker {
		b, err := newBrokerAddress(s.client)
		if err != nil {
			return err
		}
		s.broker = b
		s.onClose("mcpgate broker", b.stop)
		opts.BrokerURL, opts.BrokerTLSSecret = b.url(), BrokerTLSSecret
	}
	mgr, err := StartManager(ctx, opts)
	if err != nil {
		return err
	}
	s.manager = mgr
	s.onClose("mcpgate manager", func() error { return mgr.Stop(30 * time.Second) })
	return nil
}

// startBroker runs the broker once the manager has made its TLS Secret.
func (s *Stack) startBroker(ctx context.Context, _ string, bins Binaries) error {
	if s.broker == nil {
		return nil
	}
	return s.broker.start(ctx, brokerSpec{
		mcpgate: bins.Mcpgate, kubeconfig: s.kubectl.kubeconfig, clerkAPIURL: s.clerk.instance.BackendAPIURL,
		workDir: s.workDir, logDir: s.logDir,
	})
}

func (s *Stack) startKubelet(ctx context.Context, _ string, bins Binaries) error {
	logFile, err := os.OpenFile(filepath.Join(s.logDir, "kubelet.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open kubelet log: %w", err)
	}
	k, stop, err := startKubelet(ctx, kubeletSpec{
		restConfig: s.env.Config,
		mcpgate:    bins.Mcpgate,
		workDir:    s.workDir,
		logDir:     s.logDir,
		logger:     logr.FromSlogHandler(slog.NewTextHandler(logFile, nil)),
	})
	if err != nil {
		_ = logFile.Close()
		return err
	}
	s.kubelet = k
	s.onClose("the kubelet emulation and its gateways", func() error { return errors.Join(stop(), logFile.Close()) })
	return nil
}

// Close stops everything Start started, in reverse order, even what follows
// a step that fails to stop, and removes the work directory if Start made
// it. It is safe to call more than once.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		for i := len(s.teardown) - 1; i >= 0; i-- {
			st := s.teardown[i]
			start := time.Now()
			if err := st.fn(); err != nil {
				errs = append(errs, fmt.Errorf("stop %s: %w", st.what, err))
			}
			s.opts.Progress(fmt.Sprintf("Stopped %s in %s", st.what, round(time.Since(start))))
		}
		if s.ownWorkDir {
			if err := os.RemoveAll(s.workDir); err != nil {
				errs = append(errs, fmt.Errorf("remove the work directory: %w", err))
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// Kubeconfig is the path of a cluster admin's kubeconfig for the stack's
// API server.
func (s *Stack) Kubeconfig() string { return s.kubectl.kubeconfig }

// KubectlPath is the path of the kubectl binary matching the API server.
func (s *Stack) KubectlPath() string { return s.kubectl.bin }

// Kubectl runs kubectl against the stack with stdin (nil for none) and
// returns its combined output; an error carries the output too.
func (s *Stack) Kubectl(ctx context.Context, stdin []byte, args ...string) (string, error) {
	return s.kubectl.run(ctx, stdin, args...)
}

// Client is an uncached client of the API server, as a cluster admin, that
// knows McpServers.
func (s *Stack) Client() client.Client { return s.client }

// Clerk says where the emulated Clerk instance answers.
func (s *Stack) Clerk() ClerkInstance { return s.clerk.instance }

// ClerkServer is the in-process emulator, for its call counters, settings
// and faults; nil when it runs as a subprocess.
func (s *Stack) ClerkServer() *clerktest.Server { return s.clerk.server }

// Broker says where the broker answers; false with Options.NoBroker.
func (s *Stack) Broker() (Broker, bool) {
	if s.broker == nil {
		return Broker{}, false
	}
	return s.broker.info(), true
}

// ManagerMetricsURL is the Prometheus endpoint of `mcpgate manager`.
func (s *Stack) ManagerMetricsURL() string { return s.manager.MetricsURL }

// Namespace holds the sample upstream, its Service and the Clerk Secret.
func (s *Stack) Namespace() string { return s.opts.Namespace }

// SampleService names the upstream Service McpServers should use.
func (s *Stack) SampleService() (name string, port int32) {
	return s.opts.Sample.ServiceName, s.opts.Sample.ServicePort
}

// SampleURL is the sample MCP server's own loopback URL, without a gateway.
func (s *Stack) SampleURL() string { return s.sample.url }

// WorkDir holds the kubeconfig, the logs and the samples overlay.
func (s *Stack) WorkDir() string { return s.workDir }

// LogDir holds a log file per process: manager.log, broker.log,
// clerk-emulator.log, sample-mcp-server.log, kubelet.log and
// gateway-<namespace>-<name>.log.
func (s *Stack) LogDir() string { return s.logDir }

// Gateway describes the gateway of McpServer namespace/name, if the kubelet
// emulation has seen its Deployment.
func (s *Stack) Gateway(namespace, name string) (Gateway, bool) {
	return s.kubelet.gateway(namespace, name)
}

// Gateways lists every gateway the kubelet emulation runs.
func (s *Stack) Gateways() []Gateway { return s.kubelet.gateways() }

// WaitGateway waits until the gateway of McpServer namespace/name is ready
// and was started from the pod template with configHash (the
// mcpgate.dev/config-hash annotation; "" accepts any), or ctx ends.
func (s *Stack) WaitGateway(ctx context.Context, namespace, name, configHash string) (Gateway, error) {
	return s.kubelet.waitGateway(ctx, namespace, name, configHash)
}

// ConfigHash reads the config hash on the pod template of McpServer
// namespace/name's gateway Deployment from the API server; "" when there is
// no Deployment yet.
func (s *Stack) ConfigHash(ctx context.Context, namespace, name string) (string, error) {
	var list appsv1.DeploymentList
	if err := s.client.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabels{config.LabelMcpServer: name}); err != nil {
		return "", fmt.Errorf("list gateway deployments of %s/%s: %w", namespace, name, err)
	}
	if len(list.Items) == 0 {
		return "", nil
	}
	return list.Items[0].Spec.Template.Annotations[config.ConfigHashAnnotation], nil
}

// round shortens a duration for progress lines.
func round(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/internal/localstack"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

// operatorOptions size the operator scale run.
type operatorOptions struct {
	McpServers     int // total, e.g. 1000
	Namespaces     int // spread evenly, e.g. 20
	ClerkInstances int // distinct issuers, e.g. 2, assigned round-robin
	// ClusterInstances makes the McpServers reference one ClusterClerkInstance
	// per issuer instead of declaring the instance inline, so the run also
	// times the copy of its secret key into each McpServer's namespace.
	ClusterInstances bool
	// MixedReferences makes half the McpServers reference a
	// ClusterClerkInstance and half declare inline, on separate Clerk
	// instances, and reports each half's settle times: a comparison of the
	// two in one run, where both share the API server's load and moment.
	MixedReferences bool
	Timeout         time.Duration // for each phase; exceeded = error
	Log             io.Writer     // progress lines (one per phase, plus periodic "converged N/M")
}

// operatorResult is what the run measured (JSON tags are fixed: results.json uses them).
type operatorResult struct {
	McpServers          int     `json:"mcpservers"`
	Namespaces          int     `json:"namespaces"`
	ClerkInstances      int     `json:"clerk_instances"`
	ClerkReferences     string  `json:"clerk_references,omitempty"` // "inline", "ClusterClerkInstance" or "mixed"
	CreateSettleSeconds float64 `json:"create_settle_s"`            // first create → every McpServer has Deployment, Service, Ingress and status.observedGeneration == generation
	UpdateSettleSeconds float64 `json:"update_settle_s"`            // spec change on all → all observedGeneration == new generation and the gateway ConfigMap reflects the change
	ManagerPeakRSSMiB   float64 `json:"manager_peak_rss_mib"`
	ManagerCPUSeconds   float64 `json:"manager_cpu_s"`     // whole run
	BackendAPICalls     int     `json:"backend_api_calls"` // every call the manager made to the Clerk Backend API (emulator) during the run
	// With MixedReferences, each half's settle times, by how it references
	// its Clerk instance ("inline", "ClusterClerkInstance").
	CreateSettleByReferences map[string]float64 `json:"create_settle_s_by_references,omitempty"`
	UpdateSettleByReferences map[string]float64 `json:"update_settle_s_by_references,omitempty"`
}

const (
	// operatorWorkers bounds the driver's concurrent writes: enough that the
	// client is not what the run measures, few enough not to starve the
	// API server, which shares the machine with the manager.
	operatorWorkers = 16
	// operatorQPS and operatorBurst lift client-go's default limit (5/10),
	// which would make creating 1000 objects take minutes by itself.
	operatorQPS, operatorBurst = 500, 1000

	convergePollEvery     = 500 * time.Millisecond
	convergeProgressEvery = 2 * time.Second
	procSampleEvery       = 200 * time.Millisecond
	managerStopGrace      = 30 * time.Second

	// The manager's flags; the image is never pulled (envtest has no kubelet).
	benchGatewayImage = "registry.example/mcpgate:bench"
	// managerStartedLine is what controller-runtime logs once the McpServer
	// controller's workers run: from then on a create is reconciled at once,
	// so the create phase does not time the manager's own start-up.
	managerStartedLine = "Starting workers"

	serviceIPRange  = "10.0.0.0/16"
	benchSecretName = "clerk"
	benchSecretKey  = "secret-key"
	benchUpstream   = "upstream"
	// benchOperatorNamespace holds the ClusterClerkInstances' Secret.
	benchOperatorNamespace = "mcpgate-system"

	// updatePatch is the phase 2 spec change. The gateway configuration lists
	// the scopes, so the ConfigMap shows when the change reached it.
	updatePatch = `{"spec":{"scopes":["profile","email"]}}`
	updateScope = "email"

	settingsPath = "/v1/instance/oauth_application_settings"

	// The controller puts this label on every object it owns
	// (controllers/mcpserver_builders.go).
)

// runOperatorScale starts a control plane (envtest), a Clerk emulator and
// `mcpgate manager` as a subprocess, then times how long the manager takes
// to settle opts.McpServers new McpServers (create phase) and a spec change
// to all of them (update phase), and what that costs it.
func runOperatorScale(ctx context.Context, opts operatorOptions) (operatorResult, error) {
	if err := opts.validate(); err != nil {
		return operatorResult{}, err
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	workDir, err := os.MkdirTemp("", "mcpgate-bench-operator-")
	if err != nil {
		return operatorResult{}, fmt.Errorf("create work directory: %w", err)
	}
	s := &scaleRun{opts: opts, workDir: workDir}
	res, err := s.run(ctx)
	s.close()
	if err != nil && s.mgr != nil {
		// The work directory holds the manager's log: keep it for a look.
		return operatorResult{}, s.withManagerLog(err)
	}
	_ = os.RemoveAll(workDir)
	if err != nil {
		return operatorResult{}, err
	}
	return res, nil
}

func (o operatorOptions) validate() error {
	switch {
	case o.McpServers < 1:
		return fmt.Errorf("operator: McpServers must be at least 1, not %d", o.McpServers)
	case o.Namespaces < 1:
		return fmt.Errorf("operator: Namespaces must be at least 1, not %d", o.Namespaces)
	case o.ClerkInstances < 1:
		return fmt.Errorf("operator: ClerkInstances must be at least 1, not %d", o.ClerkInstances)
	case o.MixedReferences && o.ClusterInstances:
		return errors.New("operator: MixedReferences and ClusterInstances exclude each other")
	case o.MixedReferences && o.ClerkInstances%2 != 0:
		return fmt.Errorf("operator: MixedReferences needs an even number of ClerkInstances, not %d", o.ClerkInstances)
	case o.Timeout <= 0:
		return fmt.Errorf("operator: Timeout must be positive, not %s", o.Timeout)
	}
	return nil
}

// scaleRun is the state of one runOperatorScale; close releases it all.
type scaleRun struct {
	opts    operatorOptions
	workDir string

	cluster *testenv.Cluster
	emu     *clerktest.Server
	backend *backendCounter
	c       client.Client
	mgr     *localstack.Manager
	sampler *procSampler

	servers []*mcpv1.McpServer // as created; phase 2 patches them
}

func (s *scaleRun) logf(format string, args ...any) {
	fmt.Fprintf(s.opts.Log, "  "+format+"\n", args...)
}

func (s *scaleRun) run(ctx context.Context) (operatorResult, error) {
	res := operatorResult{McpServers: s.opts.McpServers, Namespaces: s.opts.Namespaces, ClerkInstances: s.opts.ClerkInstances, ClerkReferences: "inline"}
	switch {
	case s.opts.ClusterInstances:
		res.ClerkReferences = mcpv1.KindClusterClerkInstance
	case s.opts.MixedReferences:
		res.ClerkReferences = "mixed"
	}
	if err := s.start(ctx); err != nil {
		return res, err
	}
	if err := s.createNamespaces(ctx); err != nil {
		return res, err
	}
	if err := s.createOperatorNamespace(ctx); err != nil {
		return res, err
	}
	s.servers = benchMcpServers(s.opts, s.emu.FrontendAPIURL())
	if err := s.warmUp(ctx); err != nil {
		return res, err
	}

	created, err := s.phase(ctx, "create", s.createMcpServers, s.createdProgress)
	if err != nil {
		return res, err
	}
	updated, err := s.phase(ctx, "update", s.updateMcpServers, s.updatedProgress)
	if err != nil {
		return res, err
	}
	res.CreateSettleSeconds, res.UpdateSettleSeconds = created.all.Seconds(), updated.all.Seconds()
	if s.opts.MixedReferences {
		res.CreateSettleByReferences, res.UpdateSettleByReferences = seconds(created.byGroup), seconds(updated.byGroup)
	}

	// The sampler is stopped before the manager, so its last sample is the
	// manager's CPU time for the whole run.
	peakRSS, cpu, err := s.sampler.stop()
	s.sampler = nil
	if err != nil {
		return res, err
	}
	res.ManagerPeakRSSMiB, res.ManagerCPUSeconds = mib(peakRSS), cpu.Seconds()
	res.BackendAPICalls = int(s.backend.calls.Load())
	return res, nil
}

// start brings up everything the phases need, in dependency order.
func (s *scaleRun) start(ctx context.Context) error {
	root, err := testenv.ModuleRoot("")
	if err != nil {
		return err
	}
	bins, assets, err := localstack.Prepare(ctx, localstack.Options{RepoRoot: root, Progress: func(l string) { s.logf("%s", l) }})
	if err != nil {
		return err
	}

	t0 := time.Now()
	cfg, kubeconfig, err := s.startControlPlane(root, assets)
	if err != nil {
		return err
	}
	if s.c, err = newScaleClient(cfg); err != nil {
		return err
	}
	s.logf("control plane ready in %.1fs", time.Since(t0).Seconds())

	s.backend = &backendCounter{}
	s.emu = clerktest.NewServer(
		// Each issuer stands for a Clerk instance whose dynamic client
		// registration is still off, so that each needs one PATCH.
		clerktest.WithDynamicClientRegistration(false),
		clerktest.WithObserver(s.backend.observe),
	)
	s.backend.emu.Store(s.emu)

	t0 = time.Now()
	startCtx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	s.mgr, err = localstack.StartManager(startCtx, localstack.ManagerOptions{
		Binary: bins.Mcpgate, Kubeconfig: kubeconfig, ClerkAPIURL: s.emu.BackendAPIURL(),
		GatewayImage: benchGatewayImage, LogPath: filepath.Join(s.workDir, "manager.log"),
		// As the chart runs it: with the Clerk key broker, which
		// ClusterClerkInstances need. The broker itself is not started;
		// the operator never calls it.
		ClusterResourceNamespace: benchOperatorNamespace,
		BrokerURL:                "https://mcpgate-broker." + benchOperatorNamespace + ".svc:8443",
		BrokerTLSSecret:          localstack.BrokerTLSSecret,
	})
	if err != nil {
		return err
	}
	s.sampler = startProcSampler(s.mgr.PID(), procSampleEvery)
	if err := waitStarted(startCtx, s.mgr); err != nil {
		return err
	}
	s.logf("manager (pid %d) started in %.1fs", s.mgr.PID(), time.Since(t0).Seconds())
	return nil
}

// startControlPlane starts etcd and kube-apiserver with the CRDs installed
// and writes a cluster admin's kubeconfig for the manager. It returns the
// driver's own rest.Config and the kubeconfig's path.
func (s *scaleRun) startControlPlane(root, assets string) (*rest.Config, string, error) {
	c, err := testenv.NewCluster(testenv.Options{
		Root: root, AssetsDir: assets, CRDs: true, User: "bench-manager",
		Kubeconfig: filepath.Join(s.workDir, "kubeconfig"),
		// envtest's default Service range, a /24, runs out of ClusterIPs
		// after 254 gateway Services; a /16 holds 65534.
		Configure: func(env *envtest.Environment) {
			env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", serviceIPRange)
		},
	})
	if err != nil {
		return nil, "", err
	}
	s.cluster = c
	return c.Config, c.Kubeconfig, nil
}

// close stops whatever start started, newest first. Errors are not
// reported: the measurements are taken by then, and each step is best effort.
func (s *scaleRun) close() {
	if s.sampler != nil {
		_, _, _ = s.sampler.stop()
	}
	if s.mgr != nil {
		if err := s.mgr.Stop(managerStopGrace); err != nil {
			s.logf("stop manager: %v", err)
		}
	}
	if s.emu != nil {
		s.emu.Close()
	}
	if s.cluster != nil {
		if err := s.cluster.Stop(); err != nil {
			s.logf("%v", err)
		}
	}
}

// withManagerLog adds the end of the manager's log to err, where the cause
// of a stuck phase usually shows.
func (s *scaleRun) withManagerLog(err error) error {
	if s.mgr == nil {
		return err
	}
	return fmt.Errorf("%w\nmanager log %s ends:\n%s", err, s.mgr.LogPath, logTail(s.mgr, 40))
}

// newScaleClient is the driver's client, with a rate limit high enough that
// the driver is never what holds the run up.
func newScaleClient(cfg *rest.Config) (client.Client, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = operatorQPS, operatorBurst
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(mcpv1.AddToScheme(scheme))
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("create client: %w", err)
	}
	return c, nil
}

// warmUp makes the calls of the phases once before any is timed: the
// client discovers each API group on first use, which took seconds of the
// first create.
func (s *scaleRun) warmUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	if _, err := s.createdProgress(ctx); err != nil {
		return fmt.Errorf("warm up: %w", err)
	}
	if _, err := s.configuredGateways(ctx); err != nil {
		return fmt.Errorf("warm up: %w", err)
	}
	return nil
}

// seconds is byGroup in seconds.
func seconds(byGroup map[string]time.Duration) map[string]float64 {
	out := make(map[string]float64, len(byGroup))
	for g, d := range byGroup {
		out[g] = d.Seconds()
	}
	return out
}

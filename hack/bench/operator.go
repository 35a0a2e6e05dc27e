package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway/config"
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
	Timeout          time.Duration // for each phase; exceeded = error
	Log              io.Writer     // progress lines (one per phase, plus periodic "converged N/M")
}

// operatorResult is what the run measured (JSON tags are fixed: results.json uses them).
type operatorResult struct {
	McpServers          int     `json:"mcpservers"`
	Namespaces          int     `json:"namespaces"`
	ClerkInstances      int     `json:"clerk_instances"`
	ClerkReferences     string  `json:"clerk_references,omitempty"` // "inline" or "ClusterClerkInstance"
	CreateSettleSeconds float64 `json:"create_settle_s"`            // first create → every McpServer has Deployment, Service, Ingress and status.observedGeneration == generation
	UpdateSettleSeconds float64 `json:"update_settle_s"`            // spec change on all → all observedGeneration == new generation and the gateway ConfigMap reflects the change
	ManagerPeakRSSMiB   float64 `json:"manager_peak_rss_mib"`
	ManagerCPUSeconds   float64 `json:"manager_cpu_s"`     // whole run
	BackendAPICalls     int     `json:"backend_api_calls"` // every call the manager made to the Clerk Backend API (emulator) during the run
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
	mgr     *managerProcess
	sampler *procSampler

	servers []*mcpv1.McpServer // as created; phase 2 patches them
}

func (s *scaleRun) logf(format string, args ...any) {
	fmt.Fprintf(s.opts.Log, "  "+format+"\n", args...)
}

func (s *scaleRun) run(ctx context.Context) (operatorResult, error) {
	res := operatorResult{McpServers: s.opts.McpServers, Namespaces: s.opts.Namespaces, ClerkInstances: s.opts.ClerkInstances, ClerkReferences: "inline"}
	if s.opts.ClusterInstances {
		res.ClerkReferences = mcpv1.KindClusterClerkInstance
	}
	if err := s.start(ctx); err != nil {
		return res, err
	}
	if err := s.createNamespaces(ctx); err != nil {
		return res, err
	}
	if err := s.createClusterInstances(ctx); err != nil {
		return res, err
	}
	s.servers = benchMcpServers(s.opts, s.emu.FrontendAPIURL())
	if err := s.warmUp(ctx); err != nil {
		return res, err
	}

	d, err := s.phase(ctx, "create", s.createMcpServers, s.createdProgress)
	if err != nil {
		return res, err
	}
	res.CreateSettleSeconds = d.Seconds()
	d, err = s.phase(ctx, "update", s.updateMcpServers, s.updatedProgress)
	if err != nil {
		return res, err
	}
	res.UpdateSettleSeconds = d.Seconds()

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
	assets, err := localstack.EnvtestAssets(ctx, localstack.Options{RepoRoot: root, Progress: func(l string) { s.logf("%s", l) }})
	if err != nil {
		return fmt.Errorf("find envtest binaries: %w", err)
	}
	bins, err := localstack.Build(ctx, localstack.BuildOptions{RepoRoot: root})
	if err != nil {
		return fmt.Errorf("build mcpgate: %w", err)
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
	if s.mgr, err = startManagerProcess(bins.Mcpgate, kubeconfig, s.emu.BackendAPIURL(), filepath.Join(s.workDir, "manager.log")); err != nil {
		return err
	}
	s.sampler = startProcSampler(s.mgr.pid(), procSampleEvery)
	startCtx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	if err := s.mgr.waitStarted(startCtx); err != nil {
		return err
	}
	s.logf("manager (pid %d) started in %.1fs", s.mgr.pid(), time.Since(t0).Seconds())
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
		if err := s.mgr.stop(managerStopGrace); err != nil {
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
	return fmt.Errorf("%w\nmanager log %s ends:\n%s", err, s.mgr.logPath, s.mgr.logTail(40))
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

// backendCounter counts the Backend API requests the emulator answers.
type backendCounter struct {
	calls atomic.Int64
	// emu is set right after the emulator starts; it is atomic because the
	// observer runs on the emulator's goroutines.
	emu atomic.Pointer[clerktest.Server]
}

// observe counts an exchange and undoes a settings PATCH. The one emulator
// serves every issuer, while the controller keeps one view per issuer: left
// alone, the first instance's PATCH would show the others as already
// configured, and how many PATCHes the run makes would depend on timing.
// Restoring the setting keeps every issuer a Clerk instance of its own that
// starts with dynamic client registration off.
func (b *backendCounter) observe(ex clerktest.Exchange) {
	b.calls.Add(1)
	if ex.Request.Method != http.MethodPatch || ex.Request.URL.Path != settingsPath || ex.Status != http.StatusOK {
		return
	}
	if emu := b.emu.Load(); emu != nil {
		st := emu.Settings()
		st.DynamicOAuthClientRegistration = false
		emu.SetSettings(st)
	}
}

// benchNamespace names namespace n (0-based).
func benchNamespace(n int) string { return fmt.Sprintf("bench-%02d", n+1) }

// benchIssuer is the issuer of Clerk instance n: a path under the one
// emulator's Frontend API URL, distinct per instance (the controller keys
// instances by issuer), as controllers/mcpserver_clerk_test.go does.
func benchIssuer(frontendURL string, n int) string {
	return fmt.Sprintf("%s/%d-bench", frontendURL, n+1)
}

// benchMcpServers are the McpServers of the run: round-robin over the
// namespaces and, independently, over the Clerk instances.
func benchMcpServers(opts operatorOptions, frontendURL string) []*mcpv1.McpServer {
	clerk := func(i int) mcpv1.ClerkSpec {
		if opts.ClusterInstances {
			return mcpv1.ClerkSpec{InstanceRef: &mcpv1.ClerkInstanceReference{
				Kind: mcpv1.KindClusterClerkInstance, Name: benchClusterInstance(i % opts.ClerkInstances)}}
		}
		return mcpv1.ClerkSpec{
			Issuer:        mcpv1.IssuerURL(benchIssuer(frontendURL, i%opts.ClerkInstances)),
			SecretKeyRef:  mcpv1.SecretKeyReference{Name: benchSecretName, Key: benchSecretKey},
			ClerkSettings: mcpv1.ClerkSettings{DynamicClientRegistration: ptr.To(true)},
		}
	}
	out := make([]*mcpv1.McpServer, opts.McpServers)
	for i := range out {
		ns := benchNamespace(i % opts.Namespaces)
		name := fmt.Sprintf("mcp-%04d", i+1)
		out[i] = &mcpv1.McpServer{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: mcpv1.McpServerSpec{
				Upstream: mcpv1.Upstream{Service: &mcpv1.UpstreamService{Name: benchUpstream, Port: intstr.FromInt32(8080)}},
				Clerk:    clerk(i),
				Ingress:  &mcpv1.IngressSpec{Host: fmt.Sprintf("%s.%s.bench.example", name, ns)},
			},
		}
	}
	return out
}

// benchClusterInstance names the ClusterClerkInstance of Clerk instance n.
func benchClusterInstance(n int) string { return fmt.Sprintf("bench-%d", n+1) }

// createClusterInstances creates, with opts.ClusterInstances, the operator's
// namespace, the Secret there and one ClusterClerkInstance per issuer,
// declaring what the inline McpServers would. It is set-up, not timed.
func (s *scaleRun) createClusterInstances(ctx context.Context) error {
	if !s.opts.ClusterInstances {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	if err := s.createNamespaceWithSecret(ctx, benchOperatorNamespace); err != nil {
		return err
	}
	for n := range s.opts.ClerkInstances {
		inst := &mcpv1.ClusterClerkInstance{
			ObjectMeta: metav1.ObjectMeta{Name: benchClusterInstance(n)},
			Spec: mcpv1.ClerkInstanceSpec{
				Issuer:        mcpv1.IssuerURL(benchIssuer(s.emu.FrontendAPIURL(), n)),
				SecretKeyRef:  mcpv1.SecretKeyReference{Name: benchSecretName, Key: benchSecretKey},
				ClerkSettings: mcpv1.ClerkSettings{DynamicClientRegistration: ptr.To(true)},
			},
		}
		if err := s.c.Create(ctx, inst); err != nil {
			return fmt.Errorf("create clusterclerkinstance %s: %w", inst.Name, err)
		}
	}
	return nil
}

// createNamespaces creates the namespaces and, in each, the Secret with
// the Clerk secret key. It is set-up, not timed.
func (s *scaleRun) createNamespaces(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	return forEach(ctx, s.opts.Namespaces, operatorWorkers, func(ctx context.Context, n int) error {
		return s.createNamespaceWithSecret(ctx, benchNamespace(n))
	})
}

// createNamespaceWithSecret creates namespace ns and, in it, the Secret with
// the Clerk secret key.
func (s *scaleRun) createNamespaceWithSecret(ctx context.Context, ns string) error {
	if err := s.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: benchSecretName},
		Data:       map[string][]byte{benchSecretKey: []byte(s.emu.SecretKey())},
	}
	if err := s.c.Create(ctx, secret); err != nil {
		return fmt.Errorf("create secret %s/%s: %w", ns, benchSecretName, err)
	}
	return nil
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

// phase times one change: act makes it, progress counts the McpServers
// that have settled since. The clock starts before act and stops at the
// first poll that finds all settled, so it is accurate to a poll interval.
func (s *scaleRun) phase(ctx context.Context, name string, act func(context.Context) error, progress func(context.Context) (int, error)) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	start := time.Now()
	if err := act(ctx); err != nil {
		return 0, fmt.Errorf("%s phase: %w", name, err)
	}
	s.logf("%s: %d McpServers written in %.1fs", name, len(s.servers), time.Since(start).Seconds())
	if err := s.waitConverged(ctx, progress); err != nil {
		return 0, fmt.Errorf("%s phase: %w", name, err)
	}
	d := time.Since(start)
	s.logf("%s: settled in %.1fs", name, d.Seconds())
	return d, nil
}

// createMcpServers creates the first McpServer alone, so that a spec the
// CRD rejects fails with the API server's message instead of a thousand
// times over, then the rest in parallel.
func (s *scaleRun) createMcpServers(ctx context.Context) error {
	create := func(ctx context.Context, i int) error {
		m := s.servers[i]
		if err := s.c.Create(ctx, m); err != nil {
			return fmt.Errorf("create mcpserver %s/%s: %w", m.Namespace, m.Name, err)
		}
		return nil
	}
	if err := create(ctx, 0); err != nil {
		return err
	}
	return forEach(ctx, len(s.servers)-1, operatorWorkers, func(ctx context.Context, i int) error {
		return create(ctx, i+1)
	})
}

// updateMcpServers applies updatePatch to every McpServer; each object is
// left holding the generation the change gave it.
func (s *scaleRun) updateMcpServers(ctx context.Context) error {
	patch := client.RawPatch(types.MergePatchType, []byte(updatePatch))
	return forEach(ctx, len(s.servers), operatorWorkers, func(ctx context.Context, i int) error {
		m := s.servers[i]
		if err := s.c.Patch(ctx, m, patch); err != nil {
			return fmt.Errorf("patch mcpserver %s/%s: %w", m.Namespace, m.Name, err)
		}
		return nil
	})
}

// forEach calls fn for 0..n-1 on at most workers goroutines and returns
// the first error, after which the remaining calls are skipped.
func forEach(ctx context.Context, n, workers int, fn func(context.Context, int) error) error {
	// NOTE: Wait cancels gctx, so the final check is on ctx.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for i := range n {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return fn(gctx, i) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// waitConverged polls progress until every McpServer has settled, logging
// "converged N/M" now and then. It fails when ctx ends or the manager exits.
func (s *scaleRun) waitConverged(ctx context.Context, progress func(context.Context) (int, error)) error {
	total := len(s.servers)
	tick := time.NewTicker(convergePollEvery)
	defer tick.Stop()
	lastLog, done := time.Now(), 0
	for {
		n, err := progress(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			return err
		case err == nil:
			done = n
		}
		if done >= total {
			s.logf("converged %d/%d", done, total)
			return nil
		}
		if time.Since(lastLog) >= convergeProgressEvery {
			s.logf("converged %d/%d", done, total)
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("converged %d/%d within %s: %w", done, total, s.opts.Timeout, context.Cause(ctx))
		case <-s.mgr.exited():
			return fmt.Errorf("manager exited with %d/%d converged: %w", done, total, s.mgr.exitErr())
		case <-tick.C:
		}
	}
}

// createdProgress counts the McpServers whose current generation the
// manager has observed and whose Deployment, Service and Ingress (and, with
// ClusterClerkInstances, the copy of the secret key) exist.
func (s *scaleRun) createdProgress(ctx context.Context) (int, error) {
	observed, err := s.observedGenerations(ctx)
	if err != nil {
		return 0, err
	}
	var owned []map[string]bool
	for _, gvk := range []schema.GroupVersionKind{
		appsv1.SchemeGroupVersion.WithKind("DeploymentList"),
		corev1.SchemeGroupVersion.WithKind("ServiceList"),
		networkingv1.SchemeGroupVersion.WithKind("IngressList"),
	} {
		names, err := s.gatewayObjects(ctx, gvk)
		if err != nil {
			return 0, err
		}
		owned = append(owned, names)
	}
	copies := map[string]bool{}
	if s.opts.ClusterInstances {
		if copies, err = s.gatewayObjects(ctx, corev1.SchemeGroupVersion.WithKind("SecretList")); err != nil {
			return 0, err
		}
	}
	n := 0
	for _, m := range s.servers {
		key := gatewayKey(m)
		copied := !s.opts.ClusterInstances || copies[key+"-clerk"]
		if gen := observed[objectKey(m)]; gen != 0 && gen >= m.Generation && owned[0][key] && owned[1][key] && owned[2][key] && copied {
			n++
		}
	}
	return n, nil
}

// updatedProgress counts the McpServers whose patched generation the
// manager has observed and whose gateway configuration has the new scope.
func (s *scaleRun) updatedProgress(ctx context.Context) (int, error) {
	observed, err := s.observedGenerations(ctx)
	if err != nil {
		return 0, err
	}
	configured, err := s.configuredGateways(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range s.servers {
		if observed[objectKey(m)] >= m.Generation && configured[gatewayKey(m)] {
			n++
		}
	}
	return n, nil
}

// observedGenerations maps namespace/name to the generation the manager
// has observed, for McpServers whose status is up to date with their spec
// (0 otherwise: a later spec change is still being worked on).
func (s *scaleRun) observedGenerations(ctx context.Context) (map[string]int64, error) {
	var list mcpv1.McpServerList
	if err := s.c.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("list mcpservers: %w", err)
	}
	out := make(map[string]int64, len(list.Items))
	for i := range list.Items {
		m := &list.Items[i]
		if m.Status.ObservedGeneration == m.Generation {
			out[objectKey(m)] = m.Generation
		}
	}
	return out, nil
}

// gatewayObjects lists the names of the objects of one kind that mcpgate
// manages. Metadata suffices, which spares the API server encoding 1000
// full Deployments twice a second while the manager competes for it.
func (s *scaleRun) gatewayObjects(ctx context.Context, listGVK schema.GroupVersionKind) (map[string]bool, error) {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(listGVK)
	if err := s.c.List(ctx, list, client.MatchingLabels{config.LabelManagedBy: config.ManagedByValue}); err != nil {
		return nil, fmt.Errorf("list %s: %w", strings.TrimSuffix(listGVK.Kind, "List"), err)
	}
	out := make(map[string]bool, len(list.Items))
	for i := range list.Items {
		out[objectKey(&list.Items[i])] = true
	}
	return out, nil
}

// configuredGateways lists the gateway ConfigMaps whose configuration has
// updateScope among its scopes.
func (s *scaleRun) configuredGateways(ctx context.Context) (map[string]bool, error) {
	var list corev1.ConfigMapList
	if err := s.c.List(ctx, &list, client.MatchingLabels{config.LabelManagedBy: config.ManagedByValue}); err != nil {
		return nil, fmt.Errorf("list configmaps: %w", err)
	}
	out := make(map[string]bool, len(list.Items))
	for i := range list.Items {
		cm := &list.Items[i]
		var cfg config.Config
		if err := json.Unmarshal([]byte(cm.Data[config.FileName]), &cfg); err != nil {
			continue // not (yet) a gateway configuration: not converged
		}
		out[objectKey(cm)] = slices.Contains(cfg.Scopes, updateScope)
	}
	return out, nil
}

func objectKey(o metav1.Object) string { return o.GetNamespace() + "/" + o.GetName() }

// gatewayKey is the namespace/name of the objects the manager makes for m.
func gatewayKey(m *mcpv1.McpServer) string { return m.Namespace + "/" + config.GatewayName(m.Name) }

// managerProcess is `mcpgate manager` running as a child, so that its CPU
// time and memory are its own and readable in /proc.
type managerProcess struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process has been reaped
	err     error         // how it exited; read only after done is closed
}

func startManagerProcess(bin, kubeconfig, clerkAPIURL, logPath string) (*managerProcess, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create manager log: %w", err)
	}
	cmd := exec.Command(bin, "manager",
		"--metrics-bind-address=0",
		"--health-probe-bind-address=127.0.0.1:0",
		"--gateway-image="+benchGatewayImage,
		"--cluster-resource-namespace="+benchOperatorNamespace,
		"--clerk-api-url="+clerkAPIURL)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start manager: %w", err)
	}
	m := &managerProcess{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		m.err = cmd.Wait()
		_ = logFile.Close()
		close(m.done)
	}()
	return m, nil
}

func (m *managerProcess) pid() int { return m.cmd.Process.Pid }

func (m *managerProcess) exited() <-chan struct{} { return m.done }

// exitErr is how the manager exited; valid once exited is closed.
func (m *managerProcess) exitErr() error { return m.err }

// waitStarted waits until the manager's log says its workers run.
func (m *managerProcess) waitStarted(ctx context.Context) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if log, err := os.ReadFile(m.logPath); err == nil && bytes.Contains(log, []byte(managerStartedLine)) {
			return nil
		}
		select {
		case <-m.done:
			return fmt.Errorf("manager exited before it started its workers: %w", m.err)
		case <-ctx.Done():
			return fmt.Errorf("manager did not start its workers: %w", context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM, as the kubelet would, and kills the manager if it has
// not exited within grace.
func (m *managerProcess) stop(grace time.Duration) error {
	select {
	case <-m.done:
		return nil
	default:
	}
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal manager: %w", err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-m.done:
		return nil
	case <-timer.C:
		_ = m.cmd.Process.Kill()
		<-m.done
		return fmt.Errorf("manager did not exit within %s of SIGTERM and was killed", grace)
	}
}

// logTail is the last n lines of the manager's log.
func (m *managerProcess) logTail(n int) string {
	f, err := os.Open(m.logPath)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	defer func() { _ = f.Close() }()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// procSampler samples a process from /proc until stopped, keeping the
// largest resident set seen and the latest sample.
type procSampler struct {
	pid      int
	quit     chan struct{}
	finished chan struct{}
	once     sync.Once

	// Written by the sampling goroutine; read after finished is closed.
	maxRSS int64
	last   procSample
	ok     bool
	err    error
}

func startProcSampler(pid int, every time.Duration) *procSampler {
	p := &procSampler{pid: pid, quit: make(chan struct{}), finished: make(chan struct{})}
	go p.loop(every)
	return p
}

func (p *procSampler) loop(every time.Duration) {
	defer close(p.finished)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		p.sample()
		select {
		case <-p.quit:
			p.sample() // the CPU time up to the very end
			return
		case <-tick.C:
		}
	}
}

func (p *procSampler) sample() {
	s, err := readProc(p.pid)
	if err != nil {
		p.err = err
		return
	}
	p.last, p.ok, p.err = s, true, nil
	p.maxRSS = max(p.maxRSS, s.RSS, s.PeakRSS)
}

// stop ends the sampling and returns the peak resident set (the kernel's
// high-water mark, or a higher sample) and the CPU time of the last sample.
func (p *procSampler) stop() (peakRSS int64, cpu time.Duration, err error) {
	p.once.Do(func() { close(p.quit) })
	<-p.finished
	if !p.ok {
		return 0, 0, fmt.Errorf("sample manager: %w", p.err)
	}
	if p.err != nil {
		// The manager went away before the end; its figures are incomplete.
		return 0, 0, fmt.Errorf("sample manager at the end: %w", p.err)
	}
	return p.maxRSS, p.last.CPU, nil
}

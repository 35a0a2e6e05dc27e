package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.39.0"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/clerk"
	"github.com/mcpgate/mcpgate/controllers"
	"github.com/mcpgate/mcpgate/internal/cmdutil"
	"github.com/mcpgate/mcpgate/internal/tracing"
	"github.com/mcpgate/mcpgate/internal/version"
)

// defaultClerkAPIURL is Clerk's Backend API.
const defaultClerkAPIURL = "https://api.clerk.com/v1"

type managerFlags struct {
	metricsAddr             string
	probeAddr               string
	leaderElect             bool
	leaderElectionNamespace string
	gatewayImage            string
	gatewayPullPolicy       string
	gatewayPullSecrets      []string
	watchNamespaces         []string
	clusterResourceNS       string
	clerkAPIURL             string
	concurrency             int
	clerkResync             time.Duration
	brokerURL               string
	brokerTLSSecret         string
	// The gateways' default tracing, and the manager's own.
	gatewayTracingEndpoint string
	gatewayTracingRatio    float64
	tracingEndpoint        string
	tracingRatio           float64
	zap                    zap.Options
}

func parseManagerFlags(args []string, stderr io.Writer) (managerFlags, error) {
	f := managerFlags{}
	fs := flag.NewFlagSet("mcpgate manager", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.metricsAddr, "metrics-bind-address", ":8080", "Address of the Prometheus metrics endpoint; \"0\" disables it.")
	fs.StringVar(&f.probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz probes.")
	fs.BoolVar(&f.leaderElect, "leader-elect", false, "Elect a leader, so that only one replica reconciles at a time.")
	fs.StringVar(&f.leaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader election Lease; empty: the namespace the manager runs in.")
	fs.StringVar(&f.gatewayImage, "gateway-image", envOr("MCPGATE_GATEWAY_IMAGE", defaultGatewayImage()), "Image of the gateway pods (env MCPGATE_GATEWAY_IMAGE).")
	fs.StringVar(&f.gatewayPullPolicy, "gateway-image-pull-policy", "", "Pull policy of the gateway image: Always, IfNotPresent or Never; empty: Kubernetes' default.")
	fs.Func("gateway-image-pull-secrets", "Comma-separated names of image pull Secrets for the gateway pods; each must exist in every McpServer's namespace.", func(v string) error {
		f.gatewayPullSecrets = splitList(v)
		return nil
	})
	fs.Func("watch-namespaces", "Comma-separated namespaces whose McpServers the manager reconciles; empty: all (env MCPGATE_WATCH_NAMESPACES).", func(v string) error {
		f.watchNamespaces = splitList(v)
		return nil
	})
	f.watchNamespaces = splitList(os.Getenv("MCPGATE_WATCH_NAMESPACES"))
	fs.StringVar(&f.clusterResourceNS, "cluster-resource-namespace", envOr("POD_NAMESPACE", inClusterNamespace()),
		"Namespace of the Secrets that ClusterClerkInstances name; default: the namespace the manager runs in (env POD_NAMESPACE).")
	fs.StringVar(&f.clerkAPIURL, "clerk-api-url", envOr("MCPGATE_CLERK_API_URL", defaultClerkAPIURL), "Clerk Backend API base URL handed to gateways (env MCPGATE_CLERK_API_URL).")
	fs.IntVar(&f.concurrency, "concurrency", 4, "Number of McpServers reconciled in parallel.")
	fs.DurationVar(&f.clerkResync, "clerk-resync-interval", 5*time.Minute, "How often each Clerk instance's OAuth settings are read again to catch changes made elsewhere.")
	fs.StringVar(&f.brokerURL, "broker-url", os.Getenv("MCPGATE_BROKER_URL"),
		"Base URL of the Clerk key broker (mcpgate broker), such as https://mcpgate-broker.mcpgate-system.svc:8443: gateways then hold no Clerk secret key and ask the broker, "+
			"and the operator keeps the broker's CA and serving certificate in --broker-tls-secret. Empty: every gateway mounts its Clerk secret key and ClusterClerkInstance keys are copied into team namespaces, "+
			"kept for setups without a broker (env MCPGATE_BROKER_URL).")
	fs.StringVar(&f.brokerTLSSecret, "broker-tls-secret", controllers.DefaultBrokerTLSSecret,
		"Name of the kubernetes.io/tls Secret, in --cluster-resource-namespace, where the operator keeps the broker's CA and serving certificate (with --broker-url).")
	f.zap = zap.Options{}
	fs.StringVar(&f.gatewayTracingEndpoint, "gateway-tracing-endpoint", "",
		"OTLP/HTTP base URL (such as http://otel-collector.observability:4318) the gateways of McpServers without spec.gateway.tracing send their spans to; empty: they trace nothing.")
	fs.Float64Var(&f.gatewayTracingRatio, "gateway-tracing-sampling-ratio", 1,
		"Share of new traces those gateways record, 0 to 1; a caller's sampled traceparent is always followed.")
	fs.StringVar(&f.tracingEndpoint, "tracing-endpoint", "",
		"OTLP/HTTP base URL the manager sends its own spans to (a span per reconcile, a child span per Clerk call); empty: none.")
	fs.Float64Var(&f.tracingRatio, "tracing-sampling-ratio", 1, "Share of reconciles the manager traces, 0 to 1.")
	f.zap.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if f.gatewayImage == "" {
		return f, errors.New("--gateway-image must not be empty")
	}
	switch corev1.PullPolicy(f.gatewayPullPolicy) {
	case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		return f, fmt.Errorf("--gateway-image-pull-policy %q is not one of Always, IfNotPresent, Never", f.gatewayPullPolicy)
	}
	for _, ns := range f.watchNamespaces {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return f, fmt.Errorf("--watch-namespaces: %q is not a namespace name: %s", ns, strings.Join(errs, "; "))
		}
	}
	if ns := f.clusterResourceNS; ns != "" {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return f, fmt.Errorf("--cluster-resource-namespace: %q is not a namespace name: %s", ns, strings.Join(errs, "; "))
		}
	}
	for _, name := range f.gatewayPullSecrets {
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			return f, fmt.Errorf("--gateway-image-pull-secrets: %q is not a Secret name: %s", name, strings.Join(errs, "; "))
		}
	}
	if u, err := url.Parse(f.clerkAPIURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return f, fmt.Errorf("--clerk-api-url %q is not an absolute http(s) URL", f.clerkAPIURL)
	}
	if f.concurrency < 1 {
		return f, errors.New("--concurrency must be at least 1")
	}
	if f.clerkResync < 10*time.Second {
		return f, errors.New("--clerk-resync-interval must be at least 10s")
	}
	if errs := validation.IsDNS1123Subdomain(f.brokerTLSSecret); len(errs) > 0 {
		return f, fmt.Errorf("--broker-tls-secret: %q is not a Secret name: %s", f.brokerTLSSecret, strings.Join(errs, "; "))
	}
	for _, t := range []struct {
		flag     string
		endpoint string
		ratio    float64
	}{{"gateway-tracing", f.gatewayTracingEndpoint, f.gatewayTracingRatio}, {"tracing", f.tracingEndpoint, f.tracingRatio}} {
		if t.endpoint != "" {
			if u, err := url.Parse(t.endpoint); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
				return f, fmt.Errorf("--%s-endpoint must be http(s)://host[:port][/path]", t.flag)
			}
		}
		if !(t.ratio >= 0 && t.ratio <= 1) {
			return f, fmt.Errorf("--%s-sampling-ratio %v must be from 0 to 1", t.flag, t.ratio)
		}
	}
	if f.brokerURL != "" {
		if u, err := url.Parse(f.brokerURL); err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return f, fmt.Errorf("--broker-url %q must be https://host[:port][/path]", f.brokerURL)
		}
		if f.clusterResourceNS == "" {
			return f, errors.New("--broker-url needs --cluster-resource-namespace (or POD_NAMESPACE): the broker's TLS Secret lives there")
		}
	}
	return f, nil
}

// defaultGatewayImage is the image of this very build, so that gateways run
// the same version as the operator that deploys them.
// Development builds, whose version is no released tag, default to :latest.
func defaultGatewayImage() string {
	tag := "latest"
	if releaseVersion.MatchString(version.Version) {
		tag = version.Version
	}
	return "ghcr.io/mcpgate/mcpgate:" + tag
}

// releaseVersion matches the versions of tagged releases, such as v0.3.1.
var releaseVersion = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+(-(alpha|beta|rc)\.[0-9]+)?$`)

// splitList splits a comma-separated flag value, dropping blanks.
func splitList(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// inClusterNamespace is the namespace of the pod's service account, "" outside a cluster.
func inClusterNamespace() string {
	ns, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(ns))
}

func envOr(key, fallback string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return fallback
}

func runManager(args []string, stderr io.Writer) int {
	f, err := parseManagerFlags(args, stderr)
	if err != nil {
		return cmdutil.UsageExitRepeat(stderr, "mcpgate manager", err)
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&f.zap)))
	log := ctrl.Log.WithName("setup")
	log.Info("Starting mcpgate manager", "version", version.Get().Version, "gatewayImage", f.gatewayImage,
		"clerkAPIURL", f.clerkAPIURL, "watchNamespaces", f.watchNamespaces, "clusterResourceNamespace", f.clusterResourceNS,
		"brokerURL", f.brokerURL)

	if err := startManager(f); err != nil {
		log.Error(err, "Manager exited")
		return 1
	}
	return 0
}

func startManager(f managerFlags) error {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(mcpv1.AddToScheme(scheme))

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: f.metricsAddr},
		HealthProbeBindAddress:  f.probeAddr,
		LeaderElection:          f.leaderElect,
		LeaderElectionID:        "mcpgate.mcpgate.dev",
		LeaderElectionNamespace: f.leaderElectionNamespace,
		// The manager exits right after losing the lease, so it can hand over quickly.
		LeaderElectionReleaseOnCancel: true,
		Cache:                         controllers.CacheOptions(f.clusterResourceNS, f.watchNamespaces...),
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	ctx := ctrl.SetupSignalHandler()
	tp, err := managerTracing(f)
	if err != nil {
		return err
	}
	defer func() {
		// The spans of the last reconciles, before the process exits.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tp.Shutdown(sctx)
	}()
	opts := controllers.Options{
		GatewayImage:             f.gatewayImage,
		GatewayImagePullPolicy:   corev1.PullPolicy(f.gatewayPullPolicy),
		GatewayImagePullSecrets:  f.gatewayPullSecrets,
		ClerkAPIURL:              f.clerkAPIURL,
		MaxConcurrentReconciles:  f.concurrency,
		ClerkResyncInterval:      f.clerkResync,
		ClusterResourceNamespace: f.clusterResourceNS,
		BrokerURL:                f.brokerURL,
		BrokerTLSSecret:          f.brokerTLSSecret,
		GatewayTracing:           controllers.TracingDefaults{Endpoint: f.gatewayTracingEndpoint, SamplingRatio: f.gatewayTracingRatio},
		Tracer:                   tp.Tracer(),
	}
	opts.ClerkHTTPClient = managerClerkClient(tp)
	recorder := mgr.GetEventRecorder("mcpgate")
	if err := controllers.AddIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return fmt.Errorf("add field indexes: %w", err)
	}
	// One sync of the Clerk instance settings, shared by the reconcilers of
	// every kind that declares them.
	clerkSync := controllers.NewClerkSettingsSync(mgr, recorder, clock.RealClock{}, opts)
	if err := (&controllers.McpServerReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  recorder,
		Clock:     clock.RealClock{},
		Options:   opts,
		ClerkSync: clerkSync,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up mcpserver controller: %w", err)
	}
	// One reconciler per instance kind: the two kinds share a schema and a
	// reconcile, and differ in scope and where their Secret lives.
	for _, kind := range []string{mcpv1.KindClerkInstance, mcpv1.KindClusterClerkInstance} {
		if err := (&controllers.ClerkInstanceReconciler{
			Client:    mgr.GetClient(),
			Recorder:  recorder,
			Clock:     clock.RealClock{},
			Options:   opts,
			Kind:      kind,
			ClerkSync: clerkSync,
		}).SetupWithManager(mgr); err != nil {
			return fmt.Errorf("set up %s controller: %w", strings.ToLower(kind), err)
		}
	}
	if opts.BrokerURL != "" {
		if err := (&controllers.BrokerTLSReconciler{
			Client:    mgr.GetClient(),
			APIReader: mgr.GetAPIReader(),
			Recorder:  recorder,
			Clock:     clock.RealClock{},
			Options:   opts,
		}).SetupWithManager(mgr); err != nil {
			return fmt.Errorf("set up broker tls controller: %w", err)
		}
	}
	// The conditions of McpServers and Clerk instance objects, read from
	// the cache at each scrape, beside controller-runtime's own metrics in
	// the registry its metrics server serves (one manager per process).
	if err := ctrlmetrics.Registry.Register(controllers.NewStateCollector(mgr.GetCache())); err != nil {
		return fmt.Errorf("register state metrics: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("add ready check: %w", err)
	}
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("run manager: %w", err)
	}
	return nil
}

// managerTracing is the manager's own tracer provider; nil without
// --tracing-endpoint. Export failures are logged, at most once a minute.
func managerTracing(f managerFlags) (*tracing.Provider, error) {
	if f.tracingEndpoint == "" {
		return nil, nil
	}
	log := ctrl.Log.WithName("tracing")
	tp, err := tracing.New(tracing.Config{
		Endpoint:      f.tracingEndpoint,
		SamplingRatio: f.tracingRatio,
		ServiceName:   "mcpgate-manager",
		Attributes:    []attribute.KeyValue{semconv.ServiceVersion(version.Get().Version)},
		OnError:       func(err error) { log.Error(err, "Could not export spans; dropping them") },
	})
	if err != nil {
		return nil, fmt.Errorf("set up tracing: %w", err)
	}
	return tp, nil
}

// managerClerkClient is the manager's Backend API client when it traces:
// each call a client span, the child of the reconcile that makes it (Clerk
// gets no traceparent). Nil without tracing, for the controllers' default.
func managerClerkClient(tp *tracing.Provider) *http.Client {
	if tp == nil {
		return nil
	}
	hc := *clerk.NewHTTPClient()
	hc.Transport = tracing.Transport(hc.Transport, tp.Tracer(), tracing.ClientOptions{Peer: "clerk"})
	return &hc
}

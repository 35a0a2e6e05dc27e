package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/controllers"
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
	clerkAPIURL             string
	concurrency             int
	clerkResync             time.Duration
	zap                     zap.Options
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
	fs.StringVar(&f.clerkAPIURL, "clerk-api-url", envOr("MCPGATE_CLERK_API_URL", defaultClerkAPIURL), "Clerk Backend API base URL handed to gateways (env MCPGATE_CLERK_API_URL).")
	fs.IntVar(&f.concurrency, "concurrency", 4, "Number of McpServers reconciled in parallel.")
	fs.DurationVar(&f.clerkResync, "clerk-resync-interval", 5*time.Minute, "How often each Clerk instance's OAuth settings are read again to catch changes made elsewhere.")
	f.zap = zap.Options{}
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
	if u, err := url.Parse(f.clerkAPIURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return f, fmt.Errorf("--clerk-api-url %q is not an absolute http(s) URL", f.clerkAPIURL)
	}
	if f.concurrency < 1 {
		return f, errors.New("--concurrency must be at least 1")
	}
	if f.clerkResync < 10*time.Second {
		return f, errors.New("--clerk-resync-interval must be at least 10s")
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

func envOr(key, fallback string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return fallback
}

func runManager(args []string, stderr io.Writer) int {
	f, err := parseManagerFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "mcpgate manager: %v\n", err)
		return 2
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&f.zap)))
	log := ctrl.Log.WithName("setup")
	log.Info("Starting mcpgate manager", "version", version.Get().Version, "gatewayImage", f.gatewayImage, "clerkAPIURL", f.clerkAPIURL)

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
		Cache:                         controllers.CacheOptions(),
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	ctx := ctrl.SetupSignalHandler()
	r := &controllers.McpServerReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("mcpgate"),
		Clock:     clock.RealClock{},
		Options: controllers.Options{
			GatewayImage:            f.gatewayImage,
			ClerkAPIURL:             f.clerkAPIURL,
			MaxConcurrentReconciles: f.concurrency,
			ClerkResyncInterval:     f.clerkResync,
		},
	}
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		return fmt.Errorf("set up mcpserver controller: %w", err)
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

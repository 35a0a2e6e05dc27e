package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	authnclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/broker"
	"github.com/mcpgate/mcpgate/clerk"
	"github.com/mcpgate/mcpgate/controllers"
	"github.com/mcpgate/mcpgate/gateway/config"
	"github.com/mcpgate/mcpgate/internal/cmdutil"
	"github.com/mcpgate/mcpgate/internal/version"
)

// Defaults of the broker's flags.
const (
	defaultBrokerTLSDir        = "/etc/mcpgate/tls"
	defaultBrokerShutdownGrace = 10 * time.Second
	defaultBrokerShutdownDelay = 5 * time.Second
	defaultClerkProbeInterval  = 10 * time.Second
	// minClerkProbeInterval keeps the probe cheap for Clerk.
	minClerkProbeInterval = 100 * time.Millisecond
)

type brokerFlags struct {
	listen             string
	healthListen       string
	tlsCertFile        string
	tlsKeyFile         string
	kubeconfig         string
	clusterResourceNS  string
	clerkAPIURL        string
	reviewTTL          time.Duration
	keyTTL             time.Duration
	clerkProbeInterval time.Duration
	shutdownDelay      time.Duration
	shutdownGrace      time.Duration
	logLevel           slog.Level
}

const brokerUsage = `Usage: mcpgate broker [flags]

Runs the Clerk key broker: the one holder of Clerk secret keys, in the
operator's namespace. Gateways ask it, over TLS and with a projected
ServiceAccount token for audience "` + config.BrokerAudience + `", about their own McpServer's
Clerk instance. See docs/broker.md.

Flags:
`

func parseBrokerFlags(args []string, stderr io.Writer) (brokerFlags, error) {
	f := brokerFlags{}
	fs := cmdutil.NewFlagSet("mcpgate broker", brokerUsage, stderr)
	fs.StringVar(&f.listen, "listen", ":8443", "Address of the broker's TLS listener (TLS only: every request carries a credential).")
	fs.StringVar(&f.healthListen, "health-listen", ":8081", "Address of /healthz, /readyz and /metrics (plain HTTP).")
	fs.StringVar(&f.tlsCertFile, "tls-cert-file", defaultBrokerTLSDir+"/tls.crt", "Serving certificate chain (PEM), re-read when it changes.")
	fs.StringVar(&f.tlsKeyFile, "tls-key-file", defaultBrokerTLSDir+"/tls.key", "Serving certificate key (PEM), re-read when it changes.")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "Path of a kubeconfig; empty: in-cluster, or $KUBECONFIG.")
	fs.StringVar(&f.clusterResourceNS, "cluster-resource-namespace", envOr("POD_NAMESPACE", inClusterNamespace()),
		"Namespace of the Secrets that ClusterClerkInstances name; default: the namespace the broker runs in (env POD_NAMESPACE).")
	fs.StringVar(&f.clerkAPIURL, "clerk-api-url", envOr("MCPGATE_CLERK_API_URL", defaultClerkAPIURL), "Clerk Backend API base URL (env MCPGATE_CLERK_API_URL).")
	fs.DurationVar(&f.reviewTTL, "review-ttl", broker.DefaultReviewTTL, "How long an accepted gateway token is trusted before it is reviewed again (TokenReview).")
	fs.DurationVar(&f.keyTTL, "key-ttl", controllers.DefaultBrokerKeyTTL, "How long a secret key read from its Secret is used before it is read again.")
	fs.DurationVar(&f.clerkProbeInterval, "clerk-probe-interval", defaultClerkProbeInterval, "How often the Backend API is probed for readiness.")
	fs.DurationVar(&f.shutdownDelay, "shutdown-delay", defaultBrokerShutdownDelay,
		"How long the broker, unready after SIGTERM, still serves before it stops listening, so that Services stop sending it traffic first.")
	fs.DurationVar(&f.shutdownGrace, "shutdown-grace", defaultBrokerShutdownGrace, "How long requests in flight may finish once the broker stops listening.")
	fs.TextVar(&f.logLevel, "log-level", slog.LevelInfo, "Log level: debug, info, warn or error.")
	if err := cmdutil.Parse(fs, args); err != nil {
		return f, err
	}
	switch {
	case f.listen == "" || f.healthListen == "":
		return f, errors.New("--listen and --health-listen must not be empty")
	case f.tlsCertFile == "" || f.tlsKeyFile == "":
		return f, errors.New("--tls-cert-file and --tls-key-file are required: the broker serves TLS only")
	case f.clusterResourceNS == "":
		return f, errors.New("--cluster-resource-namespace is required (or env POD_NAMESPACE): the Secrets of ClusterClerkInstances are there")
	case len(validation.IsDNS1123Label(f.clusterResourceNS)) > 0:
		return f, fmt.Errorf("--cluster-resource-namespace: %q is not a namespace name", f.clusterResourceNS)
	case f.reviewTTL <= 0 || f.keyTTL <= 0 || f.shutdownGrace <= 0:
		return f, errors.New("--review-ttl, --key-ttl and --shutdown-grace must be positive")
	case f.shutdownDelay < 0:
		return f, errors.New("--shutdown-delay must not be negative")
	case f.clerkProbeInterval < minClerkProbeInterval:
		return f, fmt.Errorf("--clerk-probe-interval must be at least %s", minClerkProbeInterval)
	}
	if u, err := url.Parse(f.clerkAPIURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return f, fmt.Errorf("--clerk-api-url %q is not an absolute http(s) URL", f.clerkAPIURL)
	}
	return f, nil
}

// brokerStartLine is the one line `mcpgate broker` prints to stdout once
// it listens, for callers that started it on port 0 (tests, local runs).
type brokerStartLine struct {
	Listen string `json:"listen"`
	Health string `json:"health"`
}

// runBroker runs the broker until ctx ends (SIGTERM), then drains it.
// Usage errors exit 2; a broker that cannot start or fails exits 1.
func runBroker(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, err := parseBrokerFlags(args, stderr)
	if err != nil {
		return cmdutil.UsageExitRepeat(stderr, "mcpgate broker", err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: f.logLevel}))
	// The cache's and client's own logs (controller-runtime) go the same way.
	ctrllog.SetLogger(logr.FromSlogHandler(log.Handler()))
	log.Info("Starting mcpgate broker", "version", version.Get().Version, "clerkAPIURL", f.clerkAPIURL,
		"clusterResourceNamespace", f.clusterResourceNS, "listen", f.listen)
	if err := serveBroker(ctx, f, log, stdout); err != nil {
		log.Error("Broker failed", "error", err.Error())
		return 1
	}
	log.Info("Stopped mcpgate broker")
	return 0
}

// serveBroker builds the broker from f and serves it until ctx ends.
func serveBroker(ctx context.Context, f brokerFlags, log *slog.Logger, stdout io.Writer) error {
	certs, err := broker.NewServingCertificate(f.tlsCertFile, f.tlsKeyFile)
	if err != nil {
		return err
	}
	cfg, err := brokerRESTConfig(f.kubeconfig)
	if err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(mcpv1.AddToScheme(scheme))

	// The cache and the prober live until the servers have drained, so
	// that requests in flight are still answered.
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	objects, err := controllers.NewBrokerCache(runCtx, cfg, scheme)
	if err != nil {
		return err
	}
	secrets, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	resolver, err := controllers.NewBrokerResolver(controllers.BrokerResolverOptions{
		Reader:                   objects,
		SecretReader:             secrets,
		ClusterResourceNamespace: f.clusterResourceNS,
		ClerkAPIURL:              f.clerkAPIURL,
		KeyTTL:                   f.keyTTL,
	})
	if err != nil {
		return err
	}
	// NOTE: the authentication group's client alone, not the whole
	// clientset: every typed client linked in is initialized in every
	// process of this binary, the gateway's included (about 1.5 MiB of RSS).
	reviews, err := authnclient.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("create the token review client: %w", err)
	}
	authn, err := broker.NewTokenReviewAuthenticator(broker.TokenReviewOptions{
		Client:   reviews,
		Audience: config.BrokerAudience,
		TTL:      f.reviewTTL,
	})
	if err != nil {
		return err
	}
	clerkHC := clerk.NewHTTPClient()
	srv, err := broker.NewServer(broker.Options{Authenticator: authn, Resolver: resolver, Logger: log, ClerkHTTPClient: clerkHC})
	if err != nil {
		return err
	}

	// Every instance's Backend API is --clerk-api-url, so it is the one
	// URL to probe.
	probe := newClerkProbe([]string{f.clerkAPIURL}, clerkHC, f.clerkProbeInterval, log)
	var synced, draining atomic.Bool
	ready := brokerReadiness{synced: &synced, draining: &draining, certs: certs, clerk: probe}
	if err := registerBrokerMetrics(srv, probe, ready); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	hln, err := net.Listen("tcp", f.healthListen)
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("listen for health: %w", err)
	}
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	traffic := &http.Server{
		Handler:           srv,
		TLSConfig:         certs.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errLog,
	}
	health := &http.Server{Handler: healthMux(srv, ready), ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}

	failed := make(chan error, 3)
	go func() {
		if err := objects.Start(runCtx); err != nil {
			failed <- fmt.Errorf("run cache: %w", err)
		}
	}()
	go func() {
		if objects.WaitForCacheSync(runCtx) {
			synced.Store(true)
			log.Info("Synced the cache of McpServers and Clerk instances")
		}
	}()
	go probe.run(runCtx)
	go func() {
		// ServeTLS with TLSConfig's GetCertificate: no files named here.
		if err := traffic.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			failed <- fmt.Errorf("serve: %w", err)
		}
	}()
	go func() {
		if err := health.Serve(hln); !errors.Is(err, http.ErrServerClosed) {
			failed <- fmt.Errorf("serve health: %w", err)
		}
	}()
	if err := cmdutil.PrintLine(stdout, brokerStartLine{Listen: ln.Addr().String(), Health: hln.Addr().String()}); err != nil {
		log.Warn("Could not print the start line", "error", err.Error())
	}
	log.Info("Serving", "listen", ln.Addr().String(), "health", hln.Addr().String())

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-failed:
	}
	// Unready first, and still serving for the delay: the endpoints of the
	// broker's Service drop this pod before it stops listening, so gateways
	// are not refused connections. Then requests in flight finish within
	// the grace period, with the cache still running.
	draining.Store(true)
	if runErr == nil && f.shutdownDelay > 0 {
		log.Info("Unready; serving until the delay is over", "delay", f.shutdownDelay.String())
		select {
		case <-time.After(f.shutdownDelay):
		case runErr = <-failed:
		}
	}
	log.Info("Draining", "grace", f.shutdownGrace.String())
	sctx, cancel := context.WithTimeout(context.Background(), f.shutdownGrace)
	defer cancel()
	if err := traffic.Shutdown(sctx); err != nil {
		log.Warn("Closing connections still open after the grace period", "error", err.Error())
		_ = traffic.Close()
	}
	_ = health.Close()
	stopRun()
	return runErr
}

// brokerRESTConfig is the kubeconfig at path, or controller-runtime's
// usual lookup (in-cluster, $KUBECONFIG, ~/.kube/config) without one.
func brokerRESTConfig(path string) (*rest.Config, error) {
	if path == "" {
		cfg, err := ctrl.GetConfig()
		if err != nil {
			return nil, fmt.Errorf("load kubeconfig: %w", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", path, err)
	}
	return cfg, nil
}

// healthMux serves the probes and the broker's metrics.
func healthMux(srv *broker.Server, ready brokerReadiness) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready.check(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /metrics", srv.MetricsHandler())
	return mux
}

// brokerReadiness is the readiness rule: not draining, the cache synced,
// a serving certificate loaded, and Clerk's Backend API reachable.
type brokerReadiness struct {
	synced, draining *atomic.Bool
	certs            *broker.ServingCertificate
	clerk            *clerkProbe
}

// check returns nil when ready, else why not (no secret in it).
func (r brokerReadiness) check() error {
	var why []string
	if r.draining.Load() {
		why = append(why, "shutting down")
	}
	if !r.synced.Load() {
		why = append(why, "cache not synced")
	}
	if _, err := r.certs.TLSConfig().GetCertificate(nil); err != nil {
		why = append(why, "no serving certificate")
	}
	if err := r.clerk.check(); err != nil {
		why = append(why, err.Error())
	}
	if len(why) > 0 {
		return errors.New(strings.Join(why, "; "))
	}
	return nil
}

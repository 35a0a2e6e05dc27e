package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/mcpgate/mcpgate/gateway"
	"github.com/mcpgate/mcpgate/gateway/config"
	"github.com/mcpgate/mcpgate/internal/cmdutil"
	"github.com/mcpgate/mcpgate/internal/version"
)

type gatewayFlags struct {
	config                string
	shutdownDelay         time.Duration
	shutdownGrace         time.Duration
	logLevel              slog.Level
	maxBodyBytes          int64
	responseHeaderTimeout time.Duration
	resolve               resolveFlag
	cpuProfile            string
}

// resolveFlag collects repeated --resolve host:port=addr flags.
type resolveFlag map[string]string

func (r resolveFlag) String() string {
	pairs := make([]string, 0, len(r))
	for from, to := range r {
		pairs = append(pairs, from+"="+to)
	}
	return strings.Join(pairs, ",")
}

func (r resolveFlag) Set(v string) error {
	from, to, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("%q is not host:port=address", v)
	}
	for _, hp := range []string{from, to} {
		host, port, err := net.SplitHostPort(hp)
		if err != nil || host == "" {
			return fmt.Errorf("%q in %q is not host:port", hp, v)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q in %q has no valid port", hp, v)
		}
	}
	r[from] = to
	return nil
}

func parseGatewayFlags(args []string, stderr io.Writer) (gatewayFlags, error) {
	f := gatewayFlags{resolve: resolveFlag{}}
	fs := flag.NewFlagSet("mcpgate gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.config, "config", "", "Path of the gateway configuration (JSON, apiVersion "+config.APIVersion+"). Required.")
	fs.DurationVar(&f.shutdownDelay, "shutdown-delay", gateway.DefaultShutdownDelay,
		"How long to go on serving after SIGTERM, reporting unready, so that Services and ingress controllers stop sending new requests before the port closes. 0: none.")
	fs.DurationVar(&f.shutdownGrace, "shutdown-grace", gateway.DefaultShutdownGrace, "How long in-flight requests may finish after the port closes before open streams are closed.")
	fs.TextVar(&f.logLevel, "log-level", slog.LevelInfo, "Log level: debug, info, warn or error.")
	fs.Int64Var(&f.maxBodyBytes, "max-body-bytes", gateway.DefaultMaxBodyBytes, "Largest request body accepted; larger ones get 413.")
	fs.DurationVar(&f.responseHeaderTimeout, "response-header-timeout", gateway.DefaultResponseHeaderTimeout,
		"How long to wait for the upstream's response headers before answering 504. Streams are not bounded once their headers are in.")
	fs.StringVar(&f.cpuProfile, "cpu-profile", "", "Development only: write a CPU profile (pprof) to this file from start until the gateway stops.")
	fs.Var(f.resolve, "resolve", "Development only, repeatable: host:port=address dials address whenever the upstream URL's host:port is host:port, like curl --resolve. Does nothing unless given.")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	switch {
	case fs.NArg() > 0:
		return f, fmt.Errorf("unexpected arguments: %v", fs.Args())
	case f.config == "":
		return f, errors.New("--config is required")
	case f.shutdownGrace <= 0:
		return f, errors.New("--shutdown-grace must be positive")
	case f.shutdownDelay < 0:
		return f, errors.New("--shutdown-delay must not be negative")
	case f.maxBodyBytes <= 0:
		return f, errors.New("--max-body-bytes must be positive")
	case f.responseHeaderTimeout <= 0:
		return f, errors.New("--response-header-timeout must be positive")
	}
	return f, nil
}

// runGateway runs one gateway until SIGTERM or SIGINT, then drains it.
// Usage errors exit 2; a configuration the gateway cannot run exits 1.
func runGateway(args []string, stderr io.Writer) int {
	f, err := parseGatewayFlags(args, stderr)
	if err != nil {
		return cmdutil.UsageExitRepeat(stderr, "mcpgate gateway", err)
	}
	cfg, err := loadGatewayConfig(f.config)
	if err != nil {
		fmt.Fprintf(stderr, "mcpgate gateway: %v\n", err)
		return 1
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: f.logLevel})).
		With("mcpserver", cfg.Server.Namespace+"/"+cfg.Server.Name)
	if len(f.resolve) > 0 {
		log.Warn("Dialing upstream addresses given by --resolve; for development only", "resolve", f.resolve.String())
	}
	g, err := gateway.New(cfg, gateway.Options{
		Logger:                log,
		ShutdownDelay:         f.shutdownDelay,
		ShutdownGrace:         f.shutdownGrace,
		MaxBodyBytes:          f.maxBodyBytes,
		ResponseHeaderTimeout: f.responseHeaderTimeout,
		Resolve:               f.resolve,
		AuditOutput:           os.Stdout, // the audit stream; the logs go to stderr
	})
	if err != nil {
		fmt.Fprintf(stderr, "mcpgate gateway: %v\n", err)
		return 1
	}
	if f.cpuProfile != "" {
		stopProfile, err := startCPUProfile(f.cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "mcpgate gateway: %v\n", err)
			return 1
		}
		defer stopProfile()
	}
	log.Info("Starting mcpgate gateway", "version", version.Get().Version, "config", f.config)
	ctx, stop := cmdutil.SignalContext(nil)
	defer stop()
	if err := g.Run(ctx); err != nil {
		log.Error("Gateway failed", "error", err.Error())
		return 1
	}
	log.Info("Stopped mcpgate gateway")
	return 0
}

// startCPUProfile profiles the process into path until the returned
// function is called.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}

// loadGatewayConfig reads and parses the configuration file, naming it in
// any error.
func loadGatewayConfig(path string) (config.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return config.Config{}, fmt.Errorf("read config: %w", err)
	}
	cfg, err := config.Parse(data)
	if err != nil {
		return config.Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Command bench measures mcpgate: the gateway's cost on the path of every
// tool call, against a direct call and against a bare reverse proxy in the
// same run, and the operator's cost at scale. It prints a Markdown report and
// writes results.md and results.json.
//
//	go run ./hack/bench                       # everything (make bench)
//	go run ./hack/bench -duration 1s -skip-operator
//
// Every server runs in its own process (the gateway as `mcpgate gateway`,
// the upstream and the bare proxy as `bench serve`), so that CPU and memory
// figures are each process's own. The Clerk emulator runs in the driver.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mcpgate/mcpgate/internal/localstack"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		if err := runServe(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench serve:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// options are the command line.
type options struct {
	out              string
	duration, warmup time.Duration
	concurrency      []int
	refConcurrency   int
	rounds           int
	abbaBlocks       int
	abbaDuration     time.Duration
	pin              bool
	profile          bool
	upstreams        []string
	gatewayEnv       []string
	mcpgateBin       string
	modes            []string
	streams          streamsOptions
	operator         operatorOptions
	skipGateway      bool
	skipStreams      bool
	skipOperator     bool
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	o := options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.out, "out", "bench", "Directory for results.md, results.json and the servers' logs (logs/).")
	fs.DurationVar(&o.duration, "duration", 1500*time.Millisecond, "Measured time of each gateway cell.")
	fs.DurationVar(&o.warmup, "warmup", 250*time.Millisecond, "Unrecorded time before each gateway cell.")
	upstreams := fs.String("upstreams", "trivial,sample", "Upstreams of the gateway table: trivial (a fixed answer, the proxy's own cost) and sample (the Go SDK sample MCP server).")
	gatewayEnv := fs.String("gateway-env", "", "Comma-separated NAME=value pairs added to the gateways' environment (e.g. GOGC=200), for experiments.")
	fs.StringVar(&o.mcpgateBin, "mcpgate", "", "Gateway binary to measure instead of building cmd/mcpgate from this checkout (to compare two builds).")
	modes := fs.String("modes", strings.Join(gatewayModes, ","), "Modes of the gateway table (ratios need direct and bare; with jwt and access, also tools/list filtering of a 200-tool list).")
	levels := fs.String("concurrency", "1,16,64,256", "Comma-separated concurrency levels of the gateway table.")
	fs.IntVar(&o.refConcurrency, "target-concurrency", 64, "Concurrency level at which the gateway targets are judged.")
	fs.IntVar(&o.rounds, "rounds", 3, "Times each gateway cell is measured, interleaved with the other modes; the median is reported.")
	fs.IntVar(&o.abbaBlocks, "abba-blocks", 2, "ABBA blocks (jwt, mode, mode, jwt) per round at the target concurrency for the audit and tracing modes, whose vs jwt then is the median of the blocks' ratios (0: the per-round ratio, as for the other modes).")
	fs.DurationVar(&o.abbaDuration, "abba-duration", 500*time.Millisecond, "Measured time of each cell of an ABBA block (each also has -warmup).")
	fs.BoolVar(&o.pin, "pin", true, "On machines with 2+ cores, give the proxy under test (bare or gateway) the last core and the driver and upstream the others.")
	fs.BoolVar(&o.profile, "profile", false, "Write CPU profiles of the bare proxy and each gateway into <out>/logs (go tool pprof -top <file>).")
	fs.IntVar(&o.streams.streams, "streams", 1000, "Concurrent SSE streams held through one gateway.")
	fs.IntVar(&o.streams.events, "stream-events", 20, "Events in each stream.")
	fs.DurationVar(&o.streams.interval, "stream-interval", 250*time.Millisecond, "Time between a stream's events.")
	fs.IntVar(&o.operator.McpServers, "mcpservers", 1000, "McpServers of the operator scale test.")
	fs.IntVar(&o.operator.Namespaces, "namespaces", 20, "Namespaces they are spread over.")
	fs.IntVar(&o.operator.ClerkInstances, "clerk-instances", 2, "Clerk instances (issuers) they share.")
	fs.BoolVar(&o.operator.ClusterInstances, "cluster-instances", false, "McpServers of the operator scale test reference one ClusterClerkInstance per Clerk instance instead of declaring it inline.")
	fs.BoolVar(&o.operator.MixedReferences, "mixed-references", false, "Half the McpServers of the operator scale test reference a ClusterClerkInstance and half declare inline (on separate Clerk instances); each half's settle times are reported, measured in the same run.")
	fs.DurationVar(&o.operator.Timeout, "operator-timeout", 5*time.Minute, "Longest wait for each operator phase.")
	fs.BoolVar(&o.skipGateway, "skip-gateway", false, "Skip the gateway table.")
	fs.BoolVar(&o.skipStreams, "skip-streams", false, "Skip the streams test.")
	fs.BoolVar(&o.skipOperator, "skip-operator", false, "Skip the operator scale test.")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.upstreams = strings.Split(*upstreams, ",")
	o.modes = strings.Split(*modes, ",")
	for _, m := range o.modes {
		if !slices.Contains(gatewayModes, m) {
			return o, fmt.Errorf("-modes: unknown mode %q", m)
		}
	}
	if *gatewayEnv != "" {
		o.gatewayEnv = strings.Split(*gatewayEnv, ",")
	}
	for _, s := range strings.Split(*levels, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || c < 1 {
			return o, fmt.Errorf("-concurrency: %q is not a positive number", s)
		}
		o.concurrency = append(o.concurrency, c)
	}
	if o.duration <= 0 || o.warmup < 0 || o.abbaDuration <= 0 || o.abbaBlocks < 0 || o.streams.streams < 1 || o.streams.events < 1 {
		return o, errors.New("durations and counts must be positive")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this binary: %w", err)
	}
	bins, err := localstack.Build(ctx, localstack.BuildOptions{})
	if err != nil {
		return fmt.Errorf("build mcpgate: %w", err)
	}
	if o.mcpgateBin != "" {
		bins.Mcpgate = o.mcpgateBin
	}
	// Absolute, because the gateways' configurations name files in it
	// (the user-token gateway's service key), and a gateway accepts only
	// absolute paths.
	out, err := filepath.Abs(o.out)
	if err != nil {
		return fmt.Errorf("out directory: %w", err)
	}
	logDir := filepath.Join(out, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	r := &results{
		Machine: describeMachine("."),
		Settings: map[string]any{
			"duration": o.duration.String(), "warmup": o.warmup.String(), "concurrency": o.concurrency,
			"streams": o.streams.streams, "mcpservers": o.operator.McpServers, "rounds": o.rounds,
			"abba_blocks": o.abbaBlocks, "abba_duration": o.abbaDuration.String(),
		},
	}
	if o.mcpgateBin != "" {
		r.Settings["mcpgate"] = o.mcpgateBin
	}
	gopts := gatewayOptions{
		mcpgate: bins.Mcpgate, self: self, concurrency: o.concurrency, rounds: o.rounds, profile: o.profile,
		abbaAt: o.refConcurrency, abbaBlocks: o.abbaBlocks, abbaDuration: o.abbaDuration,
		upstreams: o.upstreams, modes: o.modes, gatewayEnv: o.gatewayEnv,
		warmup: o.warmup, duration: o.duration, logDir: logDir, log: stderr,
	}
	all := allCPUs()
	if o.pin && len(all) >= 2 {
		gopts.proxyCPUs = all[len(all)-1:]
		if err := pinSelf(all[:len(all)-1]); err != nil {
			return fmt.Errorf("pin the driver: %w", err)
		}
		r.Settings["proxy_cpus"], r.Settings["driver_cpus"] = gopts.proxyCPUs, all[:len(all)-1]
	}
	if !o.skipGateway {
		fmt.Fprintln(stderr, "gateway: tools/call through direct, bare proxy and gateways; tools/list filtering")
		if r.Gateway, err = runGatewaySuite(ctx, gopts); err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
	}
	if !o.skipStreams {
		fmt.Fprintf(stderr, "streams: %d concurrent SSE streams through one gateway\n", o.streams.streams)
		s, err := runStreams(ctx, gopts, o.streams)
		if err != nil {
			return fmt.Errorf("streams: %w", err)
		}
		r.Streams = &s
	}
	// The operator test is about the manager on the whole machine.
	if err := pinSelf(all); err != nil {
		return fmt.Errorf("unpin the driver: %w", err)
	}
	if !o.skipOperator {
		fmt.Fprintf(stderr, "operator: %d McpServers in %d namespaces on %d Clerk instances\n",
			o.operator.McpServers, o.operator.Namespaces, o.operator.ClerkInstances)
		o.operator.Log = stderr
		op, err := runOperatorScale(ctx, o.operator)
		if err != nil {
			return fmt.Errorf("operator: %w", err)
		}
		r.Operator = &op
	}
	r.Targets = evaluateTargets(r, o.refConcurrency)
	md, err := writeResults(o.out, r)
	if err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	_, err = io.WriteString(stdout, md)
	return err
}

package main

import (
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
	"time"

	"github.com/mcpgate/mcpgate/broker/brokertest"
	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway/config"
	"github.com/mcpgate/mcpgate/internal/testenv"
	"github.com/mcpgate/mcpgate/internal/tracing/tracingtest"
)

// The modes of the gateway table, in the order each concurrency level runs them.
const (
	modeDirect     = "direct"      // client to upstream, no hop
	modeBare       = "bare"        // through a bare httputil.ReverseProxy
	modeJWT        = "jwt"         // through the gateway, JWT access tokens
	modeOpaqueWarm = "opaque-warm" // opaque tokens whose verdicts are cached
	modeOpaqueCold = "opaque-cold" // a new opaque token for every request
	modeAccess     = "access"      // JWTs, through a gateway with organization and tool access rules
	modeUserToken  = "user-token"  // JWTs, through a gateway that sets a service key and each caller's provider token
	modeAudit      = "audit"       // JWTs, through a gateway writing its audit stream (stdout, to a file)
	modeTracing    = "tracing"     // JWTs, through a gateway tracing 1% of new traces to a real OTLP receiver
)

// tracingSamplingRatio is the tracing mode's share of new traces recorded.
const tracingSamplingRatio = 0.01

var gatewayModes = []string{modeDirect, modeBare, modeJWT, modeOpaqueWarm, modeOpaqueCold, modeOpaqueColdBroker, modeAccess, modeUserToken, modeAudit, modeTracing}

const verifyEndpoint = "POST /v1/oauth_applications/access_tokens/verify"

// gatewayRow is one cell of the gateway table. The JSON names are the
// results.json contract.
type gatewayRow struct {
	Mode        string  `json:"mode"`
	Upstream    string  `json:"upstream"`
	Response    string  `json:"response"`
	Concurrency int     `json:"concurrency"`
	RPS         float64 `json:"rps"`
	P50         float64 `json:"p50_ms"`
	P90         float64 `json:"p90_ms"`
	P99         float64 `json:"p99_ms"`
	// Ratios of throughput to direct, bare and jwt (see pairedRatio); 0
	// when that mode was not measured.
	RatioDirect float64 `json:"ratio_direct"`
	RatioBare   float64 `json:"ratio_bare"`
	RatioJWT    float64 `json:"ratio_jwt"`
	// For the ABBA modes at the target concurrency, RatioJWT is the median
	// of JWTBlocks ABBA blocks' ratios (see abbaBlock), between
	// RatioJWTQ1 and RatioJWTQ3 (the quartiles), and CPURatioJWT the
	// median ratio of CPU per request to jwt's. Zero elsewhere, where
	// RatioJWT is the per-round pairing of pairedRatio.
	JWTBlocks   int     `json:"ratio_jwt_blocks,omitempty"`
	RatioJWTQ1  float64 `json:"ratio_jwt_q1,omitempty"`
	RatioJWTQ3  float64 `json:"ratio_jwt_q3,omitempty"`
	CPURatioJWT float64 `json:"cpu_ratio_jwt,omitempty"`
	// CPU and peak RSS of the proxy process (bare or gateway); 0 for direct.
	CPUPer10k  float64 `json:"cpu_s_per_10k"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	Requests   int     `json:"requests"`
	Errors     int     `json:"errors"`
	// Sent counts every request, warmup included; VerifyCalls the Backend
	// API token verifications they caused.
	Sent        int `json:"sent"`
	VerifyCalls int `json:"backend_verify_calls"`
	// For access: the users first seen in this cell (one per worker), and
	// the Backend API lookups of memberships (LookupCalls) and of users
	// (UserCalls) that the cell caused, warmup included.
	NewUsers    int `json:"new_users"`
	LookupCalls int `json:"backend_lookup_calls"`
	UserCalls   int `json:"backend_user_calls"`
	// TokenCalls, for user-token, are the Backend API lookups of the
	// callers' provider tokens (one per new user while the token lives).
	TokenCalls int `json:"backend_token_calls"`
}

// gatewayOptions configure the gateway measurements.
type gatewayOptions struct {
	mcpgate, self    string // the mcpgate binary and this one (for bench serve)
	concurrency      []int
	warmup, duration time.Duration
	rounds           int // each cell is measured this many times, interleaved; medians are reported
	// abbaAt is the concurrency level (the targets') at which each round
	// also measures the ABBA modes against jwt in abbaBlocks blocks of
	// four cells of abbaDuration each; 0 blocks measures none.
	abbaAt, abbaBlocks int
	abbaDuration       time.Duration
	proxyCPUs          []int
	profile            bool // bare proxy and gateways write CPU profiles into logDir
	upstreams          []string
	modes              []string
	gatewayEnv         []string // extra environment of the gateway processes
	logDir             string
	log                io.Writer
}

// gatewaySuite is everything the gateway table reports.
type gatewaySuite struct {
	Rows       []gatewayRow `json:"rows"`
	IdleRSSMiB float64      `json:"gateway_idle_rss_mib"`
	// ToolsList is the cost of filtering a long tools/list; nil unless the
	// jwt and access modes both ran.
	ToolsList *toolsListResult `json:"tools_list,omitempty"`
}

// bench holds the processes shared by the gateway measurements.
type bench struct {
	opts     gatewayOptions
	clerk    *clerktest.Server
	upstream *process
	bare     *process
	// broker is the key broker of the opaque-cold-broker mode, started
	// with its first gateway; brokerTB runs its cleanups.
	broker   *brokertest.Broker
	brokerTB *driverTB
	logs     []*os.File // closed by close, after the processes writing them
	// findAddrs finds free addresses for a gateway: freeAddrs, or what a
	// test gives.
	findAddrs func(n int) ([]string, error)
}

// newBench starts the Clerk emulator for the gateways of one suite.
func newBench(opts gatewayOptions) *bench {
	return &bench{opts: opts, clerk: clerktest.NewServer(), findAddrs: freeAddrs}
}

// close closes the emulator and the process logs.
func (b *bench) close() {
	if b.brokerTB != nil {
		b.brokerTB.cleanup()
	}
	b.clerk.Close()
	for _, f := range b.logs {
		_ = f.Close()
	}
}

// runGatewaySuite measures every mode for both upstreams and both response
// types at each concurrency level. Within one level the modes run back to
// back, so that each ratio compares figures taken moments apart.
func runGatewaySuite(ctx context.Context, opts gatewayOptions) (gatewaySuite, error) {
	b := newBench(opts)
	defer b.close()
	if err := b.createOrganization(); err != nil {
		return gatewaySuite{}, err
	}
	var err error
	if b.upstream, err = startProcess(ctx, "upstream", nil, b.logFile("upstream"), opts.self, "serve", "upstream"); err != nil {
		return gatewaySuite{}, err
	}
	defer b.upstream.stop()
	bareArgs := []string{"serve", "bare", "--upstream", "http://" + b.upstream.addr}
	if opts.profile {
		bareArgs = append(bareArgs, "--cpu-profile", filepath.Join(opts.logDir, "bare.pprof"))
	}
	if b.bare, err = startProcess(ctx, "bare proxy", opts.proxyCPUs, b.logFile("bare"), opts.self, bareArgs...); err != nil {
		return gatewaySuite{}, err
	}
	defer b.bare.stop()

	var suite gatewaySuite
	for _, combo := range []struct{ upstream, response, path string }{
		{"trivial", "json", pathTrivialJSON},
		{"trivial", "sse", pathTrivialSSE},
		{"sample", "json", pathSampleJSON},
		{"sample", "sse", pathSampleSSE},
	} {
		if !slices.Contains(opts.upstreams, combo.upstream) {
			continue
		}
		name, upstreamURL := combo.upstream+"-"+combo.response, "http://"+b.upstream.addr+combo.path
		gws, err := b.startGateways(ctx, name, upstreamURL)
		if err != nil {
			return suite, err
		}
		if suite.IdleRSSMiB == 0 {
			idle, err := idleRSS(gws.plain.pid())
			if err != nil {
				gws.stop()
				return suite, err
			}
			suite.IdleRSSMiB = mib(idle)
		}
		for _, c := range opts.concurrency {
			samples := map[string][]gatewayRow{}
			blocks := map[string][]abbaBlock{}
			for range max(opts.rounds, 1) {
				for _, mode := range opts.modes {
					row, err := b.measure(ctx, cell{mode: mode, gateways: gws, path: combo.path, concurrency: c})
					if err != nil {
						gws.stop()
						return suite, fmt.Errorf("%s %s/%s c=%d: %w", mode, combo.upstream, combo.response, c, err)
					}
					samples[mode] = append(samples[mode], row)
				}
				if c != opts.abbaAt {
					continue
				}
				for _, mode := range b.abbaModes() {
					for range opts.abbaBlocks {
						blk, err := b.measureABBA(ctx, cell{mode: mode, gateways: gws, path: combo.path, concurrency: c, duration: opts.abbaDuration})
						if err != nil {
							gws.stop()
							return suite, fmt.Errorf("%s vs jwt %s/%s c=%d: %w", mode, combo.upstream, combo.response, c, err)
						}
						blocks[mode] = append(blocks[mode], blk)
						fmt.Fprintf(opts.log, "  %-8s %-5s c=%-3d %-12s ABBA block vs jwt: %.3f\n", combo.upstream, combo.response, c, mode, blk.ratio())
					}
				}
			}
			for _, mode := range opts.modes {
				row := medianRow(samples[mode])
				row.RatioDirect = pairedRatio(samples, mode, modeDirect)
				row.RatioBare = pairedRatio(samples, mode, modeBare)
				row.RatioJWT = pairedRatio(samples, mode, modeJWT)
				if sum := summarizeBlocks(blocks[mode]); sum.Blocks > 0 {
					row.RatioJWT, row.RatioJWTQ1, row.RatioJWTQ3 = sum.Ratio, sum.Q1, sum.Q3
					row.CPURatioJWT, row.JWTBlocks = sum.CPURatio, sum.Blocks
				}
				row.Upstream, row.Response = combo.upstream, combo.response
				fmt.Fprintf(opts.log, "  %-8s %-5s c=%-3d %-12s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms\n",
					row.Upstream, row.Response, c, mode, row.RPS, row.P50, row.P99)
				suite.Rows = append(suite.Rows, row)
			}
		}
		gws.stop()
	}
	if slices.Contains(opts.modes, modeJWT) && slices.Contains(opts.modes, modeAccess) {
		tl, err := b.runToolsList(ctx)
		if err != nil {
			return suite, fmt.Errorf("tools/list: %w", err)
		}
		suite.ToolsList = &tl
	}
	return suite, nil
}

// gateways are the gateway processes in front of one upstream path: plain
// (scopes only) for the jwt and opaque modes, and, when the access mode
// runs, one with access rules.
type gateways struct {
	plain, access, userToken, broker, audit, tracing *process
	// receiver takes the tracing gateway's spans.
	receiver *tracingtest.Receiver
}

// startGateways starts the gateways the selected modes need.
func (b *bench) startGateways(ctx context.Context, name, upstreamURL string) (gateways, error) {
	var gws gateways
	var err error
	if gws.plain, err = b.startGateway(ctx, name, upstreamURL, nil); err != nil {
		return gws, err
	}
	if slices.Contains(b.opts.modes, modeAccess) {
		if gws.access, err = b.startAccessGateway(ctx, name+"-access", upstreamURL); err != nil {
			gws.stop()
			return gws, err
		}
	}
	if slices.Contains(b.opts.modes, modeUserToken) {
		if gws.userToken, err = b.startUserTokenGateway(ctx, name+"-user-token", upstreamURL); err != nil {
			gws.stop()
			return gws, err
		}
	}
	if slices.Contains(b.opts.modes, modeOpaqueColdBroker) {
		if gws.broker, err = b.startBrokerGateway(ctx, name+"-broker", upstreamURL); err != nil {
			gws.stop()
			return gws, err
		}
	}
	if slices.Contains(b.opts.modes, modeAudit) {
		audit := func(_ string, c *config.Config) error { c.Audit = config.Audit{}; return nil }
		if gws.audit, err = b.startGateway(ctx, name+"-audit", upstreamURL, audit); err != nil {
			gws.stop()
			return gws, err
		}
	}
	if slices.Contains(b.opts.modes, modeTracing) {
		if gws.receiver, err = startReceiver(filepath.Join(b.opts.logDir, "otlp-"+name)); err != nil {
			gws.stop()
			return gws, err
		}
		endpoint := gws.receiver.Endpoint
		tracing := func(_ string, c *config.Config) error {
			c.Tracing = &config.Tracing{Endpoint: endpoint, SamplingRatio: tracingSamplingRatio}
			return nil
		}
		if gws.tracing, err = b.startGateway(ctx, name+"-tracing", upstreamURL, tracing); err != nil {
			gws.stop()
			return gws, err
		}
	}
	return gws, nil
}

// startReceiver runs the real OTLP receiver (the Collector's otlpreceiver,
// hack/setup-otlp-receiver.sh) writing its spans under dir.
func startReceiver(dir string) (*tracingtest.Receiver, error) {
	root, err := testenv.ModuleRoot("")
	if err != nil {
		return nil, err
	}
	bin, err := tracingtest.Binary(root)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return tracingtest.Start(bin, dir)
}

// stop stops the gateways that were started.
func (g gateways) stop() {
	if g.receiver != nil {
		defer g.receiver.Stop() // after the gateway's last export
	}
	for _, p := range []*process{g.plain, g.access, g.userToken, g.broker, g.audit, g.tracing} {
		if p != nil {
			p.stop()
		}
	}
}

// cell is one measurement: a mode at one concurrency level.
type cell struct {
	mode     string
	gateways gateways
	// path is the upstream path, for direct and bare; the gateways have
	// theirs in their configuration.
	path        string
	body        string // "" sends a tools/call
	concurrency int
	duration    time.Duration // the measured time; 0 is the -duration flag's
}

// abbaModes are the selected modes measured in ABBA blocks against jwt;
// none unless jwt is selected too.
func (b *bench) abbaModes() []string {
	if b.opts.abbaBlocks <= 0 || !slices.Contains(b.opts.modes, modeJWT) {
		return nil
	}
	var modes []string
	for _, m := range abbaModes {
		if slices.Contains(b.opts.modes, m) {
			modes = append(modes, m)
		}
	}
	return modes
}

// measureABBA measures one ABBA block of mode against jwt: jwt, mode,
// mode, jwt, each a cell like mode's (c) but for c.duration, moments apart.
func (b *bench) measureABBA(ctx context.Context, c cell) (abbaBlock, error) {
	var blk abbaBlock
	base := c
	base.mode = modeJWT
	for _, step := range []struct {
		c   cell
		row *gatewayRow
	}{{base, &blk.base[0]}, {c, &blk.mode[0]}, {c, &blk.mode[1]}, {base, &blk.base[1]}} {
		row, err := b.measure(ctx, step.c)
		if err != nil {
			return blk, err
		}
		*step.row = row
	}
	return blk, nil
}

// measure runs one cell.
func (b *bench) measure(ctx context.Context, c cell) (gatewayRow, error) {
	spec := loadSpec{body: c.body, concurrency: c.concurrency, warmup: b.opts.warmup, duration: b.opts.duration}
	if c.duration > 0 {
		spec.duration = c.duration
	}
	var proxy *process
	newUsers := 0
	switch c.mode {
	case modeDirect:
		spec.target = "http://" + b.upstream.addr + c.path
	case modeBare:
		spec.target, proxy = "http://"+b.bare.addr+c.path, b.bare
	default:
		switch c.mode {
		case modeAccess:
			proxy = c.gateways.access
		case modeUserToken:
			proxy = c.gateways.userToken
		case modeOpaqueColdBroker:
			proxy = c.gateways.broker
		case modeAudit:
			proxy = c.gateways.audit
		case modeTracing:
			proxy = c.gateways.tracing
		default:
			proxy = c.gateways.plain
		}
		spec.target = "http://" + proxy.addr + "/mcp"
		tokens, n, err := b.tokensFor(c.mode, c.concurrency)
		if err != nil {
			return gatewayRow{}, err
		}
		spec.tokens, newUsers = tokens, n
	}
	var before procSample
	spec.between = func() {
		if proxy != nil {
			_ = resetPeakRSS(proxy.pid())
			before, _ = readProc(proxy.pid())
		}
	}
	verifies, lookups, users, userTokens := b.clerk.Calls(verifyEndpoint), b.clerk.Calls(membershipsEndpoint), b.clerk.Calls(userEndpoint), b.clerk.Calls(tokenEndpoint)
	res := runLoad(ctx, spec)
	row := gatewayRow{
		Mode: c.mode, Concurrency: c.concurrency, RPS: res.rps(),
		P50: res.percentile(0.50), P90: res.percentile(0.90), P99: res.percentile(0.99),
		Requests: res.requests, Errors: res.errors, Sent: res.sent,
		VerifyCalls: b.clerk.Calls(verifyEndpoint) - verifies,
		NewUsers:    newUsers,
		LookupCalls: b.clerk.Calls(membershipsEndpoint) - lookups,
		UserCalls:   b.clerk.Calls(userEndpoint) - users,
		TokenCalls:  b.clerk.Calls(tokenEndpoint) - userTokens,
	}
	if proxy != nil {
		after, err := readProc(proxy.pid())
		if err != nil {
			return row, err
		}
		if res.requests > 0 {
			row.CPUPer10k = (after.CPU - before.CPU).Seconds() * 10000 / float64(res.requests)
		}
		row.PeakRSSMiB = mib(after.PeakRSS)
	}
	if res.requests == 0 {
		return row, fmt.Errorf("no request succeeded; first error: %w", res.firstErr)
	}
	if res.errors > 0 {
		// Reported in the table rather than fatal: a failing path is a result.
		fmt.Fprintf(b.opts.log, "  %d of %d requests failed; first: %v\n", res.errors, res.requests+res.errors, res.firstErr)
	}
	return row, nil
}

// tokensFor gives the tokens of one cell: one per worker for jwt and
// opaque-warm (each is checked once, then cached), a new one for every
// request for opaque-cold and opaque-cold-broker, minted as it is needed (minting is the
// emulator's work, on the driver's cores, not the gateway's). For access,
// each worker's token is a new member's, whose memberships the gateway has
// not seen; newUsers says how many.
func (b *bench) tokensFor(mode string, concurrency int) (tokens tokenSource, newUsers int, err error) {
	if mode == modeAccess || mode == modeUserToken {
		newUsers := b.newMembers
		if mode == modeUserToken {
			newUsers = b.newConnectedUsers
		}
		perUser, err := newUsers(concurrency)
		if err != nil {
			return nil, 0, err
		}
		return func(worker int) (string, bool) { return perUser[worker], true }, concurrency, nil
	}
	format := clerktest.FormatJWT
	if mode != modeJWT && mode != modeAudit && mode != modeTracing {
		format = clerktest.FormatOpaque
	}
	mint := func() (string, error) {
		return b.clerk.MintAccessToken(clerktest.TokenRequest{Scopes: []string{"profile"}, TTL: time.Hour, Format: format})
	}
	if mode == modeOpaqueCold || mode == modeOpaqueColdBroker {
		return func(int) (string, bool) {
			tok, err := mint()
			return tok, err == nil
		}, 0, nil
	}
	perWorker := make([]string, concurrency)
	for i := range perWorker {
		tok, err := mint()
		if err != nil {
			return nil, 0, fmt.Errorf("mint token: %w", err)
		}
		perWorker[i] = tok
	}
	return func(worker int) (string, bool) { return perWorker[worker], true }, 0, nil
}

// gatewayStartAttempts bounds how often startGateway picks new ports for a
// gateway that could not listen on the ones it was given.
const gatewayStartAttempts = 3

// startGateway runs `mcpgate gateway` for the upstream URL, as the operator
// would run it in a pod: its own process, a config file, the secret key in a
// file; configure, when not nil, adds to the configuration (access rules,
// credentials). It returns once /readyz says the gateway can verify tokens.
//
// The gateway's ports are found free, not reserved: until it binds them,
// another process on the machine (a parallel test's outgoing connection)
// may take one. The gateway then exits saying so, and starts again on new
// ports.
func (b *bench) startGateway(ctx context.Context, name, upstreamURL string, configure func(dir string, c *config.Config) error) (*process, error) {
	for attempt := 1; ; attempt++ {
		p, err := b.startGatewayOnce(ctx, name, upstreamURL, configure)
		if !errors.Is(err, errPortTaken) || attempt == gatewayStartAttempts {
			return p, err
		}
		fmt.Fprintf(b.opts.log, "  gateway %s: %v; starting it again on other ports\n", name, err)
	}
}

func (b *bench) startGatewayOnce(ctx context.Context, name, upstreamURL string, configure func(dir string, c *config.Config) error) (*process, error) {
	dir, err := os.MkdirTemp(b.opts.logDir, "gateway-"+name+"-")
	if err != nil {
		return nil, err
	}
	addrs, err := b.findAddrs(2)
	if err != nil {
		return nil, err
	}
	traffic, health := addrs[0], addrs[1]
	keyFile := filepath.Join(dir, "secret-key")
	if err := os.WriteFile(keyFile, []byte(b.clerk.SecretKey()), 0o600); err != nil {
		return nil, err
	}
	gwConfig := config.Config{
		Server:       config.ServerRef{Namespace: "bench", Name: name},
		Listen:       config.Listen{Traffic: traffic, Health: health},
		Path:         "/mcp",
		PublicURL:    "http://" + traffic + "/mcp",
		ResourceName: "bench",
		Upstream:     config.Upstream{URL: upstreamURL},
		Scopes:       []string{"profile"},
		// A scoped tool makes the gateway inspect every tools/call, as it
		// would for any McpServer with toolScopes.
		ToolScopes: []config.ToolScope{{Tool: "delete_repo", Scopes: []string{"repo:admin"}}},
		Clerk:      config.Clerk{Issuer: b.clerk.FrontendAPIURL(), APIURL: b.clerk.BackendAPIURL(), SecretKeyFile: keyFile},
		// No audit stream but in the audit mode, so that the other rows
		// compare with those measured before it existed.
		Audit: config.Audit{Disabled: true},
	}
	if configure != nil {
		if err := configure(dir, &gwConfig); err != nil {
			return nil, err
		}
	}
	cfg, err := config.Marshal(gwConfig)
	if err != nil {
		return nil, err
	}
	cfgFile := filepath.Join(dir, config.FileName)
	if err := os.WriteFile(cfgFile, cfg, 0o600); err != nil {
		return nil, err
	}
	// Nothing balances load across a bench gateway, so it stops at once.
	args := []string{"gateway", "--config", cfgFile, "--shutdown-delay=0s"}
	if b.opts.profile {
		args = append(args, "--cpu-profile", filepath.Join(b.opts.logDir, "gateway-"+name+".pprof"))
	}
	cmd := exec.Command(b.opts.mcpgate, args...)
	cmd.Env = append(os.Environ(), b.opts.gatewayEnv...)
	cmd.Stderr = b.logFile("gateway-" + name)
	if !gwConfig.Audit.Disabled {
		cmd.Stdout = b.logFile("audit-" + name) // a file, as a node's container runtime writes it
	}
	if err := startPinned(cmd, b.opts.proxyCPUs); err != nil {
		return nil, fmt.Errorf("start gateway: %w", err)
	}
	p := &process{name: "gateway " + name, cmd: cmd, addr: traffic, done: make(chan struct{}), logPath: b.logPath("gateway-" + name)}
	go func() { _ = cmd.Wait(); close(p.done) }()
	if err := waitReady(ctx, p, "http://"+health+"/readyz"); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// errPortTaken marks a process that exited because one of its ports was
// taken before it could listen.
var errPortTaken = errors.New("a port was taken before it could listen")

// waitReady polls a readiness URL until it answers 200. A process that
// exits first is reported with the end of its log.
func waitReady(ctx context.Context, p *process, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return p.exitError()
		default:
		}
		if resp, err := http.Get(url); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		sleepCtx(ctx, 50*time.Millisecond)
	}
	return fmt.Errorf("%s not ready within 30s", p.name)
}

// idleRSS is the resident set of a process that has started, become ready
// and then had a second to settle.
func idleRSS(pid int) (int64, error) {
	time.Sleep(time.Second)
	s, err := readProc(pid)
	return s.RSS, err
}

// exitError says that p exited during startup, with the end of its log;
// it wraps errPortTaken when the log says a port was in use.
func (p *process) exitError() error {
	log, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Errorf("%s exited during startup; its log: %w", p.name, err)
	}
	tail := testenv.LastLines(string(log), 10)
	if strings.Contains(tail, "address already in use") {
		return fmt.Errorf("%s exited during startup: %w; its log ends:\n%s", p.name, errPortTaken, tail)
	}
	return fmt.Errorf("%s exited during startup; its log ends:\n%s", p.name, tail)
}

// logPath is where logFile writes the log of the process called name.
func (b *bench) logPath(name string) string {
	return filepath.Join(b.opts.logDir, name+".log")
}

// logFile opens the log of one process in the log directory.
func (b *bench) logFile(name string) io.Writer {
	f, err := os.Create(b.logPath(name))
	if err != nil {
		return io.Discard
	}
	b.logs = append(b.logs, f)
	return f
}

// statsOf reads the upstream's counters.
func statsOf(upstream *process) (map[string]int64, error) {
	resp, err := http.Get("http://" + upstream.addr + pathStats)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var stats map[string]int64
	return stats, json.NewDecoder(resp.Body).Decode(&stats)
}

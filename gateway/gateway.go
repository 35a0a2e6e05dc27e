// Package gateway is the data plane of one McpServer: it serves OAuth
// discovery metadata, verifies Clerk access tokens, enforces the access
// rules (who, by Clerk organization, email domain or user, may use the
// server and each tool) and scopes, and proxies MCP traffic (streamable
// HTTP, SSE included) to the upstream, with the upstream's own credentials
// (service keys from files, the caller's token at an OAuth provider).
//
// A Gateway has two handlers: Handler for MCP clients and HealthHandler for
// probes and metrics. Run serves both on the configured addresses and drains
// on cancellation.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync/atomic"
	"time"

	"github.com/mcpgate/mcpgate/clerk"
	"github.com/mcpgate/mcpgate/gateway/access"
	"github.com/mcpgate/mcpgate/gateway/config"
)

// Defaults for Options.
const (
	// DefaultShutdownDelay is how long the gateway command keeps serving
	// after SIGTERM while it reports unready: long enough for the
	// EndpointSlice, kube-proxy and the ingress controller to stop sending it
	// new requests, which would otherwise meet a closed port (502s in a
	// rollout, measured on a real node by test/cluster).
	DefaultShutdownDelay = 5 * time.Second
	// DefaultShutdownGrace, after DefaultShutdownDelay, fits inside
	// Kubernetes' default 30 s termination grace period, leaving time to
	// close what is left.
	DefaultShutdownGrace = 20 * time.Second
	// DefaultMaxBodyBytes bounds the request bodies the gateway reads to
	// apply its access rules and scope policy; JSON-RPC requests are far
	// smaller.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultDialTimeout bounds connecting to the upstream, so a dead
	// upstream gives a quick 502 rather than a hang.
	DefaultDialTimeout = 5 * time.Second
	// DefaultResponseHeaderTimeout bounds the wait for the upstream's
	// response headers. A stream is not bounded once its headers are in;
	// a tool that takes longer to answer with plain JSON needs more.
	DefaultResponseHeaderTimeout = 30 * time.Second
	// DefaultReadHeaderTimeout is how long a client may take to send a
	// request's headers.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultMetadataCacheTTL is how long Clerk's authorization server
	// metadata is served from memory before it is fetched again.
	DefaultMetadataCacheTTL = 10 * time.Minute
)

// Options tune a Gateway. Zero values take the defaults above.
type Options struct {
	// Logger receives one line per request and the gateway's own events;
	// nil logs nothing.
	Logger *slog.Logger
	// Now is the clock of token verification and metadata caching; nil
	// uses time.Now.
	Now func() time.Time
	// ShutdownDelay is how long Run goes on serving, unready, after its
	// context is cancelled and before it stops listening; zero stops at once.
	ShutdownDelay time.Duration
	// ShutdownGrace is how long Run lets in-flight requests finish once it
	// stops listening, before it closes the connections left.
	ShutdownGrace time.Duration
	// MaxBodyBytes is the largest request body accepted (413 beyond).
	MaxBodyBytes int64
	// DialTimeout bounds connecting to the upstream.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for the upstream's response
	// headers (504 beyond).
	ResponseHeaderTimeout time.Duration
	// Resolve maps an upstream host:port to the address to dial instead,
	// like curl's --resolve. For development only; empty does nothing.
	Resolve map[string]string
	// ClerkHTTPClient makes the calls to Clerk (Backend API, metadata);
	// nil uses one with short timeouts that follows no redirects.
	ClerkHTTPClient *http.Client
	// MetadataCacheTTL is how long fetched authorization server metadata
	// is served before it is fetched again.
	MetadataCacheTTL time.Duration
	// ReadHeaderTimeout bounds the wait for a request's headers, so that a
	// client trickling them (slowloris) cannot hold a connection.
	ReadHeaderTimeout time.Duration
	// AuditOutput receives the audit stream (audit.go), one JSON record a
	// line, unless the configuration turns it off; the gateway binary
	// passes stdout. Nil writes no audit stream.
	AuditOutput io.Writer
	// AuditBuffer is how many audit records may wait for AuditOutput
	// before new ones are dropped (and counted).
	AuditBuffer int
}

// withDefaults fills in the zero fields of o.
func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	setDefault(&o.ShutdownGrace, DefaultShutdownGrace)
	setDefault(&o.DialTimeout, DefaultDialTimeout)
	setDefault(&o.ResponseHeaderTimeout, DefaultResponseHeaderTimeout)
	setDefault(&o.MetadataCacheTTL, DefaultMetadataCacheTTL)
	setDefault(&o.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.AuditBuffer <= 0 {
		o.AuditBuffer = DefaultAuditBuffer
	}
	if o.ClerkHTTPClient == nil {
		o.ClerkHTTPClient = clerk.NewHTTPClient()
	}
	return o
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Route names, the route label of metrics and logs.
const (
	routeResourceMetadata = "protected_resource_metadata"
	routeASMetadata       = "authorization_server_metadata"
	routeOpenIDConfig     = "openid_configuration"
	routeMCP              = "mcp"
	routeNotFound         = "not_found"
)

// Gateway serves one McpServer. Create it with New; it is safe for
// concurrent use.
type Gateway struct {
	cfg     config.Config
	opts    Options
	log     *slog.Logger
	metrics *metrics
	// verifier checks every token, for whatever resource URL the request
	// names (see verifyToken).
	verifier *clerk.Verifier

	upstream *url.URL
	// dialUpstream opens the proxy's connections to the upstream.
	dialUpstream func(ctx context.Context, network, addr string) (net.Conn, error)
	publicURL    *url.URL // nil: the public URL is derived from each request
	// scopes are what every token needs; scopesSupported adds the tool
	// scopes, for the metadata; toolScopes is the step-up policy.
	scopes          []string
	scopesSupported []string
	toolScopes      map[string][]string
	allowedOrigins  map[string]bool
	// policy is the compiled access rules; people answers what they need
	// to know about a caller (nil when they need nothing).
	policy *access.Policy
	people people
	// broker, when set, answers in place of the Backend API: the verifier's
	// opaque lookups and people's misses go to it, with the caller's
	// access token, which requests then keep until their lookups are done.
	broker *brokerPeople
	// creds are what the gateway adds for the upstream's own
	// authentication; nil when nothing.
	creds *upstreamCredentials
	// metadataPaths are the paths serving protected resource metadata.
	metadataPaths map[string]bool
	// audit writes the audit stream; nil when there is none.
	audit *auditLog

	// tr records spans; nil when tracing is off (tracing.go).
	tr *gatewayTracer

	asMetadata *metadataCache
	mcp        http.Handler
	traffic    http.Handler
	health     http.Handler

	// ready latches once the verifier has fetched the signing keys and the
	// upstream has accepted a connection; draining is set when Run starts
	// shutting down.
	ready    atomic.Bool
	draining atomic.Bool
}

// New checks cfg and builds a Gateway. It makes no network call: Clerk's
// keys and metadata are fetched on first use, or by Run in the background.
func New(cfg config.Config, opts Options) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	g := &Gateway{
		cfg:            cfg,
		opts:           opts,
		log:            opts.Logger,
		metrics:        newMetrics(),
		scopes:         unique(cfg.Scopes),
		toolScopes:     map[string][]string{},
		allowedOrigins: map[string]bool{},
		policy:         access.Compile(cfg.Access),
		metadataPaths:  map[string]bool{config.WellKnownResourceMetadata: true, config.ResourceMetadataPath(cfg.Path): true},
		creds:          newUpstreamCredentials(cfg.Upstream.Credentials),
	}
	var err error
	if g.upstream, err = url.Parse(cfg.Upstream.URL); err != nil {
		return nil, fmt.Errorf("upstream url: %w", err)
	}
	if cfg.PublicURL != "" {
		if g.publicURL, err = url.Parse(cfg.PublicURL); err != nil {
			return nil, fmt.Errorf("public url: %w", err)
		}
		g.allowedOrigins[origin(g.publicURL.Scheme, g.publicURL.Host)] = true
		// Clients derive the metadata path from the URL they use, which
		// is the public one when a proxy in front rewrites the path.
		g.metadataPaths[config.ResourceMetadataPath(g.publicURL.Path)] = true
	}
	for _, o := range cfg.AllowedOrigins {
		u, err := url.Parse(o)
		if err != nil {
			return nil, fmt.Errorf("allowed origin %q: %w", o, err)
		}
		g.allowedOrigins[origin(u.Scheme, u.Host)] = true
	}
	// offline_access is for the client and the authorization server to
	// agree on, not a permission at the resource: it is neither required
	// of tokens nor named in challenges or metadata, where it would invite
	// clients to ask for refresh tokens they may not be allowed.
	if slices.Contains(g.scopes, offlineAccess) {
		g.log.Warn("Ignoring scope offline_access: it is no permission a resource can require")
		g.scopes = slices.DeleteFunc(g.scopes, isOfflineAccess)
	}
	supported := slices.Clone(g.scopes)
	for _, ts := range cfg.ToolScopes {
		g.toolScopes[ts.Tool] = slices.DeleteFunc(unique(append(g.toolScopes[ts.Tool], ts.Scopes...)), isOfflineAccess)
		supported = append(supported, ts.Scopes...)
	}
	g.scopesSupported = slices.DeleteFunc(unique(supported), isOfflineAccess)

	if g.tr, err = newGatewayTracer(cfg, g.log); err != nil {
		return nil, err
	}
	hc := *opts.ClerkHTTPClient
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hc.Transport = g.clerkTransport(clerkCallCounter{base: base, calls: g.metrics.clerkCalls})
	if cfg.Broker != nil {
		if g.broker, err = newBrokerPeople(*cfg.Broker, g.metrics.brokerCalls); err != nil {
			return nil, err
		}
		if g.tr != nil {
			g.broker.span = g.startBrokerSpan
		}
	}
	needPeople := g.policy.Needs().Any() || g.creds != nil && g.creds.user != nil
	if needPeople && cfg.Clerk.SecretKeyFile == "" && g.broker == nil {
		return nil, errors.New("access rules that need Clerk's facts about users, and upstream.credentials.userOAuthToken, " +
			"need clerk.secretKeyFile or broker: without either the gateway can verify JWTs only")
	}
	// No Audiences: each request names the resource it was sent to.
	verifierOpts := clerk.VerifierOptions{
		Issuer:        cfg.Clerk.Issuer,
		BackendAPIURL: cfg.Clerk.APIURL,
		HTTPClient:    &hc,
		Now:           opts.Now,
	}
	switch {
	case g.broker != nil:
		verifierOpts.Introspect = g.broker.introspect
	case cfg.Clerk.SecretKeyFile != "":
		verifierOpts.SecretKey = clerk.SecretKeyFromFile(cfg.Clerk.SecretKeyFile)
	}
	if g.verifier, err = clerk.NewVerifier(verifierOpts); err != nil {
		return nil, fmt.Errorf("create token verifier: %w", err)
	}
	g.asMetadata = newMetadataCache(cfg.Clerk.Issuer, &hc, opts.Now, opts.MetadataCacheTTL, g.log)
	if needPeople {
		// The same counted client as the verifier's, so that lookups show
		// in mcpgate_gateway_clerk_calls_total (through a broker, in
		// mcpgate_gateway_broker_calls_total). Without an access block
		// (only a user token to look up) the directory's default TTL
		// applies; tokens with an expiry are kept until shortly before it.
		var ttl time.Duration
		if cfg.Access != nil {
			ttl = time.Duration(cfg.Access.CacheTTLSeconds) * time.Second
		}
		dirOpts := clerk.DirectoryOptions{HTTPClient: &hc, Now: opts.Now, TTL: ttl}
		if g.broker != nil {
			dirOpts.Source = g.broker
		} else {
			dirOpts.BackendAPIURL, dirOpts.SecretKey = cfg.Clerk.APIURL, verifierOpts.SecretKey
		}
		dir, err := clerk.NewDirectory(dirOpts)
		if err != nil {
			return nil, fmt.Errorf("create clerk directory: %w", err)
		}
		g.people = dir
	}

	if opts.AuditOutput != nil && !cfg.Audit.Disabled {
		g.audit = newAuditLog(opts.AuditOutput, opts.AuditBuffer, g.metrics.auditDropped)
	}
	g.dialUpstream = g.upstreamDialer()
	g.mcp = g.mcpPipeline(g.newProxy())
	g.traffic = g.withRequestInfo(g.annotateRequest(g.timeRequests(http.HandlerFunc(g.route))))
	g.health = g.newHealthHandler()
	return g, nil
}

// mcpPipeline is the order every request to the MCP endpoint goes through,
// outermost first. Nothing reaches the upstream that has not passed them all.
func (g *Gateway) mcpPipeline(proxy http.Handler) http.Handler {
	strip := stripInbound(g.creds.strippedNames())
	return chain(proxy,
		g.auditRequests,                        // one audit record per decision that matters, once the request is done
		g.checkOrigin,                          // 403 for a foreign Origin; CORS headers and preflight
		allowMethods,                           // POST, GET, DELETE; 405 otherwise
		strip,                                  // client-sent identity and credential headers, cookies
		g.extractToken,                         // the bearer token of the one Authorization header, never the query
		g.traceStep(spanVerify, g.verifyToken), // Clerk: 401 invalid, 503 unavailable
		g.parseRequest,                         // the body read once: methods, ids, tools; 400/413 for bodies it cannot judge
		g.traceStep(spanIdentify, g.identify),  // Clerk: the user and memberships the access rules need; 503 unavailable
		g.traceStep(spanAccess, g.applyAccess), // 403 JSON-RPC access denied: outside the server's or the tool's allow
		g.traceStep(spanScopes, g.applyScopePolicy), // 403 insufficient_scope, to step up
		g.checkMcpHeaders, // 400 JSON-RPC HeaderMismatch: Mcp-Method/Mcp-Name disagree with the body
		g.traceStep(spanCredentials, g.credentials), // the upstream's credentials, for the proxy to set; 503 without one
		g.admit,           // counted as allowed
		injectIdentity,    // who is calling, for the upstream
		g.filterToolsList, // tools/list results without the tools the caller may not call
	)
}

// chain wraps h in mws so that mws[0] sees the request first.
func chain(h http.Handler, mws ...func(http.Handler) http.Handler) http.Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// Handler serves MCP clients: the metadata documents and the MCP endpoint.
func (g *Gateway) Handler() http.Handler { return g.traffic }

// HealthHandler serves /healthz, /readyz and /metrics.
func (g *Gateway) HealthHandler() http.Handler { return g.health }

// route dispatches on the exact path. A ServeMux is not used: it would
// clean paths and redirect, and read a configured path as a pattern.
func (g *Gateway) route(w http.ResponseWriter, r *http.Request) {
	ri := infoFrom(r.Context())
	switch p := r.URL.Path; {
	case p == g.cfg.Path:
		ri.route = routeMCP
		g.mcp.ServeHTTP(w, r)
	case g.metadataPaths[p]:
		ri.route = routeResourceMetadata
		g.serveResourceMetadata(w, r)
	case p == wellKnownAS:
		ri.route = routeASMetadata
		g.serveASMetadata(w, r, wellKnownAS)
	case p == wellKnownOpenID:
		ri.route = routeOpenIDConfig
		g.serveASMetadata(w, r, wellKnownOpenID)
	default:
		writePlain(w, http.StatusNotFound, "404 not found")
	}
}

const offlineAccess = "offline_access"

func isOfflineAccess(s string) bool { return s == offlineAccess }

// unique returns ss without empty strings and repeats, in first-seen order.
func unique(ss []string) []string {
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

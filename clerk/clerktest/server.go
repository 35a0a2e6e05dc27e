package clerktest

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/mcpgate/mcpgate/internal/netaddr"
)

// maxKeys is how many keys the JWKS serves: the signing key and the one it
// replaced, so tokens signed just before a rotation still verify.
const maxKeys = 2

// Server is one emulated Clerk instance. All methods are safe for concurrent use.
type Server struct {
	// Fixed at start.
	fixed
	frontendURL    string
	backendURL     string
	publishableKey string
	secretKey      string
	instanceID     string
	mintClientID   string // the client_id of tokens minted without one
	sessionID      string // the user's browser session, the sid of tokens from the authorization flow

	// mu guards the instance state below.
	mu            sync.Mutex
	settings      OAuthApplicationSettings
	keys          []*signingKey // keys[0] signs; the JWKS serves all
	clients       map[string]*client
	codes         map[string]*authCode
	opaque        map[string]*accessRecord // by token value
	jwtRevoked    map[string]string        // jti → reason; recorded only
	refreshTokens map[string]*refreshRecord

	// faultMu guards faults and the call counters.
	faultMu   sync.Mutex
	faults    map[string]Fault
	calls     map[string]int // by endpoint: "METHOD /path" or a route's pattern
	pathCalls map[string]int // by concrete "METHOD /path" of routes with path parameters

	// roles are the instance's organization roles and their permissions;
	// fixed at start.
	roles map[string][]string
	// peopleMu guards people: users, email addresses, organizations and
	// memberships.
	peopleMu sync.Mutex
	people   directory

	// lifeMu guards closed; inflight counts running handlers, so Close can
	// wait for them (like httptest.Server.Close) and no observer runs after it.
	lifeMu    sync.Mutex
	closed    bool
	inflight  sync.WaitGroup
	cancel    context.CancelFunc
	frontend  *http.Server
	backend   *http.Server
	closeOnce sync.Once
}

// NewServer starts an emulator on two loopback ports chosen by the kernel.
// Like httptest.NewServer, it panics if it cannot listen.
func NewServer(opts ...Option) *Server {
	s, err := Start("127.0.0.1:0", "127.0.0.1:0", opts...)
	if err != nil {
		panic(fmt.Sprintf("clerktest: %v", err))
	}
	return s
}

// Start starts an emulator with its Frontend API on frontendAddr and its
// Backend API on backendAddr (host:port; port 0 picks one).
func Start(frontendAddr, backendAddr string, opts ...Option) (*Server, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	key, err := newSigningKey()
	if err != nil {
		return nil, err
	}
	feLn, err := net.Listen("tcp", frontendAddr)
	if err != nil {
		return nil, fmt.Errorf("listen for the frontend api: %w", err)
	}
	beLn, err := net.Listen("tcp", backendAddr)
	if err != nil {
		_ = feLn.Close()
		return nil, fmt.Errorf("listen for the backend api: %w", err)
	}
	scheme := "http"
	if o.tls != nil {
		scheme = "https"
		feLn, beLn = tls.NewListener(feLn, o.tls), tls.NewListener(beLn, o.tls)
	}
	feHost := advertisedHost(feLn.Addr(), scheme, o.hostname)
	f := o.fixed
	f.customScopes = slices.Clone(f.customScopes)
	f.metadata = f.metadata.withDefaults()
	s := &Server{
		fixed:          f,
		frontendURL:    scheme + "://" + feHost,
		backendURL:     scheme + "://" + advertisedHost(beLn.Addr(), scheme, o.hostname) + "/v1",
		publishableKey: "pk_test_" + base64.StdEncoding.EncodeToString([]byte(feHost+"$")),
		secretKey:      "sk_test_" + randomBase62(40),
		instanceID:     key.kid,
		mintClientID:   newID("client_"),
		sessionID:      newID("sess_"),
		settings:       o.settings.clone(),
		keys:           []*signingKey{key},
		clients:        map[string]*client{},
		codes:          map[string]*authCode{},
		opaque:         map[string]*accessRecord{},
		jwtRevoked:     map[string]string{},
		refreshTokens:  map[string]*refreshRecord{},
		faults:         map[string]Fault{},
		calls:          map[string]int{},
		pathCalls:      map[string]int{},
		roles:          cloneRoles(o.roles),
		people:         newDirectory(),
	}
	// The user who signs in by default exists, with a verified address, so
	// that the Backend API knows the subject of every token a test mints.
	if _, err := s.CreateUser(UserParams{ID: o.user.ID, Emails: nonEmpty(o.user.Email)}); err != nil {
		_ = feLn.Close()
		_ = beLn.Close()
		return nil, fmt.Errorf("create the default user: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.frontend = s.newHTTPServer(ctx, s.frontendHandler())
	s.backend = s.newHTTPServer(ctx, s.backendHandler())
	go func() { _ = s.frontend.Serve(feLn) }()
	go func() { _ = s.backend.Serve(beLn) }()
	s.logger.Info("Started Clerk emulator", "frontendAPIURL", s.frontendURL, "backendAPIURL", s.backendURL)
	return s, nil
}

// advertisedHost is the host[:port] of the URLs for a listener: its address,
// or hostname with its port, which is left out when it is the scheme's
// default.
func advertisedHost(addr net.Addr, scheme, hostname string) string {
	host := netaddr.Advertised(addr)
	if hostname == "" {
		return host
	}
	_, port, err := net.SplitHostPort(host)
	if err != nil || (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		return hostname
	}
	return net.JoinHostPort(hostname, port)
}

// newHTTPServer wraps h so that Close can wait for it, and gives every
// request a context that Close cancels (ending injected latency at once).
func (s *Server) newHTTPServer(ctx context.Context, h http.Handler) *http.Server {
	return &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !s.enter() {
				panic(http.ErrAbortHandler)
			}
			defer s.inflight.Done()
			h.ServeHTTP(w, r)
		}),
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ReadHeaderTimeout: 10 * time.Second,
		// Dropped connections (Outage faults, clients giving up) are
		// expected here; keep them out of test output.
		ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelError),
	}
}

// enter registers a running handler unless the server is closing.
func (s *Server) enter() bool {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.closed {
		return false
	}
	s.inflight.Add(1)
	return true
}

// Close stops both listeners, drops open connections, and waits for running
// handlers to return. It is safe to call more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.lifeMu.Lock()
		s.closed = true
		s.lifeMu.Unlock()
		s.cancel()
		_ = s.frontend.Close()
		_ = s.backend.Close()
		s.inflight.Wait()
		s.logger.Info("Stopped Clerk emulator")
	})
}

// FrontendAPIURL is the Frontend API's base URL, "http://127.0.0.1:PORT". It
// is the token issuer (iss) and the authorization server's identifier.
func (s *Server) FrontendAPIURL() string { return s.frontendURL }

// BackendAPIURL is the Backend API's base URL including the version,
// "http://127.0.0.1:PORT/v1", for clerk.BackendConfig.URL and similar.
func (s *Server) BackendAPIURL() string { return s.backendURL }

// PublishableKey is "pk_test_" and the base64 of "<frontend host:port>$".
// Real keys carry no port and imply https, so code that derives the issuer
// from a publishable key must be given FrontendAPIURL explicitly instead.
func (s *Server) PublishableKey() string { return s.publishableKey }

// SecretKey is the Backend API key ("sk_test_..."). Every Backend API
// request must carry it as "Authorization: Bearer <key>".
func (s *Server) SecretKey() string { return s.secretKey }

// InstanceID is the instance's ID ("ins_..."), as userinfo reports it. It
// is also the kid of the first signing key, as at Clerk.
func (s *Server) InstanceID() string { return s.instanceID }

// KeyID is the kid of the current signing key.
func (s *Server) KeyID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[0].kid
}

// RotateKeys makes a new RSA key, with a new kid, the signing key. The JWKS
// keeps serving the previous key so that tokens already issued still verify;
// the key before that is dropped.
func (s *Server) RotateKeys() {
	key, err := newSigningKey()
	if err != nil {
		panic(fmt.Sprintf("clerktest: %v", err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append([]*signingKey{key}, s.keys[:min(len(s.keys), maxKeys-1)]...)
}

// signingKeys returns the current key and every key the JWKS serves.
func (s *Server) signingKeys() (current *signingKey, all []*signingKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[0], slices.Clone(s.keys)
}

// jwks returns the public keys, the signing key first.
func (s *Server) jwks() jwks {
	_, keys := s.signingKeys()
	out := jwks{Keys: make([]jwk, 0, len(keys))}
	for _, k := range keys {
		out.Keys = append(out.Keys, k.publicJWK())
	}
	return out
}

// Settings returns the instance's OAuth application settings.
func (s *Server) Settings() OAuthApplicationSettings {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.settings.clone()
}

// SetSettings replaces the instance's OAuth application settings, as a
// Dashboard edit would; it is not counted as a Backend API call.
func (s *Server) SetSettings(o OAuthApplicationSettings) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settings = o.clone()
}

// knownScopes are the scopes clients may request: built-in, custom, and any
// default scope an admin configured.
func (s *Server) knownScopes(settings OAuthApplicationSettings) []string {
	known := append(BuiltinScopes(), s.customScopes...)
	for _, sc := range settings.defaultScopes() {
		if !slices.Contains(known, sc) {
			known = append(known, sc)
		}
	}
	return known
}

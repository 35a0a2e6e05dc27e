package clerktest

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

const (
	// DefaultUserID is the ID of the user who signs in unless WithUser says
	// otherwise. It has the shape of a real Clerk user ID ("user_" and 27
	// word characters), which the Backend API spec requires of a token's
	// subject, so responses that carry it still validate against the spec.
	DefaultUserID = "user_2mcpgateTestUser00000000000"
	// DefaultUserEmail is the email address of the default user.
	DefaultUserEmail = "test@example.com"
	// DefaultAccessTokenTTL is how long access tokens live unless
	// WithAccessTokenTTL says otherwise. Real Clerk issues them for a day; an
	// hour keeps expiry reachable in tests that move a clock.
	DefaultAccessTokenTTL = time.Hour
)

// User is a user of the instance: the default user who signs in at the
// authorization endpoint (WithUser), or one made with CreateUser.
type User struct {
	// ID is the user ID ("user_...").
	ID string
	// Email is the primary email address; "" if the user has none.
	Email string
}

// Exchange is one Backend API request and the response the emulator gave,
// handed to the WithObserver callback (for example to validate both against
// Clerk's OpenAPI spec). Request's body has already been read; RequestBody
// holds it, and Request.Body reads it again.
type Exchange struct {
	Request      *http.Request
	RequestBody  []byte
	Status       int
	Header       http.Header
	ResponseBody []byte
}

// Option configures a Server.
type Option func(*options)

// options is what the Option functions fill in; NewServer and Start read it once.
type options struct {
	fixed
	settings OAuthApplicationSettings
	roles    map[string][]string
}

// fixed are the options a Server keeps as they are for its lifetime; the
// others seed its settings and roles.
type fixed struct {
	user         User
	autoConsent  bool
	accessTTL    time.Duration
	now          func() time.Time
	observer     func(Exchange)
	customScopes []string
	logger       *slog.Logger
	scopeRule    ClientScopeRule
	metadata     metadataFetch
	tls          *tls.Config
	hostname     string
}

func defaultOptions() options {
	return options{
		settings: OAuthApplicationSettings{
			DynamicOAuthClientRegistration: true,
			OAuthJWTAccessTokens:           true,
		},
		fixed: fixed{
			user:        User{ID: DefaultUserID, Email: DefaultUserEmail},
			autoConsent: true,
			accessTTL:   DefaultAccessTokenTTL,
			now:         time.Now,
			logger:      slog.New(slog.DiscardHandler),
			scopeRule:   ScopesOfRegistration,
			metadata:    metadataFetch{timeout: DefaultClientMetadataTimeout},
		},
		roles: DefaultOrganizationRoles(),
	}
}

// WithTLS serves both APIs over TLS with cfg (which must hold the
// certificate), so their URLs, the issuer among them, are https. A cluster
// test needs it: an McpServer takes a plain-http issuer only on loopback, and
// a gateway in a pod reaches the emulator on the node's address.
func WithTLS(cfg *tls.Config) Option {
	return func(o *options) { o.tls = cfg }
}

// WithHostname makes the URLs the emulator hands out, the issuer among them,
// name the emulator by host name rather than by its listening address (with
// the listening port, left out when it is the scheme's default), as real
// Clerk's do. Clients must then resolve name to the listening address. MCP
// clients refuse an authorization server at a private IP address, which is
// where a cluster test's pods reach the node.
func WithHostname(name string) Option {
	return func(o *options) { o.hostname = name }
}

// WithJWTAccessTokens sets the initial oauth_jwt_access_tokens setting:
// true issues JWT access tokens (the default), false opaque "oat_" tokens.
func WithJWTAccessTokens(on bool) Option {
	return func(o *options) { o.settings.OAuthJWTAccessTokens = on }
}

// WithDynamicClientRegistration sets the initial
// dynamic_oauth_client_registration setting (default true).
func WithDynamicClientRegistration(on bool) Option {
	return func(o *options) { o.settings.DynamicOAuthClientRegistration = on }
}

// WithClientMetadataDocuments sets the initial
// client_id_metadata_documents_advertised setting (default false, as at
// Clerk): whether the instance accepts client ID metadata document clients
// and says so in its authorization server metadata.
func WithClientMetadataDocuments(on bool) Option {
	return func(o *options) { o.settings.ClientIDMetadataDocumentsAdvertised = on }
}

// WithUser sets the user who signs in. Empty fields keep their defaults.
func WithUser(u User) Option {
	return func(o *options) {
		if u.ID != "" {
			o.user.ID = u.ID
		}
		if u.Email != "" {
			o.user.Email = u.Email
		}
	}
}

// WithAutoConsent decides what the user does on the consent screen: true
// (the default) grants at once; false denies, so the authorization endpoint
// redirects back with error=access_denied.
func WithAutoConsent(on bool) Option {
	return func(o *options) { o.autoConsent = on }
}

// WithAccessTokenTTL sets the lifetime of issued access tokens (default 1h).
func WithAccessTokenTTL(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.accessTTL = d
		}
	}
}

// WithClock replaces time.Now, so tests can expire codes and tokens without
// sleeping. The function must be safe for concurrent use.
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}

// WithObserver registers a function called after every Backend API exchange
// that produced a response (faulted and refused ones included; an Outage
// produces none). It runs on the request's goroutine before the response is
// complete, so a client that has read a whole response knows the observer
// has seen it; it must be safe for concurrent use and quick.
func WithObserver(fn func(Exchange)) Option {
	return func(o *options) { o.observer = fn }
}

// WithScopes adds custom scopes to the instance, as a Clerk Dashboard admin
// would. Clients may then request them next to the built-in scopes; any other
// scope is refused with invalid_scope.
func WithScopes(scopes ...string) Option {
	return func(o *options) { o.customScopes = append(o.customScopes, scopes...) }
}

// WithLogger logs one line per request (method, path, status, duration; never
// a token or secret). By default nothing is logged.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithOrganizationRoles replaces the instance's organization roles: each
// role key ("org:admin", "org:billing") with the permission keys it grants,
// which memberships report in permissions. Memberships may only use these
// roles. The default is DefaultOrganizationRoles; to add a custom role,
// start from it. An organization's creator gets org:admin, so without that
// role organizations can only be created without created_by.
func WithOrganizationRoles(roles map[string][]string) Option {
	return func(o *options) { o.roles = cloneRoles(roles) }
}

// ClientScopeRule says which scopes a dynamically registered client may
// request at the authorization endpoint. Whether Clerk holds such clients to
// the scope they registered with is unconfirmed, and MCP clients that
// register once and step up later (the TypeScript SDK) work only if it does
// not; the rule is a choice so that tests can cover both answers.
type ClientScopeRule int

const (
	// ScopesOfRegistration holds a client registered with a scope to that
	// scope, RFC 7591's meaning of the registered "scope" (the default). A
	// wider request is refused with invalid_scope ("scope not allowed for
	// this client").
	ScopesOfRegistration ClientScopeRule = iota
	// ScopesOfInstance lets a registered client request any scope the
	// instance knows (built-in, WithScopes, default scopes), as if its
	// registered scope were only the default for a request that names none.
	ScopesOfInstance
)

// String is the rule's name as the clerk-emulator flag spells it.
func (r ClientScopeRule) String() string {
	switch r {
	case ScopesOfRegistration:
		return "registered"
	case ScopesOfInstance:
		return "instance"
	}
	return fmt.Sprintf("ClientScopeRule(%d)", int(r))
}

// ParseClientScopeRule reads a rule by the name String gives it.
func ParseClientScopeRule(name string) (ClientScopeRule, error) {
	for _, r := range []ClientScopeRule{ScopesOfRegistration, ScopesOfInstance} {
		if r.String() == name {
			return r, nil
		}
	}
	return 0, fmt.Errorf("unknown client scope rule %q (want registered or instance)", name)
}

// WithClientScopeRule sets the rule for the scopes of dynamically registered
// clients (default ScopesOfRegistration). It does not touch clients added
// with AddClient, whose Scopes an administrator chose and which always hold,
// nor client ID metadata document clients, which have no registered scope.
// Refreshing never widens a grant, whatever the rule.
func WithClientScopeRule(r ClientScopeRule) Option {
	return func(o *options) { o.scopeRule = r }
}

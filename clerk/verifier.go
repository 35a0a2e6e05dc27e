package clerk

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"
)

// TokenFormat tells which of Clerk's two access token formats a token has,
// judged by its shape alone (see FormatOf).
type TokenFormat string

const (
	// FormatJWT is a signed JWT access token, verified locally.
	FormatJWT TokenFormat = "jwt"
	// FormatOpaque is an "oat_" token, verified by the Backend API.
	FormatOpaque TokenFormat = "opaque"
	// FormatOther is neither shape; Verify refuses it unread.
	FormatOther TokenFormat = "other"
)

// FormatOf classifies token by its shape, as Verify does to pick how to
// verify it; it says nothing of validity. Callers use it to label what
// they measure with the same verdict the verifier acts on.
func FormatOf(token string) TokenFormat {
	switch {
	case strings.HasPrefix(token, opaquePrefix):
		return FormatOpaque
	case strings.Count(token, ".") == 2:
		return FormatJWT
	default:
		return FormatOther
	}
}

// Identity is who a verified access token speaks for.
type Identity struct {
	// UserID is the token's subject (a Clerk user id, "user_...").
	UserID string
	// ClientID is the OAuth client the token was issued to.
	ClientID string
	// Scopes are the granted scopes.
	Scopes []string
	// ExpiresAt is when the token expires; zero if Clerk reported none.
	ExpiresAt time.Time
	// TokenID is the token's id (the JWT's jti, or the opaque token's id);
	// safe to log, unlike the token.
	TokenID string
	// Format is the token's format.
	Format TokenFormat
}

// Defaults for VerifierOptions.
const (
	// DefaultLeeway absorbs clock skew between Clerk and the gateway. Clerk's
	// own SDKs default to 5 s; twice that tolerates a node whose NTP is a
	// little behind without keeping an expired day-long token alive long.
	DefaultLeeway = 10 * time.Second
	// DefaultJWKSRefreshInterval is the least time between two JWKS
	// fetches caused by tokens with an unknown kid, so forged kids cannot
	// turn into a request flood against Clerk.
	DefaultJWKSRefreshInterval = time.Minute
	// DefaultJWKSMaxAge is how long a fetched key set is used before it is
	// refreshed in the background, so a key Clerk withdrew stops working.
	DefaultJWKSMaxAge = time.Hour
	// DefaultOpaqueCacheTTL bounds how long a revoked opaque token can keep
	// working: the verdict is reused at most this long.
	DefaultOpaqueCacheTTL = time.Minute
	// DefaultNegativeCacheTTL keeps a client retrying a bad token from
	// costing one Backend API call per request.
	DefaultNegativeCacheTTL = 10 * time.Second
	// DefaultJWTCacheTTL bounds how long a checked JWT signature is reused.
	DefaultJWTCacheTTL = 5 * time.Minute
	// DefaultMaxCacheEntries bounds each verdict cache.
	DefaultMaxCacheEntries = 10000
	// MaxTokenLength is the longest token looked at; Clerk's are well under
	// 2 KiB, and anything longer is refused before any parsing.
	MaxTokenLength = 8 << 10
)

// VerifierOptions configures a Verifier. Zero values take the defaults above;
// a negative OpaqueCacheTTL or NegativeCacheTTL turns that cache off.
type VerifierOptions struct {
	// Issuer is the exact iss a JWT access token must carry: the instance's
	// Frontend API URL (see IssuerFromPublishableKey). The key set JWTs are
	// checked against is fetched from it, at /.well-known/jwks.json.
	Issuer string
	// BackendAPIURL is the Backend API base, e.g. https://api.clerk.com/v1;
	// required with SecretKey, unused without.
	BackendAPIURL string
	// SecretKey returns the secret key; it is called before each Backend API
	// call, so a rotated key is picked up (see SecretKeyFromFile). Only
	// opaque tokens need it: nil makes a verifier for JWTs alone, which
	// answers an opaque token with ErrNoSecretKey.
	SecretKey func(ctx context.Context) (string, error)
	// Introspect, when set, verifies opaque tokens in place of the Backend
	// API (the key broker, which holds the secret key so that the caller
	// does not); SecretKey is then nil. Its verdicts are cached and its
	// concurrent lookups collapsed exactly as the Backend API's: an
	// *InvalidTokenError is a verdict (negatively cached, its Reason kept),
	// any other error a failure to ask (an *UnavailableError, never cached).
	Introspect func(ctx context.Context, token string) (Identity, error)
	// Audiences are the aud values accepted when a Verify call names none
	// (see WithAudience): this resource's URL, for a server with one fixed
	// URL. A JWT without aud is accepted; a JWT with aud must name one of
	// these.
	Audiences []string
	// HTTPClient makes the calls to Clerk (the key set from the Frontend
	// API, opaque lookups from the Backend API); nil uses NewHTTPClient.
	HTTPClient *http.Client
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
	// Leeway is the clock skew allowed on exp, nbf and iat.
	Leeway time.Duration
	// JWKSRefreshInterval is the least time between JWKS fetches caused by
	// an unknown kid.
	JWKSRefreshInterval time.Duration
	// JWKSMaxAge is how long a key set is trusted before a background refresh.
	JWKSMaxAge time.Duration
	// OpaqueCacheTTL is the longest a positive opaque verdict is reused; it
	// is never reused past the token's expiration.
	OpaqueCacheTTL time.Duration
	// NegativeCacheTTL is how long an "invalid" opaque verdict is reused.
	NegativeCacheTTL time.Duration
	// JWTCacheTTL is the longest a JWT's checked signature is reused: the
	// RSA verification is most of a JWT's cost, and a client sends the same
	// token many times. The claims (expiry included) are still checked on
	// every use, and only while the signing key is still served.
	JWTCacheTTL time.Duration
	// MaxCacheEntries bounds each verdict cache.
	MaxCacheEntries int
}

// ErrNoSecretKey is why a verifier made without a secret key cannot check
// an opaque token. It comes wrapped in an *UnavailableError (503 with
// Retry-After), not as an *InvalidTokenError (401): the token may well be
// good, and a 401 would send the client to sign in again, only for the same
// instance to hand it another opaque token, a loop no one at the client can
// break. The fix is the operator's (a secret key, or JWT access tokens for
// the instance: oauth_jwt_access_tokens), so the refusal is logged and
// counted as the server's failure, where the operator looks. Either way
// the token is refused. A malformed "oat_" token is still invalid.
var ErrNoSecretKey = errors.New("opaque access tokens are verified through the Backend API, and this verifier has no secret key")

// noSecretKey is the SecretKey of a verifier made without one: opaque
// lookups then fail as a missing key file does, as unavailability.
func noSecretKey(context.Context) (string, error) { return "", ErrNoSecretKey }

// Verifier checks Clerk OAuth access tokens: JWTs locally against the
// instance's public key set from its Frontend API, opaque tokens through
// the Backend API (or VerifierOptions.Introspect). It is safe for concurrent use; create one per gateway
// and keep it.
type Verifier struct {
	opts    VerifierOptions
	backend backend
	// http fetches the key set; jwksURL is where, under the issuer.
	http    *http.Client
	jwksURL string
	keys    *keySet
	opaque  *verdictCache[tokenHash, verdict]
	signed  *verdictCache[tokenHash, signedJWT]
	// flights collapses concurrent lookups of one opaque token, keyed by
	// the token's raw SHA-256.
	flights singleflight.Group
	// limit classifies failed Backend API calls; after a 429, opaque
	// lookups that miss the cache fail fast until Retry-After has passed.
	// The key set keeps its own back-off: it comes from the Frontend API.
	limit *backoff
}

// NewVerifier checks opts, fills in defaults and returns a Verifier. It makes
// no network call: the JWKS is fetched on first use.
func NewVerifier(opts VerifierOptions) (*Verifier, error) {
	if err := checkAbsoluteURL(opts.Issuer); err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	issuer, err := url.Parse(opts.Issuer)
	if err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	if opts.SecretKey != nil && opts.Introspect != nil {
		return nil, errors.New("a secret key and an introspection source are mutually exclusive")
	}
	if opts.SecretKey != nil || opts.BackendAPIURL != "" {
		if err := checkAbsoluteURL(opts.BackendAPIURL); err != nil {
			return nil, fmt.Errorf("backend api url: %w", err)
		}
	}
	if opts.SecretKey == nil {
		opts.SecretKey = noSecretKey
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = NewHTTPClient()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	setDefault(&opts.Leeway, DefaultLeeway)
	setDefault(&opts.JWKSRefreshInterval, DefaultJWKSRefreshInterval)
	setDefault(&opts.JWKSMaxAge, DefaultJWKSMaxAge)
	setDefault(&opts.OpaqueCacheTTL, DefaultOpaqueCacheTTL)
	setDefault(&opts.NegativeCacheTTL, DefaultNegativeCacheTTL)
	setDefault(&opts.JWTCacheTTL, DefaultJWTCacheTTL)
	if opts.MaxCacheEntries <= 0 {
		opts.MaxCacheEntries = DefaultMaxCacheEntries
	}
	opts.Audiences = append([]string(nil), opts.Audiences...)
	v := &Verifier{
		opts:    opts,
		backend: newBackend(opts.BackendAPIURL, opts.HTTPClient),
		http:    opts.HTTPClient,
		jwksURL: issuer.JoinPath(jwksPath).String(),
		opaque:  newVerdictCache[tokenHash, verdict](opts.MaxCacheEntries),
		signed:  newVerdictCache[tokenHash, signedJWT](opts.MaxCacheEntries),
		limit:   &backoff{now: opts.Now},
	}
	v.keys = &keySet{
		fetch:   v.frontendKeys,
		now:     opts.Now,
		refresh: opts.JWKSRefreshInterval,
		maxAge:  opts.JWKSMaxAge,
	}
	return v, nil
}

// VerifyOption adjusts one Verify call; WithAudience makes one. It is a
// plain value rather than a function so that passing options costs the hot
// path no allocation.
type VerifyOption struct {
	audiences    []string
	setAudiences bool
}

// WithAudience makes the call accept a JWT whose aud names one of auds, in
// place of VerifierOptions.Audiences: for a resource whose URL depends on
// the request. A JWT without aud is still accepted. Opaque tokens carry no
// audience Clerk reports, so it does not apply to them. One key set and one
// signature cache serve every audience: only the claim check differs.
func WithAudience(auds ...string) VerifyOption {
	return VerifyOption{audiences: auds, setAudiences: true}
}

// Verify checks token and returns its identity. Errors are
// *InvalidTokenError (answer 401) or *UnavailableError (answer 503 with
// Retry-After); on any error the token must be treated as not valid. A
// cancelled ctx gives an *UnavailableError wrapping ctx.Err(), and an
// opaque token without a secret key one wrapping ErrNoSecretKey.
func (v *Verifier) Verify(ctx context.Context, token string, opts ...VerifyOption) (Identity, error) {
	switch {
	case token == "":
		return Identity{}, invalid("empty token")
	case len(token) > MaxTokenLength:
		return Identity{}, invalid("token too long")
	}
	switch FormatOf(token) {
	case FormatOpaque:
		return v.verifyOpaque(ctx, token)
	case FormatJWT:
		audiences := v.opts.Audiences
		for _, o := range opts {
			if o.setAudiences {
				audiences = o.audiences
			}
		}
		return v.verifyJWT(ctx, token, audiences)
	default:
		return Identity{}, invalid("unrecognized token format")
	}
}

// Ready reports whether the verifier can check JWTs without first waiting
// on Clerk: nil once it holds a key set from the Frontend API, which it then
// keeps through later outages. It needs no secret key, and says nothing of
// the Backend API. Until then it fetches one, through the same rate-limited,
// collapsed path as tokens, and returns the *UnavailableError of the
// failure; so asking often costs Clerk nothing.
func (v *Verifier) Ready(ctx context.Context) error {
	return v.keys.ready(ctx)
}

// waitFlight waits for a collapsed call, or for ctx to end. The call itself
// runs on a context detached from any one caller, so a client hanging up
// does not fail the lookup for everyone sharing it.
func waitFlight[T any](ctx context.Context, ch <-chan singleflight.Result) (T, error) {
	var zero T
	select {
	case <-ctx.Done():
		return zero, &UnavailableError{RetryAfter: retryTransient, Err: ctx.Err()}
	case r := <-ch:
		if r.Err != nil {
			return zero, r.Err
		}
		return r.Val.(T), nil
	}
}

// flightTimeout bounds a collapsed call, which no caller's context bounds.
const flightTimeout = 15 * time.Second

// detached returns a context for a collapsed call: ctx's values, none of its
// cancellation, and flightTimeout.
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), flightTimeout)
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

func checkAbsoluteURL(s string) error {
	if s == "" {
		return errors.New("is required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("parse: %w", err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return nil
}

package broker

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	authnclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
)

// Caller is the ServiceAccount a request to the broker comes from.
type Caller struct {
	Namespace string
	Name      string
}

func (c Caller) String() string { return c.Namespace + "/" + c.Name }

// Authenticator turns the bearer token of a request into its Caller. An
// error wrapping ErrUnauthenticated refuses the caller (401); any other error
// means the broker cannot tell right now (503), and the request is refused
// too.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (Caller, error)
}

// ErrUnauthenticated means the caller's token is not a valid ServiceAccount
// token for the broker's audience.
var ErrUnauthenticated = errors.New("caller is not authenticated")

// Defaults of TokenReviewOptions.
const (
	// DefaultReviewTTL is how long a positive review is reused. A token
	// revoked by deleting its ServiceAccount or its pod keeps working at
	// most this long (the API server's own webhook token cache holds
	// positives for 2 minutes).
	DefaultReviewTTL = 30 * time.Second
	// DefaultReviewNegativeTTL is how long a refusal is reused, so a caller
	// retrying a bad token does not cost one TokenReview per request.
	DefaultReviewNegativeTTL = 5 * time.Second
	// DefaultReviewMaxEntries bounds the review cache; there is one entry
	// per gateway pod's current token.
	DefaultReviewMaxEntries = 4096
	// maxCallerTokenLength refuses something that cannot be a
	// ServiceAccount token before it reaches the API server.
	maxCallerTokenLength = 16 << 10
	// reviewTimeout bounds one TokenReview, which no caller's context may
	// bound (it is shared by concurrent callers).
	reviewTimeout = 10 * time.Second
	// serviceAccountPrefix starts the user name the API server gives a
	// ServiceAccount token.
	serviceAccountPrefix = "system:serviceaccount:"
)

// TokenReviewOptions configures a TokenReviewAuthenticator.
type TokenReviewOptions struct {
	// Client creates TokenReviews (kubernetes.Interface.AuthenticationV1());
	// the broker's own ServiceAccount needs "create tokenreviews", as
	// granted by the system:auth-delegator ClusterRole.
	Client authnclient.TokenReviewsGetter
	// Audience is the audience tokens must be issued for; Audience when
	// empty.
	Audience string
	// TTL, NegativeTTL and MaxEntries: the Default* constants when zero. A
	// negative TTL or NegativeTTL turns that cache off.
	TTL         time.Duration
	NegativeTTL time.Duration
	MaxEntries  int
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
}

// TokenReviewAuthenticator authenticates callers with the Kubernetes
// TokenReview API, for the broker's audience only. Reviews are cached by a
// hash of the token (never the token), positive ones never past the token's
// own expiry; concurrent reviews of one token share one call.
type TokenReviewAuthenticator struct {
	opts    TokenReviewOptions
	mu      sync.Mutex
	cache   map[[sha256.Size]byte]review
	flights singleflight.Group
}

// review is one cached verdict: a caller, or a refusal.
type review struct {
	caller Caller
	err    error
	until  time.Time
}

// NewTokenReviewAuthenticator checks opts and fills in defaults.
func NewTokenReviewAuthenticator(opts TokenReviewOptions) (*TokenReviewAuthenticator, error) {
	if opts.Client == nil {
		return nil, errors.New("token review client is required")
	}
	if opts.Audience == "" {
		opts.Audience = Audience
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultReviewTTL
	}
	if opts.NegativeTTL == 0 {
		opts.NegativeTTL = DefaultReviewNegativeTTL
	}
	if opts.MaxEntries < 0 {
		return nil, fmt.Errorf("max entries %d is negative", opts.MaxEntries)
	}
	if opts.MaxEntries == 0 {
		opts.MaxEntries = DefaultReviewMaxEntries
	}
	return &TokenReviewAuthenticator{opts: opts, cache: map[[sha256.Size]byte]review{}}, nil
}

// Authenticate returns the ServiceAccount token belongs to. Errors wrap
// ErrUnauthenticated for a token the API server does not accept for the
// audience (forged, expired, for another audience, of a deleted
// ServiceAccount or pod, or not a ServiceAccount's at all); another error
// when the API server could not be asked.
func (a *TokenReviewAuthenticator) Authenticate(ctx context.Context, token string) (Caller, error) {
	if token == "" || len(token) > maxCallerTokenLength {
		return Caller{}, fmt.Errorf("empty or oversized token: %w", ErrUnauthenticated)
	}
	// What the token says of itself is unverified, but it can only make us
	// refuse, never accept: a token that is no JWT, is not for our
	// audience or has expired is refused without costing the API server a
	// review (anyone who can reach the broker can send one).
	claims, ok := unverifiedClaims(token)
	now := a.opts.Now()
	switch {
	case !ok:
		return Caller{}, fmt.Errorf("not a service account token: %w", ErrUnauthenticated)
	case !slices.Contains(claims.aud, a.opts.Audience):
		return Caller{}, fmt.Errorf("token is not for audience %q: %w", a.opts.Audience, ErrUnauthenticated)
	case !now.Before(claims.exp):
		return Caller{}, fmt.Errorf("token expired: %w", ErrUnauthenticated)
	}
	exp := claims.exp
	key := sha256.Sum256([]byte(token))
	if r, ok := a.cached(key, now); ok {
		return r.caller, r.err
	}
	ch := a.flights.DoChan(string(key[:]), func() (any, error) {
		// NOTE: detached from the first caller's context, so that caller
		// hanging up does not fail everyone sharing the review.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reviewTimeout)
		defer cancel()
		caller, err := a.review(rctx, token)
		if err != nil && !errors.Is(err, ErrUnauthenticated) {
			return nil, err // not an answer: never cached
		}
		r := review{caller: caller, err: err}
		now := a.opts.Now()
		if err == nil {
			r.until = now.Add(a.opts.TTL)
			if exp.Before(r.until) {
				r.until = exp
			}
		} else {
			r.until = now.Add(a.opts.NegativeTTL)
		}
		a.store(key, r, now)
		return r, nil
	})
	select {
	case <-ctx.Done():
		return Caller{}, fmt.Errorf("review caller token: %w", ctx.Err())
	case res := <-ch:
		if res.Err != nil {
			return Caller{}, res.Err
		}
		r := res.Val.(review)
		return r.caller, r.err
	}
}

// review asks the API server about token and reads the answer strictly.
func (a *TokenReviewAuthenticator) review(ctx context.Context, token string) (Caller, error) {
	tr, err := a.opts.Client.TokenReviews().Create(ctx, &authnv1.TokenReview{
		Spec: authnv1.TokenReviewSpec{Token: token, Audiences: []string{a.opts.Audience}},
	}, metav1.CreateOptions{})
	if err != nil {
		// The API server's error does not quote the token it was sent.
		return Caller{}, fmt.Errorf("create token review: %w", err)
	}
	st := tr.Status
	switch {
	case !st.Authenticated:
		// st.Error is the API server's reason (wrong audience, expired,
		// ServiceAccount deleted); it names no token content.
		return Caller{}, fmt.Errorf("token review: %s: %w", truncate(st.Error), ErrUnauthenticated)
	case !slices.Contains(st.Audiences, a.opts.Audience):
		// An authenticator that ignores audiences answers with none (or
		// its own): not good enough for a token meant for us.
		return Caller{}, fmt.Errorf("token review did not confirm audience %q: %w", a.opts.Audience, ErrUnauthenticated)
	}
	c, ok := parseServiceAccount(st.User.Username)
	if !ok {
		return Caller{}, fmt.Errorf("token review: user %q is not a service account: %w", truncate(st.User.Username), ErrUnauthenticated)
	}
	return c, nil
}

// parseServiceAccount reads "system:serviceaccount:<namespace>:<name>".
func parseServiceAccount(user string) (Caller, bool) {
	rest, ok := strings.CutPrefix(user, serviceAccountPrefix)
	if !ok {
		return Caller{}, false
	}
	ns, name, ok := strings.Cut(rest, ":")
	if !ok || len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
		return Caller{}, false
	}
	return Caller{Namespace: ns, Name: name}, true
}

// tokenClaims are the claims read from a token before it is reviewed.
type tokenClaims struct {
	aud []string
	exp time.Time
}

// unverifiedClaims reads a JWT's aud and exp without checking anything
// else; ok is false when the token is no JWT or lacks either claim
// (ServiceAccount tokens from TokenRequest always have both).
func unverifiedClaims(token string) (tokenClaims, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return tokenClaims{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return tokenClaims{}, false
	}
	var c struct {
		Aud json.RawMessage `json:"aud"`
		Exp *json.Number    `json:"exp"`
	}
	if json.Unmarshal(payload, &c) != nil || c.Exp == nil {
		return tokenClaims{}, false
	}
	secs, err := c.Exp.Int64()
	if err != nil {
		return tokenClaims{}, false
	}
	out := tokenClaims{exp: time.Unix(secs, 0)}
	// aud is a string or an array of strings (RFC 7519 4.1.3).
	var one string
	if json.Unmarshal(c.Aud, &one) == nil {
		out.aud = []string{one}
	} else if json.Unmarshal(c.Aud, &out.aud) != nil {
		return tokenClaims{}, false
	}
	return out, len(out.aud) > 0
}

func (a *TokenReviewAuthenticator) cached(key [sha256.Size]byte, now time.Time) (review, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.cache[key]
	if !ok || !now.Before(r.until) {
		return review{}, false
	}
	return r, true
}

// store keeps r unless its cache is off; when the cache is full, expired
// entries go first, then arbitrary ones: an evicted token costs one more
// review, never a wrong answer.
func (a *TokenReviewAuthenticator) store(key [sha256.Size]byte, r review, now time.Time) {
	if (r.err == nil && a.opts.TTL < 0) || (r.err != nil && a.opts.NegativeTTL < 0) {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cache) >= a.opts.MaxEntries {
		for k, v := range a.cache {
			if !now.Before(v.until) {
				delete(a.cache, k)
			}
		}
		for k := range a.cache {
			if len(a.cache) < a.opts.MaxEntries {
				break
			}
			delete(a.cache, k)
		}
	}
	a.cache[key] = r
}

// truncate keeps an untrusted value short enough for an error message.
func truncate(s string) string {
	const n = 120
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

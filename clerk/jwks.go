package clerk

import (
	"context"
	"crypto/rsa"
	"errors"
	"sync"
	"time"

	sdk "github.com/clerk/clerk-sdk-go/v2"
	"github.com/clerk/clerk-sdk-go/v2/jwks"
	"golang.org/x/sync/singleflight"
)

const (
	// jwksRetryAfterFailure is how soon a failed fetch may be retried when
	// that is sooner than JWKSRefreshInterval: at startup, every JWT
	// waits on a key set we do not have.
	jwksRetryAfterFailure = 5 * time.Second
	// minRSABits refuses keys too weak to trust, whatever the JWKS says.
	minRSABits = 2048
)

// keySource fetches the instance's JWKS as served, unfiltered. The key set
// is public: the Backend API serves it to the secret key's holder, and the
// Frontend API to anyone at <issuer>/.well-known/jwks.json, so a source
// needing no secret fits here too. Its errors are returned as they came;
// the keySet classifies them.
type keySource func(ctx context.Context) (*sdk.JSONWebKeySet, error)

// keySet is the cached JWKS: RSA signing keys by kid. Fetches are collapsed
// into one flight and rate limited through triedAt; a failed fetch keeps the
// keys we had, so once loaded the set stays loaded.
type keySet struct {
	fetch keySource
	// unavailable classifies a failed fetch (see backoff.unavailable); it
	// belongs with the source, whose rate limits it tracks.
	unavailable func(error) error
	now         func() time.Time
	// refresh is the least time between fetches for unknown kids; maxAge
	// is how long a set is used before a background refresh.
	refresh, maxAge time.Duration
	flight          singleflight.Group

	mu        sync.RWMutex
	keys      map[string]*rsa.PublicKey
	fetchedAt time.Time // last successful fetch; zero: never
	triedAt   time.Time // last fetch attempt, successful or not
	lastErr   error     // outcome of the last attempt, unclassified
}

// jwksFlight is the one key of keySet.flight.
const jwksFlight = "jwks"

// nextFetch is the earliest time another fetch may start. Callers hold mu.
func (ks *keySet) nextFetch() time.Time {
	if ks.triedAt.IsZero() {
		return time.Time{}
	}
	interval := ks.refresh
	if ks.lastErr != nil {
		interval = min(interval, jwksRetryAfterFailure)
	}
	return ks.triedAt.Add(interval)
}

// key returns the key for kid. An unknown kid refreshes the set, at most
// once per refresh interval whatever the number of tokens asking; a set
// older than maxAge is refreshed in the background while in use.
func (ks *keySet) key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	now := ks.now()
	ks.mu.RLock()
	pub, found := ks.keys[kid]
	loaded := !ks.fetchedAt.IsZero()
	stale := now.Sub(ks.fetchedAt) > ks.maxAge
	next := ks.nextFetch()
	lastErr := ks.lastErr
	ks.mu.RUnlock()

	if found {
		if stale && !now.Before(next) {
			// The result channel is buffered: nobody needs to read it.
			ks.flight.DoChan(jwksFlight, func() (any, error) { return struct{}{}, ks.update(ctx) })
		}
		return pub, nil
	}
	if now.Before(next) {
		if lastErr != nil {
			return nil, ks.unavailableFor(lastErr, next.Sub(now))
		}
		if loaded {
			return nil, invalid("unknown signing key")
		}
	}
	if err := ks.load(ctx); err != nil {
		return nil, err
	}
	ks.mu.RLock()
	pub, found = ks.keys[kid]
	ks.mu.RUnlock()
	if !found {
		return nil, invalid("unknown signing key")
	}
	return pub, nil
}

// ready returns nil once a set is held. Until then it fetches one through
// the flight tokens use, so it is rate limited and collapsed with them, and
// returns why that failed.
func (ks *keySet) ready(ctx context.Context) error {
	ks.mu.RLock()
	loaded := !ks.fetchedAt.IsZero()
	ks.mu.RUnlock()
	if loaded {
		return nil
	}
	return ks.load(ctx)
}

// load waits for the one fetch in flight, starting it if none is.
func (ks *keySet) load(ctx context.Context) error {
	ch := ks.flight.DoChan(jwksFlight, func() (any, error) { return struct{}{}, ks.update(ctx) })
	_, err := waitFlight[struct{}](ctx, ch)
	return err
}

// update fetches the set and replaces the cached one with its usable keys.
// It runs as the only flight.
func (ks *keySet) update(ctx context.Context) error {
	ks.mu.RLock()
	next := ks.nextFetch()
	lastErr := ks.lastErr
	ks.mu.RUnlock()
	// NOTE: a caller may have seen the set before the previous flight
	// stored its result; that flight's attempt counts, so do not refetch.
	if now := ks.now(); now.Before(next) {
		if lastErr != nil {
			return ks.unavailableFor(lastErr, next.Sub(now))
		}
		return nil
	}

	ctx, cancel := detached(ctx)
	defer cancel()
	set, err := ks.fetch(ctx)
	var keys map[string]*rsa.PublicKey
	if err == nil {
		if keys = usableKeys(set); len(keys) == 0 {
			err = errors.New("get jwks: no usable RS256 signing key in the key set")
		}
	}
	now := ks.now()
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.triedAt, ks.lastErr = now, err
	if err != nil {
		return ks.unavailable(err)
	}
	ks.keys, ks.fetchedAt = keys, now
	return nil
}

// usableKeys keeps the keys of set fit to verify RS256: RSA public keys of
// at least 2048 bits, not marked for encryption or for another algorithm.
// Other key types are skipped, never misused.
func usableKeys(set *sdk.JSONWebKeySet) map[string]*rsa.PublicKey {
	if set == nil {
		return nil
	}
	keys := make(map[string]*rsa.PublicKey, len(set.Keys))
	for _, k := range set.Keys {
		if k == nil || k.KeyID == "" || (k.Use != "" && k.Use != "sig") || (k.Algorithm != "" && k.Algorithm != algRS256) {
			continue
		}
		if pub, ok := k.Key.(*rsa.PublicKey); ok && pub.N.BitLen() >= minRSABits {
			keys[k.KeyID] = pub
		}
	}
	return keys
}

// unavailableFor reports the last failed fetch, err, as unavailability
// for the time left until the next fetch (longer if err asked for more).
func (ks *keySet) unavailableFor(err error, left time.Duration) error {
	ue := &UnavailableError{RetryAfter: left, Err: err}
	var prev *UnavailableError
	if errors.As(err, &prev) {
		ue.RetryAfter, ue.Err = max(prev.RetryAfter, left), prev.Err
	}
	return ue
}

// backendKeys is the Verifier's keySource: GET /v1/jwks on the Backend API,
// through the SDK's jwks client, with the secret key of the moment.
func (v *Verifier) backendKeys(ctx context.Context) (*sdk.JSONWebKeySet, error) {
	secret, err := currentSecretKey(ctx, v.opts.SecretKey)
	if err != nil {
		return nil, err
	}
	client := &jwks.Client{Backend: v.backend.sdkBackend(secret, "get jwks")}
	return client.Get(ctx, &jwks.GetParams{})
}

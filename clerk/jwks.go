package clerk

import (
	"context"
	"crypto/rsa"
	"errors"
	"sync"
	"time"

	"github.com/clerk/clerk-sdk-go/v2/jwks"
)

const (
	// jwksFlight is the singleflight key of JWKS fetches; opaque lookups
	// use 32-byte hashes, which cannot collide with it.
	jwksFlight = "jwks"
	// jwksRetryAfterFailure is how soon a failed fetch may be retried when
	// that is sooner than JWKSRefreshInterval: at startup, every JWT
	// waits on a key set we do not have.
	jwksRetryAfterFailure = 5 * time.Second
	// minRSABits refuses keys too weak to trust, whatever the JWKS says.
	minRSABits = 2048
)

// keySet is the cached JWKS: RSA signing keys by kid. Fetches are rate
// limited through triedAt; a failed fetch keeps the keys we had.
type keySet struct {
	mu        sync.RWMutex
	keys      map[string]*rsa.PublicKey
	fetchedAt time.Time // last successful fetch; zero: never
	triedAt   time.Time // last fetch attempt, successful or not
	lastErr   error     // outcome of the last attempt
}

// nextFetch is the earliest time another fetch may start. Callers hold mu.
func (ks *keySet) nextFetch(interval time.Duration) time.Time {
	if ks.triedAt.IsZero() {
		return time.Time{}
	}
	if ks.lastErr != nil {
		interval = min(interval, jwksRetryAfterFailure)
	}
	return ks.triedAt.Add(interval)
}

// signingKey returns the key for kid. An unknown kid refreshes the set, at
// most once per JWKSRefreshInterval whatever the number of tokens asking; a
// set older than JWKSMaxAge is refreshed in the background while in use.
func (v *Verifier) signingKey(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	now := v.opts.Now()
	ks := v.keys
	ks.mu.RLock()
	pub, found := ks.keys[kid]
	loaded := !ks.fetchedAt.IsZero()
	stale := now.Sub(ks.fetchedAt) > v.opts.JWKSMaxAge
	next := ks.nextFetch(v.opts.JWKSRefreshInterval)
	lastErr := ks.lastErr
	ks.mu.RUnlock()

	if found {
		if stale && !now.Before(next) {
			// The result channel is buffered: nobody needs to read it.
			v.flights.DoChan(jwksFlight, func() (any, error) { return v.fetchKeys(ctx) })
		}
		return pub, nil
	}
	if now.Before(next) {
		if lastErr != nil {
			return nil, v.unavailableFor(lastErr, next.Sub(now))
		}
		if loaded {
			return nil, invalid("unknown signing key")
		}
	}
	ch := v.flights.DoChan(jwksFlight, func() (any, error) { return v.fetchKeys(ctx) })
	if _, err := waitFlight[struct{}](ctx, ch); err != nil {
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

// fetchKeys fetches the JWKS from the Backend API through the SDK's jwks
// client and replaces the cached set. It runs as the only JWKS flight.
func (v *Verifier) fetchKeys(ctx context.Context) (struct{}, error) {
	ks := v.keys
	ks.mu.RLock()
	next := ks.nextFetch(v.opts.JWKSRefreshInterval)
	lastErr := ks.lastErr
	ks.mu.RUnlock()
	// NOTE: a caller may have seen the set before the previous flight
	// stored its result; that flight's attempt counts, so do not refetch.
	if now := v.opts.Now(); now.Before(next) {
		if lastErr != nil {
			return struct{}{}, v.unavailableFor(lastErr, next.Sub(now))
		}
		return struct{}{}, nil
	}

	ctx, cancel := detached(ctx)
	defer cancel()
	keys, err := v.getJWKS(ctx)
	now := v.opts.Now()
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.triedAt, ks.lastErr = now, err
	if err != nil {
		return struct{}{}, v.limit.unavailable(err)
	}
	ks.keys, ks.fetchedAt = keys, now
	return struct{}{}, nil
}

// getJWKS calls GET /v1/jwks and keeps the keys fit to verify RS256: RSA
// public keys of at least 2048 bits, not marked for encryption or for
// another algorithm. Other key types are skipped, never misused.
func (v *Verifier) getJWKS(ctx context.Context) (map[string]*rsa.PublicKey, error) {
	secret, err := currentSecretKey(ctx, v.opts.SecretKey)
	if err != nil {
		return nil, err
	}
	client := &jwks.Client{Backend: v.backend.sdkBackend(secret, "get jwks")}
	set, err := client.Get(ctx, &jwks.GetParams{})
	if err != nil {
		return nil, err
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
	if len(keys) == 0 {
		return nil, errors.New("get jwks: no usable RS256 signing key in the key set")
	}
	return keys, nil
}

// unavailableFor is unavailable(err) with Retry-After at least left.
func (v *Verifier) unavailableFor(err error, left time.Duration) error {
	ue := &UnavailableError{RetryAfter: left, Err: err}
	var prev *UnavailableError
	if errors.As(err, &prev) {
		ue.RetryAfter, ue.Err = max(prev.RetryAfter, left), prev.Err
	}
	return ue
}

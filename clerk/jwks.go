package clerk

import (
	"cmp"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	sdk "github.com/clerk/clerk-sdk-go/v2"
	"golang.org/x/sync/singleflight"
)

const (
	// jwksRetryAfterFailure is how soon a failed fetch may be retried when
	// that is sooner than JWKSRefreshInterval: at startup, every JWT
	// waits on a key set we do not have.
	jwksRetryAfterFailure = 5 * time.Second
	// minRSABits refuses keys too weak to trust, whatever the JWKS says.
	minRSABits = 2048
	// jwksPath is where the Frontend API serves the instance's public keys,
	// under the issuer (see frontendKeys).
	jwksPath = ".well-known/jwks.json"
)

// keySource fetches the instance's JWKS as served, unfiltered. Its errors
// are returned as they came; the keySet classifies them (jwksUnavailable).
type keySource func(ctx context.Context) (*sdk.JSONWebKeySet, error)

// keySet is the cached JWKS: RSA signing keys by kid. Fetches are collapsed
// into one flight and rate limited through triedAt and, after a 429,
// holdUntil; a failed fetch keeps the keys we had, so once loaded the set
// stays loaded. Its rate limiting is its own: the key set comes from the
// Frontend API, whose limits are not the Backend API's.
type keySet struct {
	fetch keySource
	now   func() time.Time
	// refresh is the least time between fetches for unknown kids; maxAge
	// is how long a set is used before a background refresh.
	refresh, maxAge time.Duration
	flight          singleflight.Group

	mu        sync.RWMutex
	keys      map[string]*rsa.PublicKey
	fetchedAt time.Time // last successful fetch; zero: never
	triedAt   time.Time // last fetch attempt, successful or not
	lastErr   error     // outcome of the last attempt, unclassified
	holdUntil time.Time // no fetch before this: a 429's Retry-After
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
	next := ks.triedAt.Add(interval)
	if ks.holdUntil.After(next) {
		return ks.holdUntil
	}
	return next
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
		ue, hold := jwksUnavailable(err)
		ks.holdUntil = now.Add(hold)
		return ue
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

// frontendKeys is the Verifier's keySource: the instance's public key set
// at <issuer>/.well-known/jwks.json on the Frontend API, which serves it to
// anyone, so no credential is sent. (The Backend API's /v1/jwks serves the
// same keys to the secret key's holder only; one source is simpler, and a
// gateway without a secret key has no other.) A custom Frontend API domain
// is the issuer too, so the keys come from where the tokens say they were
// issued, a host the gateway reaches already for Clerk's metadata. The body
// is bounded, and decoded with the SDK's JWKS types.
func (v *Verifier) frontendKeys(ctx context.Context) (*sdk.JSONWebKeySet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.jwksURL, nil)
	if err != nil {
		return nil, fmt.Errorf("get jwks: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get jwks: %w", err)
	}
	defer func() {
		// Drain what is left (bounded) so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode != http.StatusOK {
		return nil, &frontendError{
			Op:         "get jwks",
			StatusCode: resp.StatusCode,
			// An HTTP date is wall-clock time, whatever clock we run on.
			RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("get jwks: read response: %w", err)
	case len(body) > maxResponseBytes:
		return nil, fmt.Errorf("get jwks: response body exceeds %d bytes", maxResponseBytes)
	}
	var set sdk.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("get jwks: decode response: %w", err)
	}
	return &set, nil
}

// frontendError is a Frontend API call answered with a status other than
// 200. Its message holds the operation and the status only: the body may be
// a proxy's page, and is not read.
type frontendError struct {
	// Op names the call, e.g. "get jwks".
	Op string
	// StatusCode is the HTTP status the Frontend API (or a proxy in front
	// of it) answered.
	StatusCode int
	// RetryAfter is the parsed Retry-After header; zero when absent.
	RetryAfter time.Duration
}

func (e *frontendError) Error() string {
	msg := fmt.Sprintf("%s: clerk frontend api answered %d", e.Op, e.StatusCode)
	if text := http.StatusText(e.StatusCode); text != "" {
		msg += " " + text
	}
	return msg
}

// jwksUnavailable classifies a failed key set fetch as unavailability, and
// says how long no fetch may follow it: after a 429, Retry-After (or Clerk's
// 10 s window), so that asking again does not prolong the limit; otherwise
// zero, and the keySet's usual spacing applies. This back-off is the key
// set's alone: a 429 from the Frontend API says nothing of the Backend API,
// whose calls (opaque lookups) the Verifier's backoff paces, and vice versa.
// There is no secret key here to be refused, so a 401 or 403 (a proxy's,
// say) is an outage like any other.
func jwksUnavailable(err error) (*UnavailableError, time.Duration) {
	var ue *UnavailableError
	if errors.As(err, &ue) {
		return ue, 0
	}
	ue = &UnavailableError{RetryAfter: retryTransient, Err: err}
	var fe *frontendError
	if errors.As(err, &fe) {
		switch {
		case fe.StatusCode == http.StatusTooManyRequests:
			ue.RetryAfter = cmp.Or(fe.RetryAfter, retryRateLimited)
			return ue, ue.RetryAfter
		case fe.RetryAfter > 0:
			ue.RetryAfter = fe.RetryAfter
		}
	}
	return ue, 0
}

package clerk

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Retry-After values suggested when Clerk sent none.
const (
	// retryTransient follows an outage, a timeout or a 5xx.
	retryTransient = time.Second
	// retryRateLimited follows a 429 without Retry-After: Clerk's rate
	// limits count over 10 s windows.
	retryRateLimited = 10 * time.Second
	// retryMisconfigured follows a rejected or missing secret key, which
	// takes a Secret update to fix.
	retryMisconfigured = 30 * time.Second
)

// backoff turns failed Backend API calls into *UnavailableError and, after
// a 429, makes callers fail fast until Retry-After has passed: Clerk counts
// its rate limit per instance, shared by every gateway and the controller,
// so calling on would only prolong it. The Verifier and the Directory each
// hold one. The zero value is not usable: now must be set.
type backoff struct {
	now func() time.Time

	mu    sync.Mutex
	until time.Time
	err   error // the 429 that started the back-off
}

// unavailable wraps a failed Backend API call, with the Retry-After the
// failure calls for. A 429 also starts the back-off. An *UnavailableError
// (such as a missing secret key) is returned as it is.
func (b *backoff) unavailable(err error) error {
	var ue *UnavailableError
	if errors.As(err, &ue) {
		return err
	}
	ue = &UnavailableError{RetryAfter: retryTransient, Err: err}
	var be *BackendError
	if errors.As(err, &be) {
		switch {
		case be.StatusCode == http.StatusTooManyRequests:
			ue.RetryAfter = retryRateLimited
			if be.RetryAfter > 0 {
				ue.RetryAfter = be.RetryAfter
			}
			b.mu.Lock()
			b.until, b.err = b.now().Add(ue.RetryAfter), err
			b.mu.Unlock()
		case be.unauthorized():
			ue.RetryAfter = retryMisconfigured
		case be.RetryAfter > 0:
			ue.RetryAfter = be.RetryAfter
		}
	}
	return ue
}

// active returns an *UnavailableError, with the time left as RetryAfter,
// while a 429's Retry-After runs; nil otherwise.
func (b *backoff) active() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	left := b.until.Sub(b.now())
	if left <= 0 {
		return nil
	}
	return &UnavailableError{RetryAfter: left, Err: fmt.Errorf("backing off after rate limit: %w", b.err)}
}

// currentSecretKey asks src for the key of the moment, before each Backend
// API call, so that a rotated key is picked up. A failure is ours, not the
// caller's: it becomes unavailability, and it never quotes the key.
func currentSecretKey(ctx context.Context, src func(context.Context) (string, error)) (string, error) {
	key, err := src(ctx)
	if err == nil && key == "" {
		err = errors.New("secret key is empty")
	}
	if err != nil {
		return "", &UnavailableError{RetryAfter: retryMisconfigured, Err: fmt.Errorf("get secret key: %w", err)}
	}
	return key, nil
}

package clerk

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	sdk "github.com/clerk/clerk-sdk-go/v2"
)

// InvalidTokenError means the token is not acceptable: the gateway answers
// 401. Reason is one of a small, fixed set of phrases (never token data), so
// it is safe to log and to use as a metric label.
type InvalidTokenError struct {
	Reason string
}

func (e *InvalidTokenError) Error() string { return "invalid token: " + e.Reason }

// invalid builds an InvalidTokenError; reason must be a constant phrase.
func invalid(reason string) error { return &InvalidTokenError{Reason: reason} }

// UnavailableError means the token could not be checked because Clerk could
// not be asked (outage, timeout, 5xx, 429) or refused our own credentials.
// The gateway answers 503 with Retry-After; such a token is never valid and
// the outcome is never cached as a verdict.
type UnavailableError struct {
	// RetryAfter is how long to wait before trying again; always positive.
	RetryAfter time.Duration
	// Err is the underlying failure; a *BackendError when Clerk answered.
	Err error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("clerk unavailable (retry after %s): %v", e.RetryAfter, e.Err)
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// BackendError is a Backend API call that got an HTTP answer other than 2xx.
// Its message holds the operation, the status and Clerk's error codes only:
// Clerk's long messages may quote request input, and a verify request's input
// is a token. The SDK's *clerk.APIErrorResponse, when Clerk sent one, is
// available through errors.As.
type BackendError struct {
	// Op names the call, e.g. "verify access token".
	Op string
	// StatusCode is the HTTP status Clerk (or a proxy in front of it) answered.
	StatusCode int
	// RetryAfter is the parsed Retry-After header; zero when absent.
	RetryAfter time.Duration
	// Codes are Clerk's machine-readable error codes, when the body had them.
	Codes []string
	// TraceID is Clerk's trace id, for support requests.
	TraceID string
	// Err is the SDK's error: *clerk.APIErrorResponse, or a plain error
	// carrying the raw body when it was not a Clerk error document.
	Err error
}

func (e *BackendError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: clerk backend api answered %d", e.Op, e.StatusCode)
	if text := http.StatusText(e.StatusCode); text != "" {
		fmt.Fprintf(&b, " %s", text)
	}
	if len(e.Codes) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(e.Codes, ", "))
	}
	if e.unauthorized() {
		b.WriteString(": secret key rejected")
	}
	if e.TraceID != "" {
		fmt.Fprintf(&b, " trace_id=%s", e.TraceID)
	}
	return b.String()
}

func (e *BackendError) Unwrap() error { return e.Err }

// unauthorized reports a 401/403: the secret key is wrong, revoked or for
// another instance. That is our misconfiguration, not the client's bad
// token, so the verifier reports it as unavailability.
func (e *BackendError) unauthorized() bool {
	return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden
}

// RetryAfter reports whether err comes from a 429 (rate limited), and how
// long to wait: the Retry-After Clerk sent (zero when it sent none), or for a
// Verifier error its UnavailableError.RetryAfter, which also covers the
// Verifier's own back-off after a 429. Other statuses report false, even
// with a Retry-After: the controller treats true as "rate limited".
func RetryAfter(err error) (time.Duration, bool) {
	var be *BackendError
	if errors.As(err, &be) && be.StatusCode == http.StatusTooManyRequests {
		var ue *UnavailableError
		if errors.As(err, &ue) {
			return ue.RetryAfter, true
		}
		return be.RetryAfter, true
	}
	return 0, false
}

// IsUnauthorized reports whether Clerk refused our secret key (401 or 403).
// The controller reports it on the condition; retrying will not help until
// the Secret changes.
func IsUnauthorized(err error) bool {
	var be *BackendError
	return errors.As(err, &be) && be.unauthorized()
}

// StatusCode returns the HTTP status of a failed Backend API call, or 0 when
// no HTTP answer came back (transport error, timeout, cancelled context).
func StatusCode(err error) int {
	var be *BackendError
	if errors.As(err, &be) {
		return be.StatusCode
	}
	var ae *sdk.APIErrorResponse
	if errors.As(err, &ae) {
		return ae.HTTPStatusCode
	}
	return 0
}

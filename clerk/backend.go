package clerk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	sdk "github.com/clerk/clerk-sdk-go/v2"
)

const (
	// maxResponseBytes bounds what we read from the Backend API; its
	// answers to our calls are a few KiB at most.
	maxResponseBytes = 1 << 20
	// maxRetryAfter caps a Retry-After header, so a bad value cannot park
	// a gateway or the controller for hours.
	maxRetryAfter = 10 * time.Minute
)

// backend makes Backend API calls through clerk-sdk-go. The SDK's backend
// holds one fixed key, so a new one (a small struct) is built per call with
// the key of the moment; the SDK's package-level default backend and key are
// never used. The HTTP client is shared and safe for concurrent use.
type backend struct {
	url  string
	http *http.Client
}

// newBackend wraps hc (nil: a default client with timeouts) so that each
// call can see the HTTP status and Retry-After the SDK does not expose.
func newBackend(url string, hc *http.Client) backend {
	if hc == nil {
		hc = NewHTTPClient()
	}
	wrapped := *hc
	base := wrapped.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	wrapped.Transport = &captureTransport{base: base}
	return backend{url: url, http: &wrapped}
}

// NewHTTPClient returns the client for calls to Clerk: every phase is
// bounded (connect 5s, TLS 5s, response headers 5s, whole call 10s), since a
// client's request is waiting on it. Redirects are not followed: Clerk's APIs
// do not redirect, and a redirect must not carry the secret key away.
func NewHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 5 * time.Second
	t.ResponseHeaderTimeout = 5 * time.Second
	t.MaxIdleConnsPerHost = 16
	return &http.Client{
		Transport: t,
		Timeout:   10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// call performs req with key and decodes a 2xx answer into out. Failures
// come back as *BackendError when Clerk answered with a non-2xx status, and
// as an error wrapping the transport or decoding failure otherwise. op names
// the call in error messages.
func (b backend) call(ctx context.Context, key, op string, req *sdk.APIRequest, out sdk.ResponseReader) error {
	var c captured
	ctx = context.WithValue(ctx, captureKey{}, &c)
	client := sdk.NewBackend(&sdk.BackendConfig{URL: &b.url, Key: &key, HTTPClient: b.http})
	err := client.Call(ctx, req, out)
	switch {
	case c.status == 0:
		if err == nil {
			err = errors.New("no response")
		}
		return fmt.Errorf("%s: %w", op, err)
	case c.status < 200 || c.status > 299:
		return newBackendError(op, c, err)
	case err != nil:
		return fmt.Errorf("%s: read response: %w", op, err)
	}
	return nil
}

// sdkBackend adapts call to the SDK's Backend interface, for the SDK's typed
// clients (such as jwks.Client), which then fail with our classified errors.
func (b backend) sdkBackend(key, op string) sdk.Backend {
	return sdkBackend{b: b, key: key, op: op}
}

type sdkBackend struct {
	b       backend
	key, op string
}

func (s sdkBackend) Call(ctx context.Context, req *sdk.APIRequest, out sdk.ResponseReader) error {
	return s.b.call(ctx, s.key, s.op, req, out)
}

// newBackendError classifies a non-2xx answer. err is the SDK's error: a
// *clerk.APIErrorResponse when the body was a Clerk error document.
func newBackendError(op string, c captured, err error) *BackendError {
	be := &BackendError{Op: op, StatusCode: c.status, RetryAfter: c.retryAfter, Err: err}
	var ae *sdk.APIErrorResponse
	if errors.As(err, &ae) {
		be.TraceID = ae.TraceID
		for _, e := range ae.Errors {
			if e.Code != "" {
				be.Codes = append(be.Codes, e.Code)
			}
		}
	}
	if be.Err == nil {
		// A 3xx is "success" to the SDK; keep errors.Unwrap meaningful.
		be.Err = errors.New(http.StatusText(c.status))
	}
	return be
}

// captureKey is the context key under which call leaves a *captured for
// captureTransport to fill.
type captureKey struct{}

// captured is what the SDK does not tell us about a response: its status
// (lost when the body is not a Clerk error document) and Retry-After.
// NOTE: http.Client calls RoundTrip on the caller's goroutine, so call reads
// these fields after Call returns without further synchronization.
type captured struct {
	status     int
	retryAfter time.Duration
}

// captureTransport records the status and Retry-After of each response in
// the *captured found in the request's context, and bounds the body.
type captureTransport struct {
	base http.RoundTripper
}

func (t *captureTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if c, ok := req.Context().Value(captureKey{}).(*captured); ok {
		c.status = resp.StatusCode
		c.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	resp.Body = &limitedBody{r: io.LimitReader(resp.Body, maxResponseBytes+1), c: resp.Body}
	return resp, nil
}

// limitedBody fails a read past maxResponseBytes instead of truncating, so
// an oversized answer is an error and never half a JSON document.
type limitedBody struct {
	r io.Reader
	c io.Closer
	n int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.n > maxResponseBytes {
		return n, fmt.Errorf("response body exceeds %d bytes", maxResponseBytes)
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.c.Close() }

// parseRetryAfter reads delay-seconds or an HTTP date (RFC 9110 10.2.3);
// zero when absent or unparsable, capped at maxRetryAfter.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mcpgate/mcpgate/clerk"
	"github.com/mcpgate/mcpgate/gateway/config"
)

// credentialRetryAfter is the Retry-After of a 503 for a credential file
// that is missing: the kubelet writes a Secret that appears within about a
// minute, and a client retrying every few seconds costs nothing.
const credentialRetryAfter = "10"

// credentialRecheck is how long a credential file's header value is used
// before the file is looked at again. A stat on every request would cost
// more than the rest of the credentials step, and a second is nothing next
// to the kubelet's own delay in swapping a rotated Secret's files in (up to
// its sync period, about a minute).
const credentialRecheck = time.Second

// upstreamCredentials are what the gateway adds to forwarded requests for
// the upstream's own authentication (config.Credentials): headers from
// mounted files and the caller's own token at an OAuth provider.
type upstreamCredentials struct {
	files []*fileCredential
	// user is the caller's token at a provider; nil when not configured.
	user *config.UserOAuthToken
}

// fileCredential is a header whose value is a mounted file's content.
type fileCredential struct {
	name, prefix, path string
	// read returns the trimmed content, re-read when the file changes; its
	// errors name the path, never the content.
	read func(context.Context) (string, error)
	// last is the header value last read and until when it is used
	// without looking at the file; nil after a failed read, so that a
	// file that went missing or bad is retried on every request.
	last atomic.Pointer[checkedValue]
}

// checkedValue is a credential header's value and the moment it must be
// checked against its file again.
type checkedValue struct {
	header string
	until  time.Time
}

// newUpstreamCredentials prepares c; nil when there is nothing to add.
// Files are read lazily, so a Secret mounted late costs readiness, not
// the start.
func newUpstreamCredentials(c *config.Credentials) *upstreamCredentials {
	if c == nil || len(c.Headers) == 0 && c.UserOAuthToken == nil {
		return nil
	}
	uc := &upstreamCredentials{user: c.UserOAuthToken}
	for _, h := range c.Headers {
		uc.files = append(uc.files, &fileCredential{
			name: http.CanonicalHeaderKey(h.Name), prefix: h.Prefix, path: h.File,
			// The kubelet swaps a Secret volume's files behind a symlink;
			// this reader notices by the file's identity, size and time
			// (one stat per credentialRecheck), and re-reads.
			read: clerk.SecretKeyFromFile(h.File),
		})
	}
	return uc
}

// strippedNames are the credential header names stripInbound removes from
// every request. Authorization is left to extractToken, which needs the
// client's bearer token first and removes it once taken.
func (uc *upstreamCredentials) strippedNames() []string {
	if uc == nil {
		return nil
	}
	var names []string
	for _, f := range uc.files {
		names = append(names, f.name)
	}
	if uc.user != nil {
		names = append(names, uc.user.HeaderName())
	}
	return slices.DeleteFunc(names, func(n string) bool { return strings.EqualFold(n, "Authorization") })
}

// value returns the header value of f at now: prefix and the file's
// content, as last read when that was less than credentialRecheck ago.
func (f *fileCredential) value(ctx context.Context, now time.Time) (string, error) {
	if last := f.last.Load(); last != nil && now.Before(last.until) {
		return last.header, nil
	}
	v, err := f.read(ctx)
	if err == nil && !isHeaderValue(v) {
		err = fmt.Errorf("%s holds a character a header value cannot carry", f.path)
	}
	if err != nil {
		f.last.Store(nil)
		return "", err
	}
	header := f.prefix + v
	f.last.Store(&checkedValue{header: header, until: now.Add(credentialRecheck)})
	return header, nil
}

// ready reports the first credential file the gateway cannot use, naming
// its header and path: a replica without its credentials would answer
// every request with a 503, so it should not get traffic.
func (uc *upstreamCredentials) ready(ctx context.Context, now time.Time) error {
	if uc == nil {
		return nil
	}
	for _, f := range uc.files {
		if _, err := f.value(ctx, now); err != nil {
			return fmt.Errorf("credential header %s: %w", f.name, err)
		}
	}
	return nil
}

// isHeaderValue reports whether s can be sent as a header value: visible
// ASCII, spaces and tabs. Anything else would make the transport refuse
// the request, or split the header.
func isHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '\t' && (c < 0x20 || c > 0x7e) {
			return false
		}
	}
	return true
}

// credentials resolves the upstream credentials of a request after
// every check has passed: each file's header, then the caller's token at
// the provider. It never forwards without one: a file it cannot read is a
// 503 with Retry-After, Clerk unavailable too, and a caller who has not
// connected the provider gets an answer saying where to connect it
// (refuseNotConnected). The values go to requestInfo for the proxy's
// rewrite, which sets them last; no log line, metric or error carries one.
// Without credentials it is not in the pipeline.
func (g *Gateway) credentials(next http.Handler) http.Handler {
	uc := g.creds
	if uc == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := infoFrom(r.Context())
		h := make(http.Header, len(uc.files)+1)
		now := g.opts.Now()
		for _, f := range uc.files {
			v, err := f.value(r.Context(), now)
			if err != nil {
				g.refuseCredential(w, r, "Could not read an upstream credential",
					slog.String("header", f.name), slog.String("error", err.Error()))
				return
			}
			h.Set(f.name, v)
		}
		if u := uc.user; u != nil {
			tok, ok := g.userToken(w, r, u)
			if !ok {
				return
			}
			h.Set(u.HeaderName(), u.Prefix+tok)
		}
		ri.upstreamHeaders = h
		next.ServeHTTP(w, r)
	})
}

// refuseCredential answers a request the gateway has no usable credential
// for: 503 with Retry-After, and a log line that says which header and why.
func (g *Gateway) refuseCredential(w http.ResponseWriter, r *http.Request, msg string, attrs ...slog.Attr) {
	ri := infoFrom(r.Context())
	ri.auth = reasonCredentialUnavailable
	g.metrics.countAuth(reasonCredentialUnavailable)
	g.log.LogAttrs(r.Context(), slog.LevelError, msg, append([]slog.Attr{slog.String("request_id", ri.id)}, attrs...)...)
	w.Header().Set("Retry-After", credentialRetryAfter)
	writePlain(w, http.StatusServiceUnavailable, "503 the gateway has no credential for the upstream yet; retry later")
}

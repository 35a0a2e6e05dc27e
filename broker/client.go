package broker

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mcpgate/mcpgate/clerk"
)

// Defaults of ClientOptions.
const (
	// DefaultClientTimeout bounds one call to the broker, which a client's
	// request is waiting on; the broker's own calls to Clerk take at most
	// 10 s, after which it answers 503 anyway.
	DefaultClientTimeout = 12 * time.Second
	// clientRetryAfter is the Retry-After of a broker that could not be
	// reached, or answered something the client cannot read.
	clientRetryAfter = time.Second
	// clientRetryRefused is the Retry-After when the broker refuses the
	// gateway itself (401, 403): a configuration problem, fixed by an
	// operator, not by retrying at once.
	clientRetryRefused = 30 * time.Second
	// maxClientRetryAfter caps a Retry-After from an answer, so a bad value
	// cannot park the gateway for hours.
	maxClientRetryAfter = 10 * time.Minute
	// maxFileBytes bounds the token and CA files the client reads.
	maxFileBytes = 1 << 20
	// maxResponseBytes bounds a broker answer: memberships are the largest
	// (at most a thousand).
	maxResponseBytes = 4 << 20
	// maxReasonLength bounds an invalid-token reason taken from an answer.
	maxReasonLength = 64
)

// ErrRefused means the broker refused the gateway itself: its
// ServiceAccount token was not accepted, or it may use no Clerk instance.
// It is wrapped in a *clerk.UnavailableError, so the gateway fails closed
// with 503 as for a Clerk it cannot reach.
var ErrRefused = errors.New("broker refused this gateway")

// ClientOptions configure a Client.
type ClientOptions struct {
	// URL is the broker's base URL, https://<service>.<namespace>.svc:<port>.
	URL string
	// TokenFile is the gateway's projected ServiceAccount token for
	// Audience; read on each call, since the kubelet rotates it.
	TokenFile string
	// CAFile is the PEM bundle the broker's certificate must chain to;
	// re-read when it changes, so a CA rotation needs no restart.
	CAFile string
	// Timeout bounds one call (DefaultClientTimeout when zero).
	Timeout time.Duration
	// Dialer, if set, replaces the network dialer (tests).
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Client is the gateway's side of the protocol. Its answers and errors are
// the clerk package's (clerk.Identity, *clerk.InvalidTokenError,
// *clerk.UnavailableError, clerk.ErrUserNotFound, clerk.ErrNotConnected,
// clerk.ErrTooManyMemberships), so the gateway's caches and 503 handling
// apply unchanged. It caches nothing itself. It is safe for concurrent use.
type Client struct {
	opts ClientOptions
	base *url.URL

	mu sync.Mutex
	// caSeen is the CA file the current transport trusts; hc is nil until
	// the first call reads it.
	caSeen os.FileInfo
	hc     *http.Client
}

// AccessToken is what an MCP client presented to the gateway: the bearer
// token and the resource URLs its aud may name (clerk.WithAudience).
// Subject, when set, is the user the gateway verified the token for: an
// answer about anyone else is refused (ErrOtherSubject), never handed on.
type AccessToken struct {
	Token     string
	Audiences []string
	Subject   string
}

// ErrOtherSubject is an answer about another user than AccessToken.Subject:
// the broker and the gateway disagree on whose token it is. It is wrapped in
// a *clerk.UnavailableError, so the gateway fails closed and caches nothing.
var ErrOtherSubject = errors.New("broker answered about another user than the token's subject")

// checkSubject refuses an answer about another user than at's subject.
func checkSubject(at AccessToken, userID string) error {
	if at.Subject != "" && userID != at.Subject {
		return unreadable(ErrOtherSubject)
	}
	return nil
}

// NewClient checks opts. It reads no file and makes no network call.
func NewClient(opts ClientOptions) (*Client, error) {
	u, err := url.Parse(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("broker url: %w", err)
	}
	if u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("broker url %q: must be https://host[:port][/path]", opts.URL)
	}
	if opts.TokenFile == "" || opts.CAFile == "" {
		return nil, errors.New("token file and ca file are required")
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("timeout %s is negative", opts.Timeout)
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultClientTimeout
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &Client{opts: opts, base: u}, nil
}

// Verify verifies an access token through the broker, for the gateway's
// own instance.
func (c *Client) Verify(ctx context.Context, at AccessToken) (clerk.Identity, error) {
	var out IdentityResponse
	if err := c.call(ctx, PathVerify, Request{AccessToken: at.Token, Audiences: at.Audiences}, &out); err != nil {
		return clerk.Identity{}, err
	}
	if out.UserID == "" {
		return clerk.Identity{}, unreadable(errors.New("identity without a user id"))
	}
	return clerk.Identity{UserID: out.UserID, ClientID: out.ClientID, Scopes: out.Scopes,
		ExpiresAt: out.ExpiresAt, TokenID: out.TokenID, Format: out.Format}, nil
}

// User returns the user the access token speaks for.
func (c *Client) User(ctx context.Context, at AccessToken) (clerk.User, error) {
	var out UserResponse
	if err := c.call(ctx, PathUser, Request{AccessToken: at.Token, Audiences: at.Audiences}, &out); err != nil {
		return clerk.User{}, err
	}
	if out.ID == "" {
		return clerk.User{}, unreadable(errors.New("user without an id"))
	}
	if err := checkSubject(at, out.ID); err != nil {
		return clerk.User{}, err
	}
	return clerk.User{ID: out.ID, PrimaryEmail: out.PrimaryEmail, VerifiedEmails: out.VerifiedEmails}, nil
}

// Memberships returns the organization memberships of the user the access
// token speaks for.
func (c *Client) Memberships(ctx context.Context, at AccessToken) ([]clerk.Membership, error) {
	var out MembershipsResponse
	if err := c.call(ctx, PathMemberships, Request{AccessToken: at.Token, Audiences: at.Audiences}, &out); err != nil {
		return nil, err
	}
	if err := checkSubject(at, out.UserID); err != nil {
		return nil, err
	}
	ms := make([]clerk.Membership, 0, len(out.Memberships))
	for _, m := range out.Memberships {
		ms = append(ms, clerk.Membership{OrganizationID: m.OrganizationID, OrganizationSlug: m.OrganizationSlug,
			Role: m.Role, Permissions: m.Permissions})
	}
	return ms, nil
}

// OAuthToken returns the token at provider of the user the access token
// speaks for. The token is a credential: never log it.
func (c *Client) OAuthToken(ctx context.Context, at AccessToken, provider string) (clerk.OAuthToken, error) {
	if !clerk.ValidOAuthProvider(provider) {
		return clerk.OAuthToken{}, fmt.Errorf("provider %q is not a clerk oauth provider id", truncate(provider))
	}
	var out OAuthTokenResponse
	req := Request{AccessToken: at.Token, Audiences: at.Audiences, Provider: provider}
	if err := c.call(ctx, PathOAuthToken, req, &out); err != nil {
		return clerk.OAuthToken{}, err
	}
	if out.Token == "" {
		return clerk.OAuthToken{}, unreadable(errors.New("oauth token answer without a token"))
	}
	if err := checkSubject(at, out.UserID); err != nil {
		return clerk.OAuthToken{}, err
	}
	return clerk.OAuthToken{Token: out.Token, ExpiresAt: out.ExpiresAt, Scopes: out.Scopes}, nil
}

// call posts req to path with the current ServiceAccount token and decodes
// a 200 into out; every other outcome becomes a clerk error value.
func (c *Client) call(ctx context.Context, path string, req Request, out any) error {
	hc, err := c.httpClient()
	if err != nil {
		return unavailable(clientRetryAfter, err)
	}
	saToken, err := readSmallFile(c.opts.TokenFile)
	if err != nil {
		return unavailable(clientRetryAfter, fmt.Errorf("read service account token: %w", err))
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode broker request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.String()+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build broker request: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Authorization", "Bearer "+saToken)
	resp, err := hc.Do(hreq)
	if err != nil {
		// url.Error quotes the URL, which holds no credential.
		return unavailable(clientRetryAfter, fmt.Errorf("call broker %s: %w", path, err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return unavailable(clientRetryAfter, fmt.Errorf("read broker answer to %s: %w", path, err))
	}
	if len(b) > maxResponseBytes {
		return unreadable(fmt.Errorf("broker answer to %s exceeds %d bytes", path, maxResponseBytes))
	}
	if resp.StatusCode == http.StatusOK {
		// Not json's message: it could quote the answer, a credential.
		if json.Unmarshal(b, out) != nil {
			return unreadable(fmt.Errorf("broker answer to %s is not json", path))
		}
		return nil
	}
	return answerError(path, resp, b)
}

// answerError restores the clerk error an error answer stands for. Anything
// it cannot read is an *clerk.UnavailableError: fail closed.
func answerError(path string, resp *http.Response, b []byte) error {
	var er ErrorResponse
	if json.Unmarshal(b, &er) != nil || er.Error.Code == "" {
		return unreadable(fmt.Errorf("broker answered %s with %d and no error code", path, resp.StatusCode))
	}
	e := er.Error
	switch e.Code {
	case CodeInvalidToken:
		return &clerk.InvalidTokenError{Reason: safeReason(e.Reason)}
	case CodeUserNotFound:
		return fmt.Errorf("broker %s: %w", path, clerk.ErrUserNotFound)
	case CodeNotConnected:
		return fmt.Errorf("broker %s: %w", path, clerk.ErrNotConnected)
	case CodeTooManyMemberships:
		return fmt.Errorf("broker %s: %w", path, clerk.ErrTooManyMemberships)
	case CodeUnavailable:
		return unavailable(retryAfter(resp, e), fmt.Errorf("broker %s: clerk unavailable", path))
	case CodeUnauthenticated, CodeForbidden:
		return unavailable(clientRetryRefused, fmt.Errorf("broker %s: %s: %w", path, e.Code, ErrRefused))
	default:
		// bad_request, internal, or a code from a newer broker.
		return unavailable(clientRetryAfter, fmt.Errorf("broker %s answered %d %s", path, resp.StatusCode, truncate(e.Code)))
	}
}

// retryAfter reads the answer's Retry-After, else its body's, else the
// default; positive, at most maxClientRetryAfter.
func retryAfter(resp *http.Response, e ErrorBody) time.Duration {
	secs := e.RetryAfterSeconds
	if v, err := strconv.ParseInt(resp.Header.Get("Retry-After"), 10, 64); err == nil {
		secs = v
	}
	if secs <= 0 {
		return clientRetryAfter
	}
	return min(time.Duration(min(secs, int64(maxClientRetryAfter/time.Second)))*time.Second, maxClientRetryAfter)
}

// safeReason keeps an invalid-token reason usable as the gateway uses
// clerk's (logs, a metric label): short, lowercase words only.
func safeReason(r string) string {
	if r == "" || len(r) > maxReasonLength {
		return "rejected by broker"
	}
	for _, c := range []byte(r) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == ' ' || c == '-' || c == '_') {
			return "rejected by broker"
		}
	}
	return r
}

func unavailable(after time.Duration, err error) error {
	return &clerk.UnavailableError{RetryAfter: after, Err: err}
}

// unreadable is an answer the client cannot make sense of: a broker of
// another version, or something else at its address. Fail closed.
func unreadable(err error) error { return unavailable(clientRetryAfter, err) }

// httpClient returns the client trusting the current CA file, building a
// new one when the file changed (the old one's idle connections close).
func (c *Client) httpClient() (*http.Client, error) {
	info, err := os.Stat(c.opts.CAFile)
	if err != nil {
		return nil, fmt.Errorf("read broker ca: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hc != nil && sameFile(c.caSeen, info) {
		return c.hc, nil
	}
	pem, err := readSmallFile(c.opts.CAFile)
	if err != nil {
		return nil, fmt.Errorf("read broker ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(pem)) {
		return nil, fmt.Errorf("read broker ca: %s holds no PEM certificate", c.opts.CAFile)
	}
	t := &http.Transport{
		TLSClientConfig:       &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:     true,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: c.opts.Timeout,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
	}
	if c.opts.Dialer != nil {
		t.DialContext = c.opts.Dialer
	}
	if c.hc != nil {
		c.hc.CloseIdleConnections()
	}
	c.hc = &http.Client{
		Transport: t,
		// Redirects are not followed: the broker does not redirect, and a
		// redirect must not carry the ServiceAccount token away.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	// NOTE: if the file changed between Stat and ReadFile, info is older
	// than the content; the next call sees a change and re-reads.
	c.caSeen = info
	return c.hc, nil
}

// readSmallFile reads a mounted file (token, CA), trimmed. Errors name the
// path, never the content.
func readSmallFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxFileBytes {
		return "", fmt.Errorf("%s is larger than %d bytes", path, maxFileBytes)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

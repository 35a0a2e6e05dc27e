package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mcpgate/mcpgate/clerk"
)

// Defaults of Options.
const (
	// DefaultMaxInstances bounds the verifiers and directories kept; the
	// least recently used goes first. One per McpServer is expected.
	DefaultMaxInstances = 1024
	// retryUnknown is the Retry-After of a 503 whose cause gives none: the
	// API server or the resolver could not answer.
	retryUnknown = time.Second
	// maxAudiences and maxAudienceLength bound the request's audiences.
	maxAudiences      = 8
	maxAudienceLength = 2048
)

// Options configure a Server. Authenticator and Resolver are required.
type Options struct {
	// Authenticator tells which ServiceAccount a request comes from (a
	// TokenReviewAuthenticator in production).
	Authenticator Authenticator
	// Resolver tells which Clerk instance that ServiceAccount may use.
	Resolver Resolver
	// Logger; nil discards.
	Logger *slog.Logger
	// ClerkHTTPClient makes Backend API calls; nil uses clerk.NewHTTPClient().
	ClerkHTTPClient *http.Client
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
	// DirectoryTTL is how long each instance's directory reuses an answer
	// about a user. Zero, the default: never (concurrent lookups still
	// share a call). The gateways cache for their McpServer's cacheTTL; a
	// second cache here would add its own TTL to theirs, and a demoted
	// member would keep access past the cacheTTL the McpServer promises.
	DirectoryTTL time.Duration
	// MaxInstances bounds the instances kept (DefaultMaxInstances when zero).
	MaxInstances int
}

// Server answers gateways' questions about their own Clerk instance. It is
// an http.Handler; the caller serves it over TLS (plain HTTP is refused,
// since every request carries a credential). It is safe for concurrent use.
type Server struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics
	clerkHC *http.Client

	mu        sync.Mutex
	instances map[instanceKey]*clerkInstance
}

// clerkInstance is what the broker keeps per Clerk instance: created on
// first use, reused for every caller resolving to it.
type clerkInstance struct {
	verifier  *clerk.Verifier
	directory *clerk.Directory
	lastUsed  time.Time
}

// NewServer checks opts and returns a Server. It makes no network call.
func NewServer(opts Options) (*Server, error) {
	if opts.Authenticator == nil {
		return nil, errors.New("authenticator is required")
	}
	if opts.Resolver == nil {
		return nil, errors.New("resolver is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxInstances < 0 {
		return nil, fmt.Errorf("max instances %d is negative", opts.MaxInstances)
	}
	if opts.MaxInstances == 0 {
		opts.MaxInstances = DefaultMaxInstances
	}
	s := &Server{opts: opts, log: opts.Logger, metrics: newMetrics(), instances: map[instanceKey]*clerkInstance{}}
	hc := opts.ClerkHTTPClient
	if hc == nil {
		hc = clerk.NewHTTPClient()
	}
	timed := *hc
	base := timed.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	timed.Transport = timedTransport{base: base, seconds: s.metrics.backend, now: opts.Now}
	s.clerkHC = &timed
	return s, nil
}

// Registry is the broker's Prometheus registry, to serve on a metrics port.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.registry }

// MetricsHandler serves Registry in the Prometheus exposition format.
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{})
}

// endpoints maps paths to the endpoint names used in metrics and logs.
var endpoints = map[string]string{
	PathVerify:      endpointVerify,
	PathUser:        endpointUser,
	PathMemberships: endpointMemberships,
	PathOAuthToken:  endpointOAuthToken,
}

// failure is a refusal or an error on its way to the response: the code,
// a fixed message for the caller, and the cause for the log only.
type failure struct {
	code       string
	message    string
	reason     string // clerk.InvalidTokenError.Reason
	retryAfter time.Duration
	cause      error
	// status overrides the code's status (404, 405 for a bad path or method).
	status int
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	endpoint, ok := endpoints[r.URL.Path]
	if !ok {
		endpoint = endpointUnknown
	}
	body, caller, f := s.serve(r, endpoint)
	if f != nil {
		s.fail(w, endpoint, caller, f)
		return
	}
	s.metrics.requests.WithLabelValues(endpoint, outcomeOK).Inc()
	writeJSON(w, http.StatusOK, body)
}

// serve runs the checks in the order that tells an unauthenticated caller
// nothing: transport and endpoint, who is asking, what they may ask about,
// then the question.
func (s *Server) serve(r *http.Request, endpoint string) (any, *Caller, *failure) {
	switch {
	case r.TLS == nil:
		return nil, nil, &failure{code: CodeBadRequest, message: "tls is required"}
	case endpoint == endpointUnknown:
		return nil, nil, &failure{code: CodeBadRequest, message: "no such endpoint", status: http.StatusNotFound}
	case r.Method != http.MethodPost:
		return nil, nil, &failure{code: CodeBadRequest, message: "method must be POST", status: http.StatusMethodNotAllowed}
	}
	caller, f := s.authenticate(r)
	if f != nil {
		return nil, nil, f
	}
	inst, err := s.opts.Resolver.Resolve(r.Context(), caller)
	switch {
	case errors.Is(err, ErrNoInstance):
		return nil, &caller, &failure{code: CodeForbidden, message: "caller may use no clerk instance", cause: err}
	case err != nil:
		return nil, &caller, &failure{code: CodeUnavailable, message: "cannot resolve the caller's instance", retryAfter: retryUnknown, cause: err}
	}
	req, f := decodeRequest(r, endpoint)
	if f != nil {
		return nil, &caller, f
	}
	ci, err := s.instance(inst)
	if err != nil {
		return nil, &caller, &failure{code: CodeInternal, message: "the caller's instance is misconfigured", cause: err}
	}
	body, f := s.answer(r.Context(), endpoint, ci, inst, req)
	return body, &caller, f
}

// authenticate reads the bearer token and asks the Authenticator.
func (s *Server) authenticate(r *http.Request) (Caller, *failure) {
	vals := r.Header.Values("Authorization")
	if len(vals) != 1 {
		return Caller{}, &failure{code: CodeUnauthenticated, message: "one bearer token is required"}
	}
	scheme, token, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return Caller{}, &failure{code: CodeUnauthenticated, message: "one bearer token is required"}
	}
	caller, err := s.opts.Authenticator.Authenticate(r.Context(), token)
	switch {
	case errors.Is(err, ErrUnauthenticated):
		return Caller{}, &failure{code: CodeUnauthenticated, message: "caller token not accepted", cause: err}
	case err != nil:
		return Caller{}, &failure{code: CodeUnavailable, message: "cannot authenticate the caller", retryAfter: retryUnknown, cause: err}
	}
	return caller, nil
}

// decodeRequest reads one bounded JSON Request with no unknown fields and
// checks what the endpoint needs of it.
func decodeRequest(r *http.Request, endpoint string) (Request, *failure) {
	bad := func(msg string, cause error) (Request, *failure) {
		return Request{}, &failure{code: CodeBadRequest, message: msg, cause: cause}
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes+1))
	if err != nil {
		return bad("cannot read the request body", err)
	}
	if len(b) > maxRequestBytes {
		return bad("request body too large", nil)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var req Request
	// Not json's message in the answer: it could quote the body, a token.
	if err := dec.Decode(&req); err != nil {
		return bad("request body is not a broker request", nil)
	}
	if dec.More() {
		return bad("request body holds more than one value", nil)
	}
	if len(req.Audiences) > maxAudiences {
		return bad("too many audiences", nil)
	}
	for _, a := range req.Audiences {
		if a == "" || len(a) > maxAudienceLength {
			return bad("an audience is empty or too long", nil)
		}
	}
	switch {
	case endpoint == endpointOAuthToken && !clerk.ValidOAuthProvider(req.Provider):
		return bad("provider is not a clerk oauth provider id", nil)
	case endpoint != endpointOAuthToken && req.Provider != "":
		return bad("provider is only for "+PathOAuthToken, nil)
	}
	return req, nil
}

// answer verifies the access token for the caller's instance and, for the
// endpoints about a user, asks only about its subject.
func (s *Server) answer(ctx context.Context, endpoint string, ci *clerkInstance, inst Instance, req Request) (any, *failure) {
	auds := inst.Audiences
	if len(auds) == 0 {
		auds = req.Audiences
	}
	id, err := ci.verifier.Verify(ctx, req.AccessToken, clerk.WithAudience(auds...))
	if err != nil {
		return nil, clerkFailure(err)
	}
	switch endpoint {
	case endpointVerify:
		return IdentityResponse{UserID: id.UserID, ClientID: id.ClientID, Scopes: nonNil(id.Scopes),
			ExpiresAt: id.ExpiresAt, TokenID: id.TokenID, Format: id.Format}, nil
	case endpointUser:
		u, err := ci.directory.User(ctx, id.UserID)
		if err != nil {
			return nil, clerkFailure(err)
		}
		return UserResponse{ID: u.ID, PrimaryEmail: u.PrimaryEmail, VerifiedEmails: nonNil(u.VerifiedEmails)}, nil
	case endpointMemberships:
		ms, err := ci.directory.Memberships(ctx, id.UserID)
		if err != nil {
			return nil, clerkFailure(err)
		}
		out := MembershipsResponse{UserID: id.UserID, Memberships: make([]MembershipJSON, 0, len(ms))}
		for _, m := range ms {
			out.Memberships = append(out.Memberships, MembershipJSON{OrganizationID: m.OrganizationID,
				OrganizationSlug: m.OrganizationSlug, Role: m.Role, Permissions: nonNil(m.Permissions)})
		}
		return out, nil
	default: // endpointOAuthToken
		t, err := ci.directory.OAuthToken(ctx, id.UserID, req.Provider)
		if err != nil {
			return nil, clerkFailure(err)
		}
		return OAuthTokenResponse{UserID: id.UserID, Token: t.Token, ExpiresAt: t.ExpiresAt, Scopes: nonNil(t.Scopes)}, nil
	}
}

// clerkFailure maps the clerk package's errors to the protocol's codes, so
// that the client can restore them.
func clerkFailure(err error) *failure {
	var ie *clerk.InvalidTokenError
	var ue *clerk.UnavailableError
	switch {
	case errors.As(err, &ie):
		return &failure{code: CodeInvalidToken, message: "access token not valid for the caller's instance", reason: ie.Reason, cause: err}
	case errors.As(err, &ue):
		return &failure{code: CodeUnavailable, message: "clerk is unavailable", retryAfter: ue.RetryAfter, cause: err}
	case errors.Is(err, clerk.ErrUserNotFound):
		return &failure{code: CodeUserNotFound, message: "clerk does not know the token's subject", cause: err}
	case errors.Is(err, clerk.ErrNotConnected):
		return &failure{code: CodeNotConnected, message: "the token's subject has not connected the provider", cause: err}
	case errors.Is(err, clerk.ErrTooManyMemberships):
		return &failure{code: CodeTooManyMemberships, message: "the token's subject has too many memberships to list", cause: err}
	default:
		return &failure{code: CodeInternal, message: "the broker failed", cause: err}
	}
}

// statusOf is the HTTP status of each code.
var statusOf = map[string]int{
	CodeUnauthenticated:    http.StatusUnauthorized,
	CodeForbidden:          http.StatusForbidden,
	CodeBadRequest:         http.StatusBadRequest,
	CodeInvalidToken:       http.StatusUnprocessableEntity,
	CodeUserNotFound:       http.StatusNotFound,
	CodeNotConnected:       http.StatusNotFound,
	CodeTooManyMemberships: http.StatusUnprocessableEntity,
	CodeUnavailable:        http.StatusServiceUnavailable,
	CodeInternal:           http.StatusInternalServerError,
}

// fail logs f with its cause (clerk's and the API server's errors quote no
// token) and answers with the code and the fixed message only.
func (s *Server) fail(w http.ResponseWriter, endpoint string, caller *Caller, f *failure) {
	s.metrics.requests.WithLabelValues(endpoint, f.code).Inc()
	attrs := []any{"endpoint", endpoint, "code", f.code}
	if caller != nil {
		attrs = append(attrs, "namespace", caller.Namespace, "serviceAccount", caller.Name)
	}
	if f.cause != nil {
		attrs = append(attrs, "error", f.cause)
	}
	// Answers about tokens and users are routine (clients send expired
	// tokens); a refused caller may be an attack; failures need an operator.
	level := slog.LevelDebug
	switch f.code {
	case CodeUnauthenticated, CodeBadRequest:
		level = slog.LevelInfo
	case CodeForbidden, CodeUnavailable, CodeInternal:
		level = slog.LevelWarn
	}
	s.log.Log(context.Background(), level, "Refused broker request", attrs...)

	body := ErrorResponse{Error: ErrorBody{Code: f.code, Message: f.message, Reason: f.reason}}
	switch f.code {
	case CodeUnauthenticated:
		w.Header().Set("WWW-Authenticate", `Bearer realm="mcpgate-broker"`)
	case CodeUnavailable:
		secs := max(int64(math.Ceil(f.retryAfter.Seconds())), 1)
		body.Error.RetryAfterSeconds = secs
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	status := statusOf[f.code]
	if f.status != 0 {
		status = f.status
	}
	if status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodPost)
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	// Answers hold facts about people and credentials: no cache keeps them.
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// instance returns the verifier and directory of inst, created on first use
// and kept; beyond MaxInstances the least recently used goes.
func (s *Server) instance(inst Instance) (*clerkInstance, error) {
	now := s.opts.Now()
	key := inst.key()
	s.mu.Lock()
	defer s.mu.Unlock()
	if ci, ok := s.instances[key]; ok {
		ci.lastUsed = now
		return ci, nil
	}
	v, err := clerk.NewVerifier(clerk.VerifierOptions{
		Issuer:        inst.Issuer,
		BackendAPIURL: inst.BackendAPIURL,
		SecretKey:     inst.SecretKey,
		HTTPClient:    s.clerkHC,
		Now:           s.opts.Now,
		// The gateway keeps opaque verdicts for their TTLs; kept here too,
		// a revoked token would outlive the one minute SECURITY.md states.
		OpaqueCacheTTL:   -1,
		NegativeCacheTTL: -1,
	})
	if err != nil {
		return nil, fmt.Errorf("instance %s: create verifier: %w", inst.ID, err)
	}
	d, err := clerk.NewDirectory(clerk.DirectoryOptions{
		BackendAPIURL: inst.BackendAPIURL,
		SecretKey:     inst.SecretKey,
		HTTPClient:    s.clerkHC,
		Now:           s.opts.Now,
		TTL:           directoryTTL(s.opts.DirectoryTTL),
	})
	if err != nil {
		return nil, fmt.Errorf("instance %s: create directory: %w", inst.ID, err)
	}
	if len(s.instances) >= s.opts.MaxInstances {
		var oldest instanceKey
		first := true
		for k, c := range s.instances {
			if first || c.lastUsed.Before(s.instances[oldest].lastUsed) {
				oldest, first = k, false
			}
		}
		delete(s.instances, oldest)
	}
	ci := &clerkInstance{verifier: v, directory: d, lastUsed: now}
	s.instances[key] = ci
	return ci, nil
}

// nonNil makes an empty list encode as [] rather than null.
// directoryTTL is the clerk.DirectoryOptions.TTL for Options.DirectoryTTL:
// zero means no reuse, which the clerk package spells negative.
func directoryTTL(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

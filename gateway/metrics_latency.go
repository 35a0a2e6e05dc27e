package gateway

import (
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The endpoint label of mcpgate_gateway_clerk_call_duration_seconds: which
// of the gateway's questions a call to Clerk asked. The first four are the
// broker's endpoints too (mcpgate_gateway_broker_calls_total), so that a
// query can add the calls made either way; the set is fixed.
const (
	clerkEndpointVerify      = "verify"      // an opaque token's verification (Backend API, or introspection)
	clerkEndpointUser        = "user"        // a user, for access rules
	clerkEndpointMemberships = "memberships" // a user's organization memberships
	clerkEndpointOAuthToken  = "oauth_token" // a user's token at a connected provider
	clerkEndpointJWKS        = "jwks"        // the instance's public signing keys
	clerkEndpointMetadata    = "metadata"    // the authorization server's metadata
	clerkEndpointOther       = "other"
)

// clerkEndpoints lists every endpoint label, for creating each series up front.
var clerkEndpoints = []string{clerkEndpointVerify, clerkEndpointUser, clerkEndpointMemberships,
	clerkEndpointOAuthToken, clerkEndpointJWKS, clerkEndpointMetadata, clerkEndpointOther}

// clerkEndpoint names the question a request to Clerk at path asks. It reads
// the path's fixed segments only, never a user id or provider, so the label
// stays one of clerkEndpoints whatever the path holds.
func clerkEndpoint(path string) string {
	switch {
	case strings.HasSuffix(path, "/oauth_applications/access_tokens/verify"), strings.HasSuffix(path, "/oauth/token_info"):
		return clerkEndpointVerify
	case strings.HasSuffix(path, "/.well-known/jwks.json"), strings.HasSuffix(path, "/jwks"):
		return clerkEndpointJWKS
	case strings.Contains(path, "/.well-known/"):
		return clerkEndpointMetadata
	}
	// /users/{id}, /users/{id}/organization_memberships,
	// /users/{id}/oauth_access_tokens/{provider}, under the API's base path.
	_, rest, ok := strings.Cut(path, "/users/")
	if !ok || rest == "" {
		return clerkEndpointOther
	}
	segments := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	switch {
	case len(segments) == 1:
		return clerkEndpointUser
	case len(segments) == 2 && segments[1] == "organization_memberships":
		return clerkEndpointMemberships
	case len(segments) == 3 && segments[1] == "oauth_access_tokens":
		return clerkEndpointOAuthToken
	}
	return clerkEndpointOther
}

// clerkCallMetrics count and time the gateway's HTTP calls to Clerk. They
// are one Collector, so that they register together.
type clerkCallMetrics struct {
	count   *prometheus.CounterVec
	seconds *prometheus.HistogramVec
}

func newClerkCallMetrics() *clerkCallMetrics {
	return &clerkCallMetrics{
		count: counterVec("mcpgate_gateway_clerk_calls_total",
			"HTTP calls to Clerk (Backend API and Frontend API metadata), by outcome.", "outcome"),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mcpgate_gateway_clerk_call_duration_seconds",
			Help: "Time of HTTP calls to Clerk to the response's headers, by endpoint (verify, user, memberships, oauth_token, jwks, metadata, other) and outcome.",
			// The broker's buckets (mcpgate_broker_backend_api_seconds), so the two read alike.
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"endpoint", "outcome"}),
	}
}

func (c *clerkCallMetrics) Describe(ch chan<- *prometheus.Desc) {
	c.count.Describe(ch)
	c.seconds.Describe(ch)
}

func (c *clerkCallMetrics) Collect(ch chan<- prometheus.Metric) {
	c.count.Collect(ch)
	c.seconds.Collect(ch)
}

// headerTimer notes when a response's headers were written, for
// mcpgate_gateway_request_duration_seconds. Like statusWriter it passes
// Flush through and unwraps, so SSE events still leave at once.
type headerTimer struct {
	http.ResponseWriter
	wrote time.Time
}

func (w *headerTimer) WriteHeader(code int) {
	if w.wrote.IsZero() && code >= 200 {
		w.wrote = time.Now()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *headerTimer) Write(b []byte) (int, error) {
	if w.wrote.IsZero() {
		w.wrote = time.Now()
	}
	return w.ResponseWriter.Write(b)
}

func (w *headerTimer) Flush() {
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *headerTimer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// requestRoutes are the routes the router gives requests, the label values
// of mcpgate_gateway_request_duration_seconds.
var requestRoutes = []string{routeMCP, routeResourceMetadata, routeASMetadata, routeOpenIDConfig, routeNotFound}

// timeRequests observes each request's time to the start of its response,
// by the route the router gave it. It runs inside withRequestInfo, which
// holds the route; a response never started (a handler that wrote nothing)
// is timed to the handler's return. The routes' observers are looked up
// once, here: a label lookup per request would cost more than the rest.
func (g *Gateway) timeRequests(next http.Handler) http.Handler {
	observers := make(map[string]prometheus.Observer, len(requestRoutes))
	for _, route := range requestRoutes {
		observers[route] = g.metrics.requestSeconds.WithLabelValues(route)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		hw := &headerTimer{ResponseWriter: w}
		defer func() {
			end := hw.wrote
			if end.IsZero() {
				end = time.Now()
			}
			route := infoFrom(r.Context()).route
			o, ok := observers[route]
			if !ok {
				o = g.metrics.requestSeconds.WithLabelValues(route)
			}
			o.Observe(end.Sub(start).Seconds())
		}()
		next.ServeHTTP(hw, r)
	})
}

package gateway

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mcpgate/mcpgate/clerk"
	"github.com/mcpgate/mcpgate/gateway/config"
	"github.com/mcpgate/mcpgate/internal/promutil"
)

// Auth outcomes and reasons, the label values of mcpgate_gateway_auth_total.
// The sets are fixed, so the metric's cardinality is too.
const (
	outcomeAllowed = "allowed"
	outcomeDenied  = "denied"
	outcomeError   = "error"

	reasonOK                = "ok"
	reasonMissingToken      = "missing_token"
	reasonInvalidRequest    = "invalid_request"
	reasonInvalidToken      = "invalid_token"
	reasonInsufficientScope = "insufficient_scope"
	reasonMalformedRequest  = "malformed_request"
	reasonClerkUnavailable  = "clerk_unavailable"
	reasonAccessDenied      = "access_denied"
	reasonHeaderMismatch    = "header_mismatch"
	// reasonCredentialUnavailable: an upstream credential file is missing
	// or unusable, so the request cannot be forwarded.
	reasonCredentialUnavailable = "credential_unavailable"
	// reasonNotConnected: the caller has not connected the provider whose
	// token the upstream needs.
	reasonNotConnected = "not_connected"
)

// authOutcome maps each reason to its outcome.
var authOutcome = map[string]string{
	reasonOK:                outcomeAllowed,
	reasonMissingToken:      outcomeDenied,
	reasonInvalidRequest:    outcomeDenied,
	reasonInvalidToken:      outcomeDenied,
	reasonInsufficientScope: outcomeDenied,
	reasonMalformedRequest:  outcomeDenied,
	reasonClerkUnavailable:  outcomeError,
	reasonAccessDenied:      outcomeDenied,
	reasonHeaderMismatch:    outcomeDenied,

	reasonCredentialUnavailable: outcomeError,
	reasonNotConnected:          outcomeDenied,
}

// metrics are the gateway's Prometheus metrics, in a registry of its own:
// no package-level state, so several gateways (tests) can live in one process.
type metrics struct {
	registry     *prometheus.Registry
	requests     *prometheus.CounterVec
	auth         *prometheus.CounterVec
	verification *prometheus.HistogramVec
	upstream     prometheus.Histogram
	openStreams  prometheus.Gauge
	clerkCalls   *clerkCallMetrics
	// brokerCalls counts the calls to the Clerk key broker, which answers
	// in place of the Backend API when the gateway has one; its series
	// exist only then.
	brokerCalls *prometheus.CounterVec
	// requestSeconds times requests to the start of their response.
	requestSeconds *prometheus.HistogramVec
	// identityLookups counts the gateway's questions about users; the
	// Backend API calls among them are in clerkCalls (with a broker, the
	// broker's in brokerCalls), the rest were answered from the
	// directory's cache.
	identityLookups *prometheus.CounterVec
	// userTokenLookups counts the gateway's questions for callers' tokens
	// at the upstream's provider, cached answers included.
	userTokenLookups *prometheus.CounterVec
	// auditDropped counts audit records not written: the queue was full
	// or the output failed.
	auditDropped prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: counterVec("mcpgate_gateway_requests_total",
			"Requests served, by route and HTTP status code.", "route", "code"),
		auth: counterVec("mcpgate_gateway_auth_total",
			"Authorization decisions on MCP requests, by outcome (allowed, denied, error) and reason.", "outcome", "reason"),
		verification: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mcpgate_gateway_token_verification_seconds",
			Help:    "Time to verify an access token, by token format (jwt, opaque, other); cached verdicts included.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9), // 100µs to 6.5s
		}, []string{"format"}),
		upstream: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mcpgate_gateway_upstream_seconds",
			Help:    "Time from sending a request upstream to receiving its response headers (not the length of a stream).",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}),
		openStreams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mcpgate_gateway_open_streams",
			Help: "Server-sent event streams being relayed from the upstream right now.",
		}),
		requestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mcpgate_gateway_request_duration_seconds",
			Help:    "Time from receiving a request to starting its response (headers written; not the length of a stream), by route.",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
		clerkCalls: newClerkCallMetrics(),
		brokerCalls: counterVec("mcpgate_gateway_broker_calls_total",
			"Calls to the Clerk key broker in place of the Backend API, by endpoint (verify, user, memberships, oauth_token) and outcome (ok, invalid_token, user_not_found, not_connected, too_many_memberships, refused, unavailable).",
			"endpoint", "outcome"),
		identityLookups: counterVec("mcpgate_gateway_identity_lookups_total",
			"Lookups of what access rules need to know about a caller, by kind (user, memberships) and result (found, not_found, unavailable); cached answers included.",
			"kind", "result"),
		userTokenLookups: counterVec("mcpgate_gateway_user_token_lookups_total",
			"Lookups of callers' tokens at the upstream's OAuth provider, by result (found, not_connected, unavailable); cached answers included.",
			"result"),
		auditDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: config.AuditDroppedMetric,
			Help: "Audit records dropped because the audit output could not keep up (the queue was full) or failed.",
		}),
	}
	m.registry.MustRegister(m.requests, m.auth, m.verification, m.upstream, m.openStreams, m.clerkCalls, m.brokerCalls, m.identityLookups, m.userTokenLookups, m.auditDropped,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every series of the fixed label sets exists from the start, so a
	// dashboard or an alert sees zeros rather than no data.
	for reason, outcome := range authOutcome {
		m.auth.WithLabelValues(outcome, reason)
	}
	for _, f := range []clerk.TokenFormat{clerk.FormatJWT, clerk.FormatOpaque, clerk.FormatOther} {
		m.verification.WithLabelValues(string(f))
	}
	for _, kind := range []string{lookupUser, lookupMemberships} {
		for _, result := range []string{lookupFound, lookupNotFound, lookupUnavailable} {
			m.identityLookups.WithLabelValues(kind, result)
		}
	}
	for _, result := range []string{tokenFound, tokenNotConnected, tokenUnavailable} {
		m.userTokenLookups.WithLabelValues(result)
	}
	for _, o := range promutil.Outcomes() {
		m.clerkCalls.count.WithLabelValues(o)
	}
	// Only the successes of each endpoint up front: the histogram's other
	// outcomes would multiply its series by six in every gateway.
	for _, e := range clerkEndpoints {
		m.clerkCalls.seconds.WithLabelValues(e, promutil.OutcomeOK)
	}
	m.registry.MustRegister(m.requestSeconds)
	return m
}

// counterVec is a counter family with the given labels.
func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

// countAuth records one authorization decision.
func (m *metrics) countAuth(reason string) {
	m.auth.WithLabelValues(authOutcome[reason], reason).Inc()
}

// clerkCallCounter counts and times the calls made through the HTTP client
// handed to the verifier, the directory and the metadata cache: they do not
// report their calls, but every one of them goes through this transport.
// The outcomes are promutil's; the time is to the response's headers.
type clerkCallCounter struct {
	base  http.RoundTripper
	calls *clerkCallMetrics
}

func (t clerkCallCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.base.RoundTrip(req)
	outcome := promutil.HTTPOutcome(resp, err)
	t.calls.count.WithLabelValues(outcome).Inc()
	t.calls.seconds.WithLabelValues(clerkEndpoint(req.URL.Path), outcome).Observe(time.Since(start).Seconds())
	return resp, err
}

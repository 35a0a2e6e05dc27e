package broker

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mcpgate/mcpgate/internal/promutil"
)

// Endpoint names, the endpoint label of mcpgate_broker_requests_total.
const (
	endpointVerify      = "verify"
	endpointUser        = "user"
	endpointMemberships = "memberships"
	endpointOAuthToken  = "oauth_token"
	endpointUnknown     = "unknown"
)

// outcomeOK is the outcome of an answered request; the others are the error
// codes of the protocol.
const outcomeOK = "ok"

// metrics are the broker's Prometheus metrics, in a registry of its own: no
// package-level state, so several servers (tests) can live in one process.
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	backend  *prometheus.HistogramVec
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpgate_broker_requests_total",
			Help: "Requests from gateways, by endpoint and outcome (ok, or the protocol's error code).",
		}, []string{"endpoint", "outcome"}),
		backend: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mcpgate_broker_backend_api_seconds",
			Help:    "Time of HTTP calls to Clerk's Backend API, by outcome.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"outcome"}),
	}
	m.registry.MustRegister(m.requests, m.backend,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every series of the fixed label sets exists from the start, so a
	// dashboard or an alert sees zeros rather than no data.
	outcomes := []string{outcomeOK, CodeUnauthenticated, CodeForbidden, CodeBadRequest, CodeInvalidToken,
		CodeUserNotFound, CodeNotConnected, CodeTooManyMemberships, CodeUnavailable, CodeInternal}
	for _, e := range []string{endpointVerify, endpointUser, endpointMemberships, endpointOAuthToken, endpointUnknown} {
		for _, o := range outcomes {
			m.requests.WithLabelValues(e, o)
		}
	}
	for _, o := range promutil.Outcomes() {
		m.backend.WithLabelValues(o)
	}
	return m
}

// timedTransport measures every Backend API call made by the instances'
// verifiers and directories, which do not report their calls themselves.
// Its outcome label is promutil's, as the gateway's Clerk calls have it.
type timedTransport struct {
	base    http.RoundTripper
	seconds *prometheus.HistogramVec
	now     func() time.Time
}

func (t timedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := t.now()
	resp, err := t.base.RoundTrip(req)
	t.seconds.WithLabelValues(promutil.HTTPOutcome(resp, err)).Observe(t.now().Sub(start).Seconds())
	return resp, err
}

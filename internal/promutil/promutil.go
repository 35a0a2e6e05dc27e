// Package promutil holds what the gateway's and the broker's Prometheus
// metrics share: the outcome label of their HTTP calls to Clerk
// (mcpgate_gateway_clerk_calls_total, mcpgate_broker_backend_api_seconds),
// so that the two keep one set of values.
package promutil

import "net/http"

// Outcomes of an HTTP call, the label values. The set is fixed, so the
// cardinality of a metric labelled with it is too.
const (
	OutcomeOK           = "ok"
	OutcomeRejected     = "rejected"      // a 4xx other than those below
	OutcomeUnauthorized = "unauthorized"  // 401 or 403
	OutcomeRateLimited  = "rate_limited"  // 429
	OutcomeServerError  = "server_error"  // 5xx
	OutcomeNetworkError = "network_error" // no response
)

// Outcomes returns every outcome, for creating each series up front.
func Outcomes() []string {
	return []string{OutcomeOK, OutcomeRejected, OutcomeUnauthorized, OutcomeRateLimited, OutcomeServerError, OutcomeNetworkError}
}

// HTTPOutcome is the outcome of a call that a RoundTripper answered with
// resp and err.
func HTTPOutcome(resp *http.Response, err error) string {
	if err != nil {
		return OutcomeNetworkError
	}
	switch s := resp.StatusCode; {
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		return OutcomeUnauthorized
	case s == http.StatusTooManyRequests:
		return OutcomeRateLimited
	case s >= 500:
		return OutcomeServerError
	case s >= 400:
		return OutcomeRejected
	}
	return OutcomeOK
}

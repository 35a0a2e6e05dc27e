package clerktest

import (
	"math"
	"net/http"
	"strconv"
	"time"
)

// AllEndpoints is the endpoint name that matches every endpoint, in SetFault
// and Calls.
const AllEndpoints = "*"

// Fault is what an endpoint does instead of, or before, its real work. The
// parts apply in order: Latency, then Outage, then Status.
type Fault struct {
	// Latency delays the request (or the failure). A client that gives up
	// meanwhile gets nothing.
	Latency time.Duration
	// Status, such as 500, 503 or 429, is returned with Clerk's error body
	// instead of the real response.
	Status int
	// RetryAfter sets the Retry-After header, in whole seconds rounded up,
	// on a Status response (Clerk sends it with 429).
	RetryAfter time.Duration
	// Outage closes the connection without any response.
	Outage bool
}

// SetFault injects f into endpoint: "METHOD /path" exactly as routed, such
// as "POST /v1/oauth_applications/access_tokens/verify" or
// "GET /.well-known/jwks.json"; for a route with path parameters, the
// pattern with the spec's parameter names, such as "GET /v1/users/{user_id}"
// (every user), or one concrete path, such as "GET /v1/users/user_123"
// (that user only); or "*" for every endpoint of both APIs. The most
// specific fault applies: concrete path, then pattern, then "*". The zero
// Fault removes the endpoint's fault.
func (s *Server) SetFault(endpoint string, f Fault) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	if f == (Fault{}) {
		delete(s.faults, endpoint)
		return
	}
	s.faults[endpoint] = f
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	clear(s.faults)
}

// Calls reports how many requests endpoint received since the start or the
// last ResetCalls, faulted ones included; "*" counts all endpoints. Endpoint
// names are those of SetFault: a pattern such as
// "GET /v1/users/{user_id}/organization_memberships" counts every user, a
// concrete path such as "GET /v1/users/user_123" one user.
func (s *Server) Calls(endpoint string) int {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	if endpoint != AllEndpoints {
		if n, ok := s.calls[endpoint]; ok {
			return n
		}
		return s.pathCalls[endpoint]
	}
	total := 0
	for _, n := range s.calls {
		total += n
	}
	return total
}

// ResetCalls sets every call counter to zero.
func (s *Server) ResetCalls() {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	clear(s.calls)
	clear(s.pathCalls)
}

// countAndFault counts a request to endpoint (the route's name) and, when
// the route has path parameters, to its concrete "METHOD /path", and returns
// the fault that applies to it, if any.
func (s *Server) countAndFault(endpoint, concrete string) (Fault, bool) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.calls[endpoint]++
	if concrete != endpoint {
		s.pathCalls[concrete]++
		if f, ok := s.faults[concrete]; ok {
			return f, true
		}
	}
	if f, ok := s.faults[endpoint]; ok {
		return f, true
	}
	f, ok := s.faults[AllEndpoints]
	return f, ok
}

// applyFault runs f; unless it returns faultNone, the real handler must not run.
func applyFault(w http.ResponseWriter, r *http.Request, f Fault) faultOutcome {
	if f.Latency > 0 {
		timer := time.NewTimer(f.Latency)
		select {
		case <-timer.C:
		case <-r.Context().Done():
			timer.Stop()
			return faultDropped
		}
	}
	if f.Outage {
		dropConnection(w)
		return faultDropped
	}
	if f.Status == 0 {
		return faultNone
	}
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(f.RetryAfter.Seconds()))))
	}
	writeClerkError(w, f.Status, faultError(f.Status))
	return faultAnswered
}

// dropConnection closes the client's connection with no response at all.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 or a writer that cannot hijack: aborting the handler
		// resets the stream without a response.
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

// faultError is the Clerk error body for an injected status.
func faultError(status int) clerkError {
	switch {
	case status == http.StatusTooManyRequests:
		return clerkError{Message: "Too Many Requests", LongMessage: "Too many requests, retry later", Code: "too_many_requests"}
	case status == http.StatusInternalServerError:
		return clerkError{Message: "Oops, an unexpected error occurred", LongMessage: "There was an internal error on our servers. We've been notified and are working on fixing it.", Code: "internal_clerk_error"}
	case status >= 500:
		return clerkError{Message: "Service unavailable", LongMessage: "The service is temporarily unavailable, please try again later", Code: "service_unavailable"}
	default:
		return clerkError{Message: http.StatusText(status), LongMessage: "Injected fault: " + http.StatusText(status), Code: "injected_fault"}
	}
}

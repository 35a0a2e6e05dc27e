package clerktest

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"time"
)

// routes maps an endpoint, "METHOD /path", to its handler. Routing on the
// same string that names faults and counters keeps the three in step; a
// method the path does not serve is a 404, as at Clerk. A path segment
// written "{name}" matches any one non-empty segment, whose value the
// handler reads with r.PathValue(name); the endpoint is then the pattern
// itself ("GET /v1/users/{user_id}"), so that one counter and one fault
// cover every user, as one operation of the spec does.
type routes map[string]http.HandlerFunc

// match finds the route for r: the exact "METHOD /path" first, then a
// pattern. It sets the pattern's path values on r and returns the endpoint
// name (the pattern, or "METHOD /path" when nothing matched) and the
// handler, nil when nothing matched.
func (rt routes) match(r *http.Request) (string, http.HandlerFunc) {
	endpoint := r.Method + " " + r.URL.Path
	if h, ok := rt[endpoint]; ok {
		return endpoint, h
	}
	segments := strings.Split(r.URL.Path, "/")
	for pattern, h := range rt {
		method, path, _ := strings.Cut(pattern, " ")
		if method != r.Method || !strings.Contains(path, "{") {
			continue
		}
		if values, ok := matchSegments(strings.Split(path, "/"), segments); ok {
			for name, v := range values {
				r.SetPathValue(name, v)
			}
			return pattern, h
		}
	}
	return endpoint, nil
}

// matchSegments matches a path, split at "/", against a pattern split the
// same way, and returns the values of the pattern's "{name}" segments.
func matchSegments(pattern, segments []string) (map[string]string, bool) {
	if len(pattern) != len(segments) {
		return nil, false
	}
	values := map[string]string{}
	for i, p := range pattern {
		switch {
		case strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}"):
			if segments[i] == "" {
				return nil, false
			}
			values[p[1:len(p)-1]] = segments[i]
		case p != segments[i]:
			return nil, false
		}
	}
	return values, true
}

// faultOutcome says what an injected fault did to a request.
type faultOutcome int

const (
	faultNone     faultOutcome = iota // the real handler runs
	faultAnswered                     // an error status was written
	faultDropped                      // no response: connection closed or client gone
)

// serve is the request pipeline of one API: count the call, apply any
// fault, authenticate (Backend API only), route, then log and, for the
// Backend API, report the exchange to the observer.
func (s *Server) serve(api string, rt routes, authenticate func(http.ResponseWriter, *http.Request) bool, observe bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now() // wall time for the log; the injected clock may stand still
		endpoint, handler := rt.match(r)
		cw := &captureWriter{ResponseWriter: w}

		observer := s.observer
		if !observe {
			observer = nil
		}
		var reqBody []byte
		if observer != nil {
			// Read the body up front so the observer sees it even when a
			// fault or a failed authentication answers before the handler.
			reqBody, _ = readBody(r)
			r.Body = io.NopCloser(bytes.NewReader(reqBody))
			cw.keepBody = true
		}

		outcome := faultNone
		if f, ok := s.countAndFault(endpoint, r.Method+" "+r.URL.Path); ok {
			outcome = applyFault(cw, r, f)
		}
		if outcome == faultNone && (authenticate == nil || authenticate(cw, r)) {
			if handler != nil {
				handler(cw, r)
			} else {
				notFound(cw, r)
			}
		}

		if outcome == faultDropped {
			s.logger.Info("Dropped request", "api", api, "method", r.Method, "path", r.URL.Path, "duration", time.Since(start))
			return
		}
		s.logger.Info("Served request", "api", api, "method", r.Method, "path", r.URL.Path, "status", cw.status, "duration", time.Since(start))
		if observer != nil {
			req := r.Clone(r.Context())
			req.Body = io.NopCloser(bytes.NewReader(reqBody))
			observer(Exchange{
				Request:      req,
				RequestBody:  reqBody,
				Status:       cw.status,
				Header:       cw.Header().Clone(),
				ResponseBody: cw.body.Bytes(),
			})
		}
	})
}

// captureWriter records the status and, when asked, the body written through it.
type captureWriter struct {
	http.ResponseWriter
	status   int
	keepBody bool
	body     bytes.Buffer
}

func (c *captureWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	if c.keepBody {
		c.body.Write(b)
	}
	return c.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (to hijack it).
func (c *captureWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

package clerktest

import (
	"bytes"
	"io"
	"net/http"
	"time"
)

// routes maps an endpoint, "METHOD /path", to its handler. Routing on the
// same string that names faults and counters keeps the three in step; a
// method the path does not serve is a 404, as at Clerk.
type routes map[string]http.HandlerFunc

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
		endpoint := r.Method + " " + r.URL.Path
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
		if f, ok := s.countAndFault(endpoint); ok {
			outcome = applyFault(cw, r, f)
		}
		if outcome == faultNone && (authenticate == nil || authenticate(cw, r)) {
			if h, ok := rt[endpoint]; ok {
				h(cw, r)
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

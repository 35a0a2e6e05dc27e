package gateway

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mcpgate/mcpgate/clerk"
)

// newHealthHandler serves the probes and the metrics, on their own listener
// so that neither is reachable through the Ingress.
func (g *Gateway) newHealthHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writePlain(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", g.serveReadyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.metrics.registry, promhttp.HandlerOpts{Registry: g.metrics.registry}))
	return mux
}

// serveReadyz reports ready once the token verifier holds Clerk's signing
// keys, so a new replica gets traffic only when it can verify JWTs without
// first waiting on Clerk, and unready while draining, so it stops getting
// traffic. Once in, the keys stay cached; Clerk going down later does not
// make a replica unready, since all of them would go together. An upstream
// credential file is checked on every probe: while one is missing or empty
// the replica could only answer 503, so it is unready.
func (g *Gateway) serveReadyz(w http.ResponseWriter, r *http.Request) {
	if g.draining.Load() {
		writePlain(w, http.StatusServiceUnavailable, "not ready: shutting down")
		return
	}
	if err := g.creds.ready(r.Context()); err != nil {
		writePlain(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
		return
	}
	if err := g.probeReady(r.Context()); err != nil {
		writePlain(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
		return
	}
	writePlain(w, http.StatusOK, "ok")
}

// probeTimeout bounds one readiness check.
const probeTimeout = 5 * time.Second

// probeKeyID names no key Clerk has, so verifying the probe token always
// ends at the key lookup.
const probeKeyID = "mcpgate-readiness-probe"

// unknownKeyReason is the verifier's reason for a token whose key id is not
// in the key set it holds: that it says so proves it has one.
const unknownKeyReason = "unknown signing key"

// readinessProbeToken is a JWT-shaped token the verifier accepts as far as
// looking up its signing key: RS256, typ at+jwt, a key id no key set has.
func readinessProbeToken() string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"RS256","kid":"`+probeKeyID+`","typ":"at+jwt"}`)) + "." +
		enc.EncodeToString([]byte(`{}`)) + "." + enc.EncodeToString([]byte("probe"))
}

// probeReady reports nil once the verifier has fetched Clerk's signing keys.
//
// The verifier offers no warm-up call, so the check verifies a probe token
// whose key id names no key: the verifier fetches the key set for it (the
// same fetch, through the same cache, that real tokens use, with the secret
// key) and then refuses the token for its unknown key, which proves the set
// is in. A failed fetch comes back as unavailability. The verifier rate
// limits its own fetches, so probing often costs Clerk nothing.
func (g *Gateway) probeReady(ctx context.Context) error {
	if g.ready.Load() {
		return nil
	}
	if !g.probeMu.TryLock() {
		return errors.New("readiness check in progress")
	}
	defer g.probeMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	_, err := g.verifier.Verify(ctx, g.probeToken)
	var invalid *clerk.InvalidTokenError
	if errors.As(err, &invalid) && invalid.Reason == unknownKeyReason {
		if !g.ready.Swap(true) {
			g.log.Info("Fetched Clerk's signing keys: ready")
		}
		return nil
	}
	if err == nil {
		err = errors.New("the readiness probe token verified")
	}
	return err
}

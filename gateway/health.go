package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
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
// keys and the upstream has accepted a connection, so a new replica gets
// traffic only when it can verify JWTs without first waiting on Clerk and
// can reach what it proxies to: a NetworkPolicy enforcer admits a new pod's
// address a moment after the pod starts, and until then the upstream refuses
// it. It is unready while draining, so it stops getting traffic. Once in,
// it stays in; Clerk or the upstream going down later does not make a
// replica unready, since all of them would go together. An upstream
// credential file is checked on every probe: while one is missing or empty
// the replica could only answer 503, so it is unready.
func (g *Gateway) serveReadyz(w http.ResponseWriter, r *http.Request) {
	if g.draining.Load() {
		writePlain(w, http.StatusServiceUnavailable, "not ready: shutting down")
		return
	}
	if err := g.creds.ready(r.Context(), g.opts.Now()); err != nil {
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

// probeReady reports nil once the verifier holds Clerk's signing keys and
// the upstream has accepted a connection. Until then the verifier fetches
// the keys through the same collapsed, rate-limited path real tokens use
// (and with the keys they will use), so probing often costs Clerk nothing
// and concurrent probes share one fetch; a failed fetch comes back as
// unavailability.
func (g *Gateway) probeReady(ctx context.Context) error {
	if g.ready.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if err := g.verifier.Ready(ctx); err != nil {
		return err
	}
	if err := g.reachUpstream(ctx); err != nil {
		g.log.LogAttrs(ctx, slog.LevelWarn, "Not ready: could not connect to the upstream", slog.String("error", err.Error()))
		return err
	}
	if !g.ready.Swap(true) {
		g.log.Info("Fetched Clerk's signing keys and reached the upstream: ready")
	}
	return nil
}

// reachUpstream opens a connection to the upstream as the proxy would, and
// closes it.
func (g *Gateway) reachUpstream(ctx context.Context) error {
	addr := g.upstreamAddr()
	conn, err := g.dialUpstream(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("the upstream %s: %w", addr, err)
	}
	return conn.Close()
}

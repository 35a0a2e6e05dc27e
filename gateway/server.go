package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Run listens on the configured traffic and health addresses and serves
// until ctx is cancelled, then drains (see Serve).
func (g *Gateway) Run(ctx context.Context) error {
	var lc net.ListenConfig
	traffic, err := lc.Listen(ctx, "tcp", g.cfg.Listen.Traffic)
	if err != nil {
		return fmt.Errorf("listen for traffic: %w", err)
	}
	health, err := lc.Listen(ctx, "tcp", g.cfg.Listen.Health)
	if err != nil {
		_ = traffic.Close()
		return fmt.Errorf("listen for health checks: %w", err)
	}
	return g.Serve(ctx, traffic, health)
}

// Serve serves traffic and health on the given listeners until ctx is
// cancelled. It then reports unready, serves on for ShutdownDelay so that
// load balancers stop sending it requests, stops accepting connections, lets
// requests in flight finish for up to ShutdownGrace, and closes whatever is
// still open (long SSE streams), which cancels their upstream requests.
// It returns nil after such a shutdown, or the error of a failed listener.
func (g *Gateway) Serve(ctx context.Context, traffic, health net.Listener) error {
	trafficSrv, healthSrv := g.newServer(g.traffic), g.newServer(g.health)
	g.log.Info("Serving", "traffic", traffic.Addr().String(), "health", health.Addr().String(),
		"path", g.cfg.Path, "upstream", g.upstream.Redacted(), "issuer", g.cfg.Clerk.Issuer)

	errc := make(chan error, 2)
	go func() { errc <- serveListener(trafficSrv, traffic, "traffic") }()
	go func() { errc <- serveListener(healthSrv, health, "health") }()
	warmCtx, stopWarm := context.WithCancel(ctx)
	defer stopWarm()
	go g.warmUp(warmCtx)

	var failed error
	select {
	case <-ctx.Done():
	case failed = <-errc:
	}
	stopWarm()
	g.draining.Store(true)
	if failed == nil && g.opts.ShutdownDelay > 0 {
		g.log.Info("Unready; serving until the delay is over", "delay", g.opts.ShutdownDelay.String())
		select {
		case <-time.After(g.opts.ShutdownDelay):
		case failed = <-errc:
		}
	}
	g.drain(trafficSrv)
	// The records of the last requests, before the process exits.
	if !g.audit.flush(auditFlushTimeout) {
		g.log.Warn("Audit records left unwritten at shutdown: the audit output is blocked")
	}
	_ = healthSrv.Close()
	g.shutdownTracing(context.Background())
	return failed
}

// newServer has the timeouts a server facing the internet needs, except
// the ones that would cut streams: no ReadTimeout (it covers the body and,
// in Go, also ends a connection's background read) and no WriteTimeout.
// Bodies are bounded per request instead (see readBody).
func (g *Gateway) newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: g.opts.ReadHeaderTimeout,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
}

func serveListener(srv *http.Server, ln net.Listener, name string) error {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", name, err)
	}
	return nil
}

// drain shuts the traffic server down within the grace period; Serve has
// already made the gateway unready.
func (g *Gateway) drain(srv *http.Server) {
	g.log.Info("Draining", "grace", g.opts.ShutdownGrace.String())
	ctx, cancel := context.WithTimeout(context.Background(), g.opts.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		g.log.Warn("Closing connections still open after the grace period", "error", err.Error())
		_ = srv.Close()
		return
	}
	g.log.Info("Drained")
}

// warmUp fetches what the first requests would otherwise wait for: Clerk's
// signing keys (which also makes the gateway ready) and its metadata
// documents. Keys are retried with back-off until they are in.
func (g *Gateway) warmUp(ctx context.Context) {
	for _, p := range []string{wellKnownAS, wellKnownOpenID} {
		go func() {
			if _, err := g.asMetadata.get(ctx, p); err != nil && ctx.Err() == nil {
				g.log.Warn("Could not fetch authorization server metadata; will retry on demand", "path", p, "error", err.Error())
			}
		}()
	}
	wait := time.Second
	for {
		err := g.probeReady(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}
		g.log.Warn("Not ready: could not fetch Clerk's signing keys", "error", err.Error(), "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

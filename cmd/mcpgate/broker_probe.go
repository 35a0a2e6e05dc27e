package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcpgate/mcpgate/broker"
)

const (
	// clerkProbeFailures is how many probes in a row must fail before a URL
	// counts as unreachable: one slow or lost answer does not make the
	// broker unready.
	clerkProbeFailures = 3
	// maxClerkProbeTimeout bounds one probe.
	maxClerkProbeTimeout = 5 * time.Second
	// maxProbeBodyBytes is what is read of an answer before it is dropped.
	maxProbeBodyBytes = 4 << 10
)

// clerkProbe tells whether Clerk's Backend API can be reached. Every
// interval it sends an unauthenticated GET to each base URL: any HTTP
// answer (401 and 404 included) counts as reachable, a network failure or
// timeout as a failure. A URL is unreachable until its first answer, and
// again after clerkProbeFailures failures in a row; one answer makes it
// reachable. No secret key is sent: the probe costs Clerk nothing and
// proves only that it answers.
type clerkProbe struct {
	urls     []string
	hc       *http.Client
	interval time.Duration
	timeout  time.Duration
	log      *slog.Logger

	mu    sync.Mutex
	state map[string]*probeState
}

// probeState is one URL's reachability.
type probeState struct {
	reachable bool
	failures  int
	// lastErr says why the last probe failed, for /readyz and the log.
	lastErr string
}

func newClerkProbe(urls []string, hc *http.Client, interval time.Duration, log *slog.Logger) *clerkProbe {
	p := &clerkProbe{urls: urls, hc: hc, interval: interval, timeout: min(interval, maxClerkProbeTimeout), log: log,
		state: make(map[string]*probeState, len(urls))}
	for _, u := range urls {
		p.state[u] = &probeState{lastErr: "not probed yet"}
	}
	return p
}

// run probes at once, then every interval, until ctx ends.
func (p *clerkProbe) run(ctx context.Context) {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		var wg sync.WaitGroup
		for _, u := range p.urls {
			wg.Go(func() { p.record(u, p.probe(ctx, u)) })
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probe sends one GET to u.
func (p *clerkProbe) probe(ctx context.Context, u string) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxProbeBodyBytes))
	_ = resp.Body.Close()
	return nil
}

// record applies one probe's outcome to u's state.
func (p *clerkProbe) record(u string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.state[u]
	was := s.reachable
	if err == nil {
		s.reachable, s.failures, s.lastErr = true, 0, ""
	} else {
		s.failures++
		s.lastErr = err.Error()
		if s.failures >= clerkProbeFailures {
			s.reachable = false
		}
	}
	switch {
	case s.reachable && !was:
		p.log.Info("Clerk's Backend API is reachable", "url", u)
	case !s.reachable && was:
		p.log.Warn("Clerk's Backend API is unreachable", "url", u, "failures", s.failures, "error", s.lastErr)
	}
}

// check returns nil when every URL is reachable.
func (p *clerkProbe) check() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, u := range p.urls {
		if s := p.state[u]; !s.reachable {
			return fmt.Errorf("clerk backend api %s unreachable: %s", u, s.lastErr)
		}
	}
	return nil
}

// reachable reports u's state, for the gauge.
func (p *clerkProbe) reachable(u string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state[u].reachable
}

// registerBrokerMetrics adds, to the broker's registry (which already holds
// the request and Backend API metrics and the Go and process collectors),
// what /readyz decides from: a gauge per probed URL and one for readiness.
func registerBrokerMetrics(srv *broker.Server, probe *clerkProbe, ready brokerReadiness) error {
	reg := srv.Registry()
	for _, u := range probe.urls {
		g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "mcpgate_broker_clerk_reachable",
			Help:        "1 when the Backend API answered the readiness probe (see docs/broker.md), else 0.",
			ConstLabels: prometheus.Labels{"url": u},
		}, func() float64 { return boolGauge(probe.reachable(u)) })
		if err := reg.Register(g); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mcpgate_broker_ready",
		Help: "1 when the broker is ready (what /readyz answers), else 0.",
	}, func() float64 { return boolGauge(ready.check() == nil) })
	if err := reg.Register(g); err != nil {
		return fmt.Errorf("register metrics: %w", err)
	}
	return nil
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// newProxy builds the one reverse proxy to the upstream. It uses Rewrite,
// which starts from a request with hop-by-hop and X-Forwarded-* headers
// already removed (Director, deprecated, does neither). FlushInterval -1
// writes every chunk as it arrives, so SSE events are never held back.
func (g *Gateway) newProxy() http.Handler {
	return &httputil.ReverseProxy{
		Rewrite:        g.rewrite,
		Transport:      g.upstreamTracing(timedTransport{base: g.upstreamTransport(), seconds: g.metrics.upstream}),
		FlushInterval:  -1,
		ModifyResponse: g.modifyResponse,
		ErrorHandler:   g.proxyError,
		ErrorLog:       slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
		// Without a pool every response allocates a 32 KiB copy buffer,
		// most of the gateway's garbage.
		BufferPool: &copyBuffers{},
	}
}

// copyBuffers recycles the proxy's response copy buffers.
type copyBuffers struct{ pool sync.Pool }

const copyBufferSize = 32 << 10

func (p *copyBuffers) Get() []byte {
	if b, ok := p.pool.Get().(*[]byte); ok {
		return *b
	}
	return make([]byte, copyBufferSize)
}

func (p *copyBuffers) Put(b []byte) {
	if cap(b) == copyBufferSize {
		b = b[:copyBufferSize]
		p.pool.Put(&b)
	}
}

// rewrite points the request at the upstream URL, whose path replaces the
// public one and to which the query is kept. The client's credentials never
// go upstream: not its token, not its cookies; the gateway's own for the
// upstream (credentials) are set instead. X-Forwarded-* describe the
// client as the gateway saw it, or as a trusted proxy in front reported it.
func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	in, out, target := pr.In, pr.Out, g.upstream
	out.URL.Scheme, out.URL.Host = target.Scheme, target.Host
	out.URL.Path, out.URL.RawPath = target.Path, target.RawPath
	out.URL.RawQuery = in.URL.RawQuery
	out.Host = "" // the upstream's own host name
	out.Header.Del("Authorization")
	out.Header.Del("Cookie")
	// NOTE: Rewrite has removed Forwarded and X-Forwarded-* from out; a
	// trusted proxy's values are copied back from in.
	trusted := g.cfg.TrustForwardedHeaders
	if trusted {
		for _, h := range []string{"X-Forwarded-For", "Forwarded"} {
			if v := in.Header.Values(h); len(v) > 0 {
				out.Header[h] = v
			}
		}
	}
	pr.SetXForwarded()
	if trusted {
		for _, h := range []string{"X-Forwarded-Proto", "X-Forwarded-Host"} {
			if v := in.Header.Get(h); v != "" {
				out.Header.Set(h, v)
			}
		}
	}
	// NOTE: last, after Authorization is gone: the upstream credentials
	// credentials resolved, an Authorization of our own among them.
	for name, v := range infoFrom(in.Context()).upstreamHeaders {
		out.Header[name] = v
	}
	g.traceUpstream(pr) // the trace context, when tracing
}

// modifyResponse keeps CORS the gateway's business (the upstream's headers
// would duplicate or contradict ours) and marks and counts SSE streams.
// Everything else, status and MCP headers included, passes unchanged.
func (g *Gateway) modifyResponse(resp *http.Response) error {
	infoFrom(resp.Request.Context()).upstreamStatus = resp.StatusCode
	for name := range resp.Header {
		if strings.HasPrefix(strings.ToLower(name), "access-control-") {
			delete(resp.Header, name)
		}
	}
	if isEventStream(resp.Header.Get("Content-Type")) {
		// Tell proxies in front (nginx) not to buffer the stream.
		resp.Header.Set("X-Accel-Buffering", "no")
		g.metrics.openStreams.Inc()
		resp.Body = &streamBody{ReadCloser: resp.Body, closed: g.metrics.openStreams.Dec}
	}
	return nil
}

func isEventStream(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "text/event-stream"
}

// streamBody calls closed once when the proxy is done with a stream.
type streamBody struct {
	io.ReadCloser
	once   sync.Once
	closed func()
}

func (b *streamBody) Close() error {
	b.once.Do(b.closed)
	return b.ReadCloser.Close()
}

// proxyError answers a failed upstream exchange: 504 when the upstream did
// not answer in time, 502 when it could not be reached or broke the
// connection. The details go to the log, not to the client.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	ri := infoFrom(r.Context())
	if r.Context().Err() != nil {
		g.log.LogAttrs(r.Context(), slog.LevelInfo, "Client went away before the upstream answered",
			slog.String("request_id", ri.id))
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	status, msg := http.StatusBadGateway, "502 upstream unavailable"
	if isTimeout(err) {
		status, msg = http.StatusGatewayTimeout, "504 upstream timed out"
	}
	g.log.LogAttrs(r.Context(), slog.LevelWarn, "Upstream request failed",
		slog.String("request_id", ri.id), slog.Int("status", status), slog.String("error", err.Error()))
	writePlain(w, status, msg)
}

// isTimeout tells an upstream that is too slow (504) from one that cannot
// be reached (502): a dial that timed out is the latter.
func isTimeout(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return false
	}
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// upstreamTransport is a clone of the default transport with the bounds a
// gateway needs: connect and response-header timeouts, a pool of idle
// connections, no proxy from the environment (the upstream is next door),
// and no transparent compression, which would re-encode what the client
// asked for and could buffer streams.
func (g *Gateway) upstreamTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = g.dialUpstream
	t.Proxy = nil
	t.ResponseHeaderTimeout = g.opts.ResponseHeaderTimeout
	t.TLSHandshakeTimeout = 5 * time.Second
	t.ExpectContinueTimeout = time.Second
	t.IdleConnTimeout = 90 * time.Second
	// One upstream: keep as many connections as requests run at once under
	// load, so a burst does not turn into connection churn.
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 256
	t.DisableCompression = true
	return t
}

// upstreamDialer connects to the upstream, or to the address Options.Resolve
// names for it, within the dial timeout. The proxy and the readiness check
// share it (Gateway.dialUpstream), so a replica is Ready only once the
// proxy could connect.
func (g *Gateway) upstreamDialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	dialer := &net.Dialer{Timeout: g.opts.DialTimeout, KeepAlive: 30 * time.Second}
	if len(g.opts.Resolve) == 0 {
		return dialer.DialContext
	}
	resolve := maps.Clone(g.opts.Resolve)
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if to, ok := resolve[addr]; ok {
			addr = to
		}
		return dialer.DialContext(ctx, network, addr)
	}
}

// upstreamAddr is the upstream's host:port, the port from its scheme when
// the URL names none.
func (g *Gateway) upstreamAddr() string {
	port := g.upstream.Port()
	if port == "" {
		port = "80"
		if g.upstream.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(g.upstream.Hostname(), port)
}

// timedTransport observes how long the upstream takes to send response
// headers; the length of a stream says nothing about the upstream's health.
type timedTransport struct {
	base    http.RoundTripper
	seconds prometheus.Observer
}

func (t timedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.base.RoundTrip(req)
	t.seconds.Observe(time.Since(start).Seconds())
	return resp, err
}

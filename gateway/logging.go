package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/mcpgate/mcpgate/clerk"
	"github.com/mcpgate/mcpgate/gateway/access"
)

// requestIDHeader carries the request id to the client and the upstream.
const requestIDHeader = "X-Request-Id"

// requestInfo is what the middleware learn about one request and the access
// log reports. The outermost middleware creates it; the others fill it in.
// A request is handled on one goroutine, so it needs no lock.
type requestInfo struct {
	id       string
	route    string
	userID   string
	clientID string
	// auth is the auth outcome reason (see the reason* constants), for the log.
	auth string
	// token is the bearer token between extraction and verification, and
	// empty afterwards. It is never logged.
	token string
	// accessToken and audiences are the verified token and the resource it
	// was verified for, kept only when people lookups go to the broker,
	// which verifies the token again and answers about its subject alone.
	// Never logged.
	accessToken string
	audiences   []string
	identity    *clerk.Identity
	// rpc is the request's body as parseRequest understood it; nil for a
	// request without a body (GET, DELETE) or before parseRequest ran.
	rpc *rpcRequest
	// mayCall tells whether the caller may call a tool, for filtering
	// tools/list results; nil means no filtering (no tool access rules).
	mayCall func(tool string) bool
	// tools are the tools the request calls, by its body or its Mcp-Name
	// header (duplicates kept): what the access and scope checks judge.
	tools []string
	// headerMismatch says how the Mcp-* headers disagree with the body;
	// empty when they agree. checkMcpHeaders refuses it.
	headerMismatch string
	// facts are what identify learned about the caller; nil when the
	// access rules need nothing from Clerk. membershipsKnown is set when
	// facts.Memberships were looked up (and may be empty).
	facts            *access.Facts
	membershipsKnown bool
	// upstreamHeaders are the upstream credentials credentials
	// resolved, which the proxy sets. They are never logged.
	upstreamHeaders http.Header
	// For the audit stream: the scopes a refused request needed
	// (refuseScope), which allow list refused it ("server" or "tool",
	// applyAccess), and the upstream's status (modifyResponse).
	neededScopes   []string
	deniedBy       string
	upstreamStatus int
}

type requestInfoKey struct{}

// infoFrom returns the request's info. Handlers below the request-id
// middleware always find one; a fresh one keeps a handler used on its own
// (in a unit test) from crashing.
func infoFrom(ctx context.Context) *requestInfo {
	if ri, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		return ri
	}
	return &requestInfo{}
}

// withRequestInfo gives every request its id and info, and logs and counts it
// once it is done: one JSON line with method, route, status, duration, bytes
// and who called; never a token, Authorization, a cookie or a query string.
// A handler aborted mid-response (a stream cut by the upstream) is logged
// before the panic goes on to the server, which closes the connection.
func (g *Gateway) withRequestInfo(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, span := g.startRequestSpan(r) // with tracing; ends after the log line
		if span != nil {
			defer span.End()
		}
		start := time.Now()
		ri := &requestInfo{id: requestID(r.Header.Get(requestIDHeader)), route: routeNotFound}
		r.Header.Set(requestIDHeader, ri.id)
		w.Header().Set(requestIDHeader, ri.id)
		sw := &statusWriter{ResponseWriter: w}
		aborted := true
		defer func() {
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			g.metrics.requests.WithLabelValues(ri.route, strconv.Itoa(status)).Inc()
			attrs := []slog.Attr{
				slog.String("request_id", ri.id),
				slog.String("method", r.Method),
				slog.String("route", ri.route),
				slog.String("path", r.URL.Path),
				slog.Int("status", status),
				slog.Duration("duration", time.Since(start)),
				slog.Int64("bytes", sw.bytes),
				slog.String("remote_addr", r.RemoteAddr),
			}
			if ri.auth != "" {
				attrs = append(attrs, slog.String("auth", ri.auth))
			}
			if ri.userID != "" {
				attrs = append(attrs, slog.String("user_id", ri.userID), slog.String("client_id", ri.clientID))
			}
			if aborted {
				attrs = append(attrs, slog.Bool("aborted", true))
			}
			g.logRequest(ctx, attrs)
		}()
		next.ServeHTTP(sw, r.WithContext(context.WithValue(ctx, requestInfoKey{}, ri)))
		aborted = false
	})
}

// logRequest writes the access log line. It builds the record itself, with
// no caller PC: Logger.LogAttrs would walk the stack for one on every
// request, and the access log has no use for a source location.
func (g *Gateway) logRequest(ctx context.Context, attrs []slog.Attr) {
	h := g.log.Handler()
	if !h.Enabled(ctx, slog.LevelInfo) {
		return
	}
	rec := slog.NewRecord(time.Now(), slog.LevelInfo, "Served request", 0)
	rec.AddAttrs(attrs...)
	_ = h.Handle(ctx, rec) // a log line that cannot be written must not fail the request
}

// requestID keeps a well-formed id from the client or a proxy in front (so
// one request can be followed through several logs) and makes one otherwise.
func requestID(in string) string {
	if in != "" && len(in) <= 128 {
		ok := true
		for i := 0; i < len(in) && ok; i++ {
			c := in[i]
			ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':'
		}
		if ok {
			return in
		}
	}
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// statusWriter records the status and the size of a response. It passes
// Flush through (Unwrap lets http.ResponseController find it too), so SSE
// events still leave at once.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Flush() {
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writePlain answers with a short plain-text body. Error answers of the
// gateway itself use it, so none of them looks like a JSON-RPC message the
// upstream might have sent.
func writePlain(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(msg + "\n"))
}

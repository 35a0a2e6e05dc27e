package gateway

import (
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxFilteredMessage bounds what the tools/list filter holds in memory: a
// whole JSON response, or one SSE event. A 200-tool list with schemas is a
// few hundred KiB; a message beyond the bound is refused, never passed.
const maxFilteredMessage = 4 << 20

// toolsListErrorCode is the JSON-RPC error code of a tools/list the gateway
// answers itself because it could not filter the upstream's result
// (JSON-RPC's "Internal error": the fault is on the server side).
const toolsListErrorCode = -32603

// errToolsListRefused is what the filter's Write returns once it has given
// up on a response, so that the proxy stops copying the upstream's body.
var errToolsListRefused = errors.New("tools/list response refused by the filter")

// filterToolsList removes from tools/list results the tools the caller may
// not call (ri.mayCall), so that a client is not shown tools it would only
// be refused. Only a request carrying a tools/list, with mayCall set, is
// wrapped; any other goes straight to next. A GET with Last-Event-ID
// resumes a stream on which the upstream may replay an earlier POST's
// tools/list result, under ids unknown here: every response on it that
// carries result.tools is filtered. What the filter cannot read is never
// passed on (see toolsListWriter).
func (g *Gateway) filterToolsList(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := g.newToolsFilter(r, infoFrom(r.Context()))
		if f == nil {
			next.ServeHTTP(w, r)
			return
		}
		// The gateway cannot filter what it cannot read; the transport does
		// not decompress (see upstreamTransport), so ask for no encoding.
		r.Header.Set("Accept-Encoding", "identity")
		fw := &toolsListWriter{w: w, f: f, g: g, r: r}
		next.ServeHTTP(fw, r)
		fw.finish()
	})
}

// newToolsFilter returns the filter for r, or nil when r needs none.
func (g *Gateway) newToolsFilter(r *http.Request, ri *requestInfo) *toolsFilter {
	if ri.mayCall == nil {
		return nil
	}
	// Every duplicate method counts, as for the access rules: the upstream
	// may read any of them.
	isList := func(m rpcMessage) bool { return m.id != nil && slices.Contains(m.methods, "tools/list") }
	lists := ri.rpc != nil && slices.ContainsFunc(ri.rpc.messages, isList)
	resumes := r.Method == http.MethodGet && r.Header.Get("Last-Event-ID") != ""
	if !lists && !resumes {
		return nil // most requests: nothing to filter, nothing to allocate
	}
	f := &toolsFilter{mayCall: ri.mayCall, anyID: !lists}
	if lists {
		f.batch = ri.rpc.batch
		for _, m := range ri.rpc.messages {
			if isList(m) {
				f.ids = append(f.ids, idKey(m.id))
				f.rawIDs = append(f.rawIDs, m.id)
			}
		}
	}
	f.answered = make([]bool, len(f.ids))
	if a := g.cfg.Access; a != nil && a.CacheTTLSeconds > 0 {
		f.maxTTL = time.Duration(a.CacheTTLSeconds) * time.Second
	}
	return f
}

// toolsFilter rewrites the tools/list results of one request.
//
// Caching (MCP 2026-07-28): a filtered list depends on who asks, so its
// cacheScope becomes "private" (whatever the upstream said), and ttlMs is
// capped at maxTTL, how long the gateway trusts what it knows of the user:
// a client must not keep showing a tool after the user lost access to it.
// A result with ttlMs but no cacheScope gets "cacheScope":"private", since
// some clients read an absent scope as public. A result with neither field
// comes from an earlier protocol version, where they do not exist: it gets
// none, and is never cached anyway (an absent ttlMs means stale at once).
type toolsFilter struct {
	// ids are the idKeys of the request's tools/list calls; rawIDs the
	// same ids as sent, for error answers; answered marks those whose
	// result has been filtered; hits are the ids matched by the rewrite
	// under way, answered once it succeeds.
	ids      []string
	rawIDs   []json.RawMessage
	answered []bool
	hits     []int
	// anyID treats every response as a tools/list result (resumed streams).
	anyID bool
	// batch is set when the request was a JSON array.
	batch   bool
	mayCall func(tool string) bool
	// maxTTL caps ttlMs; zero leaves it.
	maxTTL time.Duration
}

// unfilterableError says why a response could not be filtered.
type unfilterableError struct{ reason string }

func (e *unfilterableError) Error() string { return e.reason }

func unfilterable(reason string) error { return &unfilterableError{reason: reason} }

// toolsListWriter is the ResponseWriter the proxy writes a filtered
// response to. It decides at WriteHeader: SSE is rewritten event by event;
// JSON (or any 2xx body but SSE, which a client might still parse) is held,
// bounded, and rewritten at the end; other bodies (error pages) pass. What
// it cannot filter (invalid JSON, a tool without a name, an oversized
// message, a Content-Encoding) is refused: before the headers have gone, a
// 502 with a JSON-RPC error per tools/list; on a stream under way, an error
// event for each tools/list unanswered, then the stream is cut, so that a
// pending request fails rather than hangs. No Unwrap, on purpose: a Hijack
// (an upstream answering 101) must not get past it.
type toolsListWriter struct {
	w http.ResponseWriter
	f *toolsFilter
	g *Gateway
	r *http.Request

	mode   writerMode
	status int
	header http.Header // JSON: the headers as of WriteHeader
	buf    []byte      // JSON: the body so far
	err    error       // JSON: why the body will be refused
	sse    *sseRewriter
}

type writerMode int

const (
	modeUndecided writerMode = iota
	modePass
	modeJSON
	modeSSE
	modeRefused
)

func (fw *toolsListWriter) Header() http.Header { return fw.w.Header() }

func (fw *toolsListWriter) WriteHeader(code int) {
	if fw.mode != modeUndecided {
		if fw.mode == modePass {
			fw.w.WriteHeader(code) // superfluous; net/http reports it
		}
		return
	}
	if code < 200 { // informational: more headers follow
		fw.w.WriteHeader(code)
		return
	}
	h := fw.w.Header()
	ct := h.Get("Content-Type")
	encoded := !isIdentityEncoding(h.Values("Content-Encoding"))
	switch {
	case isEventStream(ct):
		if encoded {
			fw.refuse(unfilterable("stream has Content-Encoding " + h.Get("Content-Encoding")))
			return
		}
		fw.mode = modeSSE
		h.Del("Content-Length")
		h.Set("Cache-Control", privateCacheControl(h.Get("Cache-Control"), fw.f.maxTTL))
		fw.sse = &sseRewriter{f: fw.f, out: fw.w, limit: maxFilteredMessage}
		fw.w.WriteHeader(code)
	case isJSON(ct) || code < 300:
		fw.mode, fw.status, fw.header = modeJSON, code, h.Clone()
		if encoded {
			fw.err = unfilterable("response has Content-Encoding " + h.Get("Content-Encoding"))
		} else if n, err := strconv.Atoi(h.Get("Content-Length")); err == nil && n > 0 && n <= maxFilteredMessage {
			fw.buf = make([]byte, 0, n)
		}
	default:
		fw.mode = modePass
		fw.w.WriteHeader(code)
	}
}

func (fw *toolsListWriter) Write(p []byte) (int, error) {
	if fw.mode == modeUndecided {
		fw.WriteHeader(http.StatusOK)
	}
	switch fw.mode {
	case modePass:
		return fw.w.Write(p)
	case modeJSON:
		// NOTE: a refused JSON body is still read to its end (it is
		// finite), so the client gets a clean 502 rather than a cut.
		if fw.err == nil {
			if len(fw.buf)+len(p) > maxFilteredMessage {
				fw.err, fw.buf = unfilterable("response larger than "+strconv.Itoa(maxFilteredMessage)+" bytes"), nil
			} else {
				fw.buf = append(fw.buf, p...)
			}
		}
		return len(p), nil
	case modeSSE:
		if err := fw.sse.write(p); err != nil {
			fw.cutStream(err)
			return 0, errToolsListRefused
		}
		return len(p), nil
	}
	return 0, errToolsListRefused
}

// Flush passes the proxy's flushes on, except while a JSON body is held.
func (fw *toolsListWriter) Flush() {
	if fw.mode == modePass || fw.mode == modeSSE {
		_ = http.NewResponseController(fw.w).Flush()
	}
}

// finish sends a held JSON response, rewritten, or its refusal.
func (fw *toolsListWriter) finish() {
	if fw.mode != modeJSON {
		return
	}
	body, err := fw.buf, fw.err
	var out []byte
	found := false
	if err == nil && len(trimSpace(body)) > 0 {
		out, found, err = fw.f.rewrite(body)
	}
	h := fw.w.Header()
	// NOTE: the snapshot drops what the proxy set after WriteHeader:
	// trailers, which a body sent whole does not need.
	clear(h)
	maps.Copy(h, fw.header)
	h.Del("Trailer")
	if err != nil {
		fw.refuse(err)
		return
	}
	if out == nil {
		out = body
	}
	if found {
		h.Set("Cache-Control", privateCacheControl(h.Get("Cache-Control"), fw.f.maxTTL))
	}
	if fw.status != http.StatusNoContent && fw.status != http.StatusNotModified {
		h.Set("Content-Length", strconv.Itoa(len(out)))
	}
	fw.w.WriteHeader(fw.status)
	_, _ = fw.w.Write(out)
}

// refuse answers 502 with a JSON-RPC error for the tools/list calls, before
// any of the upstream's response has been sent.
func (fw *toolsListWriter) refuse(err error) {
	fw.mode = modeRefused
	fw.logRefusal(err, "Refused a tool list the gateway cannot filter")
	body := fw.f.errorAnswers(fw.f.batch)
	if body == nil { // a resumed stream: no ids known
		body = []byte(`{"jsonrpc":"2.0","id":null,"error":{"code":` + strconv.Itoa(toolsListErrorCode) +
			`,"message":"The gateway could not filter the tool list"}}`)
	}
	h := fw.w.Header()
	for _, k := range []string{"Content-Encoding", "Trailer", "Etag", "Last-Modified", "X-Accel-Buffering"} {
		h.Del(k)
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	fw.w.WriteHeader(http.StatusBadGateway)
	_, _ = fw.w.Write(body)
	// NOTE: flushed now: if the proxy aborts the handler next (a stream it
	// can no longer copy), what is buffered would be lost.
	_ = http.NewResponseController(fw.w).Flush()
}

// cutStream ends an SSE stream that can no longer be filtered: an error
// event for each tools/list still unanswered, flushed; the caller then
// makes the proxy abort, which cuts the connection.
func (fw *toolsListWriter) cutStream(err error) {
	fw.mode = modeRefused
	fw.logRefusal(err, "Cut a stream whose tool list the gateway cannot filter")
	// NOTE: each error event starts with two line feeds: they end any
	// event whose first lines (id, event) have gone out, even after a CR
	// still waiting for its LF, so the error is a message event of its own.
	for _, msg := range fw.f.errorMessages() {
		_, _ = fw.w.Write(append(append([]byte("\n\ndata: "), msg...), "\n\n"...))
	}
	_ = http.NewResponseController(fw.w).Flush()
}

func (fw *toolsListWriter) logRefusal(err error, msg string) {
	fw.g.log.LogAttrs(fw.r.Context(), slog.LevelWarn, msg,
		slog.String("request_id", infoFrom(fw.r.Context()).id), slog.String("reason", err.Error()))
}

// isJSON reports a JSON media type: application/json or any +json.
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// isIdentityEncoding reports a Content-Encoding that leaves the body as is.
func isIdentityEncoding(values []string) bool {
	for _, v := range values {
		for c := range strings.SplitSeq(v, ",") {
			if c = strings.TrimSpace(c); c != "" && !strings.EqualFold(c, "identity") {
				return false
			}
		}
	}
	return true
}

// privateCacheControl is the upstream's Cache-Control made fit for a
// response that depends on the caller: "private" instead of "public", no
// s-maxage (shared caches), max-age at most maxAge; other directives
// (no-store, no-cache) are kept.
func privateCacheControl(v string, maxAge time.Duration) string {
	out := []string{"private"}
	for d := range strings.SplitSeq(v, ",") {
		d = strings.TrimSpace(d)
		name, arg, _ := strings.Cut(d, "=")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "", "public", "private", "s-maxage":
			continue
		case "max-age":
			secs := int64(maxAge / time.Second)
			if n, err := strconv.ParseInt(strings.Trim(arg, `" `), 10, 64); maxAge > 0 && (err != nil || n > secs) {
				d = "max-age=" + strconv.FormatInt(secs, 10)
			}
		}
		out = append(out, d)
	}
	return strings.Join(out, ", ")
}

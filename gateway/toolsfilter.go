package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
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
	f := &toolsFilter{mayCall: ri.mayCall}
	if ri.rpc != nil {
		f.batch = ri.rpc.batch
		for _, m := range ri.rpc.messages {
			// Every duplicate method counts, as for the access rules: the
			// upstream may read any of them.
			if m.id != nil && slices.Contains(m.methods, "tools/list") {
				f.ids = append(f.ids, idKey(m.id))
				f.rawIDs = append(f.rawIDs, m.id)
			}
		}
	}
	if len(f.ids) == 0 {
		if r.Method != http.MethodGet || r.Header.Get("Last-Event-ID") == "" {
			return nil
		}
		f.anyID = true
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

// edit replaces b[start:end] with repl.
type edit struct {
	start, end int
	repl       []byte
}

// rewrite filters the tools/list results in body, one JSON-RPC message or a
// batch. It returns the new body, or nil when nothing had to change, and
// whether any tools/list result was found. Every byte outside the edited
// members is kept: other messages, other fields, each kept tool object.
func (f *toolsFilter) rewrite(body []byte) (out []byte, found bool, err error) {
	if !json.Valid(body) {
		return nil, false, unfilterable("response is not valid JSON")
	}
	f.hits = f.hits[:0]
	var edits []edit
	i := skipSpace(body, 0)
	if body[i] == '[' {
		for _, el := range elementSpans(body, i) {
			var hit bool
			if edits, hit, err = f.messageEdits(body, el, edits); err != nil {
				return nil, false, err
			}
			found = found || hit
		}
	} else if edits, found, err = f.messageEdits(body, i, edits); err != nil {
		return nil, false, err
	}
	for _, j := range f.hits {
		f.answered[j] = true
	}
	if len(edits) == 0 {
		return nil, found, nil
	}
	return applyEdits(body, edits), found, nil
}

// messageEdits appends the edits of the message at b[i] when it is a
// response to a tools/list. Keys match case-insensitively and every
// duplicate counts, as some client's parser may read any of them; any
// message with a matching id and a result is taken for a response, method
// or not, since clients tell responses by their result.
func (f *toolsFilter) messageEdits(b []byte, i int, edits []edit) ([]edit, bool, error) {
	if b[i] != '{' {
		return edits, false, nil
	}
	var results []int
	match := false
	eachMember(b, i, func(key []byte, vs, ve int) {
		switch {
		case keyFolds(key, "id"):
			if !match {
				match = f.matches(b[vs:ve])
			}
		case keyFolds(key, "result"):
			results = append(results, vs)
		}
	})
	if !match {
		return edits, false, nil
	}
	found := false
	for _, r := range results {
		var hit bool
		var err error
		if edits, hit, err = f.resultEdits(b, r, edits); err != nil {
			return nil, false, err
		}
		found = found || hit
	}
	return edits, found, nil
}

// matches reports whether a response id answers one of the tools/list
// calls, and notes which.
func (f *toolsFilter) matches(id []byte) bool {
	if f.anyID {
		return true
	}
	k := idKey(id)
	hit := false
	for j, want := range f.ids {
		if want == k {
			f.hits, hit = append(f.hits, j), true
		}
	}
	return hit
}

// idKey is the form in which ids are compared: a string's decoded value, a
// number's shortest form, other values as they are. The string "1" and the
// number 1 compare equal: matching too many responses only filters more.
func idKey(raw []byte) string {
	raw = trimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	switch c := raw[0]; {
	case c == '"':
		if s, ok := jsonString(raw); ok {
			return s
		}
	case c == '-' || '0' <= c && c <= '9':
		if n, err := strconv.ParseFloat(string(raw), 64); err == nil {
			return strconv.FormatFloat(n, 'g', -1, 64)
		}
	}
	return string(raw)
}

// resultEdits appends the edits of one tools/list result at b[i]: its tools
// arrays filtered and its caching fields made private (see toolsFilter). A
// result that is not an object, or has no tools (an interim result), lists
// nothing and is left alone.
func (f *toolsFilter) resultEdits(b []byte, i int, edits []edit) ([]edit, bool, error) {
	if b[i] != '{' {
		return edits, false, nil
	}
	type span struct{ start, end int }
	var tools, ttls, scopes []span
	exactScope := false
	end := i
	eachMember(b, i, func(key []byte, vs, ve int) {
		switch {
		case keyFolds(key, "tools"):
			tools = append(tools, span{vs, ve})
		case keyFolds(key, "ttlMs"):
			ttls = append(ttls, span{vs, ve})
		case keyFolds(key, "cacheScope"):
			scopes = append(scopes, span{vs, ve})
			exactScope = exactScope || keyIs(key, "cacheScope")
		}
		end = ve
	})
	if len(tools) == 0 {
		return edits, false, nil
	}
	var pending []edit
	for _, s := range tools {
		e, err := f.toolsEdit(b, s.start, s.end)
		if err != nil {
			return nil, false, err
		}
		if e != nil {
			pending = append(pending, *e)
		}
	}
	for _, s := range ttls {
		if v, ok := cappedTTL(b[s.start:s.end], f.maxTTL); ok {
			pending = append(pending, edit{s.start, s.end, v})
		}
	}
	for _, s := range scopes {
		if string(b[s.start:s.end]) != `"private"` {
			pending = append(pending, edit{s.start, s.end, []byte(`"private"`)})
		}
	}
	// NOTE: edits must stay in the order of their offsets; the members were
	// visited in order and the insertion goes at the closing brace.
	slices.SortFunc(pending, func(x, y edit) int { return x.start - y.start })
	edits = append(edits, pending...)
	if len(ttls) > 0 && !exactScope {
		closing := skipSpace(b, end)
		edits = append(edits, edit{closing, closing, []byte(`,"cacheScope":"private"`)})
	}
	return edits, true, nil
}

// toolsEdit returns the edit that drops the tools the caller may not call
// from the array at b[start:end], or nil when all may stay. Kept tools are
// copied byte for byte. Anything but an array of objects with a string name
// is refused: the filter cannot tell what a client would make of it.
func (f *toolsFilter) toolsEdit(b []byte, start, end int) (*edit, error) {
	if b[start] != '[' {
		return nil, unfilterable("result.tools is not an array")
	}
	// NOTE: one walk over the array: each tool's members are visited once,
	// which also finds where the tool ends.
	type span struct{ start, end int }
	var kept []span
	size, dropped := 1, false
	for i := skipSpace(b, start+1); i < end && b[i] != ']'; {
		ok, te, err := f.toolAllowed(b, i)
		if err != nil {
			return nil, err
		}
		if ok {
			kept = append(kept, span{i, te})
			size += te - i + 1
		} else {
			dropped = true
		}
		if i = skipSpace(b, te); i < end && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	if !dropped {
		return nil, nil
	}
	repl := make([]byte, 0, size+1)
	repl = append(repl, '[')
	for j, k := range kept {
		if j > 0 {
			repl = append(repl, ',')
		}
		repl = append(repl, b[k.start:k.end]...)
	}
	return &edit{start, end, append(repl, ']')}, nil
}

// toolAllowed reports whether the caller may call the tool object at b[i],
// and where the object ends. With several name members (duplicates, case
// variants) every one must be allowed, whichever a client reads.
func (f *toolsFilter) toolAllowed(b []byte, i int) (bool, int, error) {
	if b[i] != '{' {
		return false, 0, unfilterable("a tool is not an object")
	}
	names, allowed, bad := 0, true, false
	end := eachMember(b, i, func(key []byte, vs, ve int) {
		if !keyFolds(key, "name") {
			return
		}
		name, ok := jsonString(b[vs:ve])
		if !ok {
			bad = true
			return
		}
		names++
		allowed = allowed && f.mayCall(name)
	})
	if bad || names == 0 {
		return false, 0, unfilterable("a tool has no string name")
	}
	return allowed, end, nil
}

// cappedTTL returns the ttlMs to send instead of v when v exceeds max (or
// is not a number, which the gateway cannot judge: 0 is never wrong).
func cappedTTL(v []byte, max time.Duration) ([]byte, bool) {
	if max <= 0 {
		return nil, false
	}
	n, err := strconv.ParseFloat(string(v), 64)
	switch {
	case err != nil && !errors.Is(err, strconv.ErrRange):
		return []byte("0"), true
	case n > float64(max.Milliseconds()):
		return strconv.AppendInt(nil, max.Milliseconds(), 10), true
	}
	return nil, false
}

// errorAnswers is a JSON-RPC error for each tools/list not yet answered, as
// one message or, for a batch request, an array; nil when none is left.
func (f *toolsFilter) errorAnswers(asBatch bool) []byte {
	msgs := f.errorMessages()
	switch {
	case len(msgs) == 0:
		return nil
	case asBatch || len(msgs) > 1:
		return append(append([]byte{'['}, bytes.Join(msgs, []byte{','})...), ']')
	}
	return msgs[0]
}

// errorMessages are the JSON-RPC errors of errorAnswers, one by one.
func (f *toolsFilter) errorMessages() [][]byte {
	var msgs [][]byte
	for j, id := range f.rawIDs {
		if f.answered[j] {
			continue
		}
		var compact bytes.Buffer
		if json.Compact(&compact, id) != nil {
			compact.Reset()
			compact.WriteString("null")
		}
		msgs = append(msgs, []byte(`{"jsonrpc":"2.0","id":`+compact.String()+
			`,"error":{"code":`+strconv.Itoa(toolsListErrorCode)+`,"message":"The gateway could not filter the tool list"}}`))
	}
	return msgs
}

// applyEdits returns b with the edits, in offset order, applied.
func applyEdits(b []byte, edits []edit) []byte {
	n := len(b)
	for _, e := range edits {
		n += len(e.repl) - (e.end - e.start)
	}
	out := make([]byte, 0, n)
	last := 0
	for _, e := range edits {
		out = append(out, b[last:e.start]...)
		out = append(out, e.repl...)
		last = e.end
	}
	return append(out, b[last:]...)
}

// eachMember calls fn with the raw key (quotes included) and the value's
// offsets of every member of the object at b[i], in order, and returns the
// offset just past the object. b must be valid JSON (see jsonwalk.go).
func eachMember(b []byte, i int, fn func(key []byte, vs, ve int)) int {
	i = skipSpace(b, i+1)
	for i < len(b) && b[i] != '}' {
		keyEnd := stringEnd(b, i)
		vs := skipSpace(b, skipSpace(b, keyEnd)+1)
		ve := valueEnd(b, vs)
		fn(b[i:keyEnd], vs, ve)
		i = skipSpace(b, ve)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return i + 1
}

// elementSpans returns the offsets at which the elements of the array at
// b[i] start.
func elementSpans(b []byte, i int) []int {
	var els []int
	i = skipSpace(b, i+1)
	for i < len(b) && b[i] != ']' {
		els = append(els, i)
		i = skipSpace(b, valueEnd(b, i))
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return els
}

// keyFolds reports whether a raw JSON key decodes to want up to case, as Go's
// encoding/json matches struct fields.
func keyFolds(raw []byte, want string) bool {
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return len(inner) >= len(want) && strings.EqualFold(string(inner), want)
	}
	k, _ := jsonString(raw)
	return strings.EqualFold(k, want)
}

// keyIs reports whether a raw JSON key decodes to exactly want.
func keyIs(raw []byte, want string) bool {
	k, _ := jsonString(raw)
	return k == want
}

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

// sseRewriter filters a text/event-stream as it passes. Lines outside an
// event's data pass at once; from an event's first data line on, its lines
// are held (bounded) until the blank line that dispatches it, since only
// then is its message complete. The event then goes out byte for byte, or,
// when it is a tools/list result that changed, with its data lines
// replaced and its other lines kept. Lines end in CRLF, LF or a lone CR, as
// the SSE standard has it; a client splits on all three, so must the filter.
type sseRewriter struct {
	f     *toolsFilter
	out   io.Writer
	limit int

	line    []byte // the current line so far, when it spans writes
	started bool   // the first line has been seen (a BOM may lead it)
	cr      bool   // the last line ended in CR: an LF next belongs to it
	// nonMessage: the event has an event type other than "message".
	nonMessage bool
	holding    bool
	held       []byte     // the held lines, terminators included
	lines      []heldLine // where each held line is in held
	data       []byte     // the event's data buffer
}

// heldLine is one line of held; data marks a data field.
type heldLine struct {
	start, end int
	data       bool
}

// utf8BOM may lead a stream; parsers drop it before the first line.
const utf8BOM = "\xef\xbb\xbf"

// write takes the next bytes of the stream. An error means the stream
// cannot be filtered any further; nothing of the offending event was sent.
func (s *sseRewriter) write(p []byte) error {
	for len(p) > 0 {
		if s.cr {
			s.cr = false
			if p[0] == '\n' {
				if err := s.emit(p[:1]); err != nil {
					return err
				}
				p = p[1:]
				continue
			}
		}
		i := bytes.IndexAny(p, "\r\n")
		if i < 0 {
			if len(s.line)+len(p)+len(s.held)+len(s.data) > s.limit {
				return unfilterable("SSE event larger than " + strconv.Itoa(s.limit) + " bytes")
			}
			s.line = append(s.line, p...)
			return nil
		}
		n := i + 1
		if p[i] == '\r' {
			if i+1 == len(p) {
				s.cr = true
			} else if p[i+1] == '\n' {
				n++
			}
		}
		raw, content := p[:n], p[:i]
		if len(s.line) > 0 {
			s.line = append(s.line, raw...)
			raw, content = s.line, s.line[:len(s.line)-(n-i)]
		}
		if err := s.handleLine(content, raw); err != nil {
			return err
		}
		s.line = s.line[:0]
		p = p[n:]
	}
	return nil
}

// emit sends b on, or adds it to the held event (to its last line).
func (s *sseRewriter) emit(b []byte) error {
	if s.holding {
		s.held = append(s.held, b...)
		s.lines[len(s.lines)-1].end = len(s.held)
		return nil
	}
	_, err := s.out.Write(b)
	return err
}

// handleLine interprets one line (content, without its terminator; raw,
// with it) the way an EventSource parser does.
func (s *sseRewriter) handleLine(content, raw []byte) error {
	if !s.started {
		s.started = true
		content = bytes.TrimPrefix(content, []byte(utf8BOM))
	}
	if len(content) == 0 {
		return s.dispatch(raw)
	}
	isData := false
	if content[0] != ':' { // not a comment
		name, value, _ := bytes.Cut(content, []byte{':'})
		value = bytes.TrimPrefix(value, []byte{' '})
		switch string(name) {
		case "data":
			isData = true
			s.data = append(append(s.data, value...), '\n')
		case "event":
			s.nonMessage = len(value) > 0 && string(value) != "message"
		}
	}
	if isData && !s.holding {
		s.holding = true
	}
	if !s.holding {
		_, err := s.out.Write(raw)
		return err
	}
	s.lines = append(s.lines, heldLine{start: len(s.held), end: len(s.held) + len(raw), data: isData})
	s.held = append(s.held, raw...)
	if len(s.held)+len(s.data) > s.limit {
		return unfilterable("SSE event larger than " + strconv.Itoa(s.limit) + " bytes")
	}
	return nil
}

// dispatch ends an event at its blank line raw: the held event goes out,
// filtered when it is a tools/list result.
func (s *sseRewriter) dispatch(raw []byte) error {
	if !s.holding {
		s.nonMessage = false
		_, err := s.out.Write(raw)
		return err
	}
	defer s.reset()
	msg := s.data[:len(s.data)-1] // the data buffer ends in the LF of its last line
	var repl []byte
	switch {
	case len(trimSpace(msg)) == 0:
		// No message (a priming event for resumption).
	case s.nonMessage && !json.Valid(msg):
		// Not JSON, and not an event MCP clients read as a message.
	default:
		var err error
		if repl, _, err = s.f.rewrite(msg); err != nil {
			return err
		}
	}
	if repl != nil {
		s.held = s.replaceData(repl)
	}
	_, err := s.out.Write(append(s.held, raw...))
	return err
}

// replaceData returns the held event with its data lines replaced by data
// lines carrying msg; the other lines stay where they were, and the new
// data lines take the first one's place and line ending.
func (s *sseRewriter) replaceData(msg []byte) []byte {
	out := make([]byte, 0, len(s.held)+len(msg)-len(s.data)+16)
	done := false
	for _, l := range s.lines {
		line := s.held[l.start:l.end]
		if !l.data {
			out = append(out, line...)
			continue
		}
		if done {
			continue
		}
		done = true
		eol := line[len(bytes.TrimRight(line, "\r\n")):]
		for seg := range bytes.SplitSeq(msg, []byte{'\n'}) {
			out = append(out, "data: "...)
			out = append(out, seg...)
			out = append(out, eol...)
		}
	}
	return out
}

func (s *sseRewriter) reset() {
	s.holding, s.nonMessage = false, false
	s.held, s.lines, s.data = s.held[:0], s.lines[:0], s.data[:0]
}

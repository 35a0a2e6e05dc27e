package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpgate/mcpgate/clerk"
)

// The audit stream: one JSON record per initialize, tools/list and
// tools/call the MCP endpoint served, and per request it refused, for
// whoever must later answer "who called which tool, and was it allowed?".
// Records go to Options.AuditOutput (stdout in the gateway binary), apart
// from the access log, through a bounded queue and one writer goroutine: a
// slow stdout costs records (counted in config.AuditDroppedMetric), never a
// request's time.

// Defaults and bounds of the audit stream.
const (
	// DefaultAuditBuffer is how many records may wait for the writer;
	// beyond it new records are dropped and counted. At about 600 bytes a
	// record it holds some 2.5 MiB, a second or two of a busy gateway.
	DefaultAuditBuffer = 4096
	// auditFlushTimeout bounds the wait for the queue to empty at shutdown.
	auditFlushTimeout = 5 * time.Second
	// auditWriteBytes is how much the writer hands to one Write: the
	// records waiting, whole, up to this size.
	auditWriteBytes = 64 << 10
	// auditLinger is how long the writer lets records gather before it
	// writes them: under load, many records per system call.
	auditLinger = 5 * time.Millisecond
	// auditResponseHead is how much of a response is kept to find its
	// JSON-RPC error code; an error response is far smaller.
	auditResponseHead = 4 << 10
	// auditMaxRecords bounds the records of one request: a hostile batch
	// of thousands of calls must not crowd everyone else out of the queue.
	auditMaxRecords = 32
	// auditMaxString bounds client-chosen strings (methods, tool names).
	auditMaxString = 256
	// auditMaxID bounds the JSON-RPC id a record repeats.
	auditMaxID = 128
)

// Decisions the audit stream records besides the auth reasons of
// mcpgate_gateway_auth_total (see the reason* constants), which it uses as
// they are.
const (
	decisionAllowed = "allowed"
	// refusedOrigin: a browser request from an origin not allowed
	// (checkOrigin's 403, the only answer before authentication that is).
	refusedOrigin = "origin_refused"
	// refusedMethod: an HTTP method the MCP endpoint does not serve
	// (allowMethods' 405).
	refusedMethod = "method_not_allowed"
	// decisionClientGone: the client went away before a decision.
	decisionClientGone = "client_gone"
)

// auditedMethods are the JSON-RPC methods whose every request is recorded;
// requests with other methods are recorded only when refused.
var auditedMethods = []string{"initialize", "tools/list", "tools/call"}

// auditRecord is one line of the audit stream. The JSON names are the
// contract with log pipelines (docs/observability.md). Nothing in it is a
// token, a secret or a credential header.
type auditRecord struct {
	Time      string `json:"time"`
	Log       string `json:"log"`
	McpServer string `json:"mcpserver"`
	RequestID string `json:"request_id"`
	TraceID   string `json:"trace_id,omitempty"`

	UserID        string     `json:"user_id,omitempty"`
	ClientID      string     `json:"client_id,omitempty"`
	Email         string     `json:"email,omitempty"`
	Organizations []auditOrg `json:"organizations,omitzero"`

	HTTPMethod         string          `json:"http_method"`
	ProtocolVersion    string          `json:"protocol_version,omitempty"`
	Method             string          `json:"method,omitempty"`
	RPCID              json.RawMessage `json:"rpc_id,omitempty"`
	Tool               string          `json:"tool,omitempty"`
	Arguments          json.RawMessage `json:"arguments,omitempty"`
	ArgumentsTruncated bool            `json:"arguments_truncated,omitempty"`

	Decision      string   `json:"decision"`
	MissingScopes []string `json:"missing_scopes,omitempty"`
	DeniedBy      string   `json:"denied_by,omitempty"`

	Status         int     `json:"status"`
	UpstreamStatus int     `json:"upstream_status,omitempty"`
	RPCErrorCode   *int    `json:"rpc_error_code,omitempty"`
	DurationMS     float64 `json:"duration_ms"`
	BytesIn        int64   `json:"bytes_in"`
	BytesOut       int64   `json:"bytes_out"`
	// RecordsOmitted, on a request's last record, counts its audited
	// messages beyond auditMaxRecords that have no record of their own.
	RecordsOmitted int `json:"records_omitted,omitempty"`
}

// auditOrg is one of the caller's organization memberships.
type auditOrg struct {
	ID   string `json:"id"`
	Slug string `json:"slug,omitempty"`
	Role string `json:"role,omitempty"`
}

// auditLog queues encoded records for one writer goroutine.
type auditLog struct {
	out     io.Writer
	queue   chan []byte
	dropped prometheus.Counter
	// pending counts records enqueued and not yet written (or given up),
	// so that flush knows when the queue is empty.
	pending atomic.Int64
}

// newAuditLog starts the writer of records to out.
func newAuditLog(out io.Writer, buffer int, dropped prometheus.Counter) *auditLog {
	a := &auditLog{out: out, queue: make(chan []byte, buffer), dropped: dropped}
	go a.run()
	return a
}

// enqueue hands a record to the writer without waiting: a full queue drops
// it and counts the drop.
func (a *auditLog) enqueue(line []byte) {
	a.pending.Add(1)
	select {
	case a.queue <- line:
	default:
		a.pending.Add(-1)
		a.dropped.Inc()
	}
}

// run writes the queued records. Each Write holds whole records only, so
// no record is ever split or mixed with another. It never returns: the
// gateway writes records as long as its process lives.
func (a *auditLog) run() {
	buf := make([]byte, 0, auditWriteBytes)
	for line := range a.queue {
		// NOTE: a moment's wait lets the records of concurrent requests
		// gather in the queue without waking this goroutine for each:
		// one wake-up and one write per moment under load, not per record.
		time.Sleep(auditLinger)
		buf = append(buf[:0], line...)
		n := int64(1)
		for more := true; more; {
			select {
			case line = <-a.queue:
				if len(buf)+len(line) > auditWriteBytes {
					buf, n = a.write(buf, n), 0
				}
				buf = append(buf, line...)
				n++
			default:
				more = false
			}
		}
		buf = a.write(buf, n)
	}
}

// write writes buf, n records, and returns it emptied for reuse. Records
// whose Write failed count as dropped.
func (a *auditLog) write(buf []byte, n int64) []byte {
	if _, err := a.out.Write(buf); err != nil {
		a.dropped.Add(float64(n))
	}
	a.pending.Add(-n)
	if cap(buf) > 4*auditWriteBytes {
		return make([]byte, 0, auditWriteBytes) // a huge record's buffer is not kept
	}
	return buf[:0]
}

// flush waits, at most timeout, until every record enqueued so far is
// written, and reports whether it was.
func (a *auditLog) flush(timeout time.Duration) bool {
	if a == nil {
		return true
	}
	deadline := time.Now().Add(timeout)
	for a.pending.Load() > 0 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// auditRequests records what the MCP endpoint decided about each request,
// once the request is done (see auditRecords). It is the outermost step of
// the MCP pipeline, so that it sees every refusal; without an audit
// stream it is not in the pipeline at all.
func (g *Gateway) auditRequests(next http.Handler) http.Handler {
	if g.audit == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ri := infoFrom(r.Context())
		aw := &auditWriter{ResponseWriter: w, ri: ri}
		var in int64
		// NOTE: never wrap a nil or http.NoBody body: parseRequest reads
		// those as "no body", and anything else as one to parse.
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &countingBody{ReadCloser: r.Body, n: &in}
		}
		defer func() {
			// Deferred, so that a stream the upstream cut (a panic
			// with http.ErrAbortHandler) is recorded too.
			g.auditRecords(r, ri, aw, start, in)
		}()
		next.ServeHTTP(aw, r)
	})
}

// auditRecords encodes and enqueues the records of one request: one per
// initialize, tools/list and tools/call message it carried, and, when it
// was refused and carried none of them, one for the request.
func (g *Gateway) auditRecords(r *http.Request, ri *requestInfo, aw *auditWriter, start time.Time, in int64) {
	status := aw.status
	if status == 0 {
		status = http.StatusOK
	}
	decision := auditDecision(r, ri, status)
	if decision == "" {
		return // a CORS preflight or OPTIONS: nothing was asked
	}
	var msgs []rpcMessage
	if ri.rpc != nil {
		for _, m := range ri.rpc.messages {
			if slices.ContainsFunc(m.methods, isAuditedMethod) {
				msgs = append(msgs, m)
			}
		}
	}
	if len(msgs) == 0 {
		if decision == decisionAllowed {
			return
		}
		msgs = []rpcMessage{refusedMessage(r, ri)}
	}
	base := auditRecord{
		Time:            start.UTC().Format(time.RFC3339Nano),
		Log:             "audit",
		McpServer:       g.cfg.Server.Namespace + "/" + g.cfg.Server.Name,
		RequestID:       ri.id,
		UserID:          ri.userID,
		ClientID:        ri.clientID,
		HTTPMethod:      r.Method,
		ProtocolVersion: clip(r.Header.Get("Mcp-Protocol-Version")),
		Decision:        decision,
		Status:          status,
		UpstreamStatus:  ri.upstreamStatus,
		DurationMS:      float64(time.Since(start).Microseconds()) / 1000,
		BytesIn:         in,
		BytesOut:        aw.bytes,
	}
	if sc := trace.SpanContextFromContext(r.Context()); sc.HasTraceID() {
		base.TraceID = sc.TraceID().String()
	}
	if decision == reasonInsufficientScope && ri.identity != nil {
		base.MissingScopes = missingScopes(ri.identity.Scopes, ri.neededScopes)
	}
	if decision == reasonAccessDenied {
		base.DeniedBy = ri.deniedBy
	}
	base.Email, base.Organizations = auditFacts(ri)
	errs := rpcErrorCodes(aw.Header().Get("Content-Type"), aw.head, aw.headFull)
	for i, m := range msgs {
		if i == auditMaxRecords {
			break
		}
		rec := base
		rec.Method, rec.Tool = clip(m.method), clip(m.tool)
		if id := replyID(m.id); len(id) <= auditMaxID {
			rec.RPCID = id
		}
		if m.method == "initialize" && rec.ProtocolVersion == "" {
			rec.ProtocolVersion = clip(m.protocolVersion)
		}
		if m.method == "tools/call" && g.cfg.Audit.ArgumentsMaxBytes > 0 && m.arguments != nil {
			if len(m.arguments) <= g.cfg.Audit.ArgumentsMaxBytes {
				rec.Arguments = m.arguments
			} else {
				rec.ArgumentsTruncated = true
			}
		}
		rec.RPCErrorCode = errs.of(rec.RPCID)
		if i == len(msgs)-1 || i == auditMaxRecords-1 {
			rec.RecordsOmitted = len(msgs) - i - 1
		}
		g.audit.enqueue(rec.appendJSON(make([]byte, 0, 512)))
	}
}

func isAuditedMethod(m string) bool { return slices.Contains(auditedMethods, m) }

// auditDecision is what the gateway decided: allowed, the auth reason it
// refused the request for, a refusal before authentication (origin,
// method: the steps before extractToken answer nothing else with these
// statuses), or empty when it decided nothing (a preflight).
func auditDecision(r *http.Request, ri *requestInfo, status int) string {
	switch {
	case ri.auth == reasonOK:
		return decisionAllowed
	case ri.auth != "":
		return ri.auth
	case status == http.StatusForbidden:
		return refusedOrigin
	case status == http.StatusMethodNotAllowed:
		return refusedMethod
	case r.Context().Err() != nil:
		return decisionClientGone
	}
	return ""
}

// refusedMessage describes a refused request that carried no audited
// message: its first message with a method, or, when the body was never
// read (refused before verification), what the 2026-07-28 transport's
// Mcp-Method and Mcp-Name headers say; the client chose them, and the
// request was refused.
func refusedMessage(r *http.Request, ri *requestInfo) rpcMessage {
	if ri.rpc != nil {
		for _, m := range ri.rpc.messages {
			if m.method != "" {
				return m
			}
		}
		return rpcMessage{}
	}
	m := rpcMessage{method: r.Header.Get(mcpMethodHeader)}
	if m.method == "tools/call" {
		m.tool = decodeHeaderValue(r.Header.Get(mcpNameHeader))
	}
	return m
}

// auditFacts are the caller's email and organizations, when the gateway
// looked them up for its access rules; organizations is non-nil (and may
// be empty) when the memberships were looked up.
func auditFacts(ri *requestInfo) (string, []auditOrg) {
	if ri.facts == nil {
		return "", nil
	}
	var email string
	if u := ri.facts.User; u != nil {
		email = u.PrimaryEmail
	}
	if !ri.membershipsKnown {
		return email, nil
	}
	orgs := make([]auditOrg, 0, len(ri.facts.Memberships))
	for _, m := range ri.facts.Memberships {
		orgs = append(orgs, orgOf(m))
	}
	return email, orgs
}

func orgOf(m clerk.Membership) auditOrg {
	return auditOrg{ID: m.OrganizationID, Slug: m.OrganizationSlug, Role: m.Role}
}

// missingScopes are the scopes of needed that granted lacks.
func missingScopes(granted, needed []string) []string {
	var missing []string
	for _, s := range needed {
		if !slices.Contains(granted, s) {
			missing = append(missing, s)
		}
	}
	return missing
}

// clip shortens a client-chosen string for a record.
func clip(s string) string {
	if len(s) <= auditMaxString {
		return s
	}
	s = s[:auditMaxString]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1] // not in the middle of a character
	}
	return s + "…"
}

// noteAuditParam keeps what the audit records of a message's params: a
// tools/call's arguments (recorded only when configured) and an
// initialize's protocolVersion. parseMessage calls it for every member of
// params; the value is a slice of the body, not a copy.
func (m *rpcMessage) noteAuditParam(f field, call bool) {
	switch {
	case call && equalFoldASCII(f.key, "arguments"):
		m.arguments = f.value
	case equalFoldASCII(f.key, "protocolVersion"):
		if s, ok := jsonString(f.value); ok {
			m.protocolVersion = s
		}
	}
}

// equalFoldASCII is strings.EqualFold for an ASCII target, without its
// Unicode tables for the common case of a key of another length.
func equalFoldASCII(s, target string) bool {
	if len(s) != len(target) {
		return false
	}
	for i := 0; i < len(s); i++ {
		a, b := s[i], target[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

// auditWriter records a response's status, size and, for JSON and event
// streams, its first bytes, in which the audit looks for a JSON-RPC error.
// Like statusWriter it passes Flush through and unwraps.
type auditWriter struct {
	http.ResponseWriter
	ri     *requestInfo
	status int
	bytes  int64
	// head is the response's first auditResponseHead bytes, kept when it
	// is JSON or an event stream answering a parsed request; headFull is
	// set when head is the whole response.
	head     []byte
	keep     bool
	decided  bool
	headFull bool
}

func (w *auditWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *auditWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if !w.decided {
		w.decided = true
		w.keep = w.ri.rpc != nil && mediaType(w.Header().Get("Content-Type")) != ""
		w.headFull = w.keep
	}
	if w.keep {
		if room := auditResponseHead - len(w.head); room >= len(b) {
			w.head = append(w.head, b...)
		} else {
			w.head = append(w.head, b[:max(room, 0)]...)
			w.keep, w.headFull = false, false
		}
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *auditWriter) Flush() {
	// NOTE: the proxy flushes every chunk; a direct call spares a
	// ResponseController per flush when the writer below can flush.
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
		return
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *auditWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// The media types whose responses the audit reads for a JSON-RPC error.
const (
	mediaJSON   = "application/json"
	mediaStream = "text/event-stream"
)

// mediaType is contentType's media type when it is JSON or an event
// stream, else empty. It is on every audited response, so it does without
// mime.ParseMediaType's parameter map: the parameters do not matter here.
func mediaType(contentType string) string {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.TrimSpace(mt)
	switch {
	case strings.EqualFold(mt, mediaJSON):
		return mediaJSON
	case strings.EqualFold(mt, mediaStream):
		return mediaStream
	}
	return ""
}

// countingBody counts the request body bytes read through it.
type countingBody struct {
	io.ReadCloser
	n *int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	*b.n += int64(n)
	return n, err
}

// rpcErrors are the JSON-RPC error codes of a response, by the compact
// JSON of the id they answer ("null" for an error without one).
type rpcErrors map[string]int

// of is the error code answering id; for a request without an id, the
// one answering null.
func (e rpcErrors) of(id json.RawMessage) *int {
	key := "null"
	if id != nil {
		key = string(id)
	}
	if c, ok := e[key]; ok {
		return &c
	}
	return nil
}

// rpcErrorCodes reads the JSON-RPC errors of a response's head: a JSON
// body (one response or a batch) when head holds all of it, or the
// complete data events of an event stream's head.
func rpcErrorCodes(contentType string, head []byte, full bool) rpcErrors {
	// Most responses are results: no error member, nothing to decode.
	if !bytes.Contains(head, []byte(`"error"`)) {
		return nil
	}
	errs := rpcErrors{}
	switch mediaType(contentType) {
	case mediaJSON:
		if full {
			errs.add(head)
		}
	case mediaStream:
		for len(head) > 0 {
			event, rest, ok := bytes.Cut(head, []byte("\n\n"))
			if !ok {
				break // an event the head holds only part of
			}
			head = rest
			for line := range bytes.SplitSeq(event, []byte("\n")) {
				if data, ok := bytes.CutPrefix(line, []byte("data:")); ok {
					errs.add(bytes.TrimSpace(data))
				}
			}
		}
	}
	return errs
}

// add notes the errors of one JSON-RPC response or batch of them.
func (e rpcErrors) add(data []byte) {
	type response struct {
		ID    json.RawMessage `json:"id"`
		Error *struct {
			Code int `json:"code"`
		} `json:"error"`
	}
	data = bytes.TrimSpace(data)
	var all []response
	if len(data) > 0 && data[0] == '[' {
		if json.Unmarshal(data, &all) != nil {
			return
		}
	} else {
		var one response
		if json.Unmarshal(data, &one) != nil {
			return
		}
		all = []response{one}
	}
	for _, r := range all {
		if r.Error == nil {
			continue
		}
		key := "null"
		if id := replyID(r.ID); id != nil {
			var b bytes.Buffer
			if json.Compact(&b, id) == nil {
				key = b.String()
			}
		}
		e[key] = r.Error.Code
	}
}

package gateway

import (
	"encoding/json"
	"net/http"
	"slices"
	"time"
	"unicode/utf8"

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

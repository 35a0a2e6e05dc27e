package gateway

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcpgate/mcpgate/gateway/config"
)

// bodyReadTimeout bounds reading a request body, which the server's
// timeouts cannot do without also cutting streams.
const bodyReadTimeout = 30 * time.Second

// jsonRPCParseError is what a JSON-RPC server answers to a body it cannot
// parse; the gateway answers it itself when it must understand the body.
const jsonRPCParseError = `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}`

// parseRequest reads the body (bounded) once and parses it for the steps
// after it: the JSON-RPC messages go to requestInfo.rpc, and the tools the
// request calls, by its body or its Mcp-Name header, to requestInfo.tools.
// The body is handed on unchanged. A body the gateway cannot judge is
// refused (400, 413) rather than passed: a tools/call that names no tool
// the gateway can read, and, while tool scopes or tool access rules are at
// stake, a body that is not JSON. Other unparseable bodies pass for the
// upstream to answer. Whether the Mcp-* headers agree with the body is
// noted here and enforced by checkMcpHeaders.
func (g *Gateway) parseRequest(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := infoFrom(r.Context())
		if r.Body != nil && r.Body != http.NoBody {
			body, ok := g.readBody(w, r)
			if !ok {
				return
			}
			req, err := parseRPC(body)
			var bad *badCallError
			switch {
			case errors.As(err, &bad):
				g.refuseBody(w, r, http.StatusBadRequest, "400 "+bad.msg)
				return
			case err != nil && (len(g.toolScopes) > 0 || g.policy.HasToolRules()):
				// A body we cannot parse might still be a tool call to a
				// more lenient parser upstream (NaN, comments, trailing
				// data); with tool rules at stake it does not pass.
				ri.auth = reasonMalformedRequest
				g.metrics.countAuth(reasonMalformedRequest)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_, _ = io.WriteString(w, jsonRPCParseError)
				return
			case err == nil:
				ri.rpc = req
				ri.tools = req.toolNames()
			}
		}
		if slices.Contains(r.Header.Values("Mcp-Method"), "tools/call") {
			// The 2026-07-28 transport mirrors the tool name into a
			// header; an upstream that routes on it must not bypass us,
			// so the checks before checkMcpHeaders count it as called.
			for _, name := range r.Header.Values("Mcp-Name") {
				ri.tools = append(ri.tools, decodeHeaderValue(name))
			}
		}
		ri.headerMismatch = headerMismatch(r.Header, ri.rpc)
		next.ServeHTTP(w, r)
	})
}

// applyScopePolicy requires the configured scopes of every token, and for
// each tool the request calls (parseRequest found them), its tool scopes as
// well; a token without them gets 403 insufficient_scope naming every scope
// the request needs, so the client can step up (refuseScope).
func (g *Gateway) applyScopePolicy(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := infoFrom(r.Context())
		// NOTE: a copy; appending to g.scopes could write into its spare
		// capacity, shared by concurrent requests.
		needed := slices.Clone(g.scopes)
		for _, t := range ri.tools {
			needed = append(needed, g.toolScopes[t]...)
		}
		// One challenge names everything the request needs, so a client
		// steps up once.
		if needed = unique(needed); !containsAll(ri.identity.Scopes, needed) {
			g.refuseScope(w, r, needed)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// codeInsufficientScope is the JSON-RPC error code of a request refused
// for want of scopes, from the range MCP leaves to implementations (the
// others the gateway answers with are in rpcerror.go).
const codeInsufficientScope = -32004

// refuseScope answers a token without the scopes needed: 403 with the
// insufficient_scope challenge naming them all, which a client that can
// step up acts on. A JSON-RPC request also gets a JSON-RPC error saying in
// words what is missing and what a person can do, because many clients
// cannot step up and would otherwise show a bare 403 (docs/step-up.md).
// Anything else (a GET, an unparsed body) gets the plain-text 403.
func (g *Gateway) refuseScope(w http.ResponseWriter, r *http.Request, needed []string) {
	ri := infoFrom(r.Context())
	ri.neededScopes = needed
	if ri.rpc == nil {
		g.challenge(w, r, http.StatusForbidden, reasonInsufficientScope, "insufficient_scope", "", needed)
		return
	}
	g.setChallenge(w, r, http.StatusForbidden, reasonInsufficientScope, "insufficient_scope", "", needed)
	writeRPCError(w, http.StatusForbidden, ri.rpc, codeInsufficientScope, g.insufficientScopeMessage(ri.identity.Scopes, needed, ri.tools))
}

// insufficientScopeMessage says which scopes a request needs and which of
// them the token lacks, naming the tools that need the missing ones, that
// the client must authorize again, and what a person can do when it
// cannot: sign in afresh, after the owners set toolScopeChallenge AtSignIn
// when tool scopes are missing and it is not set. Only tools with scopes,
// named in the configuration, are named.
func (g *Gateway) insufficientScopeMessage(granted, needed, called []string) string {
	var missing []string
	for _, s := range needed {
		if !slices.Contains(granted, s) {
			missing = append(missing, s)
		}
	}
	var tools []string
	for _, t := range called {
		ts := g.toolScopes[t]
		if len(ts) > 0 && !containsAll(granted, ts) && !slices.Contains(tools, quoteTool(t)) {
			tools = append(tools, quoteTool(t))
		}
	}
	var b strings.Builder
	b.WriteString("Insufficient scope: ")
	switch len(tools) {
	case 0:
		b.WriteString("this request needs")
	case 1:
		b.WriteString("calling the tool " + tools[0] + " needs")
	default:
		b.WriteString("calling the tools " + strings.Join(tools, ", ") + " needs")
	}
	b.WriteString(" the scopes " + strings.Join(needed, " ") + ", and the access token lacks " + strings.Join(missing, " ") + ". ")
	b.WriteString("The MCP client must authorize again, asking for them. If it cannot (this error comes back), ")
	if len(tools) > 0 && g.cfg.ToolScopeChallenge != config.ToolScopeChallengeAtSignIn {
		// Signing in again asks for what the 401 challenge names, which
		// leaves the tool scopes out.
		b.WriteString("ask the server's owners to set toolScopeChallenge: AtSignIn on it, so that sign-in asks for the scopes of every tool; then ")
	}
	b.WriteString("remove this server from the client, add it again and sign in, so that the client registers and asks for them from the start.")
	return b.String()
}

// admit counts a request that passed every check as allowed. It is the last
// check of the pipeline, so a request is counted once, by its outcome.
func (g *Gateway) admit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		infoFrom(r.Context()).auth = reasonOK
		g.metrics.countAuth(reasonOK)
		next.ServeHTTP(w, r)
	})
}

// readBody reads the whole body, at most MaxBodyBytes, and puts it back for
// the proxy with an exact Content-Length. On failure it has answered.
func (g *Gateway) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	limit := g.opts.MaxBodyBytes
	tooLarge := "413 request body larger than " + strconv.FormatInt(limit, 10) + " bytes"
	if r.ContentLength > limit {
		g.refuseBody(w, r, http.StatusRequestEntityTooLarge, tooLarge)
		return nil, false
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(bodyReadTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	// NOTE: the deadline must go before the handler streams: the server
	// reads the connection in the background from here on to notice a
	// client hanging up, and a deadline firing there would end the stream.
	_ = rc.SetReadDeadline(time.Time{})
	_ = r.Body.Close()
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			g.refuseBody(w, r, http.StatusRequestEntityTooLarge, tooLarge)
		} else {
			g.refuseBody(w, r, http.StatusBadRequest, "400 cannot read the request body")
		}
		return nil, false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil
	r.Trailer = nil // trailers could carry headers we stripped
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return body, true
}

// refuseBody answers a body the policy cannot judge, in plain text.
func (g *Gateway) refuseBody(w http.ResponseWriter, r *http.Request, status int, msg string) {
	infoFrom(r.Context()).auth = reasonMalformedRequest
	g.metrics.countAuth(reasonMalformedRequest)
	writePlain(w, status, msg)
}

// decodeHeaderValue undoes the 2026-07-28 transport's encoding of header
// values that are not plain ASCII: "=?base64?<base64 of UTF-8>?=".
func decodeHeaderValue(v string) string {
	inner, ok := strings.CutPrefix(v, "=?base64?")
	if !ok {
		return v
	}
	inner, ok = strings.CutSuffix(inner, "?=")
	if !ok {
		return v
	}
	b, err := base64.StdEncoding.DecodeString(inner)
	if err != nil {
		return v
	}
	return string(b)
}

// containsAll reports whether granted holds every scope in needed.
func containsAll(granted, needed []string) bool {
	for _, s := range needed {
		if !slices.Contains(granted, s) {
			return false
		}
	}
	return true
}

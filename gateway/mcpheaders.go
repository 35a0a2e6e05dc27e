package gateway

import (
	"encoding/base64"
	"net/http"
	"slices"
	"strings"
)

// The 2026-07-28 transport's headers mirroring the body, which a server
// that reads the body must check against it.
const (
	mcpMethodHeader = "Mcp-Method"
	mcpNameHeader   = "Mcp-Name"
)

// checkMcpHeaders refuses a request whose Mcp-Method or Mcp-Name header
// disagrees with its body: 400 with a JSON-RPC HeaderMismatch error, as the
// 2026-07-28 transport requires of a server that processes the body, so that
// nothing routing on the headers and the upstream reading the body can be
// told two different things.
//
// NOTE: it runs after the access and scope checks, which count a tool named
// in Mcp-Name as called; a request naming a tool it may not call is told so
// (403, or a scope challenge to step up) before it is told to fix its headers.
func (g *Gateway) checkMcpHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := infoFrom(r.Context())
		if ri.headerMismatch != "" {
			ri.auth = reasonHeaderMismatch
			g.metrics.countAuth(reasonHeaderMismatch)
			writeRPCError(w, http.StatusBadRequest, ri.rpc, codeHeaderMismatch, "Header mismatch: "+ri.headerMismatch)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// headerMismatch compares the Mcp-Method and Mcp-Name headers with the
// parsed body and says how they disagree; empty when they agree.
//
// Absent headers are no mismatch: clients of protocol versions before
// 2026-07-28 send none, and the gateway reads the body, not the headers;
// requiring them of 2026-07-28 clients is the upstream's business. Headers
// present are checked whatever MCP-Protocol-Version says, since a header
// that disagrees with the body is never right. A body the gateway could not
// parse (req nil) is not compared: the upstream will refuse it. In a batch,
// every message must agree with the headers.
func headerMismatch(h http.Header, req *rpcRequest) string {
	methods, names := h.Values(mcpMethodHeader), h.Values(mcpNameHeader)
	if req == nil || len(methods)+len(names) == 0 {
		return ""
	}
	switch {
	case len(methods) > 1:
		return "more than one Mcp-Method header"
	case len(names) > 1:
		return "more than one Mcp-Name header"
	}
	var name string
	if len(names) == 1 {
		var nameOK bool
		if name, nameOK = decodeMcpName(names[0]); !nameOK {
			return "the Mcp-Name header is not a valid header value or Base64 encoding"
		}
	}
	for _, m := range req.messages {
		if len(methods) == 1 && (len(m.methods) == 0 || slices.ContainsFunc(m.methods, func(s string) bool { return s != methods[0] })) {
			return "the Mcp-Method header does not match the method in the body"
		}
		if len(names) == 1 && !namesMatch(m, name) {
			return "the Mcp-Name header does not match params.name or params.uri in the body"
		}
	}
	return ""
}

// namesMatch reports whether a message's params.name (tools/call,
// prompts/get) or params.uri (resources/read) equals the Mcp-Name header's
// value. Messages of other methods carry no name to compare.
func namesMatch(m rpcMessage, name string) bool {
	equal := func(vs []string) bool {
		return len(vs) > 0 && !m.oddName && !slices.ContainsFunc(vs, func(v string) bool { return v != name })
	}
	for _, method := range m.methods {
		switch method {
		case "tools/call", "prompts/get":
			if !equal(m.names) {
				return false
			}
		case "resources/read":
			if !equal(m.uris) {
				return false
			}
		}
	}
	return true
}

// decodeMcpName reads an Mcp-Name value as the transport encodes it: plain
// visible ASCII, space and tab, or "=?base64?<standard Base64 of UTF-8>?="
// (markers case-sensitive). ok is false for anything else, which the
// transport calls invalid characters. decodeHeaderValue is the lenient
// reading the scope policy counts; this is the strict one for the check.
func decodeMcpName(v string) (string, bool) {
	if inner, ok := strings.CutPrefix(v, "=?base64?"); ok {
		if inner, ok = strings.CutSuffix(inner, "?="); ok {
			b, err := base64.StdEncoding.DecodeString(inner)
			return string(b), err == nil
		}
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 || c > 0x7e) && c != '\t' {
			return "", false
		}
	}
	return v, true
}

package gateway

import (
	"net/http"
	"testing"
)

// FuzzHeaderMismatch checks the Mcp-* header check on any body and header
// values: it never panics, and headers a conforming client derives from a
// single-message body (its method, and its name encoded as the transport
// says) always agree with it.
func FuzzHeaderMismatch(f *testing.F) {
	for _, s := range [][3]string{
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search"}}`, "tools/call", "search"},
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"für morgen "}}`, "tools/call", "=?base64?ZsO8ciBtb3JnZW4g?="},
		{`{"method":"resources/read","params":{"uri":"file:///x"}}`, "resources/read", "file:///x"},
		{`[{"method":"tools/call","params":{"name":"a"}},{"method":"ping"}]`, "tools/call", "a"},
		{`{"method":"tools/call","Method":"x","params":{"name":"a","NAME":1}}`, "x", "=?base64?!?="},
		{`{"id":1,"result":{}}`, "", ""},
	} {
		f.Add([]byte(s[0]), s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, body []byte, method, name string) {
		req, err := parseRPC(body)
		if err != nil {
			return
		}
		h := http.Header{}
		if method != "" {
			h.Set(mcpMethodHeader, method)
		}
		if name != "" {
			h.Set(mcpNameHeader, name)
		}
		_ = headerMismatch(h, req)

		if req.batch || len(req.messages) != 1 || len(req.messages[0].methods) != 1 {
			return
		}
		m := req.messages[0]
		derived := http.Header{mcpMethodHeader: {m.method}}
		switch m.method {
		case "tools/call", "prompts/get":
			if len(m.names) != 1 || m.oddName {
				return
			}
			derived.Set(mcpNameHeader, encodeHeaderValue(m.names[0]))
		case "resources/read":
			if len(m.uris) != 1 || m.oddName {
				return
			}
			derived.Set(mcpNameHeader, encodeHeaderValue(m.uris[0]))
		}
		if msg := headerMismatch(derived, req); msg != "" {
			t.Fatalf("body %q with headers %q: %s", body, derived, msg)
		}
	})
}

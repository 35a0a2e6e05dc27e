package gateway_test

import (
	"encoding/base64"
	"net/http"
	"testing"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
)

// TestMcpHeaders checks the 2026-07-28 transport's rule for a server that
// reads the body: Mcp-Method and Mcp-Name headers that disagree with it are
// a 400 with a JSON-RPC HeaderMismatch error (-32020), and nothing reaches
// the upstream; absent headers (earlier protocol versions) are fine.
func TestMcpHeaders(t *testing.T) {
	t.Parallel()
	b64 := func(s string) string { return "=?base64?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?=" }
	batch := `[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search"}},{"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"search"}}]`
	tests := []struct {
		name string
		// method is the HTTP method; POST when empty.
		method string
		body   string
		// header is sent as spelled; a nil value sends the header twice.
		header http.Header
		// mismatchIDs are the ids of the expected -32020 responses; nil: 200.
		mismatchIDs []string
	}{
		{name: "no headers, earlier protocol version", body: toolCall("search")},
		{name: "matching headers", body: toolCall("search"), header: http.Header{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"search"}}},
		{name: "method only", body: `{"jsonrpc":"2.0","id":3,"method":"tools/list"}`, header: http.Header{"Mcp-Method": {"tools/list"}}},
		{name: "name header of a method without a name", body: `{"jsonrpc":"2.0","id":3,"method":"tools/list"}`, header: http.Header{"Mcp-Method": {"tools/list"}, "Mcp-Name": {"search"}}},
		{name: "notification", body: `{"jsonrpc":"2.0","method":"notifications/initialized"}`, header: http.Header{"Mcp-Method": {"notifications/initialized"}}},
		{name: "Base64 name", body: toolCall("search"), header: http.Header{"Mcp-Method": {"tools/call"}, "Mcp-Name": {b64("search")}}},
		{name: "Base64 non-ASCII name", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"wetter-für-morgen"}}`, header: http.Header{"Mcp-Method": {"tools/call"}, "Mcp-Name": {b64("wetter-für-morgen")}}},
		{name: "resource URI", body: `{"jsonrpc":"2.0","id":4,"method":"resources/read","params":{"uri":"file:///a/b.json"}}`, header: http.Header{"Mcp-Method": {"resources/read"}, "Mcp-Name": {"file:///a/b.json"}}},
		{name: "prompt name", body: `{"jsonrpc":"2.0","id":5,"method":"prompts/get","params":{"name":"greet"}}`, header: http.Header{"Mcp-Name": {"greet"}}},
		{name: "batch, every message agrees", body: batch, header: http.Header{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"search"}}},
		{name: "GET, nothing to compare", method: http.MethodGet, header: http.Header{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"search"}}},

		{name: "method mismatch", body: toolCall("search"), header: http.Header{"Mcp-Method": {"tools/list"}}, mismatchIDs: []string{"1"}},
		{name: "method header on a response", body: `{"jsonrpc":"2.0","id":9,"result":{}}`, header: http.Header{"Mcp-Method": {"tools/call"}}, mismatchIDs: []string{"9"}},
		{name: "duplicate method members, one disagrees", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","Method":"tools/list","params":{"name":"search"}}`, header: http.Header{"Mcp-Method": {"tools/call"}}, mismatchIDs: []string{"1"}},
		{name: "method header twice", body: toolCall("search"), header: http.Header{"Mcp-Method": {"tools/call", "tools/call"}}, mismatchIDs: []string{"1"}},
		{name: "name mismatch", body: toolCall("search"), header: http.Header{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"fetch"}}, mismatchIDs: []string{"1"}},
		{name: "name mismatch without a method header", body: toolCall("search"), header: http.Header{"Mcp-Name": {"fetch"}}, mismatchIDs: []string{"1"}},
		{name: "Base64 name mismatch", body: toolCall("search"), header: http.Header{"Mcp-Method": {"tools/call"}, "Mcp-Name": {b64("fetch")}}, mismatchIDs: []string{"1"}},
		{name: "Base64 markers in another case", body: toolCall("search"), header: http.Header{"Mcp-Name": {"=?BASE64?c2VhcmNo?="}}, mismatchIDs: []string{"1"}},
		{name: "invalid Base64", body: toolCall("search"), header: http.Header{"Mcp-Name": {"=?base64?!!!?="}}, mismatchIDs: []string{"1"}},
		{name: "raw non-ASCII name", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"für"}}`, header: http.Header{"Mcp-Name": {"für"}}, mismatchIDs: []string{"1"}},
		{name: "name header for a call without a name", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}`, header: http.Header{"Mcp-Name": {"search"}}, mismatchIDs: []string{"1"}},
		{name: "duplicate name members, one disagrees", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","NAME":"fetch"}}`, header: http.Header{"Mcp-Name": {"search"}}, mismatchIDs: []string{"1"}},
		{name: "resource URI mismatch", body: `{"jsonrpc":"2.0","id":4,"method":"resources/read","params":{"uri":"file:///a/b.json"}}`, header: http.Header{"Mcp-Name": {"file:///etc/passwd"}}, mismatchIDs: []string{"4"}},
		{name: "batch, one message disagrees", body: `[` + toolCall("search") + `,{"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"fetch"}}]`, header: http.Header{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"search"}}, mismatchIDs: []string{"1", `"b"`}},
		{name: "batch of notifications, method disagrees", body: `[{"jsonrpc":"2.0","method":"notifications/initialized"}]`, header: http.Header{"Mcp-Method": {"tools/call"}}, mismatchIDs: []string{"null"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			req := newRequest(t, method, e.mcpURL(), tc.body)
			for k, v := range tc.header {
				req.Header[k] = v
			}
			req.Header.Set("Authorization", "Bearer "+e.token(t, clerktest.TokenRequest{Scopes: allScopes}))
			resp, body := do(t, req)
			if tc.mismatchIDs == nil {
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d %q, want 200", resp.StatusCode, body)
				}
				return
			}
			checkRPCRefusal(t, resp, body, http.StatusBadRequest, -32020, tc.mismatchIDs)
			if n := len(e.up.requests()); n != 0 {
				t.Errorf("upstream got %d requests", n)
			}
		})
	}
}

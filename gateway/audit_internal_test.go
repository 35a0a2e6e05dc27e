package gateway

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestRPCErrorCodes checks how the audit finds a JSON-RPC error code in
// the head of a response: whole JSON bodies and complete event-stream
// events only, by the id the error answers.
func TestRPCErrorCodes(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		contentType string
		head        string
		full        bool
		id          string // the request's id; "" for none
		want        int    // 0: no code
	}{
		"json error":          {contentType: "application/json", head: `{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"bad"}}`, full: true, id: "1", want: -32602},
		"json result":         {contentType: "application/json", head: `{"jsonrpc":"2.0","id":1,"result":{}}`, full: true, id: "1"},
		"json, another id":    {contentType: "application/json", head: `{"jsonrpc":"2.0","id":2,"error":{"code":-32602,"message":"bad"}}`, full: true, id: "1"},
		"json, string id":     {contentType: "application/json; charset=utf-8", head: `{"jsonrpc":"2.0","id":"a","error":{"code":-1,"message":"x"}}`, full: true, id: `"a"`, want: -1},
		"json, cut short":     {contentType: "application/json", head: `{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"bad"}}`, id: "1"},
		"json, null id":       {contentType: "application/json", head: `{"jsonrpc":"2.0","id":null,"error":{"code":-32003,"message":"no"}}`, full: true, want: -32003},
		"batch":               {contentType: "application/json", head: `[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","id":2,"error":{"code":-7,"message":"x"}}]`, full: true, id: "2", want: -7},
		"event stream":        {contentType: "text/event-stream", head: "event: message\nid: 1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32001,\"message\":\"x\"}}\n\n", id: "1", want: -32001},
		"event stream result": {contentType: "text/event-stream", head: "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n", id: "1"},
		"event cut short":     {contentType: "text/event-stream", head: "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32001,\"message\":\"x\"}}", id: "1"},
		"plain text":          {contentType: "text/plain", head: `{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"bad"}}`, full: true, id: "1"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var id json.RawMessage
			if tc.id != "" {
				id = json.RawMessage(tc.id)
			}
			got := rpcErrorCodes(tc.contentType, []byte(tc.head), tc.full).of(id)
			switch {
			case tc.want == 0 && got != nil:
				t.Errorf("code %d, want none", *got)
			case tc.want != 0 && (got == nil || *got != tc.want):
				t.Errorf("code %v, want %d", got, tc.want)
			}
		})
	}
}

// TestClip checks that client-chosen strings are bounded without cutting a
// character in two.
func TestClip(t *testing.T) {
	t.Parallel()
	if got := clip("search"); got != "search" {
		t.Errorf("clip(search) = %q", got)
	}
	long := strings.Repeat("é", auditMaxString) // two bytes each
	got := clip(long)
	if !utf8.ValidString(got) || len(got) > auditMaxString+len("…") || !strings.HasSuffix(got, "…") {
		t.Errorf("clip of %d bytes = %d bytes %q", len(long), len(got), got)
	}
}

// auditRecordSample is a record with every field set, strings from the
// caller.
func auditRecordSample(s string) auditRecord {
	code := -32004
	return auditRecord{
		Time: "2026-12-01T09:14:03.512907Z", Log: "audit", McpServer: "team-a/tools", RequestID: "r1", TraceID: "4bf9",
		UserID: "user_1", ClientID: s, Email: s + "@example.com",
		Organizations: []auditOrg{{ID: "org_1", Slug: s}, {ID: "org_2", Role: "org:admin"}},
		HTTPMethod:    "POST", ProtocolVersion: s, Method: "tools/call", RPCID: json.RawMessage(`"x"`), Tool: s,
		Arguments: json.RawMessage("{\"q\": [1,\n 2]}"), ArgumentsTruncated: true,
		Decision: "insufficient_scope", MissingScopes: []string{s, "b"}, DeniedBy: s,
		Status: 403, UpstreamStatus: 502, RPCErrorCode: &code, DurationMS: 83.512, BytesIn: 118, BytesOut: 241, RecordsOmitted: 3,
	}
}

// TestAuditRecordJSON holds the hand-written encoding of a record to what
// encoding/json writes for it: the same bytes, for records with every
// field, none, and strings that need escaping.
func TestAuditRecordJSON(t *testing.T) {
	t.Parallel()
	records := map[string]auditRecord{
		"empty":             {},
		"no organizations":  {Organizations: []auditOrg{}, DurationMS: 0.001},
		"plain":             auditRecordSample("plain"),
		"quotes":            auditRecordSample(`"log":"audit" \ / "`),
		"control":           auditRecordSample("a\nb\rc\td\x00e\x1f\x7f"),
		"html":              auditRecordSample("<script>&</script>"),
		"line separators":   auditRecordSample("a\u2028b\u2029c"),
		"invalid UTF-8":     auditRecordSample("a\xffb\xc3"),
		"multibyte":         auditRecordSample("héllo 世界 😀"),
		"large duration ms": {DurationMS: 123456789.125},
	}
	for name, rec := range records {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			checkRecordJSON(t, rec)
		})
	}
}

// FuzzAuditRecordJSON is TestAuditRecordJSON for any string a client sends.
func FuzzAuditRecordJSON(f *testing.F) {
	for _, s := range []string{"", "plain", `"\`, "\x00\n", "\xff", "\u2028", "<&>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkRecordJSON(t, auditRecordSample(s)) })
}

func checkRecordJSON(t *testing.T, rec auditRecord) {
	t.Helper()
	want, err := json.Marshal(&rec)
	if err != nil {
		t.Fatal(err)
	}
	got := rec.appendJSON(nil)
	if string(got) != string(want)+"\n" {
		t.Errorf("appendJSON:\n%s\nencoding/json:\n%s", got, want)
	}
	if strings.Count(string(got), "\n") != 1 {
		t.Errorf("not one line: %q", got)
	}
}

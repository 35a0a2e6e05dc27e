package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway"
	"github.com/mcpgate/mcpgate/gateway/config"
	"github.com/mcpgate/mcpgate/internal/syncbuf"
)

// auditLine is an audit record as docs/observability.md documents it;
// records are decoded with unknown fields refused, so a field added
// without its documentation (or a token under any name) fails the tests.
type auditLine struct {
	Time          string `json:"time"`
	Log           string `json:"log"`
	McpServer     string `json:"mcpserver"`
	RequestID     string `json:"request_id"`
	TraceID       string `json:"trace_id"`
	UserID        string `json:"user_id"`
	ClientID      string `json:"client_id"`
	Email         string `json:"email"`
	Organizations *[]struct {
		ID   string `json:"id"`
		Slug string `json:"slug"`
		Role string `json:"role"`
	} `json:"organizations"`
	HTTPMethod         string          `json:"http_method"`
	ProtocolVersion    string          `json:"protocol_version"`
	Method             string          `json:"method"`
	RPCID              json.RawMessage `json:"rpc_id"`
	Tool               string          `json:"tool"`
	Arguments          json.RawMessage `json:"arguments"`
	ArgumentsTruncated bool            `json:"arguments_truncated"`
	Decision           string          `json:"decision"`
	MissingScopes      []string        `json:"missing_scopes"`
	DeniedBy           string          `json:"denied_by"`
	Status             int             `json:"status"`
	UpstreamStatus     int             `json:"upstream_status"`
	RPCErrorCode       *int            `json:"rpc_error_code"`
	DurationMS         float64         `json:"duration_ms"`
	BytesIn            int64           `json:"bytes_in"`
	BytesOut           int64           `json:"bytes_out"`
	RecordsOmitted     int             `json:"records_omitted"`
}

// parseAudit parses an audit stream: every line one JSON object of the
// documented fields, with "log":"audit".
func parseAudit(t testing.TB, stream string) []auditLine {
	t.Helper()
	var out []auditLine
	sc := bufio.NewScanner(strings.NewReader(stream))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		var l auditLine
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		if dec.More() {
			t.Fatalf("audit line %q holds more than one JSON value", sc.Text())
		}
		if l.Log != "audit" {
			t.Fatalf("audit line %q: log %q, want audit", sc.Text(), l.Log)
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitAudit waits until the stream holds n records and returns them.
func waitAudit(t testing.TB, sink *syncbuf.Buffer, n int) []auditLine {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d audit records", n), 10*time.Second, func() bool {
		return strings.Count(sink.String(), "\n") >= n
	})
	return parseAudit(t, sink.String())
}

// withAudit sends the env's audit stream to sink.
func withAudit(sink io.Writer) envOption {
	return withOptions(func(o *gateway.Options) { o.AuditOutput = sink })
}

const (
	auditUser   = "user_audit1"
	auditClient = "client_audit1"
	initialize  = `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
	toolsList   = `{"jsonrpc":"2.0","id":7,"method":"tools/list"}`
)

// TestAuditDecisions checks the record of each decision the MCP endpoint
// makes: every allowed initialize, tools/list and tools/call, and every
// kind of refusal, with what the gateway knew about the caller. After each
// case the test sends a tools/list, the marker, whose record must be there
// too: so a case that should write nothing is seen to write nothing.
func TestAuditDecisions(t *testing.T) {
	t.Parallel()
	code := func(c int) *int { return &c }
	tests := []struct {
		name string
		// env builds the case's gateway (nil: newEnv with the sink);
		// people are its users when it has an emulator of its own.
		env func(t *testing.T, sink io.Writer) (*gwEnv, people)
		// send makes the case's request.
		send func(t *testing.T, e *gwEnv, p people) *http.Request
		// want are the records the case writes (time, ids, durations and
		// byte counts are checked apart); nil: none.
		want []auditLine
		// check looks at what want cannot say.
		check func(t *testing.T, e *gwEnv, p people, got []auditLine)
	}{{
		name: "tools/call allowed",
		send: func(t *testing.T, e *gwEnv, _ people) *http.Request {
			req := authed(t, e, toolCall("search"), allScopes...)
			req.Header.Set("MCP-Protocol-Version", "2025-11-25")
			return req
		},
		want: []auditLine{{Decision: "allowed", Method: "tools/call", Tool: "search", RPCID: json.RawMessage("1"), ProtocolVersion: "2025-11-25", Status: 200, UpstreamStatus: 200}},
		check: func(t *testing.T, _ *gwEnv, _ people, got []auditLine) {
			if got[0].BytesIn != int64(len(toolCall("search"))) || got[0].BytesOut != int64(len(toolResult)) {
				t.Errorf("bytes in %d, out %d; want %d, %d", got[0].BytesIn, got[0].BytesOut, len(toolCall("search")), len(toolResult))
			}
			if got[0].Arguments != nil || got[0].ArgumentsTruncated {
				t.Errorf("arguments recorded by default: %s", got[0].Arguments)
			}
		},
	}, {
		name: "initialize",
		send: func(t *testing.T, e *gwEnv, _ people) *http.Request { return authed(t, e, initialize) },
		want: []auditLine{{Decision: "allowed", Method: "initialize", RPCID: json.RawMessage("0"), ProtocolVersion: "2025-06-18", Status: 200, UpstreamStatus: 200}},
	}, {
		name: "other methods are not recorded",
		send: func(t *testing.T, e *gwEnv, _ people) *http.Request {
			return authed(t, e, `{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"file:///a"}}`)
		},
	}, {
		name: "batch: a record per call",
		send: func(t *testing.T, e *gwEnv, _ people) *http.Request {
			return authed(t, e, `[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}},{"jsonrpc":"2.0","method":"notifications/x"},{"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"b"}}]`)
		},
		want: []auditLine{
			{Decision: "allowed", Method: "tools/call", Tool: "a", RPCID: json.RawMessage("1"), Status: 200, UpstreamStatus: 200},
			{Decision: "allowed", Method: "tools/call", Tool: "b", RPCID: json.RawMessage(`"b"`), Status: 200, UpstreamStatus: 200},
		},
	}, {
		name: "upstream error status",
		send: func(t *testing.T, e *gwEnv, _ people) *http.Request {
			req := authed(t, e, toolCall("search"))
			req.URL.RawQuery = "mode=status&code=500"
			return req
		},
		want: []auditLine{{Decision: "allowed", Method: "tools/call", Tool: "search", RPCID: json.RawMessage("1"), Status: 500, UpstreamStatus: 500}},
	}, {
		name: "upstream unreachable",
		send: func(t *testing.T, e *gwEnv, _ people) *http.Request {
			req := authed(t, e, toolCall("search"))
			req.URL.RawQuery = "mode=drop"
			return req
		},
		want: []auditLine{{Decision: "allowed", Method: "tools/call", Tool: "search", RPCID: json.RawMessage("1"), Status: 502}},
	}, {
		name: "no token: method and tool from the Mcp-* headers",
		send: func(t *testing.T, e *gwEnv, _ people) *http.Request {
			req := newRequest(t, http.MethodPost, e.mcpURL(), toolCall("delete_repo"))
			req.Header.Set("Mcp-Method", "tools/call")
			req.Header.Set("Mcp-Name", "delete_repo")
			return req
		},
		want: []auditLine{{Decision: "missing_token", Method: "tools/call", Tool: "delete_repo", Status: 401}},
		check: func(t *testing.T, _ *gwEnv, _ people, got []auditLine) {
			if got[0].BytesIn != 0 {
				t.Errorf("bytes in %d for a body never read", got[0].BytesIn)
			}
		},
	}, {
		name: "no token, GET stream",
		send: func(t *testing.T, e *gwEnv, _ people) *http.Request {
			return newRequest(t, http.MethodGet, e.mcpURL(), "")
		},
		want: []auditLine{{Decision: "missing_token", Status: 401}},
	}, {
		name: "invalid token",
		send: func(t *testing.T, e *gwEnv, _ people) *http.Request {
			req := newRequest(t, http.MethodPost, e.mcpURL(), toolCall("search"))
			req.Header.Set("Authorization", "Bearer not-a-token")
			return req
		},
		want: []auditLine{{Decision: "invalid_token", Status: 401}},
	}, {
		name: "token in the query",
		send: func(t *testing.T, e *gwEnv, _ people) *http.Request {
			return newRequest(t, http.MethodPost, e.mcpURL()+"?access_token=x", toolCall("search"))
		},
		want: []auditLine{{Decision: "invalid_request", Status: 401}},
	}, {
		name: "insufficient scope",
		send: func(t *testing.T, e *gwEnv, _ people) *http.Request { return authed(t, e, toolCall("read_secrets")) },
		want: []auditLine{{Decision: "insufficient_scope", Method: "tools/call", Tool: "read_secrets", RPCID: json.RawMessage("1"),
			MissingScopes: []string{"secrets:read", "repo:admin"}, Status: 403, RPCErrorCode: code(-32004)}},
	}, {
		name: "header mismatch",
		send: func(t *testing.T, e *gwEnv, _ people) *http.Request {
			req := authed(t, e, toolCall("search"), allScopes...)
			req.Header.Set("Mcp-Method", "tools/list")
			return req
		},
		want: []auditLine{{Decision: "header_mismatch", Method: "tools/call", Tool: "search", RPCID: json.RawMessage("1"), Status: 400, RPCErrorCode: code(-32020)}},
	}, {
		name: "malformed body",
		send: func(t *testing.T, e *gwEnv, _ people) *http.Request { return authed(t, e, `{"jsonrpc":"2.0",`) },
		want: []auditLine{{Decision: "malformed_request", Status: 400}},
	}, {
		name: "foreign origin",
		send: func(t *testing.T, e *gwEnv, _ people) *http.Request {
			req := authed(t, e, toolCall("search"))
			req.Header.Set("Origin", "https://evil.example.com")
			return req
		},
		want: []auditLine{{Decision: "origin_refused", Status: 403}},
	}, {
		name: "method not allowed",
		send: func(t *testing.T, e *gwEnv, _ people) *http.Request {
			return newRequest(t, http.MethodPut, e.mcpURL(), toolCall("search"))
		},
		want: []auditLine{{Decision: "method_not_allowed", Status: 405}},
	}, {
		name: "OPTIONS is no decision",
		send: func(t *testing.T, e *gwEnv, _ people) *http.Request {
			return newRequest(t, http.MethodOptions, e.mcpURL(), "")
		},
	}, {
		name: "access denied by the server's rules, with the facts looked up",
		env:  accessEnv,
		send: func(t *testing.T, e *gwEnv, p people) *http.Request {
			return authedAs(t, e, p.carol, toolCall("search"))
		},
		want: []auditLine{{Decision: "access_denied", DeniedBy: "server", Method: "tools/call", Tool: "search", RPCID: json.RawMessage("1"),
			Email: "carol@example.org", Status: 403, RPCErrorCode: code(-32003)}},
		check: func(t *testing.T, _ *gwEnv, p people, got []auditLine) {
			if got[0].UserID != p.carol || got[0].Organizations == nil || len(*got[0].Organizations) != 0 {
				t.Errorf("user %q, organizations %v; want carol's, looked up and none", got[0].UserID, got[0].Organizations)
			}
		},
	}, {
		name: "access denied by a tool's rules",
		env:  accessEnv,
		send: func(t *testing.T, e *gwEnv, p people) *http.Request { return authedAs(t, e, p.bob, toolCall("deploy")) },
		want: []auditLine{{Decision: "access_denied", DeniedBy: "tool", Method: "tools/call", Tool: "deploy", RPCID: json.RawMessage("1"),
			Email: "bob@Example.COM", Status: 403, RPCErrorCode: code(-32003)}},
		check: func(t *testing.T, _ *gwEnv, p people, got []auditLine) {
			orgs := got[0].Organizations
			if orgs == nil || len(*orgs) != 1 || (*orgs)[0].ID != p.acmeID || (*orgs)[0].Slug != "acme" || (*orgs)[0].Role != clerktest.RoleMember {
				t.Errorf("organizations %+v, want bob's membership of acme", orgs)
			}
		},
	}, {
		name: "allowed by the access rules",
		env:  accessEnv,
		send: func(t *testing.T, e *gwEnv, p people) *http.Request {
			return authedAs(t, e, p.alice, toolCall("deploy"))
		},
		want: []auditLine{{Decision: "allowed", Method: "tools/call", Tool: "deploy", RPCID: json.RawMessage("1"), Email: "alice@acme.com", Status: 200, UpstreamStatus: 200}},
	}, {
		name: "Clerk unavailable",
		env: func(t *testing.T, sink io.Writer) (*gwEnv, people) {
			c := clerktest.NewServer()
			t.Cleanup(c.Close)
			c.SetFault(verifyEndpoint, clerktest.Fault{Outage: true})
			return newEnv(t, withClerk(c), withAudit(sink)), people{}
		},
		send: func(t *testing.T, e *gwEnv, _ people) *http.Request {
			req := newRequest(t, http.MethodPost, e.mcpURL(), toolCall("search"))
			req.Header.Set("Authorization", "Bearer "+e.token(t, clerktest.TokenRequest{Scopes: baseScopes, Format: clerktest.FormatOpaque}))
			return req
		},
		want: []auditLine{{Decision: "clerk_unavailable", Status: 503}},
	}, {
		name: "not connected",
		env: func(t *testing.T, sink io.Writer) (*gwEnv, people) {
			c, p := newPeople(t)
			connect(t, c, p.alice, aliceGitHubToken) // for the marker
			return newEnv(t, withClerk(c), withUserToken(t, github), withAudit(sink)), p
		},
		send: func(t *testing.T, e *gwEnv, p people) *http.Request { return authedAs(t, e, p.bob, toolCall("search")) },
		want: []auditLine{{Decision: "not_connected", Method: "tools/call", Tool: "search", RPCID: json.RawMessage("1"), Status: 200, RPCErrorCode: code(-32042)}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sink := &syncbuf.Buffer{}
			var e *gwEnv
			var p people
			if tc.env != nil {
				e, p = tc.env(t, sink)
			} else {
				e = newEnv(t, withAudit(sink))
			}
			req := tc.send(t, e, p)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			marker := authedAs(t, e, p.alice, toolsList)
			if p.alice == "" {
				marker = authed(t, e, toolsList)
			}
			markerResp, _ := do(t, marker)

			waitAudit(t, sink, len(tc.want)+1)
			// NOTE: a record is enqueued once its request is done, which
			// may be a moment after the client has read the answer: the
			// marker's record is told by its request id, not its place,
			// and a record that should not exist gets a moment to show.
			time.Sleep(50 * time.Millisecond)
			var got []auditLine
			markers := 0
			for _, l := range parseAudit(t, sink.String()) {
				if l.RequestID == markerResp.Header.Get("X-Request-Id") {
					markers++
					if l.Method != "tools/list" || l.Decision != "allowed" {
						t.Errorf("the marker's record is %+v", l)
					}
					continue
				}
				got = append(got, l)
			}
			if markers != 1 || len(got) != len(tc.want) {
				t.Fatalf("%d records and %d of the marker, want %d and 1: %+v", len(got), markers, len(tc.want), got)
			}
			for i, want := range tc.want {
				g := got[i]
				checkCommon(t, g, resp.Header.Get("X-Request-Id"))
				g.Time, g.McpServer, g.RequestID, g.DurationMS, g.BytesIn, g.BytesOut, g.Log = "", "", "", 0, 0, 0, ""
				g.Organizations = nil
				if want.UserID == "" {
					g.UserID, g.ClientID = "", ""
				}
				if want.HTTPMethod == "" {
					g.HTTPMethod = ""
				}
				if !auditEqual(g, want) {
					t.Errorf("record %d:\n got %s\nwant %s", i, mustJSON(g), mustJSON(want))
				}
			}
			if tc.check != nil {
				tc.check(t, e, p, got)
			}
		})
	}
}

// checkCommon checks what every record holds.
func checkCommon(t *testing.T, l auditLine, requestID string) {
	t.Helper()
	if _, err := time.Parse(time.RFC3339Nano, l.Time); err != nil {
		t.Errorf("time %q: %v", l.Time, err)
	}
	if l.McpServer != "team-a/tools" || l.RequestID != requestID || l.HTTPMethod == "" || l.DurationMS <= 0 || l.TraceID != "" {
		t.Errorf("record %+v: want mcpserver team-a/tools, request id %q, an HTTP method, a duration, no trace", l, requestID)
	}
	if l.Decision != "missing_token" && l.Decision != "invalid_token" && l.Decision != "invalid_request" &&
		l.Decision != "origin_refused" && l.Decision != "method_not_allowed" && l.Decision != "clerk_unavailable" &&
		(l.UserID == "" || l.ClientID == "") {
		t.Errorf("record %+v: no user or client for a verified token", l)
	}
}

func auditEqual(a, b auditLine) bool {
	return mustJSON(a) == mustJSON(b)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// authed is a POST of body with a JWT of auditUser and auditClient,
// holding the base scopes and any more given.
func authed(t testing.TB, e *gwEnv, body string, scopes ...string) *http.Request {
	t.Helper()
	if len(scopes) == 0 {
		scopes = baseScopes
	}
	req := newRequest(t, http.MethodPost, e.mcpURL(), body)
	req.Header.Set("Authorization", "Bearer "+e.token(t, clerktest.TokenRequest{Subject: auditUser, ClientID: auditClient, Scopes: scopes, Format: clerktest.FormatJWT}))
	return req
}

// authedAs is a POST of body as user, with the base scopes.
func authedAs(t testing.TB, e *gwEnv, user, body string) *http.Request {
	t.Helper()
	req := newRequest(t, http.MethodPost, e.mcpURL(), body)
	req.Header.Set("Authorization", "Bearer "+e.token(t, clerktest.TokenRequest{Subject: user, Scopes: baseScopes, Format: clerktest.FormatJWT}))
	return req
}

// accessEnv is a gateway whose server admits acme's members and users
// with a verified acme.com address (so it looks up users and their
// memberships), and whose tool deploy admits acme's admins.
func accessEnv(t *testing.T, sink io.Writer) (*gwEnv, people) {
	c, p := newPeople(t)
	return newEnv(t, withClerk(c), withAudit(sink), withAccess(config.Access{
		Allow:      []config.AccessRule{{Organization: "acme"}, {EmailDomain: "acme.com"}},
		ToolAccess: []config.ToolAccess{{Tool: "deploy", Allow: []config.AccessRule{{Organization: "acme", Roles: []string{clerktest.RoleAdmin}}}}},
	})), p
}

// TestAuditArguments checks that a tools/call's arguments are recorded only
// when configured, and only when they fit.
func TestAuditArguments(t *testing.T) {
	t.Parallel()
	small := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"q": "kittens"}}}`
	large := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"search","arguments":{"q":"` + strings.Repeat("x", 64) + `"}}}`
	for _, max := range []int{0, 32} {
		t.Run(strconv.Itoa(max), func(t *testing.T) {
			t.Parallel()
			sink := &syncbuf.Buffer{}
			e := newEnv(t, withAudit(sink), withConfig(func(c *config.Config) { c.Audit.ArgumentsMaxBytes = max }))
			do(t, authed(t, e, small))
			do(t, authed(t, e, large))
			got := waitAudit(t, sink, 2)
			var wantSmall json.RawMessage
			if max > 0 {
				wantSmall = json.RawMessage(`{"q":"kittens"}`)
			}
			if string(got[0].Arguments) != string(wantSmall) || got[0].ArgumentsTruncated {
				t.Errorf("small arguments: %s (truncated %v), want %s", got[0].Arguments, got[0].ArgumentsTruncated, wantSmall)
			}
			if got[1].Arguments != nil || got[1].ArgumentsTruncated != (max > 0) {
				t.Errorf("large arguments: %s (truncated %v), want none, truncated %v", got[1].Arguments, got[1].ArgumentsTruncated, max > 0)
			}
		})
	}
}

// TestAuditTraceID checks that a record names the trace of the request's
// span: one in the context the handler is given, and one the gateway's
// tracing continues from the client's traceparent (not sampled here, so
// nothing is exported; the record still names the trace the upstream sees).
func TestAuditTraceID(t *testing.T) {
	t.Parallel()
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	t.Run("span in the context", func(t *testing.T) {
		t.Parallel()
		sink := &syncbuf.Buffer{}
		e := newEnv(t, withAudit(sink))
		sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			e.gw.Handler().ServeHTTP(w, r.WithContext(trace.ContextWithSpanContext(r.Context(), sc)))
		}))
		t.Cleanup(srv.Close)
		req := authed(t, e, toolCall("search"))
		req.URL.Host = strings.TrimPrefix(srv.URL, "http://")
		do(t, req)
		if got := waitAudit(t, sink, 1); got[0].TraceID != tid.String() {
			t.Errorf("trace_id %q, want %q", got[0].TraceID, tid)
		}
	})
	t.Run("traceparent", func(t *testing.T) {
		t.Parallel()
		sink := &syncbuf.Buffer{}
		e := newEnv(t, withAudit(sink), withConfig(func(c *config.Config) {
			c.Tracing = &config.Tracing{Endpoint: "http://127.0.0.1:1", SamplingRatio: 0}
		}))
		req := authed(t, e, toolCall("search"))
		req.Header.Set("Traceparent", "00-"+tid.String()+"-00f067aa0ba902b7-00")
		do(t, req)
		if got := waitAudit(t, sink, 1); got[0].TraceID != tid.String() {
			t.Errorf("trace_id %q, want the client's %q", got[0].TraceID, tid)
		}
	})
}

// TestAuditUnderLoad sends 64 clients' calls at once through a gateway
// whose audit stream is a pipe, as stdout is in a container: every call
// has its record, whole, on a line of its own, and none is dropped.
func TestAuditUnderLoad(t *testing.T) {
	t.Parallel()
	const clients, calls = 64, 25
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(); _ = w.Close() })
	sink := &syncbuf.Buffer{}
	go func() { _, _ = io.Copy(sink, r) }()
	e := newEnv(t, withAudit(w))
	tok := e.token(t, clerktest.TokenRequest{Subject: auditUser, Scopes: baseScopes, Format: clerktest.FormatJWT})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Go(func() {
			for n := range calls {
				// A tool name per call, long enough that records are
				// not tiny, so that a split write would show.
				body := toolCall(fmt.Sprintf("tool_%02d_%02d_%s", c, n, strings.Repeat("z", 200)))
				req := newRequest(t, http.MethodPost, e.mcpURL(), body)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := waitAudit(t, sink, clients*calls)
	if len(got) != clients*calls {
		t.Fatalf("%d records, want %d", len(got), clients*calls)
	}
	seen := map[string]bool{}
	name := regexp.MustCompile(`^tool_\d\d_\d\d_z{200}$`)
	for _, l := range got {
		if !name.MatchString(l.Tool) || seen[l.Tool] || l.Decision != "allowed" {
			t.Fatalf("record %+v: not one of the calls, or seen twice", l)
		}
		seen[l.Tool] = true
	}
	if d := dropped(t, e); d != 0 {
		t.Errorf("%v records dropped", d)
	}
}

// blockingWriter is an audit output that is stuck until released, like a
// stdout nobody reads.
type blockingWriter struct {
	release chan struct{}
	buf     syncbuf.Buffer
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	<-w.release
	return w.buf.Write(p)
}

// TestAuditBlockedOutput checks that a stuck audit output never holds up a
// request: calls go on being answered, the records that do not fit in the
// buffer are dropped and counted, and the others are written once the
// output moves again.
func TestAuditBlockedOutput(t *testing.T) {
	t.Parallel()
	const buffer, calls = 8, 60
	out := &blockingWriter{release: make(chan struct{})}
	var once sync.Once
	release := func() { once.Do(func() { close(out.release) }) }
	t.Cleanup(release)
	e := newEnv(t, withOptions(func(o *gateway.Options) { o.AuditOutput, o.AuditBuffer = out, buffer }))
	tok := e.token(t, clerktest.TokenRequest{Subject: auditUser, Scopes: baseScopes, Format: clerktest.FormatJWT})
	for range calls {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req := newRequest(t, http.MethodPost, e.mcpURL(), toolCall("search")).WithContext(ctx)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			t.Fatalf("a call with the audit output stuck: %v", err)
		}
		_ = resp.Body.Close()
		cancel()
	}
	d := dropped(t, e)
	// At most one batch is stuck in Write, of at most buffer+1 records.
	if d < calls-2*buffer-1 {
		t.Fatalf("%v records dropped, want at least %d", d, calls-2*buffer-1)
	}
	release()
	// NOTE: the last call's record may be enqueued (or dropped) after
	// its answer reached the client: count the drops again.
	waitFor(t, "the records not dropped", 5*time.Second, func() bool {
		return strings.Count(out.buf.String(), "\n")+int(dropped(t, e)) == calls
	})
	parseAudit(t, out.buf.String())
}

// dropped reads the gateway's count of dropped audit records.
func dropped(t testing.TB, e *gwEnv) float64 {
	t.Helper()
	_, body := do(t, newRequest(t, http.MethodGet, e.health.URL+"/metrics", ""))
	m := regexp.MustCompile(`(?m)^` + config.AuditDroppedMetric + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no %s in /metrics", config.AuditDroppedMetric)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// slowStart is an audit output whose writes wait until released.
type slowStart struct {
	released chan struct{}
	buf      syncbuf.Buffer
}

func (w *slowStart) Write(p []byte) (int, error) {
	<-w.released
	return w.buf.Write(p)
}

// TestAuditFlushedOnShutdown checks that Serve, when told to stop, writes
// the records still queued before it returns: the last requests before a
// rollout are audited too.
func TestAuditFlushedOnShutdown(t *testing.T) {
	t.Parallel()
	const calls = 10
	out := &slowStart{released: make(chan struct{})}
	e := newEnv(t, withAudit(out))
	traffic, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	health, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- e.gw.Serve(ctx, traffic, health) }()
	tok := e.token(t, clerktest.TokenRequest{Subject: auditUser, Scopes: baseScopes, Format: clerktest.FormatJWT})
	for range calls {
		req := newRequest(t, http.MethodPost, "http://"+traffic.Addr().String()+"/mcp", toolCall("search"))
		req.Header.Set("Authorization", "Bearer "+tok)
		if resp, _ := do(t, req); resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	cancel()
	// The output moves only after Serve has been told to stop, and Serve
	// has no request left to wait for: only the flush keeps it.
	time.AfterFunc(200*time.Millisecond, func() { close(out.released) })
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return")
	}
	if got := parseAudit(t, out.buf.String()); len(got) != calls {
		t.Fatalf("%d records written when Serve returned, want %d", len(got), calls)
	}
}

// TestAuditOff checks that a configuration with the audit disabled, or a
// gateway without an output, writes no record.
func TestAuditOff(t *testing.T) {
	t.Parallel()
	sink := &syncbuf.Buffer{}
	e := newEnv(t, withAudit(sink), withConfig(func(c *config.Config) { c.Audit.Disabled = true }))
	do(t, authed(t, e, toolCall("search")))
	do(t, newRequest(t, http.MethodPost, e.mcpURL(), toolCall("search")))
	time.Sleep(100 * time.Millisecond)
	if s := sink.String(); s != "" {
		t.Errorf("records with the audit disabled: %s", s)
	}
}

// TestAuditBatchBound checks that a batch of more calls than a request may
// have records gets 32, the last saying how many more it held.
func TestAuditBatchBound(t *testing.T) {
	t.Parallel()
	sink := &syncbuf.Buffer{}
	e := newEnv(t, withAudit(sink))
	calls := make([]string, 40)
	for i := range calls {
		calls[i] = fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"t%d"}}`, i, i)
	}
	do(t, authed(t, e, "["+strings.Join(calls, ",")+"]"))
	// A tools/list after the batch: once its record is written, every
	// record of the batch is (one writer, in order).
	do(t, authed(t, e, toolsList))
	got := waitAudit(t, sink, 33)
	if len(got) != 33 || got[32].Method != "tools/list" {
		t.Fatalf("%d records before the marker's, want 32", len(got)-1)
	}
	for i, l := range got[:32] {
		wantOmitted := 0
		if i == 31 {
			wantOmitted = 8
		}
		if l.Tool != fmt.Sprintf("t%d", i) || l.RecordsOmitted != wantOmitted {
			t.Errorf("record %d: tool %q, records_omitted %d; want t%d, %d", i, l.Tool, l.RecordsOmitted, i, wantOmitted)
		}
	}
}

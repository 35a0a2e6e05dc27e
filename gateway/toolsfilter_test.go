package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/gateway/config"
)

// mayCallTest allows the test caller three tools; every other name is
// refused, among them delete_repo, read_secrets and "🔥burn".
func mayCallTest(name string) bool {
	switch name {
	case "search", "read_file", "日本語ツール":
		return true
	}
	return false
}

// tool is a tool object as an upstream lists it.
func tool(name string) string {
	return `{"name":"` + name + `","description":"Does ` + name + `.","inputSchema":{"type":"object","properties":{"q":{"type":"string"}}}}`
}

// tools is a JSON array of tool objects.
func tools(names ...string) string {
	ts := make([]string, len(names))
	for i, n := range names {
		ts[i] = tool(n)
	}
	return "[" + strings.Join(ts, ",") + "]"
}

// listResult is a tools/list response whose result has the given members.
func listResult(id, members string) string {
	return `{"jsonrpc":"2.0","id":` + id + `,"result":{` + members + `}}`
}

const listReq = `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`

// testRPC stands in for the gateway's request parse: the methods and ids of
// a body's messages, which is all the filter reads.
func testRPC(body []byte) *rpcRequest {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil
	}
	var raws []json.RawMessage
	rpc := &rpcRequest{}
	if body[0] == '[' {
		rpc.batch = true
		_ = json.Unmarshal(body, &raws)
	} else {
		raws = []json.RawMessage{body}
	}
	for _, raw := range raws {
		var m struct {
			Method string          `json:"method"`
			ID     json.RawMessage `json:"id"`
		}
		_ = json.Unmarshal(raw, &m)
		rpc.messages = append(rpc.messages, rpcMessage{method: m.Method, methods: []string{m.Method}, id: m.ID})
	}
	return rpc
}

// filterEnv is filterToolsList in front of the gateway's proxy to a test
// upstream, with the request info the steps before it would have set.
type filterEnv struct {
	g   *Gateway
	url string
	// acceptEncoding is what the upstream last saw in Accept-Encoding.
	mu             sync.Mutex
	acceptEncoding string
}

func newFilterEnv(t testing.TB, upstream http.HandlerFunc, mayCall func(string) bool) *filterEnv {
	t.Helper()
	e := &filterEnv{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.acceptEncoding = r.Header.Get("Accept-Encoding")
		e.mu.Unlock()
		upstream(w, r)
	}))
	t.Cleanup(up.Close)
	g, err := New(config.Config{
		APIVersion: config.APIVersion,
		Kind:       config.Kind,
		Listen:     config.Listen{Traffic: "127.0.0.1:0", Health: "127.0.0.1:0"},
		Path:       "/mcp",
		Upstream:   config.Upstream{URL: up.URL + "/mcp"},
		Clerk: config.Clerk{
			Issuer:        "https://clerk.example.test",
			APIURL:        "https://api.clerk.example.test/v1",
			SecretKeyFile: filepath.Join(t.TempDir(), "unused"),
		},
		Access: &config.Access{CacheTTLSeconds: 60},
	}, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	e.g = g
	h := g.filterToolsList(g.newProxy())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		ri := &requestInfo{id: "req-1", route: routeMCP, rpc: testRPC(body), mayCall: mayCall}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, ri)))
	}))
	t.Cleanup(srv.Close)
	e.url = srv.URL + "/mcp"
	return e
}

func (e *filterEnv) upstreamAcceptEncoding() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.acceptEncoding
}

// post sends body as an MCP client would, asking for gzip so that the test
// sees what the filter makes of it.
func (e *filterEnv) post(t testing.TB, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

// answer is an upstream that sends one canned response.
func answer(status int, header map[string]string, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func refusal(id string) string {
	return `{"jsonrpc":"2.0","id":` + id + `,"error":{"code":-32603,"message":"The gateway could not filter the tool list"}}`
}

func TestFilterToolsListJSON(t *testing.T) {
	t.Parallel()
	bigNames := make([]string, 0, 500)
	var bigWant []string
	for i := range 500 {
		n := "delete_repo"
		if i%2 == 0 {
			n = "search"
			bigWant = append(bigWant, n)
		}
		bigNames = append(bigNames, n)
	}
	tests := map[string]struct {
		// req is the client's body; resp the upstream's, sent with status
		// (200 if zero) and header (Content-Type application/json unless set).
		req    string
		status int
		header map[string]string
		resp   string
		// noFilter leaves mayCall nil: no tool access rules.
		noFilter bool
		// wantStatus (200 if zero) and want, the exact body the client gets.
		wantStatus int
		want       string
		// wantCacheControl is the Cache-Control the client gets.
		wantCacheControl string
		// wantAcceptEncoding is what the upstream was asked for.
		wantAcceptEncoding string
	}{
		"single result": {
			req:              listReq,
			resp:             listResult("1", `"tools":`+tools("search", "delete_repo", "read_file")),
			want:             listResult("1", `"tools":`+tools("search", "read_file")),
			wantCacheControl: "private",
		},
		"all allowed: bytes unchanged, whitespace included": {
			req:              listReq,
			resp:             "{ \"jsonrpc\": \"2.0\",\n \"id\": 1, \"result\": { \"tools\": [ " + tool("search") + " ,\n\t" + tool("read_file") + " ] } }\n",
			want:             "{ \"jsonrpc\": \"2.0\",\n \"id\": 1, \"result\": { \"tools\": [ " + tool("search") + " ,\n\t" + tool("read_file") + " ] } }\n",
			wantCacheControl: "private",
		},
		"none allowed": {
			req:              listReq,
			resp:             listResult("1", `"tools":`+tools("delete_repo", "read_secrets")),
			want:             listResult("1", `"tools":[]`),
			wantCacheControl: "private",
		},
		"batch: tools/list results of number and string ids filtered, a tools/call result untouched": {
			req: `[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":"two","method":"tools/call","params":{"name":"search"}},` +
				`{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":"three","method":"tools/list","params":{"cursor":"c1"}}]`,
			resp: `[{"jsonrpc":"2.0","id":"two","result":{"content":[],"tools":` + tools("delete_repo") + `}},` +
				listResult("1", `"tools":`+tools("delete_repo", "search")) + ",\n" +
				listResult(`"three"`, `"tools":`+tools("read_secrets")+`,"nextCursor":"c2"`) + `]`,
			want: `[{"jsonrpc":"2.0","id":"two","result":{"content":[],"tools":` + tools("delete_repo") + `}},` +
				listResult("1", `"tools":`+tools("search")) + ",\n" +
				listResult(`"three"`, `"tools":[],"nextCursor":"c2"`) + `]`,
			wantCacheControl: "private",
		},
		"pagination: nextCursor and other members kept": {
			req:              listReq,
			resp:             listResult("1", `"_meta":{"k":[1,2]},"tools":`+tools("delete_repo", "search")+`,"nextCursor":"eyJwIjoyfQ=="`),
			want:             listResult("1", `"_meta":{"k":[1,2]},"tools":`+tools("search")+`,"nextCursor":"eyJwIjoyfQ=="`),
			wantCacheControl: "private",
		},
		"public scope made private, ttlMs capped at the access cache TTL": {
			req:              listReq,
			resp:             listResult("1", `"tools":`+tools("search")+`,"ttlMs":3600000,"cacheScope":"public"`),
			want:             listResult("1", `"tools":`+tools("search")+`,"ttlMs":60000,"cacheScope":"private"`),
			wantCacheControl: "private",
		},
		"ttlMs under the cap kept; missing cacheScope added": {
			req:              listReq,
			resp:             listResult("1", `"tools":`+tools("search", "delete_repo")+`,"ttlMs":5000 `),
			want:             listResult("1", `"tools":`+tools("search")+`,"ttlMs":5000 ,"cacheScope":"private"`),
			wantCacheControl: "private",
		},
		"ttlMs that is no number set to 0": {
			req:              listReq,
			resp:             listResult("1", `"cacheScope":"private","ttlMs":"forever","tools":`+tools("search")),
			want:             listResult("1", `"cacheScope":"private","ttlMs":0,"tools":`+tools("search")),
			wantCacheControl: "private",
		},
		"earlier protocol: no caching fields added": {
			req:              listReq,
			resp:             listResult("1", `"tools":`+tools("search", "delete_repo")),
			want:             listResult("1", `"tools":`+tools("search")),
			wantCacheControl: "private",
		},
		"unicode and escaped names": {
			req: listReq,
			resp: listResult("1", `"tools":[`+tool("日本語ツール")+`,`+tool("🔥burn")+`,{"name":"\u0064elete_repo"},{"name":"\u65e5\u672c\u8a9e\u30c4\u30fc\u30eb"},`+
				tool("search")+`]`),
			want:             listResult("1", `"tools":[`+tool("日本語ツール")+`,{"name":"\u65e5\u672c\u8a9e\u30c4\u30fc\u30eb"},`+tool("search")+`]`),
			wantCacheControl: "private",
		},
		"every name member must be allowed, whatever its case": {
			req:              listReq,
			resp:             listResult("1", `"tools":[{"Name":"delete_repo","name":"search"},{"name":"search","name":"read_secrets"},`+tool("read_file")+`]`),
			want:             listResult("1", `"tools":[`+tool("read_file")+`]`),
			wantCacheControl: "private",
		},
		"case-folded keys are read as Go's encoding/json reads them": {
			req:              listReq,
			resp:             `{"jsonrpc":"2.0","ID":1,"Result":{"TOOLS":` + tools("delete_repo", "search") + `,"CacheScope":"public"}}`,
			want:             `{"jsonrpc":"2.0","ID":1,"Result":{"TOOLS":` + tools("search") + `,"CacheScope":"private"}}`,
			wantCacheControl: "private",
		},
		"string id answering a number id is filtered too": {
			req:              listReq,
			resp:             listResult(`"1"`, `"tools":`+tools("delete_repo")),
			want:             listResult(`"1"`, `"tools":[]`),
			wantCacheControl: "private",
		},
		"big list": {
			req:              listReq,
			resp:             listResult("1", `"tools":`+tools(bigNames...)),
			want:             listResult("1", `"tools":`+tools(bigWant...)),
			wantCacheControl: "private",
		},
		"JSON-RPC error passes unchanged": {
			req:  listReq,
			resp: `{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"Method not found","data":{"tools":"x"}}}`,
			want: `{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"Method not found","data":{"tools":"x"}}}`,
		},
		"interim result without tools passes unchanged": {
			req:  listReq,
			resp: listResult("1", `"resultType":"input_required","inputRequests":{}`),
			want: listResult("1", `"resultType":"input_required","inputRequests":{}`),
		},
		"Cache-Control made private and capped": {
			req:              listReq,
			header:           map[string]string{"Cache-Control": "public, max-age=3600, s-maxage=3600, must-revalidate"},
			resp:             listResult("1", `"tools":`+tools("search")),
			want:             listResult("1", `"tools":`+tools("search")),
			wantCacheControl: "private, max-age=60, must-revalidate",
		},
		"invalid JSON: 502": {
			req:              listReq,
			resp:             `{"jsonrpc":"2.0","id":1,"result":{"tools":[` + tool("delete_repo"),
			wantStatus:       http.StatusBadGateway,
			want:             refusal("1"),
			wantCacheControl: "no-store",
		},
		"tools not an array: 502": {
			req:              listReq,
			resp:             listResult("1", `"tools":{"delete_repo":{}}`),
			wantStatus:       http.StatusBadGateway,
			want:             refusal("1"),
			wantCacheControl: "no-store",
		},
		"tool without a name: 502": {
			req:              listReq,
			resp:             listResult("1", `"tools":[{"title":"delete_repo"}]`),
			wantStatus:       http.StatusBadGateway,
			want:             refusal("1"),
			wantCacheControl: "no-store",
		},
		"tool name not a string: 502": {
			req:              listReq,
			resp:             listResult("1", `"tools":[{"name":"search","NAME":["delete_repo"]}]`),
			wantStatus:       http.StatusBadGateway,
			want:             refusal("1"),
			wantCacheControl: "no-store",
		},
		"tool not an object: 502": {
			req:              listReq,
			resp:             listResult("1", `"tools":["delete_repo"]`),
			wantStatus:       http.StatusBadGateway,
			want:             refusal("1"),
			wantCacheControl: "no-store",
		},
		"batch refused: an error for each tools/list, as a batch": {
			req:              `[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":"b","method":"tools/list"}]`,
			resp:             `[` + listResult("1", `"tools":`+tools("search")) + `,` + listResult(`"b"`, `"tools":null`) + `]`,
			wantStatus:       http.StatusBadGateway,
			want:             `[` + refusal("1") + `,` + refusal(`"b"`) + `]`,
			wantCacheControl: "no-store",
		},
		"2xx JSON under another media type is filtered all the same": {
			req:              listReq,
			header:           map[string]string{"Content-Type": "text/plain"},
			resp:             listResult("1", `"tools":`+tools("delete_repo")),
			want:             listResult("1", `"tools":[]`),
			wantCacheControl: "private",
		},
		"2xx body that is no JSON: 502": {
			req:              listReq,
			header:           map[string]string{"Content-Type": "text/plain"},
			resp:             "tools: delete_repo",
			wantStatus:       http.StatusBadGateway,
			want:             refusal("1"),
			wantCacheControl: "no-store",
		},
		"gzip despite identity asked: 502": {
			req:              listReq,
			header:           map[string]string{"Content-Encoding": "gzip"},
			resp:             "\x1f\x8b not really",
			wantStatus:       http.StatusBadGateway,
			want:             refusal("1"),
			wantCacheControl: "no-store",
		},
		"error page passes": {
			req:        listReq,
			status:     http.StatusServiceUnavailable,
			header:     map[string]string{"Content-Type": "text/plain"},
			resp:       "upstream is restarting",
			wantStatus: http.StatusServiceUnavailable,
			want:       "upstream is restarting",
		},
		"response to another id passes": {
			req:  listReq,
			resp: listResult("2", `"tools":`+tools("delete_repo")),
			want: listResult("2", `"tools":`+tools("delete_repo")),
		},
		"no access rules: nothing filtered, the client's encoding asked for": {
			req:                listReq,
			noFilter:           true,
			resp:               listResult("1", `"tools":`+tools("delete_repo")),
			want:               listResult("1", `"tools":`+tools("delete_repo")),
			wantAcceptEncoding: "gzip",
		},
		"no tools/list in the request: nothing filtered": {
			req:                `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search"}}`,
			resp:               listResult("1", `"tools":`+tools("delete_repo")),
			want:               listResult("1", `"tools":`+tools("delete_repo")),
			wantAcceptEncoding: "gzip",
		},
		"a tools/list notification (no id) expects no result: nothing filtered": {
			req:                `{"jsonrpc":"2.0","method":"tools/list"}`,
			resp:               listResult("1", `"tools":`+tools("delete_repo")),
			want:               listResult("1", `"tools":`+tools("delete_repo")),
			wantAcceptEncoding: "gzip",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			mayCall := mayCallTest
			if tc.noFilter {
				mayCall = nil
			}
			status := tc.status
			if status == 0 {
				status = http.StatusOK
			}
			e := newFilterEnv(t, answer(status, tc.header, tc.resp), mayCall)
			resp := e.post(t, tc.req)
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("read body: %v", err)
			}
			wantStatus := tc.wantStatus
			if wantStatus == 0 {
				wantStatus = http.StatusOK
			}
			if resp.StatusCode != wantStatus || string(body) != tc.want {
				t.Errorf("got %d\n%s\nwant %d\n%s", resp.StatusCode, body, wantStatus, tc.want)
			}
			if resp.ContentLength != int64(len(body)) {
				t.Errorf("Content-Length %d, body %d bytes", resp.ContentLength, len(body))
			}
			if got := resp.Header.Get("Cache-Control"); got != tc.wantCacheControl {
				t.Errorf("Cache-Control %q, want %q", got, tc.wantCacheControl)
			}
			wantAE := tc.wantAcceptEncoding
			if wantAE == "" {
				wantAE = "identity"
			}
			if got := e.upstreamAcceptEncoding(); got != wantAE {
				t.Errorf("upstream asked for Accept-Encoding %q, want %q", got, wantAE)
			}
		})
	}
}

// sseUpstream sends chunks as an event stream, flushing after each.
func sseUpstream(chunks ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		for _, c := range chunks {
			_, _ = io.WriteString(w, c)
			_ = http.NewResponseController(w).Flush()
		}
	}
}

func TestFilterToolsListSSE(t *testing.T) {
	t.Parallel()
	progress := `{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1,"tools":` + tools("delete_repo") + `}}`
	tests := map[string]struct {
		// req is the client's body; chunks what the upstream writes, each
		// flushed on its own.
		req    string
		chunks []string
		// want is the exact stream the client gets.
		want string
	}{
		"progress notification, then the result": {
			req: listReq,
			chunks: []string{
				"id: e1\ndata: " + progress + "\n\n",
				"id: e2\ndata: " + listResult("1", `"tools":`+tools("delete_repo", "search")+`,"ttlMs":600000,"cacheScope":"public"`) + "\n\n",
			},
			want: "id: e1\ndata: " + progress + "\n\n" +
				"id: e2\ndata: " + listResult("1", `"tools":`+tools("search")+`,"ttlMs":60000,"cacheScope":"private"`) + "\n\n",
		},
		"CRLF, multi-line data, split across writes": {
			req: listReq,
			chunks: []string{
				"event: message\r\ndata: {\"jsonrpc\":\"2.0\",\r\ndata:\"id\":1,\r\ndata: \"result\":{\"tools\":[\r\n",
				"data: " + tool("delete_repo") + ",\r\ndata: " + tool("search") + "\r",
				"\ndata: ]}}\r\nid: 9\r\n\r\n",
			},
			// The array is rebuilt without the line breaks around its tools.
			want: "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\r\ndata: \"id\":1,\r\ndata: \"result\":{\"tools\":[" + tool("search") + "]}}\r\nid: 9\r\n\r\n",
		},
		"lone CR line endings": {
			req:    listReq,
			chunks: []string{"data: " + listResult("1", `"tools":`+tools("delete_repo", "read_file")) + "\r\r"},
			want:   "data: " + listResult("1", `"tools":`+tools("read_file")) + "\r\r",
		},
		"priming event, comments, retry and other events pass byte for byte": {
			req: listReq,
			chunks: []string{
				"\xef\xbb\xbf: hello\n\nid: p0\ndata:\n\nretry: 1000\n",
				": keep-alive\n\n",
				"event: endpoint\ndata: /not json\n\n",
				"data:" + listResult("1", `"tools":`+tools("search")) + "\n\n",
			},
			want: "\xef\xbb\xbf: hello\n\nid: p0\ndata:\n\nretry: 1000\n: keep-alive\n\n" +
				"event: endpoint\ndata: /not json\n\n" +
				"data:" + listResult("1", `"tools":`+tools("search")) + "\n\n",
		},
		"a stream ending mid-event drops the event, as a client would": {
			req:    listReq,
			chunks: []string{": c\n\ndata: " + listResult("1", `"tools":`+tools("delete_repo")) + "\n"},
			want:   ": c\n\n",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newFilterEnv(t, sseUpstream(tc.chunks...), mayCallTest)
			resp := e.post(t, tc.req)
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("read body: %v", err)
			}
			if resp.StatusCode != http.StatusOK || string(body) != tc.want {
				t.Errorf("got %d\n%q\nwant\n%q", resp.StatusCode, body, tc.want)
			}
			if got := resp.Header.Get("Cache-Control"); got != "private, no-cache" {
				t.Errorf("Cache-Control %q", got)
			}
			if resp.ContentLength != -1 {
				t.Errorf("Content-Length %d on a stream", resp.ContentLength)
			}
		})
	}
}

// TestFilterToolsListSSEStreams checks that events pass as they come: the
// upstream sends the result only once the client has the notification.
func TestFilterToolsListSSEStreams(t *testing.T) {
	t.Parallel()
	got := make(chan struct{})
	e := newFilterEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, ": open\n\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\n\n")
		_ = http.NewResponseController(w).Flush()
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			return
		}
		_, _ = io.WriteString(w, "data: "+listResult("1", `"tools":`+tools("delete_repo"))+"\n\n")
	}, mayCallTest)
	resp := e.post(t, listReq)
	br := bufio.NewReader(resp.Body)
	var first string
	for range 4 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v (so far %q)", err, first)
		}
		first += line
	}
	if first != ": open\n\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\n\n" {
		t.Fatalf("first events %q", first)
	}
	close(got)
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	if want := "data: " + listResult("1", `"tools":[]`) + "\n\n"; string(rest) != want {
		t.Errorf("then %q, want %q", rest, want)
	}
}

// TestFilterToolsListSSERefused checks the fail-closed end of a stream: the
// events before pass, the tools/list gets a JSON-RPC error event, and the
// stream is cut; the upstream's list never reaches the client.
func TestFilterToolsListSSERefused(t *testing.T) {
	t.Parallel()
	note := "id: 1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n"
	tests := map[string]struct {
		// chunks are the upstream's writes; sent the lines of the refused
		// event that came before its data, which have gone out.
		chunks []string
		sent   string
	}{
		"unparsable result": {
			sent:   "event: message\n",
			chunks: []string{note, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[" + tool("delete_repo") + "\n\n"},
		},
		"tools not an array": {
			sent:   "id: 2\n",
			chunks: []string{note, "id: 2\ndata: " + listResult("1", `"tools":"delete_repo"`) + "\n\n"},
		},
		"event too large": {
			chunks: []string{note, "data: " + listResult("1", `"tools":[`+tool("delete_repo")+`],"pad":"`+strings.Repeat("x", maxFilteredMessage)+`"`) + "\n\n"},
		},
		"line too large": {
			chunks: []string{note, "data: " + listResult("1", `"tools":[`+tool("delete_repo")+`],"pad":"`), strings.Repeat("x", maxFilteredMessage), "\"\n\n"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newFilterEnv(t, sseUpstream(tc.chunks...), mayCallTest)
			resp := e.post(t, listReq)
			body, err := io.ReadAll(resp.Body)
			if err == nil {
				t.Error("the stream ended cleanly; want it cut")
			}
			if want := note + tc.sent + "\n\ndata: " + refusal("1") + "\n\n"; string(body) != want {
				t.Errorf("got %q\nwant %q", body, want)
			}
		})
	}
}

func TestFilterToolsListSSEEncoded(t *testing.T) {
	t.Parallel()
	e := newFilterEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Content-Encoding", "br")
		_, _ = io.WriteString(w, "data: "+listResult("1", `"tools":`+tools("delete_repo"))+"\n\n")
	}, mayCallTest)
	resp := e.post(t, listReq)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadGateway || string(body) != refusal("1") {
		t.Errorf("got %d %q", resp.StatusCode, body)
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "" {
		t.Errorf("Content-Encoding %q on the refusal", ce)
	}
}

// TestFilterToolsListResumed checks a resumed stream (GET with
// Last-Event-ID), on which the upstream may replay an earlier tools/list
// result: every result with tools is filtered.
func TestFilterToolsListResumed(t *testing.T) {
	t.Parallel()
	e := newFilterEnv(t, sseUpstream("data: "+listResult("7", `"tools":`+tools("delete_repo", "search"))+"\n\n"), mayCallTest)
	for _, lastID := range []string{"e1", ""} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, e.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", "text/event-stream")
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		want := "data: " + listResult("7", `"tools":`+tools("search")) + "\n\n"
		if lastID == "" { // a fresh stream carries no responses; left alone
			want = "data: " + listResult("7", `"tools":`+tools("delete_repo", "search")) + "\n\n"
		}
		if string(body) != want {
			t.Errorf("Last-Event-ID %q: got %q, want %q", lastID, body, want)
		}
	}
}

// TestFilterToolsListPassesThrough checks that a request the filter has no
// business with reaches the proxy with the caller's ResponseWriter itself.
func TestFilterToolsListPassesThrough(t *testing.T) {
	t.Parallel()
	g := &Gateway{}
	tests := map[string]*requestInfo{
		"no mayCall":      {rpc: testRPC([]byte(listReq))},
		"no tools/list":   {rpc: testRPC([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}`)), mayCall: mayCallTest},
		"no body":         {mayCall: mayCallTest},
		"response posted": {rpc: testRPC([]byte(`{"jsonrpc":"2.0","id":1,"result":{}}`)), mayCall: mayCallTest},
	}
	for name, ri := range tests {
		rec := httptest.NewRecorder()
		var got http.ResponseWriter
		h := g.filterToolsList(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = w }))
		r := httptest.NewRequestWithContext(context.WithValue(context.Background(), requestInfoKey{}, ri), http.MethodPost, "/mcp", nil)
		h.ServeHTTP(rec, r)
		if got != rec {
			t.Errorf("%s: the handler got %T, not the caller's writer", name, got)
		}
	}
}

// TestSSERewriterSplits checks that where the stream is split into writes
// never changes what comes out, CR at the end of a write included.
func TestSSERewriterSplits(t *testing.T) {
	t.Parallel()
	stream := "\xef\xbb\xbfid: 1\r\ndata: " + listResult("1", `"tools":`+tools("delete_repo", "search")) + "\r\r\n: c\r" +
		"data: {\"jsonrpc\":\"2.0\",\ndata:\"method\":\"x\"}\n\n data: ignored\n\nevent: e\ndata: nope\n\n" +
		"data: {\"jsonrpc\":\"2.0\",\"id\":1,\ndata: \"result\":{\"tools\":[" + tool("read_secrets") + "," + tool("read_file") + "]}}\r\n\r\n"
	whole := runSSE(t, []byte(stream), len(stream), maxFilteredMessage)
	if strings.Contains(whole.out, "delete_repo") || strings.Contains(whole.out, "read_secrets") || whole.err != nil {
		t.Fatalf("whole: %q, %v", whole.out, whole.err)
	}
	for size := 1; size < 40; size++ {
		if got := runSSE(t, []byte(stream), size, maxFilteredMessage); got != whole {
			t.Errorf("writes of %d bytes: %q, %v; whole: %q", size, got.out, got.err, whole.out)
		}
	}
}

type sseRun struct {
	out string
	err error
}

// runSSE feeds stream to a rewriter in writes of size bytes.
func runSSE(t testing.TB, stream []byte, size, limit int) sseRun {
	t.Helper()
	f := &toolsFilter{ids: []string{"1", "a"}, rawIDs: []json.RawMessage{json.RawMessage(`1`), json.RawMessage(`"a"`)},
		answered: make([]bool, 2), mayCall: mayCallTest, maxTTL: time.Minute}
	var out bytes.Buffer
	s := &sseRewriter{f: f, out: &out, limit: limit}
	for len(stream) > 0 {
		n := min(size, len(stream))
		if err := s.write(stream[:n]); err != nil {
			return sseRun{out: out.String(), err: err}
		}
		stream = stream[n:]
	}
	return sseRun{out: out.String()}
}

// FuzzToolsListFilter feeds arbitrary responses, as a JSON body or as an
// event stream in writes of arbitrary size, to the filter of a request with
// tools/list ids 1 and "a". Whatever comes out, read as a client would
// (encoding/json, case-insensitive and case-sensitive), lists no tool the
// caller may not call in a response to those ids, and the stream's output
// does not depend on how it was split.
func FuzzToolsListFilter(f *testing.F) {
	for _, s := range []string{
		listResult("1", `"tools":`+tools("search", "delete_repo")),
		`[` + listResult(`"a"`, `"tools":[{"name":"x","Name":"delete_repo"}],"ttlMs":1e9`) + `,{"jsonrpc":"2.0","id":2,"result":{}}]`,
		"data: " + listResult("1", `"tools":`+tools("read_secrets")) + "\r\n\r\n",
		"data: {\"id\":1,\ndata: \"result\":{\"tools\":[{\"name\":\"\\u0064elete_repo\"}]}}\r\r",
		": c\n\nid: 1\ndata:\n\nevent: x\ndata: nope\n\n",
	} {
		f.Add([]byte(s), strings.HasPrefix(s, "data") || strings.HasPrefix(s, ":"), uint8(3))
	}
	f.Fuzz(func(t *testing.T, body []byte, sse bool, split uint8) {
		if !sse {
			tf := &toolsFilter{ids: []string{"1", "a"}, rawIDs: []json.RawMessage{json.RawMessage(`1`), json.RawMessage(`"a"`)},
				answered: make([]bool, 2), mayCall: mayCallTest, maxTTL: time.Minute}
			out, _, err := tf.rewrite(body)
			if err != nil {
				return
			}
			if out == nil {
				out = body
			}
			checkNoDeniedTool(t, out)
			return
		}
		whole := runSSE(t, body, len(body)+1, maxFilteredMessage)
		split1 := runSSE(t, body, int(split)%17+1, maxFilteredMessage)
		if whole.err == nil && split1.err == nil && whole != split1 {
			t.Fatalf("whole %q; in writes of %d: %q", whole.out, int(split)%17+1, split1.out)
		}
		small := runSSE(t, body, int(split)%17+1, 64)
		for _, run := range []sseRun{whole, split1, small} {
			for _, data := range referenceSSE(run.out) {
				checkNoDeniedTool(t, []byte(data))
			}
		}
	})
}

// checkNoDeniedTool fails when msg, read by encoding/json either way, is a
// response to id 1 or "a" listing a tool the caller may not call.
func checkNoDeniedTool(t *testing.T, msg []byte) {
	t.Helper()
	var msgs []json.RawMessage
	if json.Unmarshal(msg, &msgs) != nil {
		msgs = []json.RawMessage{msg}
	}
	for _, m := range msgs {
		// Case-insensitive, as Go clients read it.
		var folded struct {
			ID     any `json:"id"`
			Result struct {
				Tools []struct {
					Name string `json:"name"`
				} `json:"tools"`
			} `json:"result"`
		}
		if json.Unmarshal(m, &folded) == nil && isTestID(folded.ID) {
			for _, tl := range folded.Result.Tools {
				if !mayCallTest(tl.Name) && tl.Name != "" {
					t.Fatalf("%q lists %q", msg, tl.Name)
				}
			}
		}
		// Exact keys, as a JavaScript client reads it.
		var exact map[string]any
		if json.Unmarshal(m, &exact) != nil || !isTestID(exact["id"]) {
			continue
		}
		result, _ := exact["result"].(map[string]any)
		list, _ := result["tools"].([]any)
		for _, tl := range list {
			obj, _ := tl.(map[string]any)
			if name, ok := obj["name"].(string); ok && !mayCallTest(name) {
				t.Fatalf("%q lists %q", msg, name)
			}
		}
	}
}

func isTestID(id any) bool { return id == float64(1) || id == "a" }

// referenceSSE returns the data of every event an EventSource would
// dispatch from stream, written from the WHATWG parsing rules.
func referenceSSE(stream string) []string {
	stream = strings.TrimPrefix(stream, "\ufeff")
	var events []string
	var data strings.Builder
	for len(stream) > 0 {
		i := strings.IndexAny(stream, "\r\n")
		if i < 0 {
			break // an unterminated line at the end is discarded
		}
		line := stream[:i]
		n := i + 1
		if stream[i] == '\r' && i+1 < len(stream) && stream[i+1] == '\n' {
			n++
		}
		stream = stream[n:]
		switch {
		case line == "":
			if data.Len() > 0 {
				events = append(events, strings.TrimSuffix(data.String(), "\n"))
			}
			data.Reset()
		case line[0] == ':':
		default:
			name, value, _ := strings.Cut(line, ":")
			if name == "data" {
				data.WriteString(strings.TrimPrefix(value, " ") + "\n")
			}
		}
	}
	return events
}

// BenchmarkFilterToolsList compares a tools/list of 200 tools through the
// proxy with and without the filter (half the tools refused), both over a
// real connection to a test upstream.
func BenchmarkFilterToolsList(b *testing.B) {
	names := make([]string, 200)
	for i := range names {
		names[i] = "search"
		if i%2 == 1 {
			names[i] = "delete_repo"
		}
	}
	resp := listResult("1", `"tools":`+tools(names...)+`,"nextCursor":"c","ttlMs":600000,"cacheScope":"public"`)
	for _, bc := range []struct {
		name    string
		mayCall func(string) bool
	}{{"unfiltered", nil}, {"filtered", mayCallTest}} {
		b.Run(bc.name, func(b *testing.B) {
			e := newFilterEnv(b, answer(http.StatusOK, nil, resp), bc.mayCall)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			b.ReportAllocs()
			b.SetBytes(int64(len(resp)))
			for b.Loop() {
				req, _ := http.NewRequest(http.MethodPost, e.url, strings.NewReader(listReq))
				req.Header.Set("Content-Type", "application/json")
				r, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, r.Body)
				_ = r.Body.Close()
				if r.StatusCode != http.StatusOK || n == 0 {
					b.Fatalf("%d, %d bytes", r.StatusCode, n)
				}
			}
		})
	}
}

// BenchmarkToolsFilterRewrite is the filter's own cost on the same list,
// without the network.
func BenchmarkToolsFilterRewrite(b *testing.B) {
	names := make([]string, 200)
	for i := range names {
		names[i] = "search"
		if i%2 == 1 {
			names[i] = "delete_repo"
		}
	}
	body := []byte(listResult("1", `"tools":`+tools(names...)+`,"nextCursor":"c","ttlMs":600000,"cacheScope":"public"`))
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		f := &toolsFilter{ids: []string{"1"}, rawIDs: []json.RawMessage{json.RawMessage(`1`)}, answered: make([]bool, 1), mayCall: mayCallTest, maxTTL: time.Minute}
		if _, found, err := f.rewrite(body); err != nil || !found {
			b.Fatal(err)
		}
	}
}

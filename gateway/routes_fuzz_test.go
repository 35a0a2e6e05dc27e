package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway"
	"github.com/mcpgate/mcpgate/gateway/identity"
)

// fuzzHost is the Host of fuzzed requests unless the fuzzed header is Host.
const fuzzHost = "gw.example.test"

// FuzzGatewayRoutes sends arbitrary requests (method, request target, one
// extra header, body, with or without a valid token) to one gateway. The
// request target reaches the handler as the request line carried it: it is
// parsed by net/http exactly as the server parses it, never cleaned, so
// "..", "%2e%2e", "//" and encoded slashes arrive as sent. For every input:
//
//   - no panic, and a status in 100..599;
//   - the upstream sees a request only for a valid token on the MCP
//     endpoint's exact path, at the upstream path, without the client's
//     credentials and with the gateway's identity headers only;
//   - the metadata routes never ask for a token, and every other path but
//     the MCP endpoint is a 404 (health and metrics stay off this port);
//   - every challenge is a Bearer challenge whose resource_metadata is the
//     well-known URL of the MCP endpoint at the request's host;
//   - the metadata routes never echo the fuzzed header's value.
func FuzzGatewayRoutes(f *testing.F) {
	e := newEnv(f, withOptions(func(o *gateway.Options) { o.Logger = slog.New(slog.DiscardHandler) }))
	ft := &routeFuzzer{
		e:       e,
		handler: e.gw.Handler(),
		token:   e.token(f, clerktest.TokenRequest{Scopes: baseScopes, Format: clerktest.FormatJWT, TTL: 7 * 24 * time.Hour}),
		metadata: map[string]bool{
			e.metaPath:                                true,
			"/.well-known/oauth-protected-resource":   true,
			"/.well-known/oauth-authorization-server": true,
			"/.well-known/openid-configuration":       true,
		},
	}
	ft.warmUp(f)

	call := []byte(toolCall("search"))
	for _, p := range []string{
		"/.well-known/oauth-protected-resource/../mcp",
		"/.well-known/oauth-protected-resource/%2e%2e/mcp",
		"/.well-known/oauth-protected-resource%2Fmcp",
		"//mcp",
		"/mcp/../.well-known/oauth-protected-resource",
		"/MCP",
		"/mcp/",
		"/mcp?access_token=x",
		"/.well-known/oauth-authorization-server/../../mcp",
		"/.well-known/openid-configuration%00",
		"/%6dcp",
		"/mcp%2F",
		"/mcp;x",
		"http://evil.example/mcp",
		"*",
		"/healthz",
		"/metrics",
	} {
		f.Add("POST", p, "Content-Type", "application/json", call, true)
		f.Add("GET", p, "X-Canary", "zz-canary-value", []byte(nil), false)
	}
	for _, m := range []string{"GET", "POST", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT", "HEAD", "get"} {
		for _, p := range []string{"/mcp", e.metaPath, "/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
			f.Add(m, p, "X-Forwarded-Host", "evil.example/x?", call, true)
			f.Add(m, p, "Origin", "https://evil.example", []byte(nil), false)
		}
	}
	f.Add("CONNECT", "gw.example.test:443", "", "", []byte(nil), true)
	f.Add("POST", "/mcp", "Host", "evil.example:8443", call, false)
	f.Add("POST", "/mcp", "Host", "", call, false)
	f.Add("GET", "/mcp", "Authorization", "Bearer a.b.c", []byte(nil), true)
	f.Add("DELETE", "/mcp", "X_Mcpgate_User_Id", "user_admin", []byte(nil), true)
	f.Add("POST", "/mcp", "Content-Length", "1", call, true)
	f.Add("POST", "/mcp", "Transfer-Encoding", "chunked", call, true)
	f.Add("POST", "/mcp", "Content-Type", "text/plain", []byte(toolCall("delete_repo")), true)

	f.Fuzz(ft.run)
}

// routeFuzzer holds the one gateway of a fuzz run.
type routeFuzzer struct {
	e        *gwEnv
	handler  http.Handler
	token    string
	metadata map[string]bool // the paths of the metadata routes
}

// warmUp checks that the token is good (a valid call reaches the upstream,
// or the upstream property would hold vacuously) and fetches Clerk's
// metadata, so that the echo comparison never sees the cache change state.
func (ft *routeFuzzer) warmUp(f *testing.F) {
	rec, req := ft.serve(f, "POST", ft.e.cfg.Path, "", "", []byte(toolCall("search")), true)
	if req == nil || rec.Code != http.StatusOK || len(takeSeen(ft.e.up)) != 1 {
		f.Fatalf("a valid call did not pass: %d %s", rec.Code, rec.Body)
	}
	for p := range ft.metadata {
		if rec, _ := ft.serve(f, "GET", p, "", "", nil, false); rec.Code != http.StatusOK {
			f.Fatalf("GET %s: %d %s", p, rec.Code, rec.Body)
		}
	}
}

func (ft *routeFuzzer) run(t *testing.T, method, target, name, value string, body []byte, withToken bool) {
	rec, req := ft.serve(t, method, target, name, value, body, withToken)
	if req == nil {
		return // not a request the server would hand to the gateway
	}
	seen := takeSeen(ft.e.up)
	status := rec.Code
	p := req.URL.Path
	isMCP := p == ft.e.cfg.Path
	describe := func() string {
		return strconv.Quote(method) + " " + strconv.Quote(target) + " (path " + strconv.Quote(p) + ", " +
			strconv.Quote(name) + ": " + strconv.Quote(value) + ", token " + strconv.FormatBool(withToken) + ")"
	}

	// (a) A status HTTP has.
	if status < 100 || status > 599 {
		t.Fatalf("%s: status %d", describe(), status)
	}

	// (b) Nothing reaches the upstream without a valid token on the MCP endpoint.
	if len(seen) > 0 {
		if !withToken || !isMCP {
			t.Fatalf("%s reached the upstream: %+v", describe(), seen)
		}
		if len(seen) != 1 || seen[0].Path != "/upstream/mcp" {
			t.Fatalf("%s: the upstream saw %+v, want one request to /upstream/mcp", describe(), seen)
		}
		if m := req.Method; m != http.MethodGet && m != http.MethodPost && m != http.MethodDelete {
			t.Fatalf("%s: method %q reached the upstream", describe(), m)
		}
		checkUpstreamHeaders(t, describe(), ft.token, seen[0].Header)
	}

	// Routing: the metadata documents are public; nothing else is served.
	switch {
	case isMCP:
	case ft.metadata[p]:
		if status == http.StatusUnauthorized {
			t.Fatalf("%s: metadata route answered 401", describe())
		}
	default:
		if status != http.StatusNotFound {
			t.Fatalf("%s: unknown path answered %d, want 404", describe(), status)
		}
	}

	// (c) Challenges point at the resource metadata.
	challenges := rec.Header().Values("WWW-Authenticate")
	if status == http.StatusUnauthorized && len(challenges) == 0 {
		t.Fatalf("%s: 401 without WWW-Authenticate", describe())
	}
	if len(challenges) > 0 {
		if !isMCP {
			t.Fatalf("%s: challenge %q outside the MCP endpoint", describe(), challenges)
		}
		if len(challenges) != 1 || !strings.HasPrefix(challenges[0], "Bearer ") {
			t.Fatalf("%s: WWW-Authenticate %q, want one Bearer challenge", describe(), challenges)
		}
		_, params := parseChallenge(t, challenges[0])
		rm := params["resource_metadata"]
		if rm != "http://"+req.Host+ft.e.metaPath && rm != "http://localhost"+ft.e.metaPath {
			t.Fatalf("%s: resource_metadata %q, want the well-known URL at host %q", describe(), rm, req.Host)
		}
		u, err := url.Parse(rm)
		if err != nil || u.Path != ft.e.metaPath || u.RawQuery != "" || u.Fragment != "" || u.User != nil || u.Opaque != "" {
			t.Fatalf("%s: resource_metadata %q is not the well-known URL (%v)", describe(), rm, err)
		}
	}

	// (d) The metadata routes never echo the fuzzed header: the value is
	// not in the answer unless it is also in the answer without the header.
	// Host is meant to shape the document; X-Request-Id is meant to come back.
	canon := textproto.CanonicalMIMEHeaderKey(name)
	v := req.Header.Get(canon)
	if ft.metadata[p] && v != "" && canon != "Host" && canon != "X-Request-Id" {
		got := responseText(rec)
		if !strings.Contains(got, v) {
			return
		}
		base, baseReq := ft.serve(t, method, target, "", "", body, withToken)
		if baseReq == nil {
			return
		}
		takeSeen(ft.e.up)
		if !strings.Contains(responseText(base), v) {
			t.Fatalf("%s: metadata response echoes the header value:\n%s", describe(), got)
		}
	}
}

// serve writes the request as a client would send it, parses it as the
// server does, and runs the gateway's handler on it. It returns a nil
// request for input the server would refuse before the handler (a bad
// request line, header field, Host or framing), and for queries that would
// select a test mode of the recording upstream (hang, drop, ...).
func (ft *routeFuzzer) serve(t testing.TB, method, target, name, value string, body []byte, withToken bool) (*httptest.ResponseRecorder, *http.Request) {
	t.Helper()
	rec := httptest.NewRecorder()
	if !isHTTPToken(method) || !validTarget(target) || (name != "" && (!isHTTPToken(name) || !validFieldValue(value))) {
		return rec, nil
	}
	canon := textproto.CanonicalMIMEHeaderKey(name)
	var raw bytes.Buffer
	raw.WriteString(method + " " + target + " HTTP/1.1\r\n")
	if canon != "Host" {
		raw.WriteString("Host: " + fuzzHost + "\r\n")
	}
	if withToken {
		raw.WriteString("Authorization: Bearer " + ft.token + "\r\n")
	}
	if name != "" {
		raw.WriteString(name + ": " + value + "\r\n")
	}
	if len(body) > 0 {
		raw.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	}
	raw.WriteString("\r\n")
	raw.Write(body)

	req, err := http.ReadRequest(bufio.NewReader(&raw))
	if err != nil {
		return rec, nil
	}
	// What net/http's server checks besides (ReadRequest has removed Host
	// from the header; there is exactly one Host line).
	if canon == "Host" && !validHostHeader(strings.Trim(value, " \t")) {
		return rec, nil
	}
	req.RemoteAddr = "192.0.2.10:49152"
	// The upstream reads the query as forwarded, with url.ParseQuery.
	if q, _ := url.ParseQuery(req.URL.RawQuery); q.Has("mode") {
		return rec, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ft.handler.ServeHTTP(rec, req.WithContext(ctx))
	return rec, req
}

// checkUpstreamHeaders checks what the upstream got of a verified request:
// no Authorization, no token anywhere, no cookie, and exactly the identity
// headers the gateway set, however the client spelled its own.
func checkUpstreamHeaders(t *testing.T, what, token string, h http.Header) {
	t.Helper()
	if _, ok := h["Authorization"]; ok {
		t.Fatalf("%s: Authorization reached the upstream", what)
	}
	if _, ok := h["Cookie"]; ok {
		t.Fatalf("%s: Cookie reached the upstream", what)
	}
	ids := map[string][]string{}
	for k, vs := range h {
		for _, v := range vs {
			if strings.Contains(v, token) {
				t.Fatalf("%s: the token reached the upstream in %s", what, k)
			}
		}
		folded := strings.ReplaceAll(k, "_", "-")
		for _, id := range identity.Headers() {
			if strings.EqualFold(folded, id) {
				ids[id] = append(ids[id], vs...)
			}
		}
	}
	if got := ids[identity.UserHeader]; !slices.Equal(got, []string{clerktest.DefaultUserID}) {
		t.Fatalf("%s: the upstream got user %q, want %q", what, got, clerktest.DefaultUserID)
	}
	if got := ids[identity.ScopesHeader]; !slices.Equal(got, []string{strings.Join(baseScopes, " ")}) {
		t.Fatalf("%s: the upstream got scopes %q", what, got)
	}
	if got := ids[identity.ClientHeader]; len(got) != 1 {
		t.Fatalf("%s: the upstream got clients %q", what, got)
	}
}

// takeSeen returns and forgets what the upstream has received, so a long
// fuzz run does not keep every request.
func takeSeen(u *recordingUpstream) []seenRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	seen := u.seen
	u.seen = nil
	return seen
}

// responseText is a response as the client reads it, less the request id,
// which differs on every request.
func responseText(rec *httptest.ResponseRecorder) string {
	h := rec.Header().Clone()
	h.Del("X-Request-Id")
	var b strings.Builder
	b.WriteString(strconv.Itoa(rec.Code) + "\n")
	_ = h.Write(&b)
	b.WriteString("\n")
	b.Write(rec.Body.Bytes())
	return b.String()
}

// isHTTPToken reports whether s is an RFC 9110 token (a method, a field name).
func isHTTPToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validTarget keeps request targets that stay one field of the request
// line; net/http parses and judges the rest.
func validTarget(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// validFieldValue is httpguts.ValidHeaderFieldValue: no control byte but tab.
func validFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// validHostHeader is httpguts.ValidHostHeader, which net/http's server
// applies to Host: a loose check of the bytes a host may hold.
func validHostHeader(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!$%&'()*+,-.:;=[]_~", c) >= 0) {
			return false
		}
	}
	return true
}

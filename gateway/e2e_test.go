package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/mcpgate/mcpgate/broker/brokertest"
	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway"
	"github.com/mcpgate/mcpgate/gateway/config"
	"github.com/mcpgate/mcpgate/gateway/identity"
	"github.com/mcpgate/mcpgate/internal/mcpclient"
	"github.com/mcpgate/mcpgate/internal/sampleserver"
)

// Scopes of the end-to-end setup: every token needs e2eScope (one the
// emulator grants any client), delete_repo needs e2eToolScope besides.
const (
	e2eScope     = "profile"
	e2eToolScope = "repo:admin"
	// e2eProgressSteps is how many progress notifications the progress call
	// expects.
	e2eProgressSteps = 3
)

// TestE2E runs the official Go SDK client (through internal/mcpclient)
// against the real gateway in front of the sample MCP server, with the Clerk
// emulator as the authorization server: discovery, dynamic registration,
// authorization, tool calls, identity injection, streamed progress and
// step-up authorization for a tool scope.
func TestE2E(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		jwt       bool // JWT access tokens; false: opaque, verified through the Backend API
		publicURL bool // configure PublicURL; false: the gateway derives it from requests
		stateless bool // the upstream serves without sessions
		broker    bool // opaque tokens verified through the key broker; the gateway holds no key
	}{
		"jwt, configured public url, stateful upstream":  {jwt: true, publicURL: true},
		"opaque, derived public url, stateless upstream": {jwt: false, publicURL: false, stateless: true},
		// The SDK sends resource=<MCP URL> (RFC 8707), so the JWTs carry it
		// as aud, which the gateway must match against the derived URL.
		"jwt, derived public url, stateless upstream":                         {jwt: true, publicURL: false, stateless: true},
		"opaque through the broker, configured public url, stateful upstream": {jwt: false, publicURL: true, broker: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			env := startE2E(t, tc.jwt, tc.publicURL, tc.stateless, tc.broker)
			env.run(t)
		})
	}
}

// e2eEnv is one running setup: emulator, upstream, gateway and what the
// test observes of them.
type e2eEnv struct {
	em       *clerktest.Server
	mcpURL   string          // the gateway's MCP endpoint
	upstream *e2eUpstreamLog // what reached the sample server
	wire     *e2eWireLog     // what the client saw on the wire
	auths    *e2eAuthLog     // the authorizations the client performed
	progress chan *mcp.ProgressNotificationParams
}

// startE2E starts the emulator, the sample server and the gateway on
// loopback, and stops them when the test ends.
func startE2E(t *testing.T, jwt, publicURL, stateless, broker bool) *e2eEnv {
	t.Helper()
	env := &e2eEnv{
		em:       clerktest.NewServer(clerktest.WithScopes(e2eToolScope), clerktest.WithJWTAccessTokens(jwt)),
		upstream: &e2eUpstreamLog{},
		wire:     &e2eWireLog{},
		auths:    &e2eAuthLog{},
		progress: make(chan *mcp.ProgressNotificationParams, e2eProgressSteps),
	}
	t.Cleanup(env.em.Close)

	// The progress tool takes its next step only once the client has seen
	// the previous notification: a gateway that buffered the stream would
	// hold them back, and the call would fail.
	sample := sampleserver.NewHandler(sampleserver.Options{
		Stateless: stateless,
		AfterProgress: func(ctx context.Context, step int) error {
			select {
			case p := <-env.progress:
				if int(p.Progress) != step {
					return errors.New("progress notifications arrived out of order")
				}
				return nil
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Second):
				return errors.New("the client did not receive the progress notification: is the stream buffered?")
			}
		},
	})
	mux := http.NewServeMux()
	mux.Handle("/upstream/mcp", env.upstream.wrap(sample))
	up := httptest.NewServer(mux)
	t.Cleanup(up.Close)

	var keyFile string
	var brokerCfg *config.Broker
	if broker {
		b := brokertest.Start(t, env.em)
		brokerCfg = &config.Broker{URL: b.URL, CAFile: b.CAFile, TokenFile: b.TokenFile}
	} else {
		keyFile = filepath.Join(t.TempDir(), "secret-key")
		if err := os.WriteFile(keyFile, []byte(env.em.SecretKey()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	gw := httptest.NewUnstartedServer(nil)
	env.mcpURL = "http://" + gw.Listener.Addr().String() + "/mcp"
	cfg := config.Config{
		APIVersion:   config.APIVersion,
		Kind:         config.Kind,
		Server:       config.ServerRef{Namespace: "e2e", Name: "sample"},
		Listen:       config.Listen{Traffic: "127.0.0.1:0", Health: "127.0.0.1:0"},
		Path:         "/mcp",
		ResourceName: "mcpgate end-to-end sample",
		Upstream:     config.Upstream{URL: up.URL + "/upstream/mcp"},
		Scopes:       []string{e2eScope},
		ToolScopes:   []config.ToolScope{{Tool: sampleserver.ToolDeleteRepo, Scopes: []string{e2eToolScope}}},
		Clerk:        config.Clerk{Issuer: env.em.FrontendAPIURL(), APIURL: env.em.BackendAPIURL(), SecretKeyFile: keyFile},
		Broker:       brokerCfg,
	}
	if publicURL {
		cfg.PublicURL = env.mcpURL
	}
	g, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	gw.Config.Handler = g.Handler()
	gw.Start()
	t.Cleanup(gw.Close)
	return env
}

// run drives the client through the scenario.
func (env *e2eEnv) run(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cs, err := mcpclient.Connect(ctx, mcpclient.Options{
		URL:         env.mcpURL,
		HTTPClient:  &http.Client{Transport: env.wire.wrap(http.DefaultTransport)},
		ClientName:  "mcpgate-e2e",
		OnAuthorize: env.auths.record,
		ClientOptions: &mcp.ClientOptions{
			ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
				env.progress <- req.Params
			},
		},
	})
	if err != nil {
		t.Fatalf("connect through the gateway: %v\nwire:\n%s", err, env.wire)
	}
	// NOTE: registered after the servers' cleanups, so it runs first: the
	// session's open stream would keep httptest.Server.Close waiting.
	t.Cleanup(func() { _ = cs.Close() })

	// Discovery: the first request was refused with a challenge that names
	// the metadata and the scope, and the client authorized once.
	env.wire.expectChallenge(t, http.StatusUnauthorized, "", e2eScope)
	first := env.auths.list()
	if len(first) != 1 || first[0].Err != nil || first[0].Resource != env.mcpURL || !slices.Equal(first[0].Scopes, []string{e2eScope}) {
		t.Fatalf("authorizations after connect = %+v, want one for %q on %s", first, e2eScope, env.mcpURL)
	}

	t.Run("tools/list", func(t *testing.T) {
		list, err := cs.ListTools(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tool := range list.Tools {
			names = append(names, tool.Name)
		}
		slices.Sort(names)
		if want := []string{sampleserver.ToolDeleteRepo, sampleserver.ToolEcho, sampleserver.ToolProgress, sampleserver.ToolWhoami}; !slices.Equal(names, want) {
			t.Errorf("tools = %v, want %v", names, want)
		}
	})

	t.Run("echo", func(t *testing.T) {
		res := e2eCallTool(ctx, t, cs, sampleserver.ToolEcho, map[string]any{"text": "through the gateway"})
		if got := e2eText(t, res); got != "through the gateway" {
			t.Errorf("echo = %q", got)
		}
	})

	t.Run("whoami", func(t *testing.T) {
		id := e2eWhoami(ctx, t, cs)
		want := sampleserver.Identity{UserID: clerktest.DefaultUserID, ClientID: first[0].ClientID, Scopes: []string{e2eScope}}
		if id.UserID != want.UserID || id.ClientID != want.ClientID || !slices.Equal(id.Scopes, want.Scopes) || id.Authorization {
			t.Errorf("whoami = %+v, want %+v", id, want)
		}
	})

	t.Run("progress", func(t *testing.T) {
		params := &mcp.CallToolParams{Name: sampleserver.ToolProgress, Arguments: map[string]any{"steps": e2eProgressSteps}}
		params.SetProgressToken("e2e-progress")
		res, err := cs.CallTool(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		var out sampleserver.ProgressOutput
		e2eDecode(t, res, &out)
		if res.IsError || out.Notified != e2eProgressSteps {
			t.Fatalf("progress = %+v (%s)", out, e2eText(t, res))
		}
	})

	t.Run("step-up", func(t *testing.T) {
		res := e2eCallTool(ctx, t, cs, sampleserver.ToolDeleteRepo, map[string]any{"name": "acme/widgets"})
		if got := e2eText(t, res); got != "deleted acme/widgets" {
			t.Errorf("delete_repo = %q", got)
		}
		env.wire.expectChallenge(t, http.StatusForbidden, "insufficient_scope", e2eScope, e2eToolScope)
		all := env.auths.list()
		if len(all) != 2 || all[1].Err != nil {
			t.Fatalf("authorizations = %+v, want 2", all)
		}
		if got := slices.Sorted(slices.Values(all[1].Scopes)); !slices.Equal(got, []string{e2eScope, e2eToolScope}) {
			t.Errorf("step-up requested %v, want %s and %s", all[1].Scopes, e2eScope, e2eToolScope)
		}
		id := e2eWhoami(ctx, t, cs)
		if id.ClientID != all[1].ClientID || !slices.Contains(id.Scopes, e2eToolScope) || !slices.Contains(id.Scopes, e2eScope) {
			t.Errorf("whoami after step-up = %+v, want client %s with %s %s", id, all[1].ClientID, e2eScope, e2eToolScope)
		}
	})

	t.Run("upstream saw identities, never a token", func(t *testing.T) {
		env.upstream.check(t)
	})
}

func e2eCallTool(ctx context.Context, t *testing.T, cs *mcp.ClientSession, name string, args any) *mcp.CallToolResult {
	t.Helper()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("call %s: %v", name, err)
	}
	if res.IsError {
		t.Fatalf("call %s: tool error: %s", name, e2eText(t, res))
	}
	return res
}

func e2eWhoami(ctx context.Context, t *testing.T, cs *mcp.ClientSession) sampleserver.Identity {
	t.Helper()
	var id sampleserver.Identity
	e2eDecode(t, e2eCallTool(ctx, t, cs, sampleserver.ToolWhoami, map[string]any{}), &id)
	return id
}

func e2eDecode(t *testing.T, res *mcp.CallToolResult, out any) {
	t.Helper()
	b, err := json.Marshal(res.StructuredContent)
	if err == nil {
		err = json.Unmarshal(b, out)
	}
	if err != nil {
		t.Fatalf("decode structured content %s: %v", b, err)
	}
}

func e2eText(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	if len(res.Content) == 0 {
		t.Fatal("result has no content")
	}
	tc, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		t.Fatalf("content[0] is %T, want text", res.Content[0])
	}
	return tc.Text
}

// e2eAuthLog records the client's authorizations.
type e2eAuthLog struct {
	mu  sync.Mutex
	all []mcpclient.Authorization
}

func (a *e2eAuthLog) record(x mcpclient.Authorization) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.all = append(a.all, x)
}

func (a *e2eAuthLog) list() []mcpclient.Authorization {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.all)
}

// e2eUpstreamLog records what reached the upstream MCP server.
type e2eUpstreamLog struct {
	mu       sync.Mutex
	requests int
	problems []string
}

// wrap records every request before h serves it.
func (u *e2eUpstreamLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var problems []string
		if r.Header.Get("Authorization") != "" {
			problems = append(problems, r.Method+" carried an Authorization header")
		}
		if got := r.Header.Get(identity.UserHeader); got != clerktest.DefaultUserID {
			problems = append(problems, r.Method+" carried user id "+strconv.Quote(got))
		}
		if r.Header.Get(identity.ClientHeader) == "" || r.Header.Get(identity.ScopesHeader) == "" {
			problems = append(problems, r.Method+" lacked the client id or scopes header")
		}
		u.mu.Lock()
		u.requests++
		u.problems = append(u.problems, problems...)
		u.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (u *e2eUpstreamLog) check(t *testing.T) {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.requests == 0 {
		t.Fatal("no request reached the upstream")
	}
	for _, p := range u.problems {
		t.Error(p)
	}
}

// e2eWireLog records the status and challenge of every response the client got.
type e2eWireLog struct {
	mu        sync.Mutex
	exchanges []e2eExchange
}

type e2eExchange struct {
	method, url string
	status      int
	challenge   string
}

func (l *e2eWireLog) wrap(base http.RoundTripper) http.RoundTripper {
	return e2eRoundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := base.RoundTrip(r)
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		l.exchanges = append(l.exchanges, e2eExchange{method: r.Method, url: r.URL.Redacted(), status: resp.StatusCode, challenge: resp.Header.Get("WWW-Authenticate")})
		l.mu.Unlock()
		return resp, nil
	})
}

// expectChallenge checks that the gateway answered some request with status
// and a Bearer challenge carrying errCode (if any), exactly scopes, and a
// resource_metadata URL.
func (l *e2eWireLog) expectChallenge(t *testing.T, status int, errCode string, scopes ...string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range l.exchanges {
		if x.status != status {
			continue
		}
		cs, err := oauthex.ParseWWWAuthenticate([]string{x.challenge})
		if err != nil || len(cs) != 1 || cs[0].Scheme != "bearer" {
			t.Errorf("%d challenge %q: want one Bearer challenge (%v)", status, x.challenge, err)
			return
		}
		p := cs[0].Params
		got := strings.Fields(p["scope"])
		slices.Sort(got)
		want := slices.Sorted(slices.Values(scopes))
		if p["error"] != errCode || !slices.Equal(got, want) || !strings.Contains(p["resource_metadata"], "/.well-known/oauth-protected-resource") {
			t.Errorf("%d challenge %q: want error %q, scope %q and resource_metadata", status, x.challenge, errCode, strings.Join(scopes, " "))
		}
		return
	}
	t.Errorf("no %d response; wire:\n%s", status, l.stringLocked())
}

func (l *e2eWireLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stringLocked()
}

func (l *e2eWireLog) stringLocked() string {
	var b strings.Builder
	for _, x := range l.exchanges {
		b.WriteString(x.method + " " + x.url + " -> " + http.StatusText(x.status))
		if x.challenge != "" {
			b.WriteString(" [" + x.challenge + "]")
		}
		b.WriteByte('\n')
	}
	return b.String()
}

type e2eRoundTripFunc func(*http.Request) (*http.Response, error)

func (f e2eRoundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/zap/zapcore"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway/config"
	"github.com/mcpgate/mcpgate/internal/localstack"
	"github.com/mcpgate/mcpgate/internal/mcpclient"
	"github.com/mcpgate/mcpgate/internal/sampleserver"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

// Names and scopes of the test's own McpServer.
const (
	e2eServer    = "e2e-tools"
	baseScope    = "profile"
	toolScope    = "repo:admin"
	verifyCall   = "POST /v1/oauth_applications/access_tokens/verify"
	settingsCall = "PATCH /v1/instance/oauth_application_settings"
	// testTimeout bounds one token format's run, well inside go test's
	// default timeout, so that a hang fails with a message and cleans up.
	testTimeout = 2 * time.Minute
)

func TestMain(m *testing.M) {
	// envtest and the kubelet emulation log through controller-runtime;
	// errors only, the rest is in the stack's log files.
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	os.Exit(m.Run())
}

// TestDemoPath walks the path `make demo` sets up and a user then takes,
// once per access token format, each on a stack of its own: the operator
// deploys a gateway for an McpServer applied with kubectl, the gateway
// challenges an anonymous client, a real MCP client signs in and calls
// tools, a kubectl patch adds a tool scope and rolls the gateway, and the
// client steps up to call the protected tool. The emulated Clerk instance
// starts with the other token format, so the operator's settings sync has to
// change it.
func TestDemoPath(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	// Built and found once, before the subtests run in parallel, so that a
	// cold cache is filled once.
	bins, assets := stackParts(t, ctx)
	for _, format := range []localstack.TokenFormat{localstack.JWT, localstack.Opaque} {
		t.Run(format.String(), func(t *testing.T) {
			t.Parallel()
			runDemoPath(t, bins, assets, format)
		})
	}
}

// waitGateway waits, at most waitTimeout, for the gateway of McpServer
// name to serve the config hash ("" for any).
func (r *demoRun) waitGateway(name, hash string) localstack.Gateway {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.ctx, waitTimeout)
	defer cancel()
	gw, err := r.stack.WaitGateway(ctx, r.ns, name, hash)
	if err != nil {
		r.t.Fatalf("%v", err)
	}
	return gw
}

// demoRun is one run of the path: its stack and what the steps share.
type demoRun struct {
	t      *testing.T
	ctx    context.Context
	stack  *localstack.Stack
	clerk  *clerktest.Server
	ns     string
	format localstack.TokenFormat
}

func runDemoPath(t *testing.T, bins localstack.Binaries, assets string, format localstack.TokenFormat) {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	initial := localstack.Opaque
	if format == localstack.Opaque {
		initial = localstack.JWT
	}
	stack := startStack(t, ctx, bins, assets, localstack.ClerkOptions{TokenFormat: initial, Scopes: []string{toolScope}})
	r := &demoRun{t: t, ctx: ctx, stack: stack, clerk: stack.ClerkServer(), ns: stack.Namespace(), format: format}
	if got := r.clerk.Settings().OAuthJWTAccessTokens; got != (initial == localstack.JWT) {
		t.Fatalf("emulator starts with oauth_jwt_access_tokens=%t", got)
	}

	r.applySamples()
	gw := r.applyOwnMcpServer()
	r.checkChallenge(gw)
	r.checkSettingsSynced()
	r.signInAndCallTools(gw)
	gw = r.addToolScope(gw)
	r.stepUp(gw)
	r.checkKubectlViews()
	r.crashAndRecover(gw)
	t.Run("typescript client", func(t *testing.T) { runTypeScriptClient(t, ctx, r.stack, gw) })
	// Last: the rotated key is not one the emulator accepts.
	r.rotateSecret()
}

// applySamples applies config/samples as the demo does and checks that its
// gateway serves the sample's scopes.
func (r *demoRun) applySamples() {
	t := r.t
	t.Helper()
	names, err := r.stack.ApplySamples(r.ctx, localstack.SamplesOptions{TokenFormat: r.format})
	if err != nil {
		t.Fatalf("%v", err)
	}
	if !slices.Equal(names, []string{"github-tools"}) {
		t.Fatalf("config/samples applied %q, want [github-tools]", names)
	}
	gw := r.waitGateway("github-tools", "")
	var md resourceMetadata
	if err := getJSON(r.ctx, gw.MetadataURL, &md); err != nil {
		t.Fatalf("sample metadata: %v", err)
	}
	want := resourceMetadata{
		Resource: gw.URL, AuthorizationServers: []string{r.stack.Clerk().Issuer},
		ScopesSupported: []string{"profile", "email", toolScope}, ResourceName: r.ns + "/github-tools",
	}
	slices.Sort(md.ScopesSupported)
	slices.Sort(want.ScopesSupported)
	if fmt.Sprint(md) != fmt.Sprint(want) {
		t.Errorf("sample metadata = %+v, want %+v", md, want)
	}
}

// applyOwnMcpServer applies the test's McpServer with kubectl apply -f,
// checks the objects the operator makes for it and waits for its gateway
// process.
func (r *demoRun) applyOwnMcpServer() localstack.Gateway {
	t := r.t
	t.Helper()
	applyManifest(t, r.ctx, r.stack, sampleMcpServer(r.stack, e2eServer, "", fmt.Sprintf(`    dynamicClientRegistration: true
    jwtAccessTokens: %t
`, r.format == localstack.JWT)))

	name := types.NamespacedName{Namespace: r.ns, Name: e2eServer + "-gateway"}
	for _, obj := range []client.Object{&corev1.ConfigMap{}, &appsv1.Deployment{}, &corev1.Service{}} {
		eventually(t, r.ctx, fmt.Sprintf("%T %s", obj, name), func() (bool, error) {
			err := r.stack.Client().Get(r.ctx, name, obj)
			return err == nil, err
		})
		if owners := obj.GetOwnerReferences(); len(owners) != 1 || owners[0].Kind != "McpServer" || owners[0].Name != e2eServer {
			t.Errorf("%T %s is owned by %+v", obj, name, owners)
		}
	}
	gw := r.waitGateway(e2eServer, "")
	if gw.PID == 0 || gw.Starts != 1 {
		t.Fatalf("gateway process: pid %d after %d starts", gw.PID, gw.Starts)
	}
	resp, err := http.Get(gw.HealthURL + "/healthz")
	if err != nil {
		t.Fatalf("gateway health: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("gateway /healthz = %d", resp.StatusCode)
	}
	return gw
}

// checkChallenge sends an MCP request without a token: the gateway must
// answer 401 and point at its metadata, which names the emulator.
func (r *demoRun) checkChallenge(gw localstack.Gateway) {
	t := r.t
	t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"e2e","version":"0"}}}`
	req, err := http.NewRequestWithContext(r.ctx, http.MethodPost, gw.URL, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("anonymous POST: %v", err)
	}
	_ = resp.Body.Close()
	wantChallenge := fmt.Sprintf(`Bearer resource_metadata=%q, scope=%q`, gw.MetadataURL, baseScope)
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != wantChallenge {
		t.Fatalf("anonymous POST: %d, WWW-Authenticate %q; want 401, %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), wantChallenge)
	}
	var md resourceMetadata
	if err := getJSON(r.ctx, gw.MetadataURL, &md); err != nil {
		t.Fatalf("metadata: %v", err)
	}
	if md.Resource != gw.URL || !slices.Equal(md.AuthorizationServers, []string{r.stack.Clerk().Issuer}) || !slices.Contains(md.ScopesSupported, baseScope) {
		t.Fatalf("metadata = %+v", md)
	}
}

// checkSettingsSynced waits for the McpServer to be Ready, which takes
// ClerkConfigured, and checks that the operator changed the emulator's
// token format to the declared one.
func (r *demoRun) checkSettingsSynced() {
	t := r.t
	t.Helper()
	kubectl(t, r.ctx, r.stack, "wait", "-n", r.ns, "--for=condition=Ready", "--timeout=60s", "mcpservers/"+e2eServer, "mcpservers/github-tools")
	if got := r.clerk.Settings().OAuthJWTAccessTokens; got != (r.format == localstack.JWT) {
		t.Fatalf("emulator oauth_jwt_access_tokens = %t after the sync, want %t", got, r.format == localstack.JWT)
	}
	if n := r.clerk.Calls(settingsCall); n < 1 {
		t.Fatalf("%s was called %d times", settingsCall, n)
	}
}

// client connects a real MCP client (Go SDK, headless OAuth) to gw through
// a recorder, counting the authorizations it makes.
func (r *demoRun) client(gw localstack.Gateway) (*mcp.ClientSession, *recorder, func() []mcpclient.Authorization) {
	t := r.t
	t.Helper()
	// A transport of its own, like a client process: a connection pooled
	// by an earlier client could lead to a gateway that has since been
	// replaced and closes it just as a POST is sent on it, which no client
	// retries.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(transport.CloseIdleConnections)
	rec := &recorder{base: transport, url: gw.URL}
	var mu sync.Mutex
	var auths []mcpclient.Authorization
	cs, err := mcpclient.Connect(r.ctx, mcpclient.Options{
		URL:        gw.URL,
		HTTPClient: &http.Client{Transport: rec},
		ClientName: "mcpgate-e2e",
		OnAuthorize: func(a mcpclient.Authorization) {
			mu.Lock()
			defer mu.Unlock()
			auths = append(auths, a)
		},
	})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs, rec, func() []mcpclient.Authorization {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(auths)
	}
}

// signInAndCallTools signs in, lists the tools, calls echo and whoami, and
// checks the identity and the token format.
func (r *demoRun) signInAndCallTools(gw localstack.Gateway) {
	t := r.t
	t.Helper()
	verifiesBefore := r.clerk.Calls(verifyCall)
	cs, rec, auths := r.client(gw)
	defer func() { _ = cs.Close() }()

	tools, err := cs.ListTools(r.ctx, nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	for _, want := range []string{sampleserver.ToolEcho, sampleserver.ToolWhoami, sampleserver.ToolDeleteRepo} {
		if !slices.Contains(names, want) {
			t.Errorf("tools/list = %q, missing %s", names, want)
		}
	}
	res, err := cs.CallTool(r.ctx, &mcp.CallToolParams{Name: sampleserver.ToolEcho, Arguments: map[string]any{"text": "hello"}})
	if err != nil || res.IsError || fmt.Sprint(res.StructuredContent) != "map[text:hello]" {
		t.Fatalf("echo: %v, %+v", err, res)
	}
	res, err = cs.CallTool(r.ctx, &mcp.CallToolParams{Name: sampleserver.ToolWhoami, Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("whoami: %v, %+v", err, res)
	}
	who, _ := res.StructuredContent.(map[string]any)
	if who["userId"] != clerktest.DefaultUserID || who["authorization"] != false {
		t.Fatalf("whoami = %v, want user %s and no Authorization header upstream", who, clerktest.DefaultUserID)
	}
	if got := auths(); len(got) != 1 || got[0].Err != nil || !slices.Equal(got[0].Scopes, []string{baseScope}) || got[0].Resource != gw.URL {
		t.Fatalf("authorizations = %+v, want one for scope %s and resource %s", got, baseScope, gw.URL)
	}

	wantKind := map[localstack.TokenFormat]string{localstack.JWT: testenv.TokenJWT, localstack.Opaque: testenv.TokenOpaque}[r.format]
	authorized := 0
	for _, ex := range rec.recorded() {
		if ex.tokenKind == testenv.TokenNone {
			continue
		}
		authorized++
		if ex.tokenKind != wantKind {
			t.Errorf("%s %s sent a %s token, want %s", ex.method, ex.rpcMethod, ex.tokenKind, wantKind)
		}
	}
	if authorized == 0 {
		t.Fatal("the client sent no token")
	}
	// JWTs are checked against the instance's keys; only opaque tokens
	// cost Backend API calls.
	verifies := r.clerk.Calls(verifyCall) - verifiesBefore
	if (r.format == localstack.JWT) != (verifies == 0) {
		t.Errorf("%d calls to %s for %s tokens", verifies, verifyCall, r.format)
	}
}

// addToolScope patches a tool scope in with kubectl and waits for the
// gateway to restart with the new configuration, at the same URL.
func (r *demoRun) addToolScope(before localstack.Gateway) localstack.Gateway {
	t := r.t
	t.Helper()
	oldHash := before.ConfigHash
	kubectl(t, r.ctx, r.stack, "patch", "-n", r.ns, "mcpservers", e2eServer, "--type=merge",
		"-p", fmt.Sprintf(`{"spec":{"toolScopes":[{"tool":%q,"scopes":[%q]}]}}`, sampleserver.ToolDeleteRepo, toolScope))
	var newHash string
	eventually(t, r.ctx, "a new config hash on the gateway Deployment", func() (bool, error) {
		h, err := r.stack.ConfigHash(r.ctx, r.ns, e2eServer)
		newHash = h
		return err == nil && h != "" && h != oldHash, err
	})
	gw := r.waitGateway(e2eServer, newHash)
	if gw.Starts != 2 || gw.PID == before.PID || gw.URL != before.URL {
		t.Fatalf("after the patch: %d starts, pid %d (was %d), url %s (was %s); want a second process at the same URL",
			gw.Starts, gw.PID, before.PID, gw.URL, before.URL)
	}
	return gw
}

// stepUp calls the newly protected tool with a fresh client: the first
// call is refused with insufficient_scope, the client authorizes again for
// the tool scope, and the retried call succeeds.
func (r *demoRun) stepUp(gw localstack.Gateway) {
	t := r.t
	t.Helper()
	cs, rec, auths := r.client(gw)
	defer func() { _ = cs.Close() }()
	res, err := cs.CallTool(r.ctx, &mcp.CallToolParams{Name: sampleserver.ToolDeleteRepo, Arguments: map[string]any{"name": "e2e"}})
	if err != nil || res.IsError || fmt.Sprint(res.StructuredContent) != "map[deleted:e2e]" {
		t.Fatalf("delete_repo: %v, %+v", err, res)
	}
	got := auths()
	if len(got) != 2 || !slices.Equal(got[0].Scopes, []string{baseScope}) || !slices.Contains(got[1].Scopes, toolScope) || got[1].Err != nil {
		t.Fatalf("authorizations = %+v, want one for %s, then one adding %s", got, baseScope, toolScope)
	}
	var calls []exchange
	for _, ex := range rec.recorded() {
		if ex.rpcMethod == "tools/call" {
			calls = append(calls, ex)
		}
	}
	wantRefusal := fmt.Sprintf(`Bearer error="insufficient_scope", scope=%q, resource_metadata=%q`, baseScope+" "+toolScope, gw.MetadataURL)
	if len(calls) != 2 || calls[0].status != http.StatusForbidden || calls[0].wwwAuthenticate != wantRefusal || calls[1].status != http.StatusOK {
		t.Fatalf("tools/call exchanges = %+v, want 403 with %q, then 200", calls, wantRefusal)
	}
}

// checkKubectlViews checks what a user sees: kubectl get mcps with the URL
// and READY columns, kubectl describe with the conditions and Events.
func (r *demoRun) checkKubectlViews() {
	t := r.t
	t.Helper()
	kubectl(t, r.ctx, r.stack, "wait", "-n", r.ns, "--for=condition=Ready", "--timeout=60s", "mcpservers/"+e2eServer)
	out := kubectl(t, r.ctx, r.stack, "get", "mcps", "-n", r.ns)
	for _, name := range []string{e2eServer, "github-tools"} {
		row, ok := testenv.TableRow(out, name)
		want := fmt.Sprintf("http://%s-gateway.%s.svc/mcp", name, r.ns)
		if !ok || row["URL"] != want || row["READY"] != "True" {
			t.Errorf("kubectl get mcps row of %s = %v, want URL %s and READY True; output:\n%s", name, row, want, out)
		}
	}
	out = kubectl(t, r.ctx, r.stack, "describe", "mcps", "-n", r.ns, e2eServer)
	for _, want := range []string{`Conditions:`, `Type:\s+Ready`, `Type:\s+GatewayAvailable`, `Type:\s+ClerkConfigured`,
		`Events:`, `Normal\s+Ready\s+.*Serving at http://` + e2eServer, `Normal\s+ConfigChanged\s+.*Rolling out gateway configuration`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("kubectl describe mcps does not match %q:\n%s", want, out)
		}
	}
}

// crashAndRecover kills the gateway process: the kubelet emulation reports
// the Deployment unavailable, starts a new process at the same URL, and the
// McpServer is Ready again.
func (r *demoRun) crashAndRecover(before localstack.Gateway) {
	t := r.t
	t.Helper()
	proc, err := os.FindProcess(before.PID)
	if err == nil {
		err = proc.Kill()
	}
	if err != nil {
		t.Fatalf("kill gateway process %d: %v", before.PID, err)
	}
	eventually(t, r.ctx, "a replacement gateway process", func() (bool, error) {
		gw, ok := r.stack.Gateway(r.ns, e2eServer)
		return ok && gw.Ready && gw.PID != before.PID, nil
	})
	after, _ := r.stack.Gateway(r.ns, e2eServer)
	if after.Starts != before.Starts+1 || after.URL != before.URL || after.ConfigHash != before.ConfigHash {
		t.Fatalf("after the crash: %+v; before: %+v", after, before)
	}
	kubectl(t, r.ctx, r.stack, "wait", "-n", r.ns, "--for=condition=Ready", "--timeout=60s", "mcpservers/"+e2eServer)
	resp, err := http.Get(after.MetadataURL)
	if err != nil {
		t.Fatalf("metadata after the restart: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("metadata after the restart: %d", resp.StatusCode)
	}
}

// rotateSecret changes the Clerk Secret. With the broker (the stack's
// default) the gateway holds no key at all: its configuration names the
// broker and no key file, and the Secret is the broker's to read again.
// Without it, the kubelet emulation rewrites the gateway's secret key file
// in place, as a kubelet updates a mounted Secret, and the gateway is not
// restarted (the Secret is not part of the config hash).
func (r *demoRun) rotateSecret() {
	t := r.t
	t.Helper()
	before, ok := r.stack.Gateway(r.ns, e2eServer)
	if !ok {
		t.Fatal("no gateway")
	}
	raw, err := os.ReadFile(before.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(raw)
	if err != nil {
		t.Fatalf("the gateway's local config: %v", err)
	}
	if b, brokered := r.stack.Broker(); brokered {
		if cfg.Clerk.SecretKeyFile != "" || cfg.Broker == nil || cfg.Broker.URL != b.URL {
			t.Fatalf("with the broker the gateway has secret key file %q and broker %+v; want none and %s", cfg.Clerk.SecretKeyFile, cfg.Broker, b.URL)
		}
		return
	}
	keyFile := func() string {
		b, _ := os.ReadFile(cfg.Clerk.SecretKeyFile)
		return string(b)
	}
	if keyFile() != r.stack.Clerk().SecretKey {
		t.Fatalf("%s does not hold the emulator's secret key", cfg.Clerk.SecretKeyFile)
	}
	const rotated = "sk_test_rotated"
	kubectl(t, r.ctx, r.stack, "patch", "secret", "-n", r.ns, localstack.SecretName, "--type=merge",
		"-p", fmt.Sprintf(`{"stringData":{%q:%q}}`, localstack.SecretKey, rotated))
	eventually(t, r.ctx, "the rotated key in the gateway's secret file", func() (bool, error) {
		return keyFile() == rotated, nil
	})
	after, _ := r.stack.Gateway(r.ns, e2eServer)
	if after.PID != before.PID || after.Starts != before.Starts || !after.Ready {
		t.Errorf("rotating the Secret restarted the gateway: %+v, before %+v", after, before)
	}
}

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/localstack"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

// Polling: how often eventually looks again, and how long one wait may take
// (well below the test's own timeout, so a stuck step fails on its own).
const (
	pollInterval = 100 * time.Millisecond
	waitTimeout  = 45 * time.Second
)

// eventually calls check until it reports done, and fails the test with
// check's last error when waitTimeout passes or ctx ends.
func eventually(t *testing.T, ctx context.Context, what string, check func() (bool, error)) {
	t.Helper()
	testenv.Eventually(t, ctx, what, waitTimeout, pollInterval, check)
}

// kubectl runs kubectl against the stack and fails the test on an error.
func kubectl(t *testing.T, ctx context.Context, stack *localstack.Stack, args ...string) string {
	t.Helper()
	out, err := stack.Kubectl(ctx, nil, args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

// dumpLogsOnFailure prints the end of every log in dir if the test failed,
// so a failure in CI shows what the processes said.
func dumpLogsOnFailure(t *testing.T, dir string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
			t.Logf("--- last lines of %s:\n%s", filepath.Base(f), strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
}

// exchange is what the recorder keeps of one request to the MCP endpoint:
// never a token, only what kind it was.
type exchange struct {
	method          string
	status          int
	wwwAuthenticate string
	tokenKind       string // "none", "jwt" (an at+jwt), "opaque" (oat_) or "other"
	rpcMethod       string // the JSON-RPC method of a POST, "" for a batch or none
}

// recorder is an http.RoundTripper that records the exchanges with one URL
// (the MCP endpoint), so a test sees what the SDK client hides: a 403 it
// stepped up from, the format of the token it sent.
type recorder struct {
	base http.RoundTripper
	url  string

	mu        sync.Mutex
	exchanges []exchange
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.String() != r.url {
		return r.base.RoundTrip(req)
	}
	ex := exchange{method: req.Method, tokenKind: testenv.TokenKind(req.Header.Get("Authorization"))}
	if req.Body != nil && req.Method == http.MethodPost {
		body, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		var msg struct {
			Method string `json:"method"`
		}
		if json.Unmarshal(body, &msg) == nil {
			ex.rpcMethod = msg.Method
		}
	}
	resp, err := r.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	ex.status = resp.StatusCode
	ex.wwwAuthenticate = resp.Header.Get("WWW-Authenticate")
	r.mu.Lock()
	r.exchanges = append(r.exchanges, ex)
	r.mu.Unlock()
	return resp, nil
}

func (r *recorder) recorded() []exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.exchanges)
}

// getJSON fetches url and decodes its JSON body into v.
func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// resourceMetadata is the part of RFC 9728 metadata the tests check.
type resourceMetadata struct {
	Resource             string   `json:"resource"`
	AuthorizationServers []string `json:"authorization_servers"`
	ScopesSupported      []string `json:"scopes_supported"`
	ResourceName         string   `json:"resource_name"`
}

// sampleMcpServer is the manifest of an McpServer in the stack's namespace
// in front of the sample server, on the stack's Clerk emulator.
// extraUpstream is YAML added to spec.upstream, extraSpec YAML added to its
// spec after spec.clerk's fields (so indented by four spaces to continue
// spec.clerk, by two to add to spec).
func sampleMcpServer(stack *localstack.Stack, name, extraUpstream, extraSpec string) string {
	svc, port := stack.SampleService()
	return fmt.Sprintf(`apiVersion: mcpgate.dev/v1alpha1
kind: McpServer
metadata:
  name: %s
  namespace: %s
spec:
  upstream:
    service: {name: %s, port: %d}
`+extraUpstream+`  scopes: [%s]
  clerk:
    issuer: %s
    secretKeyRef: {name: %s, key: %s}
`, name, stack.Namespace(), svc, port, baseScope, stack.Clerk().Issuer, localstack.SecretName, localstack.SecretKey) + extraSpec
}

// applyManifest applies manifest with kubectl apply -f, as a person would.
func applyManifest(t *testing.T, ctx context.Context, stack *localstack.Stack, manifest string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "manifest.yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	kubectl(t, ctx, stack, "apply", "-f", path)
}

// stackParts builds the binaries and finds the envtest assets a local stack
// needs; a test that starts several stacks calls it once, before they run in
// parallel, so that a cold cache is filled once.
func stackParts(t *testing.T, ctx context.Context) (localstack.Binaries, string) {
	t.Helper()
	bins, assets, err := localstack.Prepare(ctx, localstack.Options{Progress: func(msg string) { t.Log(msg) }})
	if err != nil {
		t.Fatal(err)
	}
	return bins, assets
}

// startStack starts a local stack of the test's own, with its logs dumped
// if the test fails, and closes it when the test ends.
func startStack(t *testing.T, ctx context.Context, bins localstack.Binaries, assets string, clerk localstack.ClerkOptions) *localstack.Stack {
	t.Helper()
	workDir := t.TempDir()
	dumpLogsOnFailure(t, filepath.Join(workDir, "logs"))
	stack, err := localstack.Start(ctx, localstack.Options{
		WorkDir:   workDir,
		Binaries:  bins,
		AssetsDir: assets,
		Clerk:     clerk,
		Progress:  func(msg string) { t.Log(msg) },
	})
	if err != nil {
		t.Fatalf("start the stack: %v", err)
	}
	t.Cleanup(func() {
		if err := stack.Close(); err != nil {
			t.Errorf("close the stack: %v", err)
		}
	})
	return stack
}

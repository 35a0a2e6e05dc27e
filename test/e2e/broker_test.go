package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway/config"
	"github.com/mcpgate/mcpgate/internal/localstack"
	"github.com/mcpgate/mcpgate/internal/mcpclient"
	"github.com/mcpgate/mcpgate/internal/sampleserver"
)

// Names of the broker test's objects.
const (
	brokerTeam     = "team-b"
	brokerServer   = "shared-tools"
	brokerInstance = "platform"
	platformSecret = "platform-clerk"
)

// TestBrokerKeepsTheKeyOutOfTeamNamespaces runs the stack with the broker
// (its default) and an McpServer in a team namespace that uses a
// ClusterClerkInstance, whose secret key is in the operator's namespace.
// With opaque access tokens every call's verification needs the Backend API,
// so it goes through the broker: a real client signs in and calls tools,
// while no Secret in the team namespace holds the key, the gateway's
// configuration names the broker and no key file, and no file of the
// gateway process holds the key.
func TestBrokerKeepsTheKeyOutOfTeamNamespaces(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*testTimeout)
	defer cancel()
	bins, assets := stackParts(t, ctx)
	stack := startStack(t, ctx, bins, assets, localstack.ClerkOptions{TokenFormat: localstack.Opaque})
	b, ok := stack.Broker()
	if !ok {
		t.Fatal("the stack runs no broker")
	}
	key := stack.Clerk().SecretKey
	c := stack.Client()

	// The platform team's instance, and a team namespace with a Service in
	// front of the sample server (without a selector, as the stack's own).
	sample := &corev1.Service{}
	svcName, _ := stack.SampleService()
	if err := c.Get(ctx, types.NamespacedName{Namespace: stack.Namespace(), Name: svcName}, sample); err != nil {
		t.Fatal(err)
	}
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: brokerTeam}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: brokerTeam, Name: svcName}, Spec: corev1.ServiceSpec{Ports: sample.Spec.Ports}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: localstack.OperatorNamespace, Name: platformSecret},
			StringData: map[string]string{"secret-key": key}},
	} {
		if err := c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	_, port := stack.SampleService()
	applyManifest(t, ctx, stack, fmt.Sprintf(`apiVersion: mcpgate.dev/v1alpha1
kind: ClusterClerkInstance
metadata:
  name: %s
spec:
  issuer: %s
  secretKeyRef: {name: %s, key: secret-key}
  dynamicClientRegistration: true
  jwtAccessTokens: false
---
apiVersion: mcpgate.dev/v1alpha1
kind: McpServer
metadata:
  name: %s
  namespace: %s
spec:
  upstream:
    service: {name: %s, port: %d}
  scopes: [%s]
  clerk:
    instanceRef: {kind: ClusterClerkInstance, name: %s}
`, brokerInstance, stack.Clerk().Issuer, platformSecret, brokerServer, brokerTeam, svcName, port, baseScope, brokerInstance))
	wctx, wcancel := context.WithTimeout(ctx, waitTimeout)
	defer wcancel()
	gw, err := stack.WaitGateway(wctx, brokerTeam, brokerServer, "")
	if err != nil {
		t.Fatalf("%v", err)
	}
	kubectl(t, ctx, stack, "wait", "-n", brokerTeam, "--for=condition=Ready", "--timeout=60s", "mcpservers/"+brokerServer)

	t.Run("calls succeed through the broker", func(t *testing.T) {
		emu := stack.ClerkServer()
		verifiesBefore := emu.Calls(verifyCall)
		brokerBefore := brokerVerified(t, ctx, b)
		cs := connectAs(t, ctx, gw, clerktest.User{})
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: sampleserver.ToolWhoami, Arguments: map[string]any{}})
		if err != nil || res.IsError {
			t.Fatalf("whoami: %v, %+v", err, res)
		}
		if who, _ := res.StructuredContent.(map[string]any); who["userId"] != clerktest.DefaultUserID {
			t.Errorf("whoami = %v, want user %s", who, clerktest.DefaultUserID)
		}
		if n := emu.Calls(verifyCall) - verifiesBefore; n == 0 {
			t.Errorf("no opaque token was verified with the Backend API")
		}
		if n := brokerVerified(t, ctx, b) - brokerBefore; n == 0 {
			t.Errorf("the broker answered no request")
		}
	})

	t.Run("a new CA reaches the broker and the gateway unrestarted", func(t *testing.T) {
		before, _ := stack.Gateway(brokerTeam, brokerServer)
		raw, err := os.ReadFile(before.ConfigPath)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Parse(raw)
		if err != nil || cfg.Broker == nil {
			t.Fatalf("the gateway's config: %v, broker %+v", err, cfg.Broker)
		}
		caBefore, err := os.ReadFile(cfg.Broker.CAFile)
		if err != nil || len(caBefore) == 0 {
			t.Fatalf("the gateway's CA bundle %s: %q, %v", cfg.Broker.CAFile, caBefore, err)
		}
		// Without its Secrets the operator issues a new CA and serving
		// certificate: the broker's files follow the TLS Secret, the
		// gateway's bundle its ConfigMap, each updated in place.
		for _, name := range []string{localstack.BrokerTLSSecret, localstack.BrokerTLSSecret + "-ca"} {
			s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: localstack.OperatorNamespace, Name: name}}
			if err := c.Delete(ctx, s); err != nil {
				t.Fatalf("delete secret %s: %v", name, err)
			}
		}
		eventually(t, ctx, "a new CA bundle in the gateway's files", func() (bool, error) {
			ca, err := os.ReadFile(cfg.Broker.CAFile)
			return err == nil && len(ca) > 0 && string(ca) != string(caBefore), err
		})
		caAfter, _ := os.ReadFile(cfg.Broker.CAFile)
		eventually(t, ctx, "the broker serving a certificate of the new CA", func() (bool, error) {
			roots := x509.NewCertPool()
			if !roots.AppendCertsFromPEM(caAfter) {
				return false, fmt.Errorf("the new bundle holds no certificate")
			}
			conn, err := tls.Dial("tcp", strings.TrimPrefix(b.URL, "https://"), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
			if err != nil {
				return false, err
			}
			_ = conn.Close()
			return true, nil
		})
		eventually(t, ctx, "a new client's call through the broker", func() (bool, error) {
			transport := http.DefaultTransport.(*http.Transport).Clone()
			defer transport.CloseIdleConnections()
			cs, err := mcpclient.Connect(ctx, mcpclient.Options{URL: gw.URL, HTTPClient: &http.Client{Transport: transport}, ClientName: "mcpgate-e2e"})
			if err != nil {
				return false, err
			}
			defer func() { _ = cs.Close() }()
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: sampleserver.ToolWhoami, Arguments: map[string]any{}})
			if err == nil && res.IsError {
				err = fmt.Errorf("whoami: %+v", res.Content)
			}
			return err == nil, err
		})
		after, _ := stack.Gateway(brokerTeam, brokerServer)
		if after.PID != before.PID || after.Starts != before.Starts || after.ConfigHash != before.ConfigHash {
			t.Errorf("the new CA restarted the gateway: %+v, before %+v", after, before)
		}
	})

	t.Run("no Secret in the team namespace holds the key", func(t *testing.T) {
		var secrets corev1.SecretList
		if err := c.List(ctx, &secrets, client.InNamespace(brokerTeam)); err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets.Items {
			for k, v := range s.Data {
				if strings.Contains(string(v), key) {
					t.Errorf("Secret %s/%s holds the secret key under %s", s.Namespace, s.Name, k)
				}
			}
		}
	})

	t.Run("the gateway holds no key", func(t *testing.T) {
		raw, err := os.ReadFile(gw.ConfigPath)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Parse(raw)
		if err != nil {
			t.Fatalf("the gateway's config: %v", err)
		}
		if cfg.Clerk.SecretKeyFile != "" || cfg.Broker == nil || cfg.Broker.URL != b.URL {
			t.Errorf("the gateway's config: secret key file %q, broker %+v; want none and %s", cfg.Clerk.SecretKeyFile, cfg.Broker, b.URL)
		}
		// Every file of the process: its config and volumes, as mounted.
		err = filepath.WalkDir(gw.Dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(path)
			if err == nil && strings.Contains(string(data), key) {
				t.Errorf("%s holds the secret key", path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// brokerVerified reads how many verifications the broker answered from its
// metrics (mcpgate_broker_requests_total, endpoint verify, outcome ok).
func brokerVerified(t *testing.T, ctx context.Context, b localstack.Broker) float64 {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.HealthURL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("broker metrics: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("broker metrics: %d, %v", resp.StatusCode, err)
	}
	const series = `mcpgate_broker_requests_total{endpoint="verify",outcome="ok"} `
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("broker metrics: %q: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("the broker's metrics have no series %s", strings.TrimSpace(series))
	return 0
}

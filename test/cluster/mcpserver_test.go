//go:build cluster

package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/mcpgate/mcpgate/internal/mcpclient"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

// Names of what the McpServer tests create in their namespace.
const (
	sampleName       = "sample"
	samplePort       = 8080
	clerkSecretName  = "clerk"
	clerkInstance    = "clerk"
	ingressTLSSecret = "ingress-tls"
)

// kubectl runs the real kubectl against the cluster, with stdin.
func kubectl(ctx context.Context, t *testing.T, stdin string, args ...string) string {
	t.Helper()
	bin := os.Getenv("KUBECTL")
	if bin == "" {
		t.Fatal("KUBECTL is not set: hack/cluster/test.sh sets it")
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", kubeconfigPath()}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// teamNamespace is a restricted namespace with what a service team brings:
// the sample MCP server as a Deployment and Service, the Clerk secret key in
// a Secret, a ClerkInstance for the emulator on the node (JWT access tokens
// when jwt), and the wildcard certificate for the Ingress's TLS.
func teamNamespace(ctx context.Context, t *testing.T, prefix string, jwt bool) string {
	t.Helper()
	installOperator(t)
	ns := restrictedNamespace(t, prefix)
	tlsCert, err := os.ReadFile(pkiDir() + "/ingress.crt")
	if err != nil {
		t.Fatal(err)
	}
	tlsKey, err := os.ReadFile(pkiDir() + "/ingress.key")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: clerkSecretName}, StringData: map[string]string{"secretKey": nodeClerk.SecretKey()}},
		{ObjectMeta: metav1.ObjectMeta{Name: ingressTLSSecret}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: tlsCert, corev1.TLSPrivateKeyKey: tlsKey}},
	} {
		if _, err := kube.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create secret %s: %v", s.Name, err)
		}
	}
	kubectl(ctx, t, fmt.Sprintf(`apiVersion: mcpgate.dev/v1alpha1
kind: ClerkInstance
metadata: {name: %s, namespace: %s}
spec:
  issuer: %s
  secretKeyRef: {name: %s, key: secretKey}
  dynamicClientRegistration: true
  jwtAccessTokens: %t
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[6]s, namespace: %[2]s}
spec:
  replicas: 1
  selector: {matchLabels: {app: %[6]s}}
  template:
    metadata: {labels: {app: %[6]s}}
    spec:
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: server
        image: mcpgate.local/sample-mcp-server:%[7]s
        imagePullPolicy: Never
        args: [--listen=:%[8]d, --disable-localhost-protection]
        ports: [{name: mcp, containerPort: %[8]d}]
        readinessProbe: {tcpSocket: {port: %[8]d}, periodSeconds: 1}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
---
apiVersion: v1
kind: Service
metadata: {name: %[6]s, namespace: %[2]s}
spec:
  selector: {app: %[6]s}
  ports: [{name: mcp, port: %[8]d, targetPort: %[8]d}]
`, clerkInstance, ns, nodeClerk.FrontendAPIURL(), clerkSecretName, jwt, sampleName, imageTag(t), samplePort), "apply", "-f", "-")
	return ns
}

// mcpServerManifest is an McpServer in front of the sample server, on the
// namespace's ClerkInstance; publish is YAML at spec level (ingress or
// httpRoute), upstreamExtra YAML under spec.upstream.
func mcpServerManifest(ns, name, upstreamExtra, publish string) string {
	return fmt.Sprintf(`apiVersion: mcpgate.dev/v1alpha1
kind: McpServer
metadata: {name: %s, namespace: %s}
spec:
  upstream:
    service: {name: %s, port: %d}
%s  clerk:
    instanceRef: {kind: ClerkInstance, name: %s}
%s`, name, ns, sampleName, samplePort, upstreamExtra, clerkInstance, publish)
}

func ingressPublish(host string) string {
	return fmt.Sprintf(`  ingress:
    host: %s
    className: traefik
    tls: {secretName: %s}
`, host, ingressTLSSecret)
}

func routePublish(host string) string {
	return fmt.Sprintf(`  httpRoute:
    parentRefs: [{name: web, namespace: traefik}]
    hostnames: [%s]
`, host)
}

// waitMcpServerReady waits until `kubectl get mcps` shows the McpServer
// READY True with a URL, and returns the URL.
func waitMcpServerReady(ctx context.Context, t *testing.T, ns, name string) string {
	t.Helper()
	var row map[string]string
	err := wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		out := kubectl(ctx, t, "", "get", "mcps", "-n", ns)
		r, ok := testenv.TableRow(out, name)
		row = r
		return ok && r["READY"] == "True" && r["URL"] != "", nil
	})
	if err != nil {
		t.Fatalf("kubectl get mcps %s/%s: %v; last row %v\n%s", ns, name, err, row,
			kubectl(ctx, t, "", "get", "mcps", name, "-n", ns, "-o", "jsonpath={.status.conditions}"))
	}
	return row["URL"]
}

// waitRouted waits until the ingress controller routes url to the gateway,
// which answers 401: an Ingress's status can come before its route.
func waitRouted(ctx context.Context, t *testing.T, url string) {
	t.Helper()
	client, _ := clusterHTTPClient(ctx, t)
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		status, _ := postWithoutToken(ctx, t, client, url)
		return status == http.StatusUnauthorized, nil
	})
	if err != nil {
		t.Fatalf("the ingress controller never routed %s to its gateway", url)
	}
}

// gatewayDeployment is the Deployment the operator made for the McpServer.
func gatewayDeployment(ctx context.Context, t *testing.T, ns, name string) *appsv1.Deployment {
	t.Helper()
	d, err := kube.AppsV1().Deployments(ns).Get(ctx, name+"-gateway", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the gateway Deployment of %s/%s: %v", ns, name, err)
	}
	return d
}

// gatewayPods are the running, undeleted pods of the McpServer's gateway.
func gatewayPods(ctx context.Context, t *testing.T, ns, name string) []corev1.Pod {
	t.Helper()
	pods, err := listGatewayPods(ctx, ns, name)
	if err != nil {
		t.Fatalf("the gateway pods of %s/%s: %v", ns, name, err)
	}
	return pods
}

// listGatewayPods lists the running, undeleted pods of the McpServer's
// gateway; none while the operator has not made its Deployment yet.
func listGatewayPods(ctx context.Context, ns, name string) ([]corev1.Pod, error) {
	d, err := kube.AppsV1().Deployments(ns).Get(ctx, name+"-gateway", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: metav1.FormatLabelSelector(d.Spec.Selector)})
	if err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
			out = append(out, p)
		}
	}
	return out, nil
}

// checkGatewayPods: the gateway runs from the image under test, as the
// controller's securityContext says (non-root, read-only root filesystem,
// no capabilities), and every pod became Ready through its probes.
func checkGatewayPods(ctx context.Context, t *testing.T, ns, name string) {
	t.Helper()
	pods := gatewayPods(ctx, t, ns, name)
	if len(pods) == 0 {
		t.Fatalf("no running gateway pod for %s/%s", ns, name)
	}
	for _, p := range pods {
		c := p.Spec.Containers[0]
		if want := "mcpgate.local/mcpgate:" + imageTag(t); c.Image != want {
			t.Errorf("gateway pod %s runs image %q, want %q", p.Name, c.Image, want)
		}
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
			t.Errorf("gateway pod %s: container securityContext %+v, want read-only root, no privilege escalation, ALL capabilities dropped", p.Name, sc)
		}
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil {
			t.Errorf("gateway pod %s has no HTTP readiness probe", p.Name)
		}
		if !podReady(&p) {
			t.Errorf("gateway pod %s is not Ready: %s", p.Name, podStatus(&p))
		}
		if p.Status.QOSClass == corev1.PodQOSBestEffort {
			t.Errorf("gateway pod %s is BestEffort: the default resources were not applied", p.Name)
		}
	}
}

// checkPublicEndpoint: through the ingress controller, the URL serves its
// protected resource metadata and challenges a request without a token, and
// the authorization server it names serves its metadata.
func checkPublicEndpoint(ctx context.Context, t *testing.T, client *http.Client, mcpURL string) {
	t.Helper()
	origin, path := splitURL(t, mcpURL)
	var prm struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
	}
	getJSON(ctx, t, client, origin+"/.well-known/oauth-protected-resource"+path, &prm)
	if prm.Resource != mcpURL || len(prm.AuthorizationServers) != 1 || prm.AuthorizationServers[0] != nodeClerk.FrontendAPIURL() {
		t.Errorf("protected resource metadata at %s: resource %q, authorization_servers %v; want %q and [%s]",
			origin, prm.Resource, prm.AuthorizationServers, mcpURL, nodeClerk.FrontendAPIURL())
	}
	// The authorization server's, where a client looks for it: at the
	// issuer the resource metadata names (the emulator, over TLS).
	var as struct {
		Issuer            string `json:"issuer"`
		TokenEndpoint     string `json:"token_endpoint"`
		RegistrationPoint string `json:"registration_endpoint"`
	}
	getJSON(ctx, t, client, nodeClerk.FrontendAPIURL()+"/.well-known/oauth-authorization-server", &as)
	if as.Issuer != nodeClerk.FrontendAPIURL() || as.TokenEndpoint == "" || as.RegistrationPoint == "" {
		t.Errorf("authorization server metadata: issuer %q, token_endpoint %q, registration_endpoint %q; want issuer %q and both endpoints",
			as.Issuer, as.TokenEndpoint, as.RegistrationPoint, nodeClerk.FrontendAPIURL())
	}

	status, challenge := postWithoutToken(ctx, t, client, mcpURL)
	if status != http.StatusUnauthorized || !strings.HasPrefix(challenge, "Bearer ") ||
		!strings.Contains(challenge, `resource_metadata="`+origin+"/.well-known/oauth-protected-resource"+path+`"`) {
		t.Errorf("POST %s without a token: status %d, WWW-Authenticate %q; want 401 with the resource metadata URL", mcpURL, status, challenge)
	}
}

func splitURL(t *testing.T, u string) (origin, path string) {
	t.Helper()
	rest, ok := strings.CutPrefix(u, "https://")
	if !ok {
		t.Fatalf("public URL %q is not https", u)
	}
	host, p, _ := strings.Cut(rest, "/")
	return "https://" + host, "/" + p
}

func getJSON(ctx context.Context, t *testing.T, client *http.Client, url string, v any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d\n%.300s", url, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v\n%.300s", url, err, body)
	}
}

// connect runs the Go SDK client's full OAuth flow against the emulator and
// connects to mcpURL through the ingress controller.
func connect(ctx context.Context, t *testing.T, client *http.Client, mcpURL string) *mcp.ClientSession {
	t.Helper()
	cs, err := mcpclient.Connect(ctx, mcpclient.Options{URL: mcpURL, HTTPClient: client, ClientName: "mcpgate-cluster-test"})
	if err != nil {
		t.Fatalf("connect to %s: %v", mcpURL, err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// callEcho lists the tools and calls echo, failing the test on any error.
func callEcho(ctx context.Context, t *testing.T, cs *mcp.ClientSession, text string) {
	t.Helper()
	var names []string
	for tool, err := range cs.Tools(ctx, nil) {
		if err != nil {
			t.Fatalf("tools/list: %v", err)
		}
		names = append(names, tool.Name)
	}
	if !strings.Contains(strings.Join(names, ","), "echo") {
		t.Fatalf("tools/list: %v, want echo among them", names)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": text}})
	if err != nil {
		t.Fatalf("tools/call echo: %v", err)
	}
	if res.IsError || len(res.Content) == 0 {
		t.Fatalf("tools/call echo: error result %+v", res)
	}
	if tc, ok := res.Content[0].(*mcp.TextContent); !ok || !strings.Contains(tc.Text, text) {
		t.Fatalf("tools/call echo: content %+v, want the text %q back", res.Content[0], text)
	}
}

// TestMcpServerThroughIngress: an McpServer in a restricted namespace, in
// front of the sample server, published through Traefik by an Ingress and,
// separately, by an HTTPRoute: the gateway pods run from the image with the
// controller's securityContext and become Ready through their probes,
// `kubectl get mcps` shows READY True and the URL, and through the ingress
// controller a client gets both metadata documents, the 401 challenge, and
// (the Go SDK's full OAuth flow against the emulator on the node) tools/list
// and tools/call, with JWT access tokens and then with opaque ones.
func TestMcpServerThroughIngress(t *testing.T) {
	ctx := testContext(t, 10*time.Minute)
	ns := teamNamespace(ctx, t, "team", true)
	suffix := strings.TrimPrefix(ns, "team-")
	servers := []struct{ name, host, publish string }{
		{"via-ingress", "ingress-" + suffix + "." + ingressDomain, ""},
		{"via-route", "route-" + suffix + "." + ingressDomain, ""},
	}
	servers[0].publish = ingressPublish(servers[0].host)
	servers[1].publish = routePublish(servers[1].host)
	for _, s := range servers {
		kubectl(ctx, t, mcpServerManifest(ns, s.name, "", s.publish), "apply", "-f", "-")
	}
	urls := map[string]string{}
	for _, s := range servers {
		urls[s.name] = waitMcpServerReady(ctx, t, ns, s.name)
		waitRouted(ctx, t, urls[s.name])
		if want := "https://" + s.host + "/mcp"; urls[s.name] != want {
			t.Errorf("%s: URL %q, want %q", s.name, urls[s.name], want)
		}
		checkGatewayPods(ctx, t, ns, s.name)
	}

	for _, format := range []struct {
		name string
		jwt  bool
		kind string
	}{{"jwt", true, testenv.TokenJWT}, {"opaque", false, testenv.TokenOpaque}} {
		if !format.jwt {
			// The ClerkInstance owns the instance's settings; the operator
			// syncs the change to Clerk.
			kubectl(ctx, t, "", "patch", "clerkinstance", clerkInstance, "-n", ns, "--type=merge",
				"-p", `{"spec":{"jwtAccessTokens":false}}`)
			kubectl(ctx, t, "", "wait", "clerkinstance/"+clerkInstance, "-n", ns,
				"--for=jsonpath={.status.settings.jwtAccessTokens}=false", "--timeout=60s")
		}
		for _, s := range servers {
			t.Run(s.name+"/"+format.name, func(t *testing.T) {
				client, tokens := clusterHTTPClient(ctx, t)
				checkPublicEndpoint(ctx, t, client, urls[s.name])
				cs := connect(ctx, t, client, urls[s.name])
				callEcho(ctx, t, cs, "hello from "+s.name)
				if n := tokens.sent(format.kind); n == 0 {
					t.Errorf("the client sent no %s access token (sent %d jwt, %d opaque)", format.kind,
						tokens.sent(testenv.TokenJWT), tokens.sent(testenv.TokenOpaque))
				}
			})
		}
	}
}

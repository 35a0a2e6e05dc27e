//go:build cluster

package cluster_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

// The node side of the cluster, as hack/cluster/lib.sh lays it out.
const (
	// defaultPKIDir holds the cluster CA and the certificates of the Clerk
	// emulator and the ingress controller (hack/cluster/pki.sh).
	defaultPKIDir = "/var/lib/mcpgate-cluster/pki"
	// bridgeIP is the node's address on the pod bridge: pods reach the host
	// there, and nothing else can.
	bridgeIP = "10.217.0.1"
	// ingressDomain is the domain whose hosts the ingress controller serves
	// with the cluster CA's wildcard certificate.
	ingressDomain = "mcpgate.test"
	// clerkHost is the emulator's name, which the cluster DNS resolves to
	// bridgeIP: MCP clients refuse an authorization server at a private IP.
	clerkHost = "clerk.node.test"
	// clerkFrontendPort is 443 because an McpServer with gatewayEgress lets
	// its gateway reach Clerk on HTTPS's port only, as on real Clerk.
	clerkFrontendPort = 443
	clerkBackendPort  = 16611
)

// nodeClerk is the Clerk emulator the cluster tests share: it runs in the
// test process on the node's bridge address, over TLS with a certificate of
// the cluster CA, which the test image trusts. The operator's Backend API URL
// (the chart's clerkApiURL) points at it.
var nodeClerk *clerktest.Server

// clusterCAs are the cluster CA, which signs the emulator's and the ingress
// controller's certificates.
var clusterCAs *x509.CertPool

func pkiDir() string {
	if d := os.Getenv("MCPGATE_CLUSTER_PKI"); d != "" {
		return d
	}
	return defaultPKIDir
}

// startNodeClerk starts the shared emulator; TestMain stops it.
func startNodeClerk() (*clerktest.Server, error) {
	dir := pkiDir()
	ca, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("read the cluster CA: %w", err)
	}
	clusterCAs = x509.NewCertPool()
	if !clusterCAs.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("no certificate in %s", filepath.Join(dir, "ca.crt"))
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "clerk-emulator.crt"), filepath.Join(dir, "clerk-emulator.key"))
	if err != nil {
		return nil, fmt.Errorf("load the emulator's certificate: %w", err)
	}
	return clerktest.Start(
		net.JoinHostPort(bridgeIP, fmt.Sprint(clerkFrontendPort)),
		net.JoinHostPort(bridgeIP, fmt.Sprint(clerkBackendPort)),
		clerktest.WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}),
		clerktest.WithHostname(clerkHost),
	)
}

// clusterHTTPClient is how a client on the node reaches an McpServer's public
// URL: hosts under ingressDomain are dialled at the ingress controller's
// Service (kube-proxy routes the ClusterIP on the node), the emulator's name
// at the bridge address, as the cluster DNS resolves it, everything else as
// it is; the cluster CA is trusted. It records the kind of every token sent.
func clusterHTTPClient(ctx context.Context, t *testing.T) (*http.Client, *exchangeLog) {
	t.Helper()
	svc, err := kube.CoreV1().Services("traefik").Get(ctx, "traefik", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the ingress controller's Service: %v", err)
	}
	ingressIP := svc.Spec.ClusterIP
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	transport := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: clusterCAs, MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			switch {
			case err != nil:
			case host == clerkHost:
				addr = net.JoinHostPort(bridgeIP, port)
			case strings.HasSuffix(host, "."+ingressDomain):
				addr = net.JoinHostPort(ingressIP, port)
			}
			return dialer.DialContext(ctx, network, addr)
		},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 16,
	}
	t.Cleanup(transport.CloseIdleConnections)
	tokens := &exchangeLog{base: transport}
	return &http.Client{Transport: tokens}, tokens
}

// exchangeLog is an http.RoundTripper that notes the kind of bearer token each
// request carried (never the token), so a test sees which format the client
// was issued, and keeps the first few 5xx answers with the start of their
// bodies, which tell the gateway's own refusals from the ingress
// controller's.
type exchangeLog struct {
	base         http.RoundTripper
	mu           sync.Mutex
	kinds        map[string]int
	serverErrors []string
}

// serverErrorsKept bounds the 5xx answers an exchangeLog keeps.
const serverErrorsKept = 5

func (l *exchangeLog) RoundTrip(req *http.Request) (*http.Response, error) {
	if kind := testenv.TokenKind(req.Header.Get("Authorization")); kind != testenv.TokenNone {
		l.mu.Lock()
		if l.kinds == nil {
			l.kinds = map[string]int{}
		}
		l.kinds[kind]++
		l.mu.Unlock()
	}
	resp, err := l.base.RoundTrip(req)
	if err != nil || resp.StatusCode < http.StatusInternalServerError {
		return resp, err
	}
	head := make([]byte, 120)
	n, _ := io.ReadFull(resp.Body, head)
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head[:n]), resp.Body), resp.Body}
	l.mu.Lock()
	if len(l.serverErrors) < serverErrorsKept {
		l.serverErrors = append(l.serverErrors, fmt.Sprintf("%s %s %s at %s: %q",
			req.Method, req.URL.Host, resp.Status, time.Now().Format(clockMillis), head[:n]))
	}
	l.mu.Unlock()
	return resp, nil
}

// answered5xx is the first few 5xx answers the client got.
func (l *exchangeLog) answered5xx() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.serverErrors)
}

// sent reports how many requests carried a token of the kind.
func (l *exchangeLog) sent(kind string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.kinds[kind]
}

package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/broker"
	"github.com/mcpgate/mcpgate/clerk"
	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway/config"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

func TestParseBrokerFlags(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "mcpgate-system")
	t.Setenv("MCPGATE_CLERK_API_URL", "")
	f, err := parseBrokerFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := brokerFlags{listen: ":8443", healthListen: ":8081", tlsCertFile: "/etc/mcpgate/tls/tls.crt", tlsKeyFile: "/etc/mcpgate/tls/tls.key",
		clusterResourceNS: "mcpgate-system", clerkAPIURL: defaultClerkAPIURL, reviewTTL: broker.DefaultReviewTTL, keyTTL: 10 * time.Second,
		clerkProbeInterval: defaultClerkProbeInterval, shutdownDelay: 5 * time.Second, shutdownGrace: defaultBrokerShutdownGrace}
	if f != want {
		t.Errorf("defaults = %+v, want %+v", f, want)
	}

	tests := map[string]struct {
		args    []string
		wantErr string // "" for success
	}{
		"all set":        {args: []string{"--listen=127.0.0.1:9443", "--clerk-api-url=http://127.0.0.1:9/v1", "--review-ttl=1m"}},
		"extra argument": {args: []string{"extra"}, wantErr: "unexpected arguments"},
		"bad clerk url":  {args: []string{"--clerk-api-url=api.clerk.com"}, wantErr: "not an absolute http(s) URL"},
		"bad namespace":  {args: []string{"--cluster-resource-namespace=Team_A"}, wantErr: "not a namespace name"},
		"no namespace":   {args: []string{"--cluster-resource-namespace="}, wantErr: "--cluster-resource-namespace is required"},
		"no cert file":   {args: []string{"--tls-cert-file="}, wantErr: "TLS only"},
		"zero key ttl":   {args: []string{"--key-ttl=0s"}, wantErr: "must be positive"},
		"fast probe":     {args: []string{"--clerk-probe-interval=1ms"}, wantErr: "at least"},
		"negative delay": {args: []string{"--shutdown-delay=-1s"}, wantErr: "must not be negative"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := parseBrokerFlags(tc.args, io.Discard)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestRunBrokerRefuses checks the exit codes of a broker that must not
// start: usage errors and a missing serving certificate, before any
// connection to a cluster.
func TestRunBrokerRefuses(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing")
	testenv.CheckRefused(t, runBroker, map[string][]string{
		"usage error":         {"--cluster-resource-namespace=ns", "--clerk-api-url=nope"},
		"no certificate":      {"--cluster-resource-namespace=ns", "--tls-cert-file=" + missing, "--tls-key-file=" + missing},
		"no certificate flag": {"--cluster-resource-namespace=ns", "--tls-cert-file="},
	})
}

// TestBrokerCommand runs `mcpgate broker` against a real API server, as a
// user holding only the RBAC docs/broker.md asks for, and two Clerk
// instances behind one Backend API (as api.clerk.com tells instances
// apart by their secret key). It checks that the broker serves TLS only,
// becomes ready, answers a gateway about its own McpServer's instance
// (inline, and a ClusterClerkInstance whose key is in the operator's
// namespace) end to end through broker.Client, refuses the tokens of the
// other instance and callers that are no gateway, and drains on SIGTERM.
func TestBrokerCommand(t *testing.T) {
	t.Parallel()
	cluster := testenv.StartCluster(t, testenv.Options{CRDs: true})
	ctx := context.Background()
	admin := cluster.Admin
	clientset, err := kubernetes.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	emA, emB := clerktest.NewServer(), clerktest.NewServer()
	t.Cleanup(emA.Close)
	t.Cleanup(emB.Close)
	backend := clerkBackend(t, emA, emB)

	const operatorNS = "mcpgate-system"
	gwA := broker.Caller{Namespace: "team-a", Name: config.GatewayName("tools")}
	gwB := broker.Caller{Namespace: "team-b", Name: config.GatewayName("tools")}
	intruder := broker.Caller{Namespace: "team-a", Name: "intruder"}
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNS}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-b"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "clerk"}, StringData: map[string]string{"secret-key": emA.SecretKey()}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNS, Name: "shared-clerk"}, StringData: map[string]string{"secret-key": emB.SecretKey()}},
		&mcpv1.ClusterClerkInstance{ObjectMeta: metav1.ObjectMeta{Name: "shared"}, Spec: mcpv1.ClerkInstanceSpec{
			Issuer:       mcpv1.IssuerURL(emB.FrontendAPIURL()),
			SecretKeyRef: mcpv1.SecretKeyReference{Name: "shared-clerk", Key: "secret-key"},
		}},
		brokerTestMcpServer("team-a", mcpv1.ClerkSpec{
			Issuer:       mcpv1.IssuerURL(emA.FrontendAPIURL()),
			SecretKeyRef: mcpv1.SecretKeyReference{Name: "clerk", Key: "secret-key"},
		}),
		brokerTestMcpServer("team-b", mcpv1.ClerkSpec{
			InstanceRef: &mcpv1.ClerkInstanceReference{Kind: mcpv1.KindClusterClerkInstance, Name: "shared"},
		}),
	}
	for _, c := range []broker.Caller{gwA, gwB, intruder} {
		objs = append(objs, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: c.Namespace, Name: c.Name}})
	}
	for _, o := range objs {
		if err := admin.Create(ctx, o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}

	dir := t.TempDir()
	caFile, certFile, keyFile := writeBrokerCerts(t, dir)
	// sigterm ends the broker's context as SIGTERM would, without waiting
	// for it to return as InProcess.Stop does.
	term, sigterm := context.WithCancel(context.Background())
	defer sigterm()
	run := func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(term, cancel)()
		return runBroker(ctx, args, stdout, stderr)
	}
	b := testenv.RunInProcess(t, "broker", run,
		"--listen=127.0.0.1:0", "--health-listen=127.0.0.1:0",
		"--tls-cert-file="+certFile, "--tls-key-file="+keyFile,
		"--kubeconfig="+brokerKubeconfig(t, cluster, dir),
		"--cluster-resource-namespace="+operatorNS,
		"--clerk-api-url="+backend.URL+"/v1",
		"--clerk-probe-interval=200ms", "--shutdown-delay=2s", "--shutdown-grace=5s", "--log-level=debug")
	var addrs brokerStartLine
	b.JSONLine(t, &addrs)
	health := "http://" + addrs.Health

	deadline := time.Now().Add(60 * time.Second)
	for {
		status, body := httpGet(t, health+"/readyz")
		if status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never ready: %d %s\n%s", status, body, testenv.LastLines(b.Stderr.String(), 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if status, _ := httpGet(t, health+"/healthz"); status != http.StatusOK {
		t.Errorf("/healthz = %d", status)
	}

	t.Run("TLS only", func(t *testing.T) {
		resp, err := http.Post("http://"+addrs.Listen+broker.PathVerify, "application/json", strings.NewReader(`{"access_token":"x"}`))
		if err != nil {
			t.Fatalf("plain HTTP: %v; want net/http's 400 for HTTP on a TLS port", err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") == "application/json" {
			t.Errorf("plain HTTP answered %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	})

	clientOf := func(t *testing.T, listen string, c broker.Caller, audiences ...string) *broker.Client {
		t.Helper()
		tr, err := clientset.CoreV1().ServiceAccounts(c.Namespace).CreateToken(ctx, c.Name, &authnv1.TokenRequest{
			Spec: authnv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: ptr.To[int64](600)},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tokenFile := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(tokenFile, []byte(tr.Status.Token), 0o600); err != nil {
			t.Fatal(err)
		}
		cl, err := broker.NewClient(broker.ClientOptions{URL: "https://" + listen, TokenFile: tokenFile, CAFile: caFile})
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	mint := func(t *testing.T, em *clerktest.Server, format string) string {
		t.Helper()
		tok, err := em.MintAccessToken(clerktest.TokenRequest{Format: format})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	var tokens []string
	tests := map[string]struct {
		// caller is the ServiceAccount the token file is of.
		caller broker.Caller
		// audience of the ServiceAccount token: "" for the broker's,
		// apiServerAudience for none (the API server's own).
		audience string
		// em and format make the access token the gateway presents.
		em     *clerktest.Server
		format string
		// want is "ok", "invalid" (*clerk.InvalidTokenError) or "refused"
		// (broker.ErrRefused).
		want string
	}{
		"A's gateway, A's JWT":                                 {caller: gwA, em: emA, format: clerktest.FormatJWT, want: "ok"},
		"A's gateway, A's opaque token":                        {caller: gwA, em: emA, format: clerktest.FormatOpaque, want: "ok"},
		"A's gateway, B's JWT":                                 {caller: gwA, em: emB, format: clerktest.FormatJWT, want: "invalid"},
		"A's gateway, B's opaque token":                        {caller: gwA, em: emB, format: clerktest.FormatOpaque, want: "invalid"},
		"B's gateway (ClusterClerkInstance), B's JWT":          {caller: gwB, em: emB, format: clerktest.FormatJWT, want: "ok"},
		"B's gateway (ClusterClerkInstance), B's opaque token": {caller: gwB, em: emB, format: clerktest.FormatOpaque, want: "ok"},
		"B's gateway, A's JWT":                                 {caller: gwB, em: emA, format: clerktest.FormatJWT, want: "invalid"},
		"not a gateway's service account":                      {caller: intruder, em: emA, format: clerktest.FormatJWT, want: "refused"},
		"A's gateway token for the API server":                 {caller: gwA, audience: apiServerAudience, em: emA, format: clerktest.FormatJWT, want: "refused"},
		"A's gateway token for another audience":               {caller: gwA, audience: "vault", em: emA, format: clerktest.FormatJWT, want: "refused"},
	}
	for name, tc := range tests {
		var auds []string
		switch tc.audience {
		case "":
			auds = []string{config.BrokerAudience}
		case apiServerAudience:
		default:
			auds = []string{tc.audience}
		}
		cl := clientOf(t, addrs.Listen, tc.caller, auds...)
		tok := mint(t, tc.em, tc.format)
		tokens = append(tokens, tok)
		t.Run(name, func(t *testing.T) {
			id, err := cl.Verify(ctx, broker.AccessToken{Token: tok})
			var invalid *clerk.InvalidTokenError
			switch {
			case tc.want == "ok" && (err != nil || id.UserID != clerktest.DefaultUserID):
				t.Fatalf("Verify = %+v, %v; want the default user", id, err)
			case tc.want == "invalid" && !errors.As(err, &invalid):
				t.Fatalf("Verify error %v, want an invalid token", err)
			case tc.want == "refused" && !errors.Is(err, broker.ErrRefused):
				t.Fatalf("Verify error %v, want broker.ErrRefused", err)
			}
			if tc.want != "ok" {
				return
			}
			u, err := cl.User(ctx, broker.AccessToken{Token: tok})
			if err != nil || u.PrimaryEmail != clerktest.DefaultUserEmail {
				t.Errorf("User = %+v, %v; want the default user's email", u, err)
			}
		})
	}

	t.Run("without its RBAC: never ready, fails closed", func(t *testing.T) {
		u, err := cluster.Env.AddUser(envtest.User{Name: "nobody"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		kc, err := u.KubeConfig()
		if err != nil {
			t.Fatal(err)
		}
		kubeconfig := filepath.Join(t.TempDir(), "nobody.kubeconfig")
		if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
			t.Fatal(err)
		}
		nb := testenv.RunInProcess(t, "broker without rbac", runBroker,
			"--listen=127.0.0.1:0", "--health-listen=127.0.0.1:0",
			"--tls-cert-file="+certFile, "--tls-key-file="+keyFile, "--kubeconfig="+kubeconfig,
			"--cluster-resource-namespace="+operatorNS, "--clerk-api-url="+backend.URL+"/v1", "--clerk-probe-interval=200ms", "--shutdown-delay=0s")
		var nbAddrs brokerStartLine
		nb.JSONLine(t, &nbAddrs)
		for range 10 {
			if status, body := httpGet(t, "http://"+nbAddrs.Health+"/readyz"); status != http.StatusServiceUnavailable || !strings.Contains(body, "cache not synced") {
				t.Fatalf("/readyz = %d %s; want 503, cache not synced", status, body)
			}
			time.Sleep(200 * time.Millisecond)
		}
		cl := clientOf(t, nbAddrs.Listen, gwA, config.BrokerAudience)
		_, err = cl.Verify(ctx, broker.AccessToken{Token: mint(t, emA, clerktest.FormatJWT)})
		var unavailable *clerk.UnavailableError
		if !errors.As(err, &unavailable) || errors.Is(err, broker.ErrRefused) {
			t.Errorf("Verify error %v, want clerk unavailable (503), not a refusal", err)
		}
		if code := nb.Stop(t); code != 0 {
			t.Errorf("exit code %d after SIGTERM, want 0", code)
		}
	})

	status, metrics := httpGet(t, health+"/metrics")
	if status != http.StatusOK {
		t.Fatalf("/metrics = %d", status)
	}
	for _, want := range []string{
		`mcpgate_broker_requests_total{endpoint="verify",outcome="ok"} 4`,
		`mcpgate_broker_requests_total{endpoint="verify",outcome="forbidden"} 1`,
		`mcpgate_broker_clerk_reachable{url="` + backend.URL + `/v1"} 1`,
		`mcpgate_broker_requests_total{endpoint="verify",outcome="unauthenticated"} 2`,
		`mcpgate_broker_requests_total{endpoint="verify",outcome="invalid_token"} 3`,
		`mcpgate_broker_requests_total{endpoint="user",outcome="ok"} 4`,
		"mcpgate_broker_ready 1",
		"mcpgate_broker_backend_api_seconds_count",
		"go_goroutines ",
		"process_cpu_seconds_total ",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// SIGTERM: unready at once, still answering during --shutdown-delay,
	// then drained and exited 0.
	sigterm()
	drainDeadline := time.Now().Add(10 * time.Second)
	for {
		status, body := httpGet(t, health+"/readyz")
		if status == http.StatusServiceUnavailable && strings.Contains(body, "shutting down") {
			break
		}
		if time.Now().After(drainDeadline) {
			t.Fatalf("/readyz after SIGTERM = %d %s; want 503, shutting down", status, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tok := mint(t, emA, clerktest.FormatJWT)
	tokens = append(tokens, tok)
	if id, err := clientOf(t, addrs.Listen, gwA, config.BrokerAudience).Verify(ctx, broker.AccessToken{Token: tok}); err != nil || id.UserID != clerktest.DefaultUserID {
		t.Errorf("Verify while unready after SIGTERM = %+v, %v; want an answer until the delay is over", id, err)
	}
	if code := b.Stop(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	logs := b.Stderr.String()
	for _, want := range []string{`"msg":"Draining"`, `"msg":"Stopped mcpgate broker"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s", want)
		}
	}
	for _, secret := range append([]string{emA.SecretKey(), emB.SecretKey()}, tokens...) {
		if strings.Contains(logs, secret) {
			t.Fatal("a secret key or an access token is in the logs")
		}
	}
}

// apiServerAudience asks TokenRequest for no audience: the API server's own.
const apiServerAudience = "(api server)"

// brokerTestMcpServer is an McpServer "tools" in namespace with clerk.
func brokerTestMcpServer(namespace string, clerkSpec mcpv1.ClerkSpec) *mcpv1.McpServer {
	return &mcpv1.McpServer{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "tools"},
		Spec: mcpv1.McpServerSpec{
			Upstream: mcpv1.Upstream{Service: &mcpv1.UpstreamService{Name: "upstream", Port: intstr.FromInt32(8080)}},
			Clerk:    clerkSpec,
		},
	}
}

// clerkBackend is one Backend API for several emulated instances, which
// it tells apart by the secret key each request carries, as Clerk's does.
// A request with no known key gets 401.
func clerkBackend(t *testing.T, ems ...*clerktest.Server) *httptest.Server {
	t.Helper()
	targets := map[string]*url.URL{}
	for _, em := range ems {
		u, err := url.Parse(em.BackendAPIURL())
		if err != nil {
			t.Fatal(err)
		}
		targets["Bearer "+em.SecretKey()] = &url.URL{Scheme: u.Scheme, Host: u.Host}
	}
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(targets[pr.In.Header.Get("Authorization")])
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := targets[r.Header.Get("Authorization")]; !ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"errors":[{"code":"authentication_invalid","message":"Unauthorized"}]}`)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// brokerKubeconfig returns the kubeconfig of a user bound to the
// ClusterRole docs/broker.md gives the broker, and nothing else.
func brokerKubeconfig(t *testing.T, cluster *testenv.Cluster, dir string) string {
	t.Helper()
	ctx := context.Background()
	const user = "mcpgate-broker"
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "mcpgate-broker"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
			{APIGroups: []string{mcpv1.GroupVersion.Group}, Resources: []string{"mcpservers", "clerkinstances", "clusterclerkinstances"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}},
		},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "mcpgate-broker"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	for _, o := range []client.Object{role, binding} {
		if err := cluster.Admin.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	u, err := cluster.Env.AddUser(envtest.User{Name: user}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := u.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "broker.kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeBrokerCerts writes a CA and a serving certificate for 127.0.0.1 it
// signed, as the operator's TLS Secret holds them.
func writeBrokerCerts(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey, key := newKey(), newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mcpgate broker test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "mcpgate-broker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	caFile, certFile, keyFile = filepath.Join(dir, "ca.crt"), filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	for path, block := range map[string]*pem.Block{
		caFile:   {Type: "CERTIFICATE", Bytes: caDER},
		certFile: {Type: "CERTIFICATE", Bytes: der},
		keyFile:  {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caFile, certFile, keyFile
}

// httpGet returns the status and body of a GET, or 0 when it failed.
func httpGet(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

package faults_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

func TestMain(m *testing.M) {
	// envtest logs through controller-runtime: errors only. Without a
	// logger, controller-runtime complains with a stack trace instead.
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	os.Exit(m.Run())
}

const (
	namespace    = "default"
	gatewayImage = "registry.example/mcpgate:test"
)

// cluster is a real kube-apiserver and etcd (envtest) with the CRDs
// installed, a client for the test, and a kubeconfig for the managers.
type cluster struct {
	env        *envtest.Environment
	client     client.Client
	kubeconfig string
}

// startCluster starts envtest. Its kube-apiserver keeps its certificate
// directory across a restart (see restartAPIServer), so that kubeconfigs
// written before the restart stay valid after it.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	certDir := t.TempDir() // removed after the cluster stops: its Cleanup is registered later
	// NOTE: with no CertDir, envtest makes a temporary one, and Stop()
	// removes it and forgets it: a later Start() would make a new directory
	// with a new serving CA, and every client that trusts the old one (the
	// managers' kubeconfig) would fail TLS verification. Given a directory,
	// envtest leaves it alone and reuses the apiserver.crt it holds (it only
	// creates the serving certificate when the file is missing). The client
	// CA is kept in memory (SecureServing.Authn) and written again on each
	// start, and the secure port, once chosen, is kept in SecureServing, so
	// the restarted API server serves the same address with the same
	// certificates and accepts the same client certificates.
	// NOTE: on SIGTERM, kube-apiserver's graceful shutdown waits for open
	// requests to end (http.Server.Shutdown, up to 60s), and by default that
	// includes the watches of a running manager's informers: Stop() would hit
	// envtest's 20s stop timeout, SIGKILL the process and return an error.
	// With a watch termination grace period the API server ends the watches
	// itself as it shuts down, and stops in about a second.
	ec := testenv.StartCluster(t, testenv.Options{CRDs: true, Configure: func(env *envtest.Environment) {
		env.ControlPlane.GetAPIServer().CertDir = certDir
		env.ControlPlane.GetAPIServer().Configure().Set("shutdown-watch-termination-grace-period", "2s")
	}})
	return &cluster{env: ec.Env, client: ec.Admin, kubeconfig: ec.Kubeconfig}
}

// declare creates the Clerk Secret (once per namespace) and an McpServer
// like those of test/install: an upstream Service and a Clerk issuer that
// nothing listens on, which does not keep the gateway from being deployed.
func (c *cluster) declare(t *testing.T, name string) *mcpv1.McpServer {
	t.Helper()
	ctx := context.Background()
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "clerk"},
		StringData: map[string]string{"secret-key": "sk_test_faults"},
	}
	if err := c.client.Create(ctx, secret); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	mcp := &mcpv1.McpServer{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: mcpv1.McpServerSpec{
			Upstream: mcpv1.Upstream{Service: &mcpv1.UpstreamService{Name: "upstream", Port: intstr.FromInt32(8080)}},
			Clerk: mcpv1.ClerkSpec{
				Issuer:       "http://127.0.0.1:4455",
				SecretKeyRef: mcpv1.SecretKeyReference{Name: "clerk", Key: "secret-key"},
			},
		},
	}
	if err := c.client.Create(ctx, mcp); err != nil {
		t.Fatal(err)
	}
	return mcp
}

// waitDeployment waits until the gateway Deployment of McpServer name
// exists and satisfies ok (nil: any), and returns it.
func (c *cluster) waitDeployment(t *testing.T, timeout time.Duration, name string, ok func(*appsv1.Deployment) error, managers ...*manager) *appsv1.Deployment {
	t.Helper()
	d := &appsv1.Deployment{}
	eventually(t, timeout, "the gateway Deployment of McpServer "+name, func() error {
		if err := c.client.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name + "-gateway"}, d); err != nil {
			return err
		}
		if ok != nil {
			return ok(d)
		}
		return nil
	}, managers...)
	if img := d.Spec.Template.Spec.Containers[0].Image; img != gatewayImage {
		t.Errorf("gateway image = %q, want the --gateway-image flag %q", img, gatewayImage)
	}
	return d
}

// manager is `mcpgate manager` running as a subprocess.
type manager = testenv.Manager

// startManager runs `mcpgate manager` with the kubeconfig of the cluster's
// operator user, on free loopback ports, with extra flags appended.
func startManager(t *testing.T, c *cluster, name string, extra ...string) *manager {
	t.Helper()
	args := append([]string{"manager",
		"--metrics-bind-address=0", "--health-probe-bind-address=127.0.0.1:0",
		"--gateway-image=" + gatewayImage, "--clerk-api-url=http://127.0.0.1:9/v1",
	}, extra...)
	return testenv.StartManager(t, name, c.kubeconfig, args...)
}

// mustRun fails the test at once when the manager has exited.
func mustRun(t *testing.T, m *manager, when string) {
	t.Helper()
	if !m.Running() {
		t.Fatalf("manager %s exited %s: %v\noutput (last lines):\n%s", m.Name, when, m.ExitErr(), testenv.LastLines(m.Logs.String(), 40))
	}
}

// eventually retries check every 100ms until it succeeds or timeout has
// passed. It fails at once if one of the managers exits meanwhile: a manager
// must never exit on its own.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error, managers ...*manager) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		for _, m := range managers {
			mustRun(t, m, "while waiting for "+what)
		}
		if time.Now().After(deadline) {
			var out strings.Builder
			for _, m := range managers {
				fmt.Fprintf(&out, "\nmanager %s output (last lines):\n%s", m.Name, testenv.LastLines(m.Logs.String(), 30))
			}
			t.Fatalf("%s: not within %s: %v%s", what, timeout, err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// linesWith returns the lines of s that contain every one of words.
func linesWith(s string, words ...string) []string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		ok := line != ""
		for _, w := range words {
			ok = ok && strings.Contains(line, w)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

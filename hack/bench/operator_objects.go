package main

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/internal/localstack"
)

// backendCounter counts the Backend API requests the emulator answers.
type backendCounter struct {
	calls atomic.Int64
	// emu is set right after the emulator starts; it is atomic because the
	// observer runs on the emulator's goroutines.
	emu atomic.Pointer[clerktest.Server]
}

// observe counts an exchange and undoes a settings PATCH. The one emulator
// serves every issuer, while the controller keeps one view per issuer: left
// alone, the first instance's PATCH would show the others as already
// configured, and how many PATCHes the run makes would depend on timing.
// Restoring the setting keeps every issuer a Clerk instance of its own that
// starts with dynamic client registration off.
func (b *backendCounter) observe(ex clerktest.Exchange) {
	b.calls.Add(1)
	if ex.Request.Method != http.MethodPatch || ex.Request.URL.Path != settingsPath || ex.Status != http.StatusOK {
		return
	}
	if emu := b.emu.Load(); emu != nil {
		st := emu.Settings()
		st.DynamicOAuthClientRegistration = false
		emu.SetSettings(st)
	}
}

// benchNamespace names namespace n (0-based).
func benchNamespace(n int) string { return fmt.Sprintf("bench-%02d", n+1) }

// benchIssuer is the issuer of Clerk instance n: a path under the one
// emulator's Frontend API URL, distinct per instance (the controller keys
// instances by issuer), as controllers/mcpserver_clerk_test.go does.
func benchIssuer(frontendURL string, n int) string {
	return fmt.Sprintf("%s/%d-bench", frontendURL, n+1)
}

// benchMcpServers are the McpServers of the run: round-robin over the
// namespaces and, independently, over the Clerk instances.
func benchMcpServers(opts operatorOptions, frontendURL string) []*mcpv1.McpServer {
	clerk := func(i int) mcpv1.ClerkSpec {
		if clerkReferences(opts, i) == mcpv1.KindClusterClerkInstance {
			return mcpv1.ClerkSpec{InstanceRef: &mcpv1.ClerkInstanceReference{
				Kind: mcpv1.KindClusterClerkInstance, Name: benchClusterInstance(i % opts.ClerkInstances)}}
		}
		return mcpv1.ClerkSpec{
			Issuer:        mcpv1.IssuerURL(benchIssuer(frontendURL, i%opts.ClerkInstances)),
			SecretKeyRef:  mcpv1.SecretKeyReference{Name: benchSecretName, Key: benchSecretKey},
			ClerkSettings: mcpv1.ClerkSettings{DynamicClientRegistration: ptr.To(true)},
		}
	}
	out := make([]*mcpv1.McpServer, opts.McpServers)
	for i := range out {
		ns := benchNamespace(i % opts.Namespaces)
		name := fmt.Sprintf("mcp-%04d", i+1)
		out[i] = &mcpv1.McpServer{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: mcpv1.McpServerSpec{
				Upstream: mcpv1.Upstream{Service: &mcpv1.UpstreamService{Name: benchUpstream, Port: intstr.FromInt32(8080)}},
				Clerk:    clerk(i),
				Ingress:  &mcpv1.IngressSpec{Host: fmt.Sprintf("%s.%s.bench.example", name, ns)},
			},
		}
	}
	return out
}

// clerkReferences is how McpServer i of the run names its Clerk instance:
// "inline" or mcpv1.KindClusterClerkInstance. With MixedReferences the odd
// ones reference a ClusterClerkInstance and the even ones declare inline;
// with an even number of Clerk instances the two kinds never share one
// (instance n serves McpServers i with i % ClerkInstances == n).
func clerkReferences(opts operatorOptions, i int) string {
	if opts.ClusterInstances || (opts.MixedReferences && i%2 == 1) {
		return mcpv1.KindClusterClerkInstance
	}
	return referencesInline
}

// referencesInline is the group of McpServers that declare their Clerk
// instance inline.
const referencesInline = "inline"

// benchClusterInstance names the ClusterClerkInstance of Clerk instance n.
func benchClusterInstance(n int) string { return fmt.Sprintf("bench-%d", n+1) }

// createOperatorNamespace creates the operator's namespace, where the
// operator keeps the broker's TLS Secret, with the Clerk key Secret in it
// and, with ClusterInstances or MixedReferences, one ClusterClerkInstance per issuer,
// declaring what the inline McpServers would. It then waits for the TLS
// Secret, so that no phase times the broker's set-up. It is set-up, not timed.
func (s *scaleRun) createOperatorNamespace(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	if err := s.createNamespaceWithSecret(ctx, benchOperatorNamespace); err != nil {
		return err
	}
	if err := s.waitBrokerTLS(ctx); err != nil {
		return err
	}
	if !s.opts.ClusterInstances && !s.opts.MixedReferences {
		return nil
	}
	for n := range s.opts.ClerkInstances {
		inst := &mcpv1.ClusterClerkInstance{
			ObjectMeta: metav1.ObjectMeta{Name: benchClusterInstance(n)},
			Spec: mcpv1.ClerkInstanceSpec{
				Issuer:        mcpv1.IssuerURL(benchIssuer(s.emu.FrontendAPIURL(), n)),
				SecretKeyRef:  mcpv1.SecretKeyReference{Name: benchSecretName, Key: benchSecretKey},
				ClerkSettings: mcpv1.ClerkSettings{DynamicClientRegistration: ptr.To(true)},
			},
		}
		if err := s.c.Create(ctx, inst); err != nil {
			return fmt.Errorf("create clusterclerkinstance %s: %w", inst.Name, err)
		}
	}
	return nil
}

// createNamespaces creates the namespaces and, in each, the Secret with
// the Clerk secret key. It is set-up, not timed.
func (s *scaleRun) createNamespaces(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	return forEach(ctx, s.opts.Namespaces, operatorWorkers, func(ctx context.Context, n int) error {
		return s.createNamespaceWithSecret(ctx, benchNamespace(n))
	})
}

// createNamespaceWithSecret creates namespace ns and, in it, the Secret with
// the Clerk secret key.
func (s *scaleRun) createNamespaceWithSecret(ctx context.Context, ns string) error {
	if err := s.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: benchSecretName},
		Data:       map[string][]byte{benchSecretKey: []byte(s.emu.SecretKey())},
	}
	if err := s.c.Create(ctx, secret); err != nil {
		return fmt.Errorf("create secret %s/%s: %w", ns, benchSecretName, err)
	}
	return nil
}

// waitBrokerTLS waits for the operator to make the broker's TLS Secret.
func (s *scaleRun) waitBrokerTLS(ctx context.Context) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := s.c.Get(ctx, client.ObjectKey{Namespace: benchOperatorNamespace, Name: localstack.BrokerTLSSecret}, &corev1.Secret{})
		if !apierrors.IsNotFound(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the operator made no broker TLS Secret: %w", context.Cause(ctx))
		case <-tick.C:
		}
	}
}

package controllers

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/broker"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

// resolverFixture is a resolver reading from a broker cache of its own on the
// shared test cluster, with a clock the test moves.
type resolverFixture struct {
	tc       *testCluster
	reader   cache.Cache
	clock    *clocktesting.FakeClock
	resolver *BrokerResolver
}

func newResolverFixture(t *testing.T, clusterResourceNamespace string) *resolverFixture {
	t.Helper()
	tc := envCluster(t)
	ctx, cancel := context.WithCancel(context.Background())
	c, err := NewBrokerCache(ctx, tc.cfg, testenv.Scheme())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = c.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	if !c.WaitForCacheSync(ctx) {
		t.Fatal("broker cache did not sync")
	}
	clock := clocktesting.NewFakeClock(time.Now())
	r, err := NewBrokerResolver(BrokerResolverOptions{
		Reader:                   c,
		SecretReader:             tc.client,
		ClusterResourceNamespace: clusterResourceNamespace,
		ClerkAPIURL:              "https://api.clerk.test/v1",
		Now:                      clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &resolverFixture{tc: tc, reader: c, clock: clock, resolver: r}
}

// create creates objs and waits until the broker's cache holds those of
// the kinds it caches, so that a refusal in the test is the resolver's
// answer and not the cache lagging behind.
func (f *resolverFixture) create(t *testing.T, objs ...client.Object) {
	t.Helper()
	ctx := context.Background()
	for _, obj := range objs {
		if err := f.tc.client.Create(ctx, obj); err != nil {
			t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
		}
		t.Cleanup(func() { _ = f.tc.client.Delete(context.Background(), obj) })
	}
	for _, obj := range objs {
		if _, ok := obj.(*corev1.Secret); ok {
			continue
		}
		eventually(t, func() error {
			return f.reader.Get(ctx, client.ObjectKeyFromObject(obj), obj.DeepCopyObject().(client.Object))
		})
	}
}

func resolverKeySecret(namespace, name, value string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		StringData: map[string]string{"secret-key": value},
	}
}

// TestBrokerResolver resolves gateways' ServiceAccounts to the Clerk
// instances of their McpServers, as the three kinds of binding say, and
// refuses every ServiceAccount that is not the gateway of an McpServer
// whose instance exists.
func TestBrokerResolver(t *testing.T) {
	t.Parallel()
	f := newResolverFixture(t, testClusterResourceNamespace)
	ns := f.tc.newNamespace(t)
	other := f.tc.newNamespace(t)
	const (
		nsIssuer      = "https://team.clerk.test"
		clusterIssuer = "https://shared.clerk.test"
	)
	clusterInstance := ns // unique per run, and a valid name
	f.create(t,
		resolverKeySecret(ns, "clerk", "sk_test_inline"),
		resolverKeySecret(ns, "team-clerk", "sk_test_team"),
		resolverKeySecret(testClusterResourceNamespace, clusterInstance, "sk_test_shared"),
		// A Secret of the ClusterClerkInstance's Secret's name in the team
		// namespace, which the broker must not read.
		resolverKeySecret(ns, clusterInstance, "sk_test_decoy"),
		&mcpv1.ClerkInstance{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "team"},
			Spec:       instanceSpec(nsIssuer, "team-clerk", mcpv1.ClerkSettings{}),
		},
		&mcpv1.ClusterClerkInstance{
			ObjectMeta: metav1.ObjectMeta{Name: clusterInstance},
			Spec:       instanceSpec(clusterIssuer, clusterInstance, mcpv1.ClerkSettings{}),
		},
		newMcpServer(ns, "inline"),
		newMcpServer(ns, "public", withIssuer("https://public.clerk.test"), withIngress(ns+".example.com", "tools-tls")),
		newMcpServer(ns, "by-instance", usingInstance(mcpv1.KindClerkInstance, "team")),
		newMcpServer(ns, "by-cluster", usingInstance(mcpv1.KindClusterClerkInstance, clusterInstance)),
		newMcpServer(ns, "no-instance", usingInstance(mcpv1.KindClerkInstance, "absent")),
		newMcpServer(ns, "no-cluster", usingInstance(mcpv1.KindClusterClerkInstance, clusterInstance+"-absent")),
		newMcpServer(other, "elsewhere"),
	)

	tests := map[string]struct {
		// caller is the ServiceAccount asking.
		caller broker.Caller
		// want is the instance (SecretKey aside); nil for ErrNoInstance.
		want *broker.Instance
		// wantKey is what SecretKey returns.
		wantKey string
	}{
		"inline clerk block": {
			caller: broker.Caller{Namespace: ns, Name: "inline-gateway"},
			want: &broker.Instance{ID: "McpServer/" + ns + "/inline", Issuer: testIssuer,
				BackendAPIURL: "https://api.clerk.test/v1", KeyRef: ns + "/clerk/secret-key"},
			wantKey: "sk_test_inline",
		},
		"public url pins the audience": {
			caller: broker.Caller{Namespace: ns, Name: "public-gateway"},
			want: &broker.Instance{ID: "McpServer/" + ns + "/public", Issuer: "https://public.clerk.test",
				BackendAPIURL: "https://api.clerk.test/v1", KeyRef: ns + "/clerk/secret-key",
				Audiences: []string{"https://" + ns + ".example.com/mcp"}},
			wantKey: "sk_test_inline",
		},
		"ClerkInstance": {
			caller: broker.Caller{Namespace: ns, Name: "by-instance-gateway"},
			want: &broker.Instance{ID: "ClerkInstance/" + ns + "/team", Issuer: nsIssuer,
				BackendAPIURL: "https://api.clerk.test/v1", KeyRef: ns + "/team-clerk/secret-key"},
			wantKey: "sk_test_team",
		},
		"ClusterClerkInstance: key from the cluster resource namespace": {
			caller: broker.Caller{Namespace: ns, Name: "by-cluster-gateway"},
			want: &broker.Instance{ID: "ClusterClerkInstance/" + clusterInstance, Issuer: clusterIssuer,
				BackendAPIURL: "https://api.clerk.test/v1", KeyRef: testClusterResourceNamespace + "/" + clusterInstance + "/secret-key"},
			wantKey: "sk_test_shared",
		},
		"another namespace's McpServer of the same name": {
			caller: broker.Caller{Namespace: other, Name: "inline-gateway"},
		},
		"the same name in the McpServer's namespace, asked from another": {
			caller: broker.Caller{Namespace: ns, Name: "elsewhere-gateway"},
		},
		"unknown McpServer": {
			caller: broker.Caller{Namespace: ns, Name: "missing-gateway"},
		},
		"service account not named like a gateway": {
			caller: broker.Caller{Namespace: ns, Name: "inline"},
		},
		"the suffix alone": {
			caller: broker.Caller{Namespace: ns, Name: "-gateway"},
		},
		"the default service account": {
			caller: broker.Caller{Namespace: ns, Name: "default"},
		},
		"ClerkInstance missing": {
			caller: broker.Caller{Namespace: ns, Name: "no-instance-gateway"},
		},
		"ClusterClerkInstance missing": {
			caller: broker.Caller{Namespace: ns, Name: "no-cluster-gateway"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			got, err := f.resolver.Resolve(ctx, tc.caller)
			if tc.want == nil {
				if !errors.Is(err, broker.ErrNoInstance) {
					t.Fatalf("Resolve(%s) = %+v, %v; want ErrNoInstance", tc.caller, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve(%s): %v", tc.caller, err)
			}
			if got.SecretKey == nil {
				t.Fatal("no SecretKey")
			}
			key, err := got.SecretKey(ctx)
			if err != nil || key != tc.wantKey {
				t.Errorf("SecretKey() = %q, %v; want %q", key, err, tc.wantKey)
			}
			got.SecretKey = nil
			if got.ID != tc.want.ID || got.Issuer != tc.want.Issuer || got.BackendAPIURL != tc.want.BackendAPIURL ||
				got.KeyRef != tc.want.KeyRef || !slices.Equal(got.Audiences, tc.want.Audiences) {
				t.Errorf("Resolve(%s) =\n%+v\nwant\n%+v", tc.caller, got, *tc.want)
			}
		})
	}
}

// TestBrokerResolver_keyRotation checks that SecretKey follows the Secret:
// the key read is reused for the TTL, the rotated one used after it, and a
// deleted Secret is an error that never names the key.
func TestBrokerResolver_keyRotation(t *testing.T) {
	t.Parallel()
	f := newResolverFixture(t, testClusterResourceNamespace)
	ns := f.tc.newNamespace(t)
	secret := resolverKeySecret(ns, "clerk", "sk_test_before")
	f.create(t, secret, newMcpServer(ns, "tools"))
	ctx := context.Background()
	inst, err := f.resolver.Resolve(ctx, broker.Caller{Namespace: ns, Name: "tools-gateway"})
	if err != nil {
		t.Fatal(err)
	}
	keyIs := func(want string) {
		t.Helper()
		if got, err := inst.SecretKey(ctx); err != nil || got != want {
			t.Fatalf("SecretKey() = %q, %v; want %q", got, err, want)
		}
	}
	keyIs("sk_test_before")

	secret.StringData = map[string]string{"secret-key": "sk_test_after"}
	if err := f.tc.client.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	keyIs("sk_test_before") // within the TTL: no read
	f.clock.Step(DefaultBrokerKeyTTL)
	keyIs("sk_test_after")

	if err := f.tc.client.Delete(ctx, secret); err != nil {
		t.Fatal(err)
	}
	f.clock.Step(DefaultBrokerKeyTTL)
	key, err := inst.SecretKey(ctx)
	if err == nil || key != "" {
		t.Fatalf("SecretKey() after the Secret went = %q, %v; want an error", key, err)
	}
	if errors.Is(err, broker.ErrNoInstance) || strings.Contains(err.Error(), "sk_test_") {
		t.Errorf("error %q: want a plain error naming no key", err)
	}
}

// TestBrokerResolver_cannotTell checks that a resolver that cannot read
// what it needs says so with an error the broker answers 503, never
// ErrNoInstance (403) and never an instance.
func TestBrokerResolver_cannotTell(t *testing.T) {
	t.Parallel()
	tc := envCluster(t)
	ns := tc.newNamespace(t)

	t.Run("cache not started", func(t *testing.T) {
		c, err := NewBrokerCache(context.Background(), tc.cfg, testenv.Scheme())
		if err != nil {
			t.Fatal(err)
		}
		r, err := NewBrokerResolver(BrokerResolverOptions{Reader: c, SecretReader: tc.client, ClerkAPIURL: "https://api.clerk.test/v1"})
		if err != nil {
			t.Fatal(err)
		}
		if inst, err := r.Resolve(context.Background(), broker.Caller{Namespace: ns, Name: "tools-gateway"}); err == nil || errors.Is(err, broker.ErrNoInstance) {
			t.Fatalf("Resolve = %+v, %v; want an error other than ErrNoInstance", inst, err)
		}
	})

	t.Run("no cluster resource namespace", func(t *testing.T) {
		f := newResolverFixture(t, "")
		name := ns + "-shared"
		f.create(t,
			&mcpv1.ClusterClerkInstance{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec:       instanceSpec("https://shared.clerk.test", "shared", mcpv1.ClerkSettings{}),
			},
			newMcpServer(ns, "tools", usingInstance(mcpv1.KindClusterClerkInstance, name)),
		)
		inst, err := f.resolver.Resolve(context.Background(), broker.Caller{Namespace: ns, Name: "tools-gateway"})
		if err == nil || errors.Is(err, broker.ErrNoInstance) {
			t.Fatalf("Resolve = %+v, %v; want an error other than ErrNoInstance", inst, err)
		}
	})
}

package controllers

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/gateway/config"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

// testBrokerURL is the broker of the broker cluster's manager.
const testBrokerURL = "https://mcpgate-broker.mcpgate-system.svc:8443"

// brokerOptions are testOptions with the broker.
func brokerOptions() Options {
	opts := testOptions
	opts.BrokerURL = testBrokerURL
	opts.ClusterResourceNamespace = testClusterResourceNamespace
	return opts.withDefaults()
}

// brokerClock is the clock of the broker cluster's BrokerTLSReconciler,
// which the rotation test moves on by months.
var (
	brokerClock *clocktesting.FakeClock
	// brokerTLSReconciler is the broker cluster's, for reconciles by hand.
	brokerTLSReconciler *BrokerTLSReconciler
	// brokerSecretReads counts the McpServer reconciler's uncached reads of
	// the broker's TLS Secret.
	brokerSecretReads = &secretReadCounter{name: DefaultBrokerTLSSecret}
)

// secretReadCounter counts the Gets of the Secrets named name.
type secretReadCounter struct {
	client.Reader
	name string
	n    atomic.Int64
}

func (c *secretReadCounter) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*corev1.Secret); ok && key.Name == c.name {
		c.n.Add(1)
	}
	return c.Reader.Get(ctx, key, obj, opts...)
}

// envBrokerCluster returns the broker cluster, starting it on first use.
func envBrokerCluster(t *testing.T) *testCluster {
	t.Helper()
	brokerClusterOnce.Do(func() {
		c, err := testenv.NewCluster(testenv.Options{CRDs: true})
		if err != nil {
			brokerClusterErr = err
			return
		}
		brokerClock = clocktesting.NewFakeClock(time.Now())
		brokerCluster, brokerClusterErr = startManager(c, brokerOptions(), func(mgr ctrl.Manager, r *McpServerReconciler) error {
			brokerSecretReads.Reader = r.APIReader
			r.APIReader = brokerSecretReads
			brokerTLSReconciler = &BrokerTLSReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: r.Recorder, Clock: brokerClock, Options: r.Options}
			return brokerTLSReconciler.SetupWithManager(mgr)
		})
		if brokerClusterErr != nil {
			brokerClusterErr = errors.Join(brokerClusterErr, c.Stop())
		}
	})
	if brokerClusterErr != nil {
		t.Fatalf("start the broker cluster: %v", brokerClusterErr)
	}
	return brokerCluster
}

func newBrokerFixture(t *testing.T) *fixture {
	t.Helper()
	tc := envBrokerCluster(t)
	f := &fixture{t: t, tc: tc, ns: tc.newNamespace(t)}
	t.Cleanup(func() {
		_ = tc.client.DeleteAllOf(context.Background(), &mcpv1.McpServer{}, client.InNamespace(f.ns))
	})
	return f
}

func TestBuildDeployment_broker(t *testing.T) {
	t.Parallel()
	mcp := newMcpServer("team-a", "tools")
	pod := typed[appsv1.Deployment](t, buildDeployment(mcp, brokerOptions(), "h", mcp.Spec.Clerk.SecretKeyRef)).Spec.Template.Spec
	if pod.ServiceAccountName != "tools-gateway" {
		t.Errorf("service account = %q, want the gateway's own", pod.ServiceAccountName)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the service account's API token is mounted")
	}
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
		if v.Secret != nil {
			t.Errorf("volume %s mounts Secret %s: with the broker the gateway holds no key", v.Name, v.Secret.SecretName)
		}
	}
	if _, ok := vols[secretVolume]; ok {
		t.Errorf("the pod has the %s volume", secretVolume)
	}
	want := corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{
		ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: config.BrokerAudience, ExpirationSeconds: ptr.To[int64](3600), Path: "token"},
	}}}}
	if got := vols[brokerTokenVolume].VolumeSource; !reflect.DeepEqual(got, want) {
		t.Errorf("token volume = %+v, want %+v", got, want)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range pod.Containers[0].VolumeMounts {
		mounts[m.Name] = m
	}
	if m := mounts[brokerTokenVolume]; !m.ReadOnly || m.MountPath+"/token" != brokerConfig(brokerOptions()).TokenFile {
		t.Errorf("token mount = %+v, want read-only where the config's tokenFile is", m)
	}
	if _, ok := mounts[secretVolume]; ok {
		t.Errorf("the container mounts %s", secretVolume)
	}

	// Without the broker, nothing of it.
	pod = typed[appsv1.Deployment](t, buildDeployment(mcp, testOptions, "h", mcp.Spec.Clerk.SecretKeyRef)).Spec.Template.Spec
	if pod.ServiceAccountName != "" {
		t.Errorf("without the broker the gateway runs as %q", pod.ServiceAccountName)
	}
	for _, v := range pod.Volumes {
		if v.Name == brokerTokenVolume {
			t.Error("without the broker the pod has the token volume")
		}
	}
}

func TestBuildGatewayConfig_broker(t *testing.T) {
	t.Parallel()
	mcp := newMcpServer("team-a", "tools")
	tests := map[string]struct {
		opts       Options
		wantBroker *config.Broker // nil: the gateway reads its key itself
	}{
		"without a broker the gateway reads its key": {opts: testOptions},
		"with one it has none and asks the broker": {opts: brokerOptions(), wantBroker: &config.Broker{
			URL: testBrokerURL, CAFile: "/etc/mcpgate/config/broker-ca.crt", TokenFile: "/var/run/secrets/mcpgate.dev/broker/token",
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data, err := config.Marshal(buildGatewayConfig(mcp, tc.opts, testIssuer, "http://upstream.team-a.svc:8080/mcp"))
			if err != nil {
				t.Fatalf("the gateway would refuse its config: %v", err)
			}
			cfg, err := config.Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.Broker, tc.wantBroker) {
				t.Errorf("broker = %+v, want %+v", cfg.Broker, tc.wantBroker)
			}
			if want := map[bool]string{true: "", false: secretDir + "/" + secretFileName}[tc.wantBroker != nil]; cfg.Clerk.SecretKeyFile != want {
				t.Errorf("secretKeyFile = %q, want %q", cfg.Clerk.SecretKeyFile, want)
			}
		})
	}
}

func TestBuildConfigMap_brokerCA(t *testing.T) {
	t.Parallel()
	mcp := newMcpServer("team-a", "tools")
	data := []byte(`{"apiVersion":"gateway.mcpgate.dev/v1alpha1"}`)
	without := typed[corev1.ConfigMap](t, buildConfigMap(mcp, data, ""))
	if _, ok := without.Data[config.BrokerCAKey]; ok || len(without.Data) != 1 {
		t.Errorf("without a bundle the ConfigMap holds %v", without.Data)
	}
	with := typed[corev1.ConfigMap](t, buildConfigMap(mcp, data, "-----BEGIN CERTIFICATE-----\n"))
	if with.Data[config.BrokerCAKey] != "-----BEGIN CERTIFICATE-----\n" || with.Data[config.FileName] != string(data) {
		t.Errorf("with a bundle the ConfigMap holds %v", with.Data)
	}
}

func TestBuildServiceAccount(t *testing.T) {
	t.Parallel()
	mcp := newMcpServer("team-a", "tools")
	sa := typed[corev1.ServiceAccount](t, buildServiceAccount(mcp))
	if sa.Name != "tools-gateway" || sa.Namespace != "team-a" {
		t.Errorf("name = %s/%s", sa.Namespace, sa.Name)
	}
	assertOwnedBy(t, sa.ObjectMeta, mcp)
	if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Error("the ServiceAccount's token is mounted automatically")
	}
}

func TestBuildGatewayEgressPolicy_broker(t *testing.T) {
	t.Parallel()
	mcp := newMcpServer("team-a", "tools")
	brokerRule := func(opts Options) *networkingv1.NetworkPolicyEgressRule {
		pol := typed[networkingv1.NetworkPolicy](t, buildGatewayEgressPolicy(mcp, map[string]string{"app": "up"}, intstr.FromInt32(8080), opts))
		for _, r := range pol.Spec.Egress {
			for _, to := range r.To {
				if to.NamespaceSelector != nil && to.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] == testClusterResourceNamespace {
					return &r
				}
			}
		}
		return nil
	}
	if r := brokerRule(testOptions); r != nil {
		t.Errorf("without the broker: rule %+v", r)
	}
	r := brokerRule(brokerOptions())
	if r == nil || len(r.Ports) != 1 || r.Ports[0].Port.IntValue() != 8443 {
		t.Errorf("with the broker on 8443: rule %+v, want that port in the operator's namespace", r)
	}
	on443 := brokerOptions()
	on443.BrokerURL = "https://mcpgate-broker.mcpgate-system.svc"
	if r := brokerRule(on443); r != nil {
		t.Errorf("with the broker on 443, which is open anyway: rule %+v", r)
	}
}

func TestBrokerBundleChanged(t *testing.T) {
	t.Parallel()
	secret := func(name, hash, version string) *corev1.Secret {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "mcpgate-system", Name: name, ResourceVersion: version}}
		if hash != "" {
			s.Annotations = map[string]string{brokerCABundleAnnotation: hash}
		}
		return s
	}
	p := brokerBundleChanged("mcpgate-system", "mcpgate-broker-tls")
	tests := map[string]struct {
		old, new *corev1.Secret
		want     bool
	}{
		"a new bundle":                          {secret("mcpgate-broker-tls", "a", "1"), secret("mcpgate-broker-tls", "b", "2"), true},
		"a renewed serving certificate":         {secret("mcpgate-broker-tls", "a", "1"), secret("mcpgate-broker-tls", "a", "2"), false},
		"a Secret someone else keeps changes":   {secret("mcpgate-broker-tls", "", "1"), secret("mcpgate-broker-tls", "", "2"), true},
		"another Secret":                        {secret("other", "a", "1"), secret("other", "b", "2"), false},
		"the same name in some other namespace": {nil, nil, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if tc.old == nil {
				tc.old, tc.new = secret("mcpgate-broker-tls", "a", "1"), secret("mcpgate-broker-tls", "b", "2")
				tc.old.Namespace, tc.new.Namespace = "team-a", "team-a"
			}
			if got := p.Update(event.UpdateEvent{ObjectOld: tc.old, ObjectNew: tc.new}); got != tc.want {
				t.Errorf("update passes = %v, want %v", got, tc.want)
			}
		})
	}
	if !p.Create(event.CreateEvent{Object: secret("mcpgate-broker-tls", "a", "1")}) || !p.Delete(event.DeleteEvent{Object: secret("mcpgate-broker-tls", "a", "1")}) {
		t.Error("the TLS Secret's creation or deletion does not pass")
	}
}

// brokerTLS reads the broker's TLS Secret from the API server.
func brokerTLS(f *fixture) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	err := f.tc.client.Get(context.Background(), client.ObjectKey{Namespace: testClusterResourceNamespace, Name: DefaultBrokerTLSSecret}, s)
	return s, err
}

// pokeBrokerTLS changes the CA Secret's annotations so that the broker TLS
// controller looks again, at the fake clock's time.
func pokeBrokerTLS(f *fixture, n int) {
	f.t.Helper()
	eventually(f.t, func() error {
		s := &corev1.Secret{}
		if err := f.tc.client.Get(context.Background(), client.ObjectKey{Namespace: testClusterResourceNamespace, Name: brokerCASecretName(DefaultBrokerTLSSecret)}, s); err != nil {
			return err
		}
		patch := client.MergeFrom(s.DeepCopy())
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations["test.mcpgate.dev/poke"] = strconv.Itoa(n)
		return f.tc.client.Patch(context.Background(), s, patch)
	})
}

// servingChainsTo checks that the TLS Secret's serving certificate pairs
// with its key and chains, at the broker clock's time and for the broker's
// host, to a CA of bundle.
func servingChainsTo(s *corev1.Secret, bundle []byte) error {
	pair, err := tls.X509KeyPair(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return fmt.Errorf("the serving pair: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(bundle) {
		return errors.New("the bundle holds no certificate")
	}
	_, err = pair.Leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: brokerClock.Now(), DNSName: "mcpgate-broker.mcpgate-system.svc",
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err
}

// TestBroker runs McpServers under a manager with a broker. Its subtests
// share the broker's certificates, and the last moves their clock by
// months, so they run one after the other.
func TestBroker(t *testing.T) {
	t.Run("the operator keeps the broker's certificates in the TLS Secret", func(t *testing.T) {
		f := newBrokerFixture(t)
		var s *corev1.Secret
		eventually(t, func() (err error) {
			s, err = brokerTLS(f)
			return err
		})
		if s.Type != corev1.SecretTypeTLS || s.Labels[config.LabelManagedBy] != config.ManagedByValue {
			t.Errorf("type %s, labels %v", s.Type, s.Labels)
		}
		if _, ok := s.Data[brokerCAKeyKey]; ok {
			t.Error("the TLS Secret, which the broker mounts, holds the CA's key")
		}
		if err := servingChainsTo(s, s.Data[brokerCABundleKey]); err != nil {
			t.Errorf("the serving certificate does not chain to ca.crt: %v", err)
		}
		leaf := parseCertificates(s.Data[corev1.TLSCertKey])[0]
		wantNames := []string{"mcpgate-broker.mcpgate-system.svc", "mcpgate-broker", "mcpgate-broker.mcpgate-system", "mcpgate-broker.mcpgate-system.svc.cluster.local"}
		if !reflect.DeepEqual(leaf.DNSNames, wantNames) {
			t.Errorf("names = %v, want %v", leaf.DNSNames, wantNames)
		}
		ca := &corev1.Secret{}
		if err := f.tc.client.Get(context.Background(), client.ObjectKey{Namespace: testClusterResourceNamespace, Name: brokerCASecretName(DefaultBrokerTLSSecret)}, ca); err != nil {
			t.Fatalf("the CA Secret: %v", err)
		}
		if signer, _ := matchCAKey(parseCertificates(s.Data[brokerCABundleKey]), ca.Data[brokerCAKeyKey]); signer == nil {
			t.Error("the CA Secret's key is no CA's of the bundle")
		}

		// Nothing due: a reconcile writes nothing.
		for range 2 {
			if _, err := brokerTLSReconciler.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(s)}); err != nil {
				t.Fatalf("reconcile: %v", err)
			}
		}
		again, err := brokerTLS(f)
		if err != nil {
			t.Fatal(err)
		}
		caAgain := &corev1.Secret{}
		if err := f.tc.client.Get(context.Background(), client.ObjectKeyFromObject(ca), caAgain); err != nil {
			t.Fatal(err)
		}
		if again.ResourceVersion != s.ResourceVersion || caAgain.ResourceVersion != ca.ResourceVersion {
			t.Errorf("a reconcile with nothing due wrote the Secrets: %s -> %s, %s -> %s", s.ResourceVersion, again.ResourceVersion, ca.ResourceVersion, caAgain.ResourceVersion)
		}
	})

	t.Run("a gateway runs as its own ServiceAccount, holds no key and trusts the broker's CA", func(t *testing.T) {
		f := newBrokerFixture(t)
		f.createSecret("clerk", map[string]string{"secret-key": "sk_test_team"})
		f.create(newMcpServer(f.ns, "tools"))
		mcp := f.waitMcp("tools", observed)

		sa := waitFor(f, "tools-gateway", &corev1.ServiceAccount{}, nil)
		if err := hasOwner(sa, mcp); err != nil {
			t.Error(err)
		}
		if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
			t.Error("the ServiceAccount's token is mounted automatically")
		}
		d := waitFor(f, "tools-gateway", &appsv1.Deployment{}, nil)
		pod := d.Spec.Template.Spec
		if pod.ServiceAccountName != "tools-gateway" {
			t.Errorf("the gateway runs as %q", pod.ServiceAccountName)
		}
		for _, v := range pod.Volumes {
			if v.Secret != nil || v.Name == secretVolume {
				t.Errorf("the gateway mounts volume %s (Secret %v)", v.Name, v.Secret)
			}
			if v.Projected != nil && v.Name == brokerTokenVolume {
				if tok := v.Projected.Sources[0].ServiceAccountToken; tok == nil || tok.Audience != config.BrokerAudience || tok.ExpirationSeconds == nil || *tok.ExpirationSeconds != 3600 {
					t.Errorf("token projection = %+v", v.Projected.Sources[0])
				}
			}
		}
		tlsSecret, err := brokerTLS(f)
		if err != nil {
			t.Fatal(err)
		}
		cm := waitFor(f, "tools-gateway", &corev1.ConfigMap{}, func(cm *corev1.ConfigMap) error {
			if cm.Data[config.BrokerCAKey] != string(tlsSecret.Data[brokerCABundleKey]) {
				return errors.New("the ConfigMap does not hold the broker's CA bundle")
			}
			return nil
		})
		cfg, err := gatewayConfig(cm)
		if err != nil {
			t.Fatalf("the gateway would refuse its config: %v", err)
		}
		if !reflect.DeepEqual(cfg.Broker, brokerConfig(brokerOptions())) || cfg.Clerk.SecretKeyFile != "" {
			t.Errorf("broker %+v, secretKeyFile %q", cfg.Broker, cfg.Clerk.SecretKeyFile)
		}
		f.setDeploymentAvailable("tools-gateway", 1)
		f.waitMcp("tools", condition(mcpv1.ConditionReady, metav1.ConditionTrue, mcpv1.ReasonReady))

		// Steady state: reconciles write nothing and read the TLS Secret's
		// values no more.
		versions := func() map[string]string {
			out := map[string]string{}
			for name, obj := range map[string]client.Object{"McpServer": &mcpv1.McpServer{}, "ConfigMap": &corev1.ConfigMap{},
				"Deployment": &appsv1.Deployment{}, "ServiceAccount": &corev1.ServiceAccount{}} {
				key := "tools-gateway"
				if name == "McpServer" {
					key = "tools"
				}
				if err := f.get(key, obj); err != nil {
					t.Fatalf("get %s: %v", name, err)
				}
				out[name] = obj.GetResourceVersion()
			}
			return out
		}
		before := versions()
		eventually(t, func() error {
			m := &mcpv1.McpServer{}
			if err := f.tc.mgrClient.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: "tools"}, m); err != nil {
				return err
			}
			if m.ResourceVersion != before["McpServer"] {
				return fmt.Errorf("cache at %s, server at %s", m.ResourceVersion, before["McpServer"])
			}
			return nil
		})
		reads := brokerSecretReads.n.Load()
		for range 2 {
			if _, err := f.tc.reconciler.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Namespace: f.ns, Name: "tools"}}); err != nil {
				t.Fatalf("reconcile: %v", err)
			}
		}
		if after := versions(); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("a steady-state reconcile wrote objects:\nbefore %v\nafter  %v", before, after)
		}
		if n := brokerSecretReads.n.Load() - reads; n != 0 {
			t.Errorf("steady-state reconciles read the broker's TLS Secret %d times", n)
		}
	})

	t.Run("no team namespace holds a ClusterClerkInstance's key, and old copies go", func(t *testing.T) {
		f := newBrokerFixture(t)
		name := f.ns
		f.createOperatorSecret(name, "sk_test_platform")
		f.createClusterInstance(name, instanceSpec("https://clerk.platform.example", name, mcpv1.ClerkSettings{}))
		// A Secret of a copy's name that mcpgate did not make stays.
		f.createSecret("keep-gateway-clerk", map[string]string{"theirs": "untouched"})
		f.create(newMcpServer(f.ns, "keep", usingInstance(mcpv1.KindClusterClerkInstance, name)))
		f.create(newMcpServer(f.ns, "tools", usingInstance(mcpv1.KindClusterClerkInstance, name)))
		mcp := f.waitMcp("tools", observed)
		f.waitMcp("keep", observed)
		waitFor(f, "tools-gateway", &appsv1.Deployment{}, nil)

		// What an operator without the broker left: a copy, owned by the
		// McpServer, naming its source.
		f.create(oldCopy(mcp, name))
		f.waitGone("tools-gateway-clerk", &corev1.Secret{})

		// The copy of an McpServer whose reconcile ends early (its
		// instance is gone) goes too.
		f.create(newMcpServer(f.ns, "orphan", usingInstance(mcpv1.KindClusterClerkInstance, name+"-gone")))
		orphan := f.waitMcp("orphan", condition(mcpv1.ConditionReady, metav1.ConditionFalse, mcpv1.ReasonClerkInstanceNotFound))
		f.create(oldCopy(orphan, name))
		f.waitGone("orphan-gateway-clerk", &corev1.Secret{})

		var secrets corev1.SecretList
		if err := f.tc.client.List(context.Background(), &secrets, client.InNamespace(f.ns)); err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets.Items {
			for k, v := range s.Data {
				if string(v) == "sk_test_platform" {
					t.Errorf("Secret %s holds the platform's key under %s", s.Name, k)
				}
			}
		}
		theirs := &corev1.Secret{}
		if err := f.get("keep-gateway-clerk", theirs); err != nil || string(theirs.Data["theirs"]) != "untouched" {
			t.Errorf("someone else's Secret was changed or deleted: %v %v", theirs.Data, err)
		}

		// A missing key is still reported.
		f.createClusterInstance(name+"-nokey", instanceSpec("https://clerk.platform.example", name+"-nokey", mcpv1.ClerkSettings{}))
		f.create(newMcpServer(f.ns, "nokey", usingInstance(mcpv1.KindClusterClerkInstance, name+"-nokey")))
		f.waitMcp("nokey", condition(mcpv1.ConditionReady, metav1.ConditionFalse, mcpv1.ReasonSecretNotFound))
	})

	t.Run("a CA rotation reaches every gateway's ConfigMap and rolls none", func(t *testing.T) {
		f := newBrokerFixture(t)
		f.createSecret("clerk", map[string]string{"secret-key": "sk_test_team"})
		f.create(newMcpServer(f.ns, "tools"))
		f.waitMcp("tools", observed)
		before, err := brokerTLS(f)
		if err != nil {
			t.Fatal(err)
		}
		oldBundle := before.Data[brokerCABundleKey]
		deploy := waitFor(f, "tools-gateway", &appsv1.Deployment{}, nil)
		waitFor(f, "tools-gateway", &corev1.ConfigMap{}, func(cm *corev1.ConfigMap) error {
			if cm.Data[config.BrokerCAKey] != string(oldBundle) {
				return errors.New("the ConfigMap does not hold the bundle yet")
			}
			return nil
		})

		// The serving certificate is renewed every 60 days or so, by the
		// same CA: the bundle, and so the ConfigMap, stay as they are.
		oldCA := parseCertificates(oldBundle)[0]
		start := oldCA.NotBefore.Add(certBackdate)
		served := before.Data[corev1.TLSCertKey]
		for i, days := range []int{61, 122, 200} {
			brokerClock.SetTime(start.Add(time.Duration(days) * 24 * time.Hour))
			pokeBrokerTLS(f, i)
			eventually(t, func() error {
				s, err := brokerTLS(f)
				if err != nil {
					return err
				}
				if string(s.Data[corev1.TLSCertKey]) == string(served) {
					return fmt.Errorf("day %d: the serving certificate was not renewed", days)
				}
				if string(s.Data[brokerCABundleKey]) != string(oldBundle) {
					return fmt.Errorf("day %d: renewing the serving certificate changed the bundle", days)
				}
				if err := servingChainsTo(s, oldBundle); err != nil {
					return err
				}
				served = s.Data[corev1.TLSCertKey]
				return nil
			})
		}

		// Past 2/3 of the CA's life: a second CA joins the bundle, and the
		// broker keeps serving the certificate of the first.
		brokerClock.SetTime(renewalTime(oldCA).Add(time.Hour))
		pokeBrokerTLS(f, 10)
		var rotated *corev1.Secret
		eventually(t, func() (err error) {
			if rotated, err = brokerTLS(f); err != nil {
				return err
			}
			if n := len(parseCertificates(rotated.Data[brokerCABundleKey])); n != 2 {
				return fmt.Errorf("the bundle holds %d CAs", n)
			}
			return nil
		})
		if string(rotated.Data[corev1.TLSCertKey]) != string(served) {
			t.Error("the serving certificate changed with the new CA, before the handover")
		}
		if err := servingChainsTo(rotated, oldBundle); err != nil {
			t.Errorf("during the handover a gateway with the old bundle distrusts the broker: %v", err)
		}
		waitFor(f, "tools-gateway", &corev1.ConfigMap{}, func(cm *corev1.ConfigMap) error {
			if cm.Data[config.BrokerCAKey] != string(rotated.Data[brokerCABundleKey]) {
				return errors.New("the ConfigMap does not hold the new bundle")
			}
			return nil
		})
		f.waitEventIn(testClusterResourceNamespace, DefaultBrokerTLSSecret, eventReasonBrokerCAIssued)

		// After the handover the new CA signs what the broker serves.
		brokerClock.Step(defaultBrokerCAHandover + time.Minute)
		pokeBrokerTLS(f, 11)
		newCA := parseCertificates(rotated.Data[brokerCABundleKey])[1]
		eventually(t, func() error {
			s, err := brokerTLS(f)
			if err != nil {
				return err
			}
			if leaf := parseCertificates(s.Data[corev1.TLSCertKey]); len(leaf) == 0 || !signedBy(leaf[0], newCA) {
				return errors.New("the serving certificate is not yet the new CA's")
			}
			return servingChainsTo(s, rotated.Data[brokerCABundleKey])
		})

		after := &appsv1.Deployment{}
		if err := f.get("tools-gateway", after); err != nil {
			t.Fatal(err)
		}
		if after.Generation != deploy.Generation ||
			after.Spec.Template.Annotations[config.ConfigHashAnnotation] != deploy.Spec.Template.Annotations[config.ConfigHashAnnotation] {
			t.Errorf("the rotation rolled the gateway: generation %d -> %d", deploy.Generation, after.Generation)
		}
	})
}

// oldCopy is the copy of the ClusterClerkInstance key in the operator's
// Secret source that an operator without the broker made for mcp.
func oldCopy(mcp *mcpv1.McpServer, source string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: copiedSecretName(mcp), Labels: objectLabels(mcp),
			Annotations: map[string]string{sourceSecretAnnotation: testClusterResourceNamespace + "/" + source, "mcpgate.dev/source-resource-version": "1"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: mcpv1.GroupVersion.String(), Kind: "McpServer", Name: mcp.Name, UID: mcp.UID,
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
		},
		Data: map[string][]byte{secretFileName: []byte("sk_test_platform")},
	}
}

// waitEventIn waits for an Event of reason about the object name in namespace.
func (f *fixture) waitEventIn(namespace, name, reason string) {
	f.t.Helper()
	eventually(f.t, func() error {
		var list eventsv1.EventList
		if err := f.tc.client.List(context.Background(), &list, client.InNamespace(namespace)); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Regarding.Name == name && e.Reason == reason {
				return nil
			}
		}
		return fmt.Errorf("no %s event about %s/%s", reason, namespace, name)
	})
}

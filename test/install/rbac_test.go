package install_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/clerk/clerktest"
)

const (
	releaseNamespace = "mcpgate-system"
	serviceAccount   = "system:serviceaccount:mcpgate-system:mcpgate"
	patchSettings    = "PATCH /v1/instance/oauth_application_settings"
)

// installChart runs `helm install` of the chart into the cluster, as a
// platform engineer would, with the Clerk emulator as the Backend API.
func installChart(t *testing.T, c *cluster, emu *clerktest.Server, extra ...string) {
	t.Helper()
	c.helm(t, append([]string{"install", "mcpgate", chartDir, "--namespace", releaseNamespace, "--create-namespace",
		"--set", "clerkApiURL=" + emu.BackendAPIURL()}, extra...)...)
}

// runInstalledManager starts the manager with the args of the Deployment the
// chart installed, authenticated as the chart's ServiceAccount.
func runInstalledManager(t *testing.T, c *cluster) *manager {
	t.Helper()
	deployment := &unstructured.Unstructured{}
	deployment.SetAPIVersion("apps/v1")
	deployment.SetKind("Deployment")
	if err := c.admin.Get(context.Background(), client.ObjectKey{Namespace: releaseNamespace, Name: "mcpgate"}, deployment); err != nil {
		t.Fatalf("the chart installed no operator Deployment: %v", err)
	}
	return startManager(t, c.serviceAccountKubeconfig(t, releaseNamespace, "mcpgate"), containerArgs(t, deployment))
}

// newMcpServer declares an McpServer whose Clerk instance is the emulator.
func newMcpServer(namespace, name string, dcr bool, host string) *mcpv1.McpServer {
	mcp := &mcpv1.McpServer{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: mcpv1.McpServerSpec{
			Upstream: mcpv1.Upstream{Service: &mcpv1.UpstreamService{Name: "upstream", Port: intstr.FromInt32(8080)}},
			Clerk: mcpv1.ClerkSpec{
				SecretKeyRef: mcpv1.SecretKeyReference{Name: "clerk", Key: "secret-key"},
			},
		},
	}
	if dcr {
		mcp.Spec.Clerk.DynamicClientRegistration = ptr.To(true)
	}
	if host != "" {
		mcp.Spec.Ingress = &mcpv1.IngressSpec{Host: host}
	}
	return mcp
}

// declare creates the Clerk Secret and the McpServer.
func (c *cluster) declare(t *testing.T, emu *clerktest.Server, mcp *mcpv1.McpServer) {
	t.Helper()
	mcp.Spec.Clerk.Issuer = mcpv1.IssuerURL(emu.FrontendAPIURL())
	ctx := context.Background()
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: mcp.Namespace, Name: "clerk"},
		StringData: map[string]string{"secret-key": emu.SecretKey()},
	}
	if err := c.admin.Create(ctx, secret); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if err := c.admin.Create(ctx, mcp); err != nil {
		t.Fatal(err)
	}
}

// playDeploymentController marks the gateway Deployment available, as the
// Deployment controller (which envtest does not run) would.
func (c *cluster) playDeploymentController(t *testing.T, m *manager, namespace, name string) {
	t.Helper()
	eventually(t, "the gateway Deployment "+name, func() error {
		d := &appsv1.Deployment{}
		if err := c.admin.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, d); err != nil {
			return err
		}
		d.Status = appsv1.DeploymentStatus{
			ObservedGeneration: d.Generation, Replicas: 1, ReadyReplicas: 1, AvailableReplicas: 1, UpdatedReplicas: 1,
			Conditions: []appsv1.DeploymentCondition{{
				Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable",
				LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now(),
			}},
		}
		return c.admin.Status().Update(context.Background(), d)
	}, m.Logs.String)
}

// playIngressController publishes a load balancer address on the Ingress.
func (c *cluster) playIngressController(t *testing.T, m *manager, namespace, name string) {
	t.Helper()
	eventually(t, "the gateway Ingress "+name, func() error {
		ing := &networkingv1.Ingress{}
		if err := c.admin.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, ing); err != nil {
			return err
		}
		ing.Status.LoadBalancer.Ingress = []networkingv1.IngressLoadBalancerIngress{{IP: "203.0.113.7"}}
		return c.admin.Status().Update(context.Background(), ing)
	}, m.Logs.String)
}

// waitReady waits until the McpServer's Ready condition has the status and,
// for False, a message containing want; it must be about the latest generation.
func (c *cluster) waitReady(t *testing.T, m *manager, key client.ObjectKey, status metav1.ConditionStatus, want string) *mcpv1.McpServer {
	t.Helper()
	mcp := &mcpv1.McpServer{}
	eventually(t, fmt.Sprintf("McpServer %s Ready=%s", key, status), func() error {
		if err := c.admin.Get(context.Background(), key, mcp); err != nil {
			return err
		}
		ready := meta.FindStatusCondition(mcp.Status.Conditions, mcpv1.ConditionReady)
		switch {
		case ready == nil:
			return fmt.Errorf("no Ready condition")
		// status.observedGeneration moves only with a successful reconcile;
		// the Ready condition's own generation says what it describes.
		case ready.Status != status || ready.ObservedGeneration != mcp.Generation ||
			(status == metav1.ConditionTrue && mcp.Status.ObservedGeneration != mcp.Generation):
			return fmt.Errorf("Ready=%s %s %q at generation %d/%d (object %d)", ready.Status, ready.Reason, ready.Message,
				ready.ObservedGeneration, mcp.Status.ObservedGeneration, mcp.Generation)
		case !strings.Contains(ready.Message, want):
			return fmt.Errorf("Ready message %q lacks %q", ready.Message, want)
		}
		return nil
	}, m.Logs.String)
	return mcp
}

// TestChartPermissionsAreEnough installs the chart with helm, then runs the
// manager as the chart's ServiceAccount, with a token the API server issued
// for it and nothing else: it must reconcile an McpServer completely
// (Deployment, Service, Ingress, status, events, Clerk settings, leader
// election). A verb missing from the chart fails here, not in a user's cluster,
// which the test shows by taking one away. helm upgrade and uninstall follow.
func TestChartPermissionsAreEnough(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	emu := clerktest.NewServer()
	t.Cleanup(emu.Close)
	emu.SetSettings(clerktest.OAuthApplicationSettings{DynamicOAuthClientRegistration: false})
	ctx := context.Background()
	key := client.ObjectKey{Namespace: "team-a", Name: "tools"}

	installChart(t, c, emu)
	c.createNamespaces(t, restrictedPSS, "team-a")
	c.declare(t, emu, newMcpServer("team-a", "tools", true, "tools.example.com"))
	m := runInstalledManager(t, c)

	t.Run("reconciles fully as the ServiceAccount", func(t *testing.T) {
		c.playDeploymentController(t, m, "team-a", "tools-gateway")
		c.playIngressController(t, m, "team-a", "tools-gateway")
		mcp := c.waitReady(t, m, key, metav1.ConditionTrue, "Serving at http://tools.example.com/mcp")
		clerkCond := meta.FindStatusCondition(mcp.Status.Conditions, mcpv1.ConditionClerkConfigured)
		if clerkCond == nil || clerkCond.Reason != mcpv1.ReasonSettingsSynced {
			t.Errorf("ClerkConfigured = %+v, want Synced", clerkCond)
		}
		if !emu.Settings().DynamicOAuthClientRegistration || emu.Calls(patchSettings) == 0 {
			t.Errorf("Clerk settings were not patched: %+v after %d PATCHes", emu.Settings(), emu.Calls(patchSettings))
		}
		for _, obj := range []client.Object{&corev1.ConfigMap{}, &corev1.Service{}} {
			if err := c.admin.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: "tools-gateway"}, obj); err != nil {
				t.Errorf("%T: %v", obj, err)
			}
		}
		lease := &coordinationv1.Lease{}
		if err := c.admin.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: "mcpgate.mcpgate.dev"}, lease); err != nil ||
			lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
			t.Errorf("no leader holds the Lease in %s: %v %+v", releaseNamespace, err, lease.Spec)
		}
		events := &eventsv1.EventList{}
		if err := c.admin.List(ctx, events, client.InNamespace("team-a")); err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(events.Items, func(e eventsv1.Event) bool { return e.Regarding.Name == "tools" }) {
			t.Errorf("the manager recorded no event about the McpServer; events: %+v", events.Items)
		}
		if strings.Contains(m.Logs.String(), "forbidden") {
			t.Errorf("the manager was refused something:\n%s", m.Logs.String())
		}
		c.checkGatewayPodSecurity(t, "team-a", "tools-gateway")
	})

	t.Run("a missing verb is caught", func(t *testing.T) {
		role := &rbacv1.ClusterRole{}
		if err := c.admin.Get(ctx, client.ObjectKey{Name: "mcpgate-manager"}, role); err != nil {
			t.Fatal(err)
		}
		removed := false
		for i, rule := range role.Rules {
			if slices.Contains(rule.Resources, "ingresses") {
				role.Rules[i].Verbs = slices.DeleteFunc(slices.Clone(rule.Verbs), func(v string) bool { return v == "patch" })
				removed = len(role.Rules[i].Verbs) < len(rule.Verbs)
			}
		}
		if !removed {
			t.Fatalf("the chart grants no patch on ingresses: %+v", role.Rules)
		}
		if err := c.admin.Update(ctx, role); err != nil {
			t.Fatal(err)
		}
		mcp := &mcpv1.McpServer{}
		if err := c.admin.Get(ctx, key, mcp); err != nil {
			t.Fatal(err)
		}
		mcp.Spec.Ingress.Host = "tools2.example.com"
		if err := c.admin.Update(ctx, mcp); err != nil {
			t.Fatal(err)
		}
		mcp = c.waitReady(t, m, key, metav1.ConditionFalse, "forbidden")
		if ready := meta.FindStatusCondition(mcp.Status.Conditions, mcpv1.ConditionReady); ready.Reason != mcpv1.ReasonReconcileError {
			t.Errorf("Ready reason = %s, want %s", ready.Reason, mcpv1.ReasonReconcileError)
		}
	})

	t.Run("helm upgrade restores the rules and applies new values", func(t *testing.T) {
		// The edit above made the test the owner of the rules, as a hand edit
		// would; taking them back is what --force-conflicts is for.
		c.helm(t, "upgrade", "mcpgate", chartDir, "--namespace", releaseNamespace, "--reuse-values", "--force-conflicts", "--set", "logLevel=debug")
		c.waitReady(t, m, key, metav1.ConditionTrue, "Serving at http://tools2.example.com/mcp")
		d := &unstructured.Unstructured{}
		d.SetAPIVersion("apps/v1")
		d.SetKind("Deployment")
		if err := c.admin.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: "mcpgate"}, d); err != nil {
			t.Fatal(err)
		}
		if args := containerArgs(t, d); !slices.Contains(args, "--zap-log-level=debug") {
			t.Errorf("after the upgrade the args are %q", args)
		}
	})

	t.Run("helm uninstall keeps the CRD and the McpServers", func(t *testing.T) {
		if !m.Stop(30 * time.Second) {
			t.Fatal("the manager did not stop within 30s of SIGTERM")
		}
		c.helm(t, "uninstall", "mcpgate", "--namespace", releaseNamespace)
		if err := c.admin.Get(ctx, client.ObjectKey{Name: "mcpservers.mcpgate.dev"}, &apiextensionsv1.CustomResourceDefinition{}); err != nil {
			t.Errorf("the CRD is gone after uninstall: %v", err)
		}
		if err := c.admin.Get(ctx, key, &mcpv1.McpServer{}); err != nil {
			t.Errorf("the McpServer is gone after uninstall: %v", err)
		}
		if err := c.admin.Get(ctx, client.ObjectKey{Name: "mcpgate-manager"}, &rbacv1.ClusterRole{}); !apierrors.IsNotFound(err) {
			t.Errorf("the manager's ClusterRole survived uninstall: %v", err)
		}
	})
}

// checkGatewayPodSecurity creates a copy of the gateway Deployment the
// operator made with a server-side dry run, in a namespace that warns about
// the restricted Pod Security Standard: there must be no warning.
func (c *cluster) checkGatewayPodSecurity(t *testing.T, namespace, name string) {
	t.Helper()
	d := &unstructured.Unstructured{}
	d.SetAPIVersion("apps/v1")
	d.SetKind("Deployment")
	if err := c.admin.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, d); err != nil {
		t.Fatal(err)
	}
	copied := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": name + "-pss-check", "namespace": namespace},
		"spec":     d.Object["spec"],
	}}
	data, err := copied.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	_, stderr, err := c.kubectl(t, data, "create", "--dry-run=server", "-f", "-")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stderr, "Warning") {
		t.Errorf("the gateway pods would violate the restricted Pod Security Standard:\n%s", stderr)
	}
}

// TestChartWatchNamespaces installs the chart for one namespace: the
// ServiceAccount gets no cluster-wide permissions, the manager reconciles the
// McpServers of that namespace and leaves every other one alone.
func TestChartWatchNamespaces(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	emu := clerktest.NewServer()
	t.Cleanup(emu.Close)
	ctx := context.Background()

	c.createNamespaces(t, nil, "team-a", "team-b")
	installChart(t, c, emu, "--set", "watchNamespaces={team-a}")
	for _, check := range []struct {
		args []string
		want string
	}{
		{[]string{"list", "deployments.apps", "--all-namespaces"}, "no"},
		{[]string{"list", "mcpservers.mcpgate.dev", "--all-namespaces"}, "no"},
		{[]string{"patch", "deployments.apps", "-n", "team-b"}, "no"},
		{[]string{"get", "secrets", "-n", "team-b"}, "no"},
		{[]string{"patch", "deployments.apps", "-n", "team-a"}, "yes"},
		{[]string{"patch", "mcpservers.mcpgate.dev", "--subresource=status", "-n", "team-a"}, "yes"},
		{[]string{"list", "clusterclerkinstances.mcpgate.dev"}, "yes"},
		{[]string{"list", "clerkinstances.mcpgate.dev", "--all-namespaces"}, "no"},
		{[]string{"list", "secrets", "-n", releaseNamespace}, "yes"},
		// The broker's TLS Secret and its CA's, which the operator makes.
		{[]string{"create", "secrets", "-n", releaseNamespace}, "yes"},
		{[]string{"create", "secrets", "-n", "team-b"}, "no"},
	} {
		out, _, _ := c.kubectl(t, nil, append([]string{"auth", "can-i", "--as", serviceAccount}, check.args...)...)
		if got := strings.TrimSpace(out); got != check.want {
			t.Errorf("can the operator %s? %q, want %q", strings.Join(check.args, " "), got, check.want)
		}
	}

	// The McpServer outside the list comes first: had the manager looked at
	// it, it would have done so before it reconciled the one in team-a.
	c.declare(t, emu, newMcpServer("team-b", "ignored", false, ""))
	c.declare(t, emu, newMcpServer("team-a", "tools", false, ""))
	m := runInstalledManager(t, c)
	c.playDeploymentController(t, m, "team-a", "tools-gateway")
	c.waitReady(t, m, client.ObjectKey{Namespace: "team-a", Name: "tools"}, metav1.ConditionTrue, "Serving at")

	// A ClusterClerkInstance keeps its Secret in the release namespace; an
	// McpServer in a watched namespace uses it with the chart's permissions
	// only, and, with the broker (the chart's default), gets no copy of the
	// key; the instance's settings sync records an Event (which, for a
	// cluster-scoped object, goes to the default namespace).
	emu.SetSettings(clerktest.OAuthApplicationSettings{DynamicOAuthClientRegistration: false})
	platformSecret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: releaseNamespace, Name: "platform-clerk"},
		StringData: map[string]string{"secret-key": emu.SecretKey()},
	}
	if err := c.admin.Create(ctx, platformSecret); err != nil {
		t.Fatal(err)
	}
	platform := &mcpv1.ClusterClerkInstance{
		ObjectMeta: metav1.ObjectMeta{Name: "platform"},
		Spec: mcpv1.ClerkInstanceSpec{
			Issuer:        mcpv1.IssuerURL(emu.FrontendAPIURL()),
			SecretKeyRef:  mcpv1.SecretKeyReference{Name: "platform-clerk", Key: "secret-key"},
			ClerkSettings: mcpv1.ClerkSettings{DynamicClientRegistration: ptr.To(true)},
		},
	}
	if err := c.admin.Create(ctx, platform); err != nil {
		t.Fatal(err)
	}
	shared := newMcpServer("team-a", "shared", false, "")
	shared.Spec.Clerk = mcpv1.ClerkSpec{InstanceRef: &mcpv1.ClerkInstanceReference{Kind: mcpv1.KindClusterClerkInstance, Name: "platform"}}
	if err := c.admin.Create(ctx, shared); err != nil {
		t.Fatal(err)
	}
	c.playDeploymentController(t, m, "team-a", "shared-gateway")
	c.waitReady(t, m, client.ObjectKeyFromObject(shared), metav1.ConditionTrue, "Serving at")
	if err := c.admin.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: "shared-gateway-clerk"}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("a copy of the platform's secret key in team-a: err = %v, want NotFound", err)
	}
	if !emu.Settings().DynamicOAuthClientRegistration {
		t.Errorf("the ClusterClerkInstance's settings were not applied: %+v", emu.Settings())
	}
	eventually(t, "the ClusterClerkInstance's Event", func() error {
		var events eventsv1.EventList
		if err := c.admin.List(ctx, &events, client.InNamespace(metav1.NamespaceDefault)); err != nil {
			return err
		}
		for _, e := range events.Items {
			if e.Regarding.Kind == mcpv1.KindClusterClerkInstance && e.Reason == "ClerkSettingsPatched" {
				return nil
			}
		}
		return fmt.Errorf("no ClerkSettingsPatched Event about the ClusterClerkInstance among %d", len(events.Items))
	}, m.Logs.String)

	// This cluster has no Gateway API: the manager started all the same, and
	// an McpServer asking for an HTTPRoute is told why it cannot have one.
	routed := newMcpServer("team-a", "routed", false, "")
	routed.Spec.HTTPRoute = &mcpv1.HTTPRouteSpec{
		ParentRefs: []mcpv1.ParentReference{{Name: "public"}},
		Hostnames:  []mcpv1.RouteHostname{"routed.example.com"},
	}
	c.declare(t, emu, routed)
	eventually(t, "HTTPRouteReady=False GatewayAPIUnavailable", func() error {
		got := &mcpv1.McpServer{}
		if err := c.admin.Get(ctx, client.ObjectKeyFromObject(routed), got); err != nil {
			return err
		}
		cond := meta.FindStatusCondition(got.Status.Conditions, mcpv1.ConditionHTTPRouteReady)
		stalled := meta.FindStatusCondition(got.Status.Conditions, mcpv1.ConditionStalled)
		if cond == nil || cond.Reason != mcpv1.ReasonGatewayAPIUnavailable || stalled == nil || stalled.Status != metav1.ConditionTrue {
			return fmt.Errorf("conditions = %+v", got.Status.Conditions)
		}
		return nil
	}, m.Logs.String)

	ignored := &mcpv1.McpServer{}
	if err := c.admin.Get(ctx, client.ObjectKey{Namespace: "team-b", Name: "ignored"}, ignored); err != nil {
		t.Fatal(err)
	}
	if len(ignored.Status.Conditions) != 0 || ignored.Status.ObservedGeneration != 0 {
		t.Errorf("the McpServer outside watchNamespaces got a status: %+v", ignored.Status)
	}
	for _, obj := range []client.Object{&appsv1.Deployment{}, &corev1.ConfigMap{}, &corev1.Service{}} {
		if err := c.admin.Get(ctx, client.ObjectKey{Namespace: "team-b", Name: "ignored-gateway"}, obj); !apierrors.IsNotFound(err) {
			t.Errorf("%T team-b/ignored-gateway: err = %v, want NotFound", obj, err)
		}
	}
	if logs := m.Logs.String(); strings.Contains(logs, "forbidden") || strings.Contains(logs, "team-b") {
		t.Errorf("the manager looked outside its namespaces:\n%s", logs)
	}
}

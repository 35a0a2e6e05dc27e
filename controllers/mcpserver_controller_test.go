package controllers

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/gateway/config"
	"github.com/mcpgate/mcpgate/internal/argocd"
)

// fixture is one test's namespace on the shared cluster.
type fixture struct {
	t  *testing.T
	tc *testCluster
	ns string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	tc := envCluster(t)
	f := &fixture{t: t, tc: tc, ns: tc.newNamespace(t)}
	// Stop the controller's work on this test's objects once it is over
	// (failing Clerk syncs would otherwise retry for the rest of the run).
	t.Cleanup(func() {
		_ = tc.client.DeleteAllOf(context.Background(), &mcpv1.McpServer{}, client.InNamespace(f.ns))
	})
	return f
}

func (f *fixture) create(obj client.Object) {
	f.t.Helper()
	obj.SetNamespace(f.ns)
	if err := f.tc.client.Create(context.Background(), obj); err != nil {
		f.t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

func (f *fixture) createSecret(name string, data map[string]string) {
	f.t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, StringData: data}
	f.create(s)
	// A test that creates the Secret before its McpServer means the
	// reconciler to find it: wait until the manager's cache has it, or the
	// first reconcile may see no Secret yet (and warn SecretNotFound).
	eventually(f.t, func() error {
		return f.tc.mgrClient.Get(context.Background(), types.NamespacedName{Namespace: f.ns, Name: name}, &corev1.Secret{})
	})
}

// get reads the object name (of the McpServer's gateway, when name is "")
// straight from the API server.
func (f *fixture) get(name string, obj client.Object) error {
	return f.tc.client.Get(context.Background(), types.NamespacedName{Namespace: f.ns, Name: name}, obj)
}

// update changes the McpServer name with mutate, retrying on conflicts.
func (f *fixture) updateMcp(name string, mutate func(*mcpv1.McpServer)) {
	f.t.Helper()
	eventually(f.t, func() error {
		mcp := &mcpv1.McpServer{}
		if err := f.get(name, mcp); err != nil {
			return err
		}
		mutate(mcp)
		return f.tc.client.Update(context.Background(), mcp)
	})
}

// waitMcp waits until the McpServer satisfies check, and returns it.
func (f *fixture) waitMcp(name string, check func(*mcpv1.McpServer) error) *mcpv1.McpServer {
	f.t.Helper()
	mcp := &mcpv1.McpServer{}
	eventually(f.t, func() error {
		if err := f.get(name, mcp); err != nil {
			return err
		}
		return check(mcp)
	})
	return mcp
}

// waitFor waits until the object exists and satisfies check.
func waitFor[T client.Object](f *fixture, name string, obj T, check func(T) error) T {
	f.t.Helper()
	eventually(f.t, func() error {
		if err := f.get(name, obj); err != nil {
			return err
		}
		if check == nil {
			return nil
		}
		return check(obj)
	})
	return obj
}

// waitGone waits until the object no longer exists.
func (f *fixture) waitGone(name string, obj client.Object) {
	f.t.Helper()
	eventually(f.t, func() error {
		err := f.get(name, obj)
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("%T %s still exists (err %v)", obj, name, err)
	})
}

// condition checks one condition's status and reason, for the current generation.
func condition(typ string, status metav1.ConditionStatus, reason string) func(*mcpv1.McpServer) error {
	return func(mcp *mcpv1.McpServer) error {
		c := meta.FindStatusCondition(mcp.Status.Conditions, typ)
		switch {
		case c == nil:
			return fmt.Errorf("no %s condition in %+v", typ, mcp.Status.Conditions)
		case c.Status != status || c.Reason != reason:
			return fmt.Errorf("%s = %s/%s (%s), want %s/%s", typ, c.Status, c.Reason, c.Message, status, reason)
		case c.ObservedGeneration != mcp.Generation:
			return fmt.Errorf("%s is for generation %d, not %d", typ, c.ObservedGeneration, mcp.Generation)
		}
		return nil
	}
}

func observed(mcp *mcpv1.McpServer) error {
	if mcp.Status.ObservedGeneration != mcp.Generation {
		return fmt.Errorf("observedGeneration %d, generation %d", mcp.Status.ObservedGeneration, mcp.Generation)
	}
	return nil
}

func hasOwner(obj client.Object, mcp *mcpv1.McpServer) error {
	for _, ref := range obj.GetOwnerReferences() {
		if ref.UID == mcp.UID && ref.Controller != nil && *ref.Controller && ref.Kind == "McpServer" {
			return nil
		}
	}
	return fmt.Errorf("%T %s is not controlled by McpServer %s: %+v", obj, obj.GetName(), mcp.Name, obj.GetOwnerReferences())
}

// setDeploymentAvailable plays the Deployment controller, which envtest does not run.
func (f *fixture) setDeploymentAvailable(name string, ready int32) {
	f.t.Helper()
	eventually(f.t, func() error {
		d := &appsv1.Deployment{}
		if err := f.get(name, d); err != nil {
			return err
		}
		d.Status = appsv1.DeploymentStatus{
			ObservedGeneration: d.Generation,
			Replicas:           ready,
			ReadyReplicas:      ready,
			AvailableReplicas:  ready,
			UpdatedReplicas:    ready,
			Conditions: []appsv1.DeploymentCondition{{
				Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable",
				Message: "Deployment has minimum availability.", LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now(),
			}},
		}
		return f.tc.client.Status().Update(context.Background(), d)
	})
}

// events lists the Events about the McpServer name.
func (f *fixture) events(name string) []eventsv1.Event {
	f.t.Helper()
	var list eventsv1.EventList
	if err := f.tc.client.List(context.Background(), &list, client.InNamespace(f.ns)); err != nil {
		f.t.Fatalf("list events: %v", err)
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == "McpServer" && e.Regarding.Name == name {
			out = append(out, e)
		}
	}
	return out
}

func (f *fixture) waitEvent(name, eventType, reason string) eventsv1.Event {
	f.t.Helper()
	var found eventsv1.Event
	eventually(f.t, func() error {
		for _, e := range f.events(name) {
			if e.Type == eventType && e.Reason == reason {
				found = e
				return nil
			}
		}
		return fmt.Errorf("no %s event %s for %s", eventType, reason, name)
	})
	return found
}

func gatewayConfig(cm *corev1.ConfigMap) (config.Config, error) {
	return config.Parse([]byte(cm.Data[config.FileName]))
}

func TestMcpServerReconciler_createsEveryOwnedObject(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.createSecret("clerk", map[string]string{"secret-key": "sk_test_never_copied"})
	f.create(newMcpServer(f.ns, "tools", withScopes("profile", "email"), withToolScopes("delete_repo", "repo:admin"),
		withIngress(f.ns+".example.com", "tools-tls"), withIngressClass("nginx", map[string]string{"example.com/a": "b"})))

	mcp := f.waitMcp("tools", func(m *mcpv1.McpServer) error {
		if err := observed(m); err != nil {
			return err
		}
		return condition(mcpv1.ConditionGatewayAvailable, metav1.ConditionFalse, mcpv1.ReasonDeploymentUnavailable)(m)
	})
	if got, want := mcp.Status.URL, "https://"+f.ns+".example.com/mcp"; got != want {
		t.Errorf("status.url = %q, want %q", got, want)
	}
	if got, want := mcp.Status.ResourceMetadataURL, "https://"+f.ns+".example.com/.well-known/oauth-protected-resource/mcp"; got != want {
		t.Errorf("status.resourceMetadataURL = %q, want %q", got, want)
	}
	if mcp.Status.Issuer != testIssuer {
		t.Errorf("status.issuer = %q, want %q", mcp.Status.Issuer, testIssuer)
	}
	for _, check := range []func(*mcpv1.McpServer) error{
		condition(mcpv1.ConditionIngressReady, metav1.ConditionFalse, mcpv1.ReasonAddressPending),
		condition(mcpv1.ConditionReady, metav1.ConditionFalse, mcpv1.ReasonDeploymentUnavailable),
	} {
		if err := check(mcp); err != nil {
			t.Error(err)
		}
	}

	cm := waitFor(f, "tools-gateway", &corev1.ConfigMap{}, nil)
	cfg, err := gatewayConfig(cm)
	if err != nil {
		t.Fatalf("gateway config: %v", err)
	}
	if cfg.Clerk.Issuer != testIssuer || cfg.Upstream.URL != "http://upstream."+f.ns+".svc:8080/mcp" ||
		cfg.PublicURL != "https://"+f.ns+".example.com/mcp" || len(cfg.ToolScopes) != 1 {
		t.Errorf("gateway config = %+v", cfg)
	}
	if strings.Contains(cm.Data[config.FileName], "sk_test_never_copied") {
		t.Error("the ConfigMap holds the secret key")
	}

	d := waitFor(f, "tools-gateway", &appsv1.Deployment{}, nil)
	pod := d.Spec.Template.Spec
	if pod.Containers[0].Image != testOptions.GatewayImage || d.Spec.Template.Annotations[config.ConfigHashAnnotation] == "" {
		t.Errorf("deployment image %q, annotations %v", pod.Containers[0].Image, d.Spec.Template.Annotations)
	}
	svc := waitFor(f, "tools-gateway", &corev1.Service{}, nil)
	ing := waitFor(f, "tools-gateway", &networkingv1.Ingress{}, nil)
	if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "nginx" || ing.Annotations["example.com/a"] != "b" ||
		len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName != "tools-tls" {
		t.Errorf("ingress = %+v", ing)
	}
	// envtest runs no garbage collector: the owner references are what make
	// deletion of the McpServer remove these objects in a real cluster.
	for _, obj := range []client.Object{cm, d, svc, ing} {
		if err := hasOwner(obj, mcp); err != nil {
			t.Error(err)
		}
	}
	if err := f.get("tools-gateway", &policyv1.PodDisruptionBudget{}); !apierrors.IsNotFound(err) {
		t.Errorf("a single replica got a PodDisruptionBudget (err %v)", err)
	}
}

func TestMcpServerReconciler_becomesReady(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.createSecret("clerk", map[string]string{"secret-key": "sk_test_x"})
	f.create(newMcpServer(f.ns, "tools", withIngress(f.ns+".example.com", "tls"), withReplicas(2)))
	waitFor(f, "tools-gateway", &appsv1.Deployment{}, nil)

	f.setDeploymentAvailable("tools-gateway", 2)
	mcp := f.waitMcp("tools", condition(mcpv1.ConditionReady, metav1.ConditionFalse, mcpv1.ReasonAddressPending))
	// On its way: GitOps tools see progress, not failure.
	for _, check := range []func(*mcpv1.McpServer) error{
		condition(mcpv1.ConditionReconciling, metav1.ConditionTrue, mcpv1.ReasonAddressPending), absent(mcpv1.ConditionStalled),
		argoHealth[*mcpv1.McpServer](t, argocd.StatusProgressing),
	} {
		if err := check(mcp); err != nil {
			t.Error(err)
		}
	}

	// Play the ingress controller: publish a load balancer address.
	eventually(t, func() error {
		ing := &networkingv1.Ingress{}
		if err := f.get("tools-gateway", ing); err != nil {
			return err
		}
		ing.Status.LoadBalancer.Ingress = []networkingv1.IngressLoadBalancerIngress{{IP: "203.0.113.7"}}
		return f.tc.client.Status().Update(context.Background(), ing)
	})
	mcp = f.waitMcp("tools", condition(mcpv1.ConditionReady, metav1.ConditionTrue, mcpv1.ReasonReady))
	for _, check := range []func(*mcpv1.McpServer) error{
		absent(mcpv1.ConditionReconciling), absent(mcpv1.ConditionStalled), argoHealth[*mcpv1.McpServer](t, argocd.StatusHealthy),
	} {
		if err := check(mcp); err != nil {
			t.Error(err)
		}
	}
	if mcp.Status.ObservedGeneration != mcp.Generation {
		t.Errorf("status.observedGeneration = %d, want %d", mcp.Status.ObservedGeneration, mcp.Generation)
	}
	// kubectl wait, as a pipeline or a GitOps hook would use it.
	if out, err := f.kubectl()(nil, "wait", "--for=condition=Ready", "mcps/tools", "--timeout=30s"); err != nil || !strings.Contains(out, "condition met") {
		t.Errorf("kubectl wait --for=condition=Ready: %v\n%s", err, out)
	}
	if mcp.Status.ReadyReplicas != 2 {
		t.Errorf("readyReplicas = %d, want 2", mcp.Status.ReadyReplicas)
	}
	if err := condition(mcpv1.ConditionIngressReady, metav1.ConditionTrue, mcpv1.ReasonAddressAssigned)(mcp); err != nil {
		t.Error(err)
	}
	f.waitEvent("tools", corev1.EventTypeNormal, mcpv1.ReasonReady)

	// Losing the pods is news.
	eventually(t, func() error {
		d := &appsv1.Deployment{}
		if err := f.get("tools-gateway", d); err != nil {
			return err
		}
		d.Status.ReadyReplicas, d.Status.AvailableReplicas = 0, 0
		d.Status.Conditions[0].Status, d.Status.Conditions[0].Message = corev1.ConditionFalse, "Deployment does not have minimum availability."
		return f.tc.client.Status().Update(context.Background(), d)
	})
	f.waitMcp("tools", condition(mcpv1.ConditionReady, metav1.ConditionFalse, mcpv1.ReasonDeploymentUnavailable))
	ev := f.waitEvent("tools", corev1.EventTypeWarning, mcpv1.ReasonDeploymentUnavailable)
	if !strings.Contains(ev.Note, "minimum availability") {
		t.Errorf("event note = %q, want the Deployment's message", ev.Note)
	}
}

func TestMcpServerReconciler_specUpdate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.createSecret("clerk", map[string]string{"secret-key": "sk_test_x"})
	f.create(newMcpServer(f.ns, "tools", withScopes("profile")))
	first := waitFor(f, "tools-gateway", &appsv1.Deployment{}, nil).Spec.Template.Annotations[config.ConfigHashAnnotation]

	f.updateMcp("tools", func(m *mcpv1.McpServer) {
		m.Spec.Scopes = []mcpv1.Scope{"profile", "email"}
		m.Spec.Gateway.Replicas = ptr.To[int32](3)
	})
	waitFor(f, "tools-gateway", &corev1.ConfigMap{}, func(cm *corev1.ConfigMap) error {
		cfg, err := gatewayConfig(cm)
		if err != nil {
			return err
		}
		if strings.Join(cfg.Scopes, " ") != "profile email" {
			return fmt.Errorf("scopes = %q", cfg.Scopes)
		}
		return nil
	})
	waitFor(f, "tools-gateway", &appsv1.Deployment{}, func(d *appsv1.Deployment) error {
		if h := d.Spec.Template.Annotations[config.ConfigHashAnnotation]; h == first {
			return fmt.Errorf("config hash still %s", h)
		}
		if *d.Spec.Replicas != 3 {
			return fmt.Errorf("replicas = %d", *d.Spec.Replicas)
		}
		return nil
	})
	f.waitEvent("tools", corev1.EventTypeNormal, eventReasonConfigChanged)
	if evs := f.events("tools"); len(evs) != 1 {
		t.Errorf("events = %+v, want only the rollout (a new object waiting for pods is not news)", evs)
	}
	mcp := f.waitMcp("tools", observed)
	pdb := waitFor(f, "tools-gateway", &policyv1.PodDisruptionBudget{}, nil)
	if err := hasOwner(pdb, mcp); err != nil {
		t.Error(err)
	}

	f.updateMcp("tools", func(m *mcpv1.McpServer) { m.Spec.Gateway.Replicas = ptr.To[int32](1) })
	f.waitGone("tools-gateway", &policyv1.PodDisruptionBudget{})
}

// TestMcpServerReconciler_access: status.access follows spec.access, and its
// rules reach the gateway config (rolling the pods) and leave it again.
func TestMcpServerReconciler_access(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.createSecret("clerk", map[string]string{"secret-key": "sk_test_x"})
	f.create(newMcpServer(f.ns, "tools"))
	accessIs := func(want mcpv1.AccessMode) func(*mcpv1.McpServer) error {
		return func(m *mcpv1.McpServer) error {
			if m.Status.Access != want {
				return fmt.Errorf("status.access = %q, want %q", m.Status.Access, want)
			}
			return nil
		}
	}
	f.waitMcp("tools", accessIs(mcpv1.AccessAnySignedInUser))
	first := waitFor(f, "tools-gateway", &appsv1.Deployment{}, nil).Spec.Template.Annotations[config.ConfigHashAnnotation]

	f.updateMcp("tools", withAccess(&mcpv1.AccessSpec{
		Allow:      []mcpv1.AccessRule{{Organization: "acme"}},
		ToolAccess: []mcpv1.ToolAccess{{Tool: "deploy", Allow: []mcpv1.AccessRule{{Organization: "acme", Roles: []mcpv1.OrganizationRole{"org:admin"}}}}},
	}))
	f.waitMcp("tools", accessIs(mcpv1.AccessRestricted))
	waitFor(f, "tools-gateway", &corev1.ConfigMap{}, func(cm *corev1.ConfigMap) error {
		cfg, err := gatewayConfig(cm)
		if err != nil {
			return err
		}
		want := &config.Access{
			Allow:           []config.AccessRule{{Organization: "acme"}},
			ToolAccess:      []config.ToolAccess{{Tool: "deploy", Allow: []config.AccessRule{{Organization: "acme", Roles: []string{"org:admin"}}}}},
			CacheTTLSeconds: 60, // defaulted by the API server
		}
		if !reflect.DeepEqual(cfg.Access, want) {
			return fmt.Errorf("access = %+v, want %+v", cfg.Access, want)
		}
		return nil
	})
	waitFor(f, "tools-gateway", &appsv1.Deployment{}, func(d *appsv1.Deployment) error {
		if h := d.Spec.Template.Annotations[config.ConfigHashAnnotation]; h == first {
			return fmt.Errorf("config hash still %s", h)
		}
		return nil
	})

	f.updateMcp("tools", withAccess(nil))
	f.waitMcp("tools", accessIs(mcpv1.AccessAnySignedInUser))
	waitFor(f, "tools-gateway", &corev1.ConfigMap{}, func(cm *corev1.ConfigMap) error {
		cfg, err := gatewayConfig(cm)
		if err != nil {
			return err
		}
		if cfg.Access != nil {
			return fmt.Errorf("access = %+v, want none", cfg.Access)
		}
		return nil
	})
}

func TestMcpServerReconciler_repairsDrift(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.createSecret("clerk", map[string]string{"secret-key": "sk_test_x"})
	f.create(newMcpServer(f.ns, "tools"))
	svc := waitFor(f, "tools-gateway", &corev1.Service{}, nil)
	d := waitFor(f, "tools-gateway", &appsv1.Deployment{}, nil)

	if err := f.tc.client.Delete(context.Background(), svc); err != nil {
		t.Fatalf("delete service: %v", err)
	}
	d.Spec.Template.Spec.Containers[0].Image = "evil.example/backdoor:1"
	d.Spec.Template.Spec.Containers[0].Args = []string{"gateway", "--insecure"}
	d.Spec.Replicas = ptr.To[int32](7)
	if err := f.tc.client.Update(context.Background(), d); err != nil {
		t.Fatalf("edit deployment: %v", err)
	}

	waitFor(f, "tools-gateway", &corev1.Service{}, func(s *corev1.Service) error {
		if s.UID == svc.UID {
			return fmt.Errorf("still the deleted service")
		}
		return nil
	})
	waitFor(f, "tools-gateway", &appsv1.Deployment{}, func(d *appsv1.Deployment) error {
		c := d.Spec.Template.Spec.Containers[0]
		if c.Image != testOptions.GatewayImage || strings.Join(c.Args, " ") != "gateway --config /etc/mcpgate/config/config.json" || *d.Spec.Replicas != 1 {
			return fmt.Errorf("deployment not restored: image %q args %q replicas %d", c.Image, c.Args, *d.Spec.Replicas)
		}
		return nil
	})
}

func TestMcpServerReconciler_missingSecret(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create(newMcpServer(f.ns, "tools"))
	mcp := f.waitMcp("tools", condition(mcpv1.ConditionReady, metav1.ConditionFalse, mcpv1.ReasonSecretNotFound))
	if !strings.Contains(meta.FindStatusCondition(mcp.Status.Conditions, mcpv1.ConditionReady).Message, `"clerk"`) {
		t.Errorf("message does not name the Secret: %+v", mcp.Status.Conditions)
	}
	f.waitEvent("tools", corev1.EventTypeWarning, mcpv1.ReasonSecretNotFound)
	// The rest is applied anyway; the pods wait for the Secret.
	waitFor(f, "tools-gateway", &appsv1.Deployment{}, nil)

	// A Secret without the key is no better.
	f.createSecret("clerk", map[string]string{"other": "x"})
	f.waitMcp("tools", func(m *mcpv1.McpServer) error {
		c := meta.FindStatusCondition(m.Status.Conditions, mcpv1.ConditionReady)
		if c == nil || c.Reason != mcpv1.ReasonSecretNotFound || !strings.Contains(c.Message, `no key "secret-key"`) {
			return fmt.Errorf("ready = %+v", c)
		}
		return nil
	})

	// Adding the key recovers without touching the McpServer.
	eventually(t, func() error {
		s := &corev1.Secret{}
		if err := f.get("clerk", s); err != nil {
			return err
		}
		s.Data["secret-key"] = []byte("sk_test_x")
		return f.tc.client.Update(context.Background(), s)
	})
	f.waitMcp("tools", condition(mcpv1.ConditionReady, metav1.ConditionFalse, mcpv1.ReasonDeploymentUnavailable))
}

func TestMcpServerReconciler_ingressAddedAndRemoved(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.createSecret("clerk", map[string]string{"secret-key": "sk_test_x"})
	f.create(newMcpServer(f.ns, "tools"))
	mcp := f.waitMcp("tools", observed)
	if want := "http://tools-gateway." + f.ns + ".svc/mcp"; mcp.Status.URL != want {
		t.Errorf("status.url = %q, want %q", mcp.Status.URL, want)
	}
	if c := meta.FindStatusCondition(mcp.Status.Conditions, mcpv1.ConditionIngressReady); c != nil {
		t.Errorf("IngressReady present without an Ingress: %+v", c)
	}

	f.updateMcp("tools", func(m *mcpv1.McpServer) { withIngress(f.ns+".example.com", "")(m) })
	waitFor(f, "tools-gateway", &networkingv1.Ingress{}, nil)
	f.waitMcp("tools", func(m *mcpv1.McpServer) error {
		if m.Status.URL != "http://"+f.ns+".example.com/mcp" {
			return fmt.Errorf("status.url = %q", m.Status.URL)
		}
		return condition(mcpv1.ConditionIngressReady, metav1.ConditionFalse, mcpv1.ReasonAddressPending)(m)
	})
	waitFor(f, "tools-gateway", &corev1.ConfigMap{}, func(cm *corev1.ConfigMap) error {
		cfg, err := gatewayConfig(cm)
		if err == nil && cfg.PublicURL != "http://"+f.ns+".example.com/mcp" {
			err = fmt.Errorf("publicURL = %q", cfg.PublicURL)
		}
		return err
	})

	f.updateMcp("tools", func(m *mcpv1.McpServer) { m.Spec.Ingress = nil })
	f.waitGone("tools-gateway", &networkingv1.Ingress{})
	f.waitMcp("tools", func(m *mcpv1.McpServer) error {
		if c := meta.FindStatusCondition(m.Status.Conditions, mcpv1.ConditionIngressReady); c != nil {
			return fmt.Errorf("IngressReady still present: %+v", c)
		}
		return observed(m)
	})
}

func TestMcpServerReconciler_hostPathConflict(t *testing.T) {
	t.Parallel()
	first, second := newFixture(t), newFixture(t)
	host := "shared-" + first.ns + ".example.com"
	for _, f := range []*fixture{first, second} {
		f.createSecret("clerk", map[string]string{"secret-key": "sk_test_x"})
	}
	first.create(newMcpServer(first.ns, "a", withIngress(host, "")))
	waitFor(first, "a-gateway", &networkingv1.Ingress{}, nil)
	// Same host, another path: both are served.
	second.create(newMcpServer(second.ns, "other-path", withIngress(host, ""), withPath("/other")))
	waitFor(second, "other-path-gateway", &networkingv1.Ingress{}, nil)
	// Same host and path: the newcomer waits its turn.
	second.create(newMcpServer(second.ns, "b", withIngress(host, "")))
	mcp := second.waitMcp("b", condition(mcpv1.ConditionIngressReady, metav1.ConditionFalse, mcpv1.ReasonHostPathConflict))
	if msg := meta.FindStatusCondition(mcp.Status.Conditions, mcpv1.ConditionIngressReady).Message; !strings.Contains(msg, first.ns+"/a") {
		t.Errorf("conflict message does not name the holder: %q", msg)
	}
	for _, check := range []func(*mcpv1.McpServer) error{
		condition(mcpv1.ConditionReady, metav1.ConditionFalse, mcpv1.ReasonHostPathConflict),
		// A person must act: GitOps tools see the McpServer as failed.
		condition(mcpv1.ConditionStalled, metav1.ConditionTrue, mcpv1.ReasonHostPathConflict),
		absent(mcpv1.ConditionReconciling),
		argoHealth[*mcpv1.McpServer](t, argocd.StatusDegraded),
	} {
		if err := check(mcp); err != nil {
			t.Error(err)
		}
	}
	if err := second.get("b-gateway", &networkingv1.Ingress{}); !apierrors.IsNotFound(err) {
		t.Errorf("the conflicting McpServer got an Ingress (err %v)", err)
	}

	// The holder leaves (envtest has no garbage collector, so its Ingress is
	// removed by hand); the waiting McpServer takes over.
	if err := first.tc.client.Delete(context.Background(), newMcpServer(first.ns, "a")); err != nil {
		t.Fatalf("delete holder: %v", err)
	}
	waitFor(second, "b-gateway", &networkingv1.Ingress{}, nil)
	mcp = second.waitMcp("b", condition(mcpv1.ConditionIngressReady, metav1.ConditionFalse, mcpv1.ReasonAddressPending))
	if err := absent(mcpv1.ConditionStalled)(mcp); err != nil {
		t.Error(err)
	}
}

// argoHealth runs the Argo CD health check (internal/argocd) on the McpServer as
// the API server returns it, the way Argo CD would.
func argoHealth[T client.Object](t *testing.T, want string) func(T) error {
	return func(live T) error {
		obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(live)
		if err != nil {
			return err
		}
		status, message, err := argocd.Evaluate(argocd.Script, obj)
		if err != nil {
			t.Fatalf("evaluate the Argo CD health check: %v", err)
		}
		if status != want {
			return fmt.Errorf("Argo CD health = %s (%s), want %s", status, message, want)
		}
		return nil
	}
}

// absent checks that a condition is not set.
func absent(typ string) func(*mcpv1.McpServer) error {
	return func(mcp *mcpv1.McpServer) error {
		if c := meta.FindStatusCondition(mcp.Status.Conditions, typ); c != nil {
			return fmt.Errorf("condition %s is set: %+v", typ, *c)
		}
		return nil
	}
}

func TestMcpServerReconciler_namedUpstreamPort(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.createSecret("clerk", map[string]string{"secret-key": "sk_test_x"})
	f.create(newMcpServer(f.ns, "tools", withUpstreamPort(intstr.FromString("mcp"))))
	f.waitMcp("tools", condition(mcpv1.ConditionReady, metav1.ConditionFalse, mcpv1.ReasonUpstreamPortNotFound))
	f.waitEvent("tools", corev1.EventTypeWarning, mcpv1.ReasonUpstreamPortNotFound)

	f.create(&corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "upstream"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "upstream"},
			Ports:    []corev1.ServicePort{{Name: "mcp", Port: 3000, TargetPort: intstr.FromInt32(3000)}},
		},
	})
	waitFor(f, "tools-gateway", &corev1.ConfigMap{}, func(cm *corev1.ConfigMap) error {
		cfg, err := gatewayConfig(cm)
		if err == nil && cfg.Upstream.URL != "http://upstream."+f.ns+".svc:3000/mcp" {
			err = fmt.Errorf("upstream url = %q", cfg.Upstream.URL)
		}
		return err
	})
	f.waitMcp("tools", condition(mcpv1.ConditionReady, metav1.ConditionFalse, mcpv1.ReasonDeploymentUnavailable))
}

func TestMcpServerReconciler_issuerAndExternalUpstream(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.createSecret("clerk", map[string]string{"secret-key": "sk_test_x"})
	f.create(newMcpServer(f.ns, "tools", withIssuer("https://clerk.example.com"), withUpstreamURL("https://mcp.example.com")))
	mcp := f.waitMcp("tools", observed)
	if mcp.Status.Issuer != "https://clerk.example.com" {
		t.Errorf("status.issuer = %q", mcp.Status.Issuer)
	}
	waitFor(f, "tools-gateway", &corev1.ConfigMap{}, func(cm *corev1.ConfigMap) error {
		cfg, err := gatewayConfig(cm)
		if err == nil && (cfg.Upstream.URL != "https://mcp.example.com/mcp" || cfg.Clerk.Issuer != "https://clerk.example.com") {
			err = fmt.Errorf("config = %+v", cfg)
		}
		return err
	})
}

// TestMcpServerReconciler_steadyState reconciles a settled McpServer again and
// checks that nothing was written.
func TestMcpServerReconciler_steadyState(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.createSecret("clerk", map[string]string{"secret-key": "sk_test_x"})
	f.create(newMcpServer(f.ns, "tools", withIngress(f.ns+".example.com", "tls"), withReplicas(2)))
	waitFor(f, "tools-gateway", &appsv1.Deployment{}, nil)
	f.setDeploymentAvailable("tools-gateway", 2)
	f.waitMcp("tools", condition(mcpv1.ConditionGatewayAvailable, metav1.ConditionTrue, mcpv1.ReasonDeploymentAvailable))

	versions := func() map[string]string {
		out := map[string]string{}
		for name, obj := range map[string]client.Object{
			"McpServer": &mcpv1.McpServer{}, "ConfigMap": &corev1.ConfigMap{}, "Deployment": &appsv1.Deployment{},
			"Service": &corev1.Service{}, "Ingress": &networkingv1.Ingress{}, "PodDisruptionBudget": &policyv1.PodDisruptionBudget{},
		} {
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
	// Let the manager's cache catch up with the last status write before reconciling by hand.
	eventually(t, func() error {
		m := &mcpv1.McpServer{}
		if err := f.tc.mgrClient.Get(context.Background(), types.NamespacedName{Namespace: f.ns, Name: "tools"}, m); err != nil {
			return err
		}
		if m.ResourceVersion != before["McpServer"] {
			return fmt.Errorf("cache at %s, server at %s", m.ResourceVersion, before["McpServer"])
		}
		return nil
	})
	for range 2 {
		if _, err := f.tc.reconciler.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: f.ns, Name: "tools"}}); err != nil {
			t.Fatalf("reconcile: %v", err)
		}
	}
	if after := versions(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("a steady-state reconcile wrote objects:\nbefore %v\nafter  %v", before, after)
	}
}

// TestCacheHoldsNoSecretValues checks that the Clerk secret key never sits in
// the operator's memory: the cached Secret keeps its keys only.
func TestCacheHoldsNoSecretValues(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.createSecret("clerk", map[string]string{"secret-key": "sk_test_private"})
	eventually(t, func() error {
		s := &corev1.Secret{}
		if err := f.tc.mgrClient.Get(context.Background(), types.NamespacedName{Namespace: f.ns, Name: "clerk"}, s); err != nil {
			return err
		}
		v, ok := s.Data["secret-key"]
		if !ok {
			return fmt.Errorf("cached secret lost its key: %v", s.Data)
		}
		if len(v) != 0 {
			t.Fatalf("the cache holds the secret value")
		}
		return nil
	})
}

func TestMcpServerReconciler_undecodablePublishableKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.createSecret("clerk", map[string]string{"secret-key": "sk_test_x"})
	// Passes the CRD's pattern, but decodes to "nohost$", which is no Frontend API host.
	f.create(newMcpServer(f.ns, "tools", func(m *mcpv1.McpServer) { m.Spec.Clerk.PublishableKey = "pk_test_bm9ob3N0JA" }))
	mcp := f.waitMcp("tools", condition(mcpv1.ConditionReady, metav1.ConditionFalse, mcpv1.ReasonInvalidSpec))
	if msg := meta.FindStatusCondition(mcp.Status.Conditions, mcpv1.ConditionReady).Message; !strings.Contains(msg, "spec.clerk.publishableKey") {
		t.Errorf("message does not name the field: %q", msg)
	}
	if err := observed(mcp); err != nil {
		t.Error(err)
	}
	f.waitEvent("tools", corev1.EventTypeWarning, mcpv1.ReasonInvalidSpec)
	if err := f.get("tools-gateway", &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
		t.Errorf("a gateway was deployed for an unusable spec (err %v)", err)
	}
}

// TestMcpServerReconciler_foreignObject checks that an object of the same name
// that another controller owns is neither taken over nor silently ignored.
func TestMcpServerReconciler_foreignObject(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.createSecret("clerk", map[string]string{"secret-key": "sk_test_x"})
	f.create(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Name: "tools-gateway",
		OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "example.com/v1", Kind: "Other", Name: "other", UID: "0b3a7c1e-0000-4000-8000-000000000001", Controller: ptr.To(true),
		}},
	}, Data: map[string]string{"mine": "yes"}})
	f.create(newMcpServer(f.ns, "tools"))
	mcp := f.waitMcp("tools", condition(mcpv1.ConditionReady, metav1.ConditionFalse, mcpv1.ReasonReconcileError))
	if msg := meta.FindStatusCondition(mcp.Status.Conditions, mcpv1.ConditionReady).Message; !strings.Contains(msg, "apply configmap") {
		t.Errorf("message does not say what failed: %q", msg)
	}
	cm := &corev1.ConfigMap{}
	if err := f.get("tools-gateway", cm); err != nil {
		t.Fatal(err)
	}
	if cm.Data["mine"] != "yes" || cm.Data[config.FileName] != "" || len(cm.OwnerReferences) != 1 || cm.OwnerReferences[0].Kind != "Other" {
		t.Errorf("the foreign ConfigMap was changed: %+v", cm)
	}
}

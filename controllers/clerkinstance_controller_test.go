package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway/config"
	"github.com/mcpgate/mcpgate/internal/argocd"
)

// usingInstance makes an McpServer reference an instance object instead of
// declaring its Clerk instance inline.
func usingInstance(kind, name string) mcpOption {
	return func(m *mcpv1.McpServer) {
		m.Spec.Clerk = mcpv1.ClerkSpec{InstanceRef: &mcpv1.ClerkInstanceReference{Kind: kind, Name: name}}
	}
}

// instanceSpec is an instance of issuer whose secret key is in Secret
// secret, key "secret-key".
func instanceSpec(issuer, secret string, settings mcpv1.ClerkSettings, scopes ...mcpv1.Scope) mcpv1.ClerkInstanceSpec {
	return mcpv1.ClerkInstanceSpec{
		Issuer:        mcpv1.IssuerURL(issuer),
		SecretKeyRef:  mcpv1.SecretKeyReference{Name: secret, Key: "secret-key"},
		ClerkSettings: settings,
		DefaultScopes: scopes,
	}
}

// createClusterInstance creates a ClusterClerkInstance, deleted when the
// test ends.
func (f *fixture) createClusterInstance(name string, spec mcpv1.ClerkInstanceSpec) {
	f.t.Helper()
	inst := &mcpv1.ClusterClerkInstance{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
	if err := f.tc.client.Create(context.Background(), inst); err != nil {
		f.t.Fatalf("create ClusterClerkInstance %s: %v", name, err)
	}
	f.t.Cleanup(func() { _ = f.tc.client.Delete(context.Background(), inst) })
}

// createOperatorSecret creates a Secret in the operator's namespace, deleted
// when the test ends.
func (f *fixture) createOperatorSecret(name, value string) *corev1.Secret {
	f.t.Helper()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: testClusterResourceNamespace, Name: name},
		StringData: map[string]string{"secret-key": value},
	}
	if err := f.tc.client.Create(context.Background(), s); err != nil {
		f.t.Fatalf("create Secret %s: %v", name, err)
	}
	f.t.Cleanup(func() { _ = f.tc.client.Delete(context.Background(), s) })
	return s
}

// waitInstance waits until the instance object (namespaced in f.ns, or
// cluster-scoped) satisfies check.
func waitInstance[T instanceObject](f *fixture, name string, obj T, check func(T) error) T {
	f.t.Helper()
	key := client.ObjectKey{Name: name}
	if _, cluster := any(obj).(*mcpv1.ClusterClerkInstance); !cluster {
		key.Namespace = f.ns
	}
	eventually(f.t, func() error {
		if err := f.tc.client.Get(context.Background(), key, obj); err != nil {
			return err
		}
		return check(obj)
	})
	return obj
}

// instanceReady checks the instance's Ready condition for its current generation.
func instanceReady[T instanceObject](status metav1.ConditionStatus, reason string) func(T) error {
	return func(inst T) error {
		st := inst.GetInstanceStatus()
		c := meta.FindStatusCondition(st.Conditions, mcpv1.ConditionReady)
		switch {
		case c == nil:
			return fmt.Errorf("no Ready condition in %+v", st.Conditions)
		case c.Status != status || c.Reason != reason:
			return fmt.Errorf("Ready = %s/%s (%s), want %s/%s", c.Status, c.Reason, c.Message, status, reason)
		case c.ObservedGeneration != inst.GetGeneration() || st.ObservedGeneration != inst.GetGeneration():
			return fmt.Errorf("status is for generation %d, not %d", st.ObservedGeneration, inst.GetGeneration())
		}
		return nil
	}
}

// gatewaySecretVolume is the Secret, and its key, the gateway mounts.
func gatewaySecretVolume(d *appsv1.Deployment) (name, key string) {
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret != nil && len(v.Secret.Items) == 1 {
			return v.Secret.SecretName, v.Secret.Items[0].Key
		}
	}
	return "", ""
}

// TestClerkInstances runs against the Clerk emulator, whose settings its
// subtests share, so they run one after the other.
func TestClerkInstances(t *testing.T) {
	tc := envCluster(t)
	emu := tc.clerk
	yes, no := ptr.To(true), ptr.To(false)
	calls := func() (gets, patches int) { return emu.Calls(getSettings), emu.Calls(patchSettings) }

	t.Run("a ClerkInstance serves the McpServers of its namespace and owns the settings", func(t *testing.T) {
		f := newFixture(t)
		issuer := clerkIssuer(tc, t)
		f.createSecret("platform-clerk", map[string]string{"secret-key": emu.SecretKey()})
		emu.SetSettings(clerktest.OAuthApplicationSettings{DynamicOAuthClientRegistration: false, OAuthJWTAccessTokens: false})
		gets0, patches0 := calls()
		f.create(&mcpv1.ClerkInstance{
			ObjectMeta: metav1.ObjectMeta{Name: "main"},
			Spec: instanceSpec(issuer, "platform-clerk",
				mcpv1.ClerkSettings{DynamicClientRegistration: yes, JWTAccessTokens: yes}, "openid", "email"),
		})
		f.create(newMcpServer(f.ns, "one", usingInstance("", "main")))
		f.create(newMcpServer(f.ns, "two", usingInstance(mcpv1.KindClerkInstance, "main")))

		inst := waitInstance(f, "main", &mcpv1.ClerkInstance{}, instanceReady[*mcpv1.ClerkInstance](metav1.ConditionTrue, mcpv1.ReasonSettingsSynced))
		want := mcpv1.ObservedClerkSettings{DynamicClientRegistration: true, JWTAccessTokens: true, DefaultScopes: []string{"email", "openid"}}
		if s := inst.Status.Settings; s == nil || s.DynamicClientRegistration != want.DynamicClientRegistration ||
			s.JWTAccessTokens != want.JWTAccessTokens || !slices.Equal(s.DefaultScopes, want.DefaultScopes) {
			t.Errorf("status.settings = %+v, want %+v", s, want)
		}
		if err := argoHealth[*mcpv1.ClerkInstance](t, argocd.StatusHealthy)(inst); err != nil {
			t.Errorf("the Argo CD health check (docs/gitops.md) on a synced ClerkInstance: %v", err)
		}
		if inst.Status.Issuer != issuer || inst.Status.LastSyncTime == nil {
			t.Errorf("status issuer %q, lastSyncTime %v; want %q and a time", inst.Status.Issuer, inst.Status.LastSyncTime, issuer)
		}
		if got := emu.Settings(); !got.DynamicOAuthClientRegistration || !got.OAuthJWTAccessTokens || !slices.Equal(got.DefaultScopes, want.DefaultScopes) {
			t.Errorf("emulator settings = %+v", got)
		}

		for _, name := range []string{"one", "two"} {
			mcp := f.waitMcp(name, condition(mcpv1.ConditionClerkConfigured, metav1.ConditionTrue, mcpv1.ReasonSettingsSynced))
			if msg := meta.FindStatusCondition(mcp.Status.Conditions, mcpv1.ConditionClerkConfigured).Message; !strings.Contains(msg, "ClerkInstance "+f.ns+"/main") {
				t.Errorf("%s: ClerkConfigured does not name the instance: %q", name, msg)
			}
			if mcp.Status.Issuer != issuer {
				t.Errorf("%s: status.issuer = %q, want %q", name, mcp.Status.Issuer, issuer)
			}
			d := waitFor(f, name+"-gateway", &appsv1.Deployment{}, nil)
			if secret, key := gatewaySecretVolume(d); secret != "platform-clerk" || key != "secret-key" {
				t.Errorf("%s: the gateway mounts %s/%s, want the instance's Secret platform-clerk/secret-key", name, secret, key)
			}
			cm := waitFor(f, name+"-gateway", &corev1.ConfigMap{}, nil)
			if cfg, err := config.Parse([]byte(cm.Data[config.FileName])); err != nil || cfg.Clerk.Issuer != issuer {
				t.Errorf("%s: gateway issuer = %q (%v), want %q", name, cfg.Clerk.Issuer, err, issuer)
			}
		}
		// The instance object, not each McpServer, talks to Clerk.
		if gets, patches := calls(); gets-gets0 != 1 || patches-patches0 != 1 {
			t.Errorf("Backend API calls: %d GET, %d PATCH; want 1 and 1", gets-gets0, patches-patches0)
		}
		f.setDeploymentAvailable("one-gateway", 1)
		f.waitMcp("one", condition(mcpv1.ConditionReady, metav1.ConditionTrue, mcpv1.ReasonReady))

		// A change to the instance's settings reaches Clerk once.
		eventually(t, func() error {
			got := &mcpv1.ClerkInstance{}
			if err := f.get("main", got); err != nil {
				return err
			}
			got.Spec.JWTAccessTokens = no
			return f.tc.client.Update(context.Background(), got)
		})
		waitInstance(f, "main", &mcpv1.ClerkInstance{}, func(i *mcpv1.ClerkInstance) error {
			if err := instanceReady[*mcpv1.ClerkInstance](metav1.ConditionTrue, mcpv1.ReasonSettingsSynced)(i); err != nil {
				return err
			}
			if i.Status.Settings == nil || i.Status.Settings.JWTAccessTokens {
				return fmt.Errorf("status.settings = %+v, want jwtAccessTokens false", i.Status.Settings)
			}
			return nil
		})
		if emu.Settings().OAuthJWTAccessTokens {
			t.Errorf("emulator settings = %+v, want JWT access tokens off", emu.Settings())
		}
	})

	t.Run("a missing instance is reported, and recovered from", func(t *testing.T) {
		f := newFixture(t)
		f.create(newMcpServer(f.ns, "tools", usingInstance("", "later")))
		mcp := f.waitMcp("tools", condition(mcpv1.ConditionReady, metav1.ConditionFalse, mcpv1.ReasonClerkInstanceNotFound))
		if err := condition(mcpv1.ConditionClerkConfigured, metav1.ConditionFalse, mcpv1.ReasonClerkInstanceNotFound)(mcp); err != nil {
			t.Error(err)
		}
		if err := condition(mcpv1.ConditionReconciling, metav1.ConditionTrue, mcpv1.ReasonClerkInstanceNotFound)(mcp); err != nil {
			t.Errorf("a missing instance is waited for, not stalled on: %v", err)
		}
		if msg := meta.FindStatusCondition(mcp.Status.Conditions, mcpv1.ConditionReady).Message; !strings.Contains(msg, `ClerkInstance "later" not found`) {
			t.Errorf("Ready message = %q", msg)
		}
		if err := f.get("tools-gateway", &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
			t.Errorf("a gateway was built without a Clerk instance: %v", err)
		}
		f.waitEvent("tools", corev1.EventTypeWarning, mcpv1.ReasonClerkInstanceNotFound)

		// The instance arrives (as from a GitOps sync in another order),
		// declaring nothing: its status still shows the instance's settings.
		f.createSecret("clerk", map[string]string{"secret-key": emu.SecretKey()})
		f.create(&mcpv1.ClerkInstance{ObjectMeta: metav1.ObjectMeta{Name: "later"}, Spec: instanceSpec(clerkIssuer(tc, t), "clerk", mcpv1.ClerkSettings{})})
		inst := waitInstance(f, "later", &mcpv1.ClerkInstance{}, instanceReady[*mcpv1.ClerkInstance](metav1.ConditionTrue, mcpv1.ReasonSettingsSynced))
		if inst.Status.Settings == nil || inst.Status.LastSyncTime == nil {
			t.Errorf("an instance declaring nothing shows no settings: %+v", inst.Status)
		}
		f.waitMcp("tools", condition(mcpv1.ConditionClerkConfigured, metav1.ConditionTrue, mcpv1.ReasonSettingsSynced))
		waitFor(f, "tools-gateway", &appsv1.Deployment{}, nil)
	})

	t.Run("an instance whose Secret is missing is reported, and recovered from", func(t *testing.T) {
		f := newFixture(t)
		f.create(&mcpv1.ClerkInstance{ObjectMeta: metav1.ObjectMeta{Name: "main"}, Spec: instanceSpec(clerkIssuer(tc, t), "clerk", mcpv1.ClerkSettings{})})
		f.create(newMcpServer(f.ns, "tools", usingInstance("", "main")))
		waitInstance(f, "main", &mcpv1.ClerkInstance{}, instanceReady[*mcpv1.ClerkInstance](metav1.ConditionFalse, mcpv1.ReasonSecretNotFound))
		mcp := f.waitMcp("tools", condition(mcpv1.ConditionReady, metav1.ConditionFalse, mcpv1.ReasonSecretNotFound))
		if msg := meta.FindStatusCondition(mcp.Status.Conditions, mcpv1.ConditionReady).Message; !strings.Contains(msg, "ClerkInstance "+f.ns+"/main") {
			t.Errorf("Ready message does not say whose Secret is missing: %q", msg)
		}
		f.createSecret("clerk", map[string]string{"secret-key": emu.SecretKey()})
		waitInstance(f, "main", &mcpv1.ClerkInstance{}, instanceReady[*mcpv1.ClerkInstance](metav1.ConditionTrue, mcpv1.ReasonSettingsSynced))
		f.setDeploymentAvailable("tools-gateway", 1)
		f.waitMcp("tools", condition(mcpv1.ConditionReady, metav1.ConditionTrue, mcpv1.ReasonReady))
	})

	t.Run("without the broker, a ClusterClerkInstance's key reaches no team namespace", func(t *testing.T) {
		f := newFixture(t)
		name := f.ns // cluster-scoped: one name per test
		f.createOperatorSecret(name, emu.SecretKey())
		f.createClusterInstance(name, instanceSpec(clerkIssuer(tc, t), name, mcpv1.ClerkSettings{}))
		f.create(newMcpServer(f.ns, "tools", usingInstance(mcpv1.KindClusterClerkInstance, name)))

		mcp := f.waitMcp("tools", condition(mcpv1.ConditionReady, metav1.ConditionFalse, mcpv1.ReasonBrokerRequired))
		ready := meta.FindStatusCondition(mcp.Status.Conditions, mcpv1.ConditionReady)
		for _, want := range []string{"ClusterClerkInstance " + name, "broker.enabled=true", "--broker-url", "ClerkInstance in this namespace"} {
			if !strings.Contains(ready.Message, want) {
				t.Errorf("Ready message %q does not say %q", ready.Message, want)
			}
		}
		if err := condition(mcpv1.ConditionStalled, metav1.ConditionTrue, mcpv1.ReasonBrokerRequired)(mcp); err != nil {
			t.Error(err)
		}
		// The instance keeps its settings whatever the gateways can use.
		f.waitMcp("tools", condition(mcpv1.ConditionClerkConfigured, metav1.ConditionTrue, mcpv1.ReasonSettingsSynced))
		f.waitEventIn(f.ns, "tools", mcpv1.ReasonBrokerRequired)

		// An earlier version's copy goes even without the broker; nothing
		// is built that would mount a key.
		f.create(oldCopy(mcp, name))
		f.waitGone("tools-gateway-clerk", &corev1.Secret{})
		if err := f.get("tools-gateway", &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
			t.Errorf("a gateway Deployment was built without a key it may use: %v", err)
		}

		// Moving to an inline block builds the gateway with the team's own key.
		f.createSecret("own", map[string]string{"secret-key": emu.SecretKey()})
		f.updateMcp("tools", func(m *mcpv1.McpServer) {
			m.Spec.Clerk = mcpv1.ClerkSpec{Issuer: mcpv1.IssuerURL(clerkIssuer(tc, t)), SecretKeyRef: mcpv1.SecretKeyReference{Name: "own", Key: "secret-key"}}
		})
		waitFor(f, "tools-gateway", &appsv1.Deployment{}, func(d *appsv1.Deployment) error {
			if secret, _ := gatewaySecretVolume(d); secret != "own" {
				return fmt.Errorf("the gateway mounts %s", secret)
			}
			return nil
		})
		f.setDeploymentAvailable("tools-gateway", 1)
		f.waitMcp("tools", condition(mcpv1.ConditionReady, metav1.ConditionTrue, mcpv1.ReasonReady))
	})

	t.Run("instance objects that disagree about one Clerk instance both report Conflict", func(t *testing.T) {
		f := newFixture(t)
		issuer := clerkIssuer(tc, t)
		emu.SetSettings(clerktest.OAuthApplicationSettings{OAuthJWTAccessTokens: true})
		_, patches0 := calls()
		f.createSecret("clerk", map[string]string{"secret-key": emu.SecretKey()})
		f.createOperatorSecret(f.ns, emu.SecretKey())
		f.create(&mcpv1.ClerkInstance{ObjectMeta: metav1.ObjectMeta{Name: "main"},
			Spec: instanceSpec(issuer, "clerk", mcpv1.ClerkSettings{JWTAccessTokens: yes})})
		f.createClusterInstance(f.ns, instanceSpec(issuer, f.ns, mcpv1.ClerkSettings{JWTAccessTokens: no}))

		ns := waitInstance(f, "main", &mcpv1.ClerkInstance{}, instanceReady[*mcpv1.ClerkInstance](metav1.ConditionFalse, mcpv1.ReasonConflict))
		if msg := meta.FindStatusCondition(ns.Status.Conditions, mcpv1.ConditionReady).Message; !strings.Contains(msg, "ClusterClerkInstance "+f.ns) {
			t.Errorf("the conflict does not name the other object: %q", msg)
		}
		if c := meta.FindStatusCondition(ns.Status.Conditions, mcpv1.ConditionStalled); c == nil || c.Status != metav1.ConditionTrue {
			t.Errorf("a conflict is not Stalled: %+v", ns.Status.Conditions)
		}
		cluster := waitInstance(f, f.ns, &mcpv1.ClusterClerkInstance{}, instanceReady[*mcpv1.ClusterClerkInstance](metav1.ConditionFalse, mcpv1.ReasonConflict))
		if err := argoHealth[*mcpv1.ClusterClerkInstance](t, argocd.StatusDegraded)(cluster); err != nil {
			t.Errorf("the Argo CD health check (docs/gitops.md) on a conflicting ClusterClerkInstance: %v", err)
		}
		if _, patches := calls(); patches != patches0 || !emu.Settings().OAuthJWTAccessTokens {
			t.Errorf("conflicting declarations were applied: %d PATCH, settings %+v", patches-patches0, emu.Settings())
		}

		// Removing the cluster-wide declaration settles both.
		eventually(t, func() error {
			got := &mcpv1.ClusterClerkInstance{}
			if err := f.tc.client.Get(context.Background(), client.ObjectKey{Name: f.ns}, got); err != nil {
				return err
			}
			got.Spec.JWTAccessTokens = nil
			return f.tc.client.Update(context.Background(), got)
		})
		waitInstance(f, "main", &mcpv1.ClerkInstance{}, instanceReady[*mcpv1.ClerkInstance](metav1.ConditionTrue, mcpv1.ReasonSettingsSynced))
		waitInstance(f, f.ns, &mcpv1.ClusterClerkInstance{}, instanceReady[*mcpv1.ClusterClerkInstance](metav1.ConditionTrue, mcpv1.ReasonSettingsSynced))
	})
}

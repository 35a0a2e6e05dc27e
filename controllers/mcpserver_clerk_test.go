package controllers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/clerk/clerktest"
)

// Backend API endpoints of the settings sync, as the emulator counts them.
const (
	getSettings   = "GET /v1/instance/oauth_application_settings"
	patchSettings = "PATCH /v1/instance/oauth_application_settings"
)

// clerkIssuer gives each subtest a Clerk instance of its own in the
// controller's eyes (instances are keyed by issuer), all served by the one
// emulator behind the manager's --clerk-api-url. The counter keeps repeated
// runs (-count=N) from finding the previous run's cached instance state.
func clerkIssuer(tc *testCluster, t *testing.T) string {
	return fmt.Sprintf("%s/%d-%s", tc.clerk.FrontendAPIURL(), nsCounter.Add(1), dnsSafe(t.Name()))
}

func usingEmulator(issuer string, dcr, jwt *bool) mcpOption {
	return func(m *mcpv1.McpServer) {
		withIssuer(issuer)(m)
		m.Spec.Clerk.DynamicClientRegistration = dcr
		m.Spec.Clerk.JWTAccessTokens = jwt
	}
}

// TestClerkSync runs against the Clerk emulator. Its subtests share the
// emulator's settings and faults, so they run one after the other.
func TestClerkSync(t *testing.T) {
	tc := envCluster(t)
	emu := tc.clerk
	yes, no := ptr.To(true), ptr.To(false)
	calls := func() (gets, patches int) { return emu.Calls(getSettings), emu.Calls(patchSettings) }

	t.Run("agreeing McpServers make one PATCH", func(t *testing.T) {
		f := newFixture(t)
		f.createSecret("clerk", map[string]string{"secret-key": emu.SecretKey()})
		emu.SetSettings(clerktest.OAuthApplicationSettings{DynamicOAuthClientRegistration: false, OAuthJWTAccessTokens: true})
		gets0, patches0 := calls()
		issuer := clerkIssuer(tc, t)
		f.create(newMcpServer(f.ns, "one", usingEmulator(issuer, yes, yes)))
		f.create(newMcpServer(f.ns, "two", usingEmulator(issuer, yes, nil)))
		for _, name := range []string{"one", "two"} {
			f.waitMcp(name, condition(mcpv1.ConditionClerkConfigured, metav1.ConditionTrue, mcpv1.ReasonSettingsSynced))
		}
		if !emu.Settings().DynamicOAuthClientRegistration || !emu.Settings().OAuthJWTAccessTokens {
			t.Errorf("emulator settings = %+v", emu.Settings())
		}
		gets, patches := calls()
		if gets-gets0 != 1 || patches-patches0 != 1 {
			t.Errorf("Backend API calls: %d GET, %d PATCH; want 1 and 1 for one instance", gets-gets0, patches-patches0)
		}
		f.waitEvent("one", corev1.EventTypeNormal, eventReasonSettingsPatched)

		// Steady state: reconciling again makes no Backend API call.
		f.updateMcp("two", func(m *mcpv1.McpServer) { m.Spec.Scopes = []mcpv1.Scope{"email"} })
		f.waitMcp("two", observed)
		if g, p := calls(); g != gets || p != patches {
			t.Errorf("a settled instance was called again: %d GET, %d PATCH", g-gets, p-patches)
		}
	})

	t.Run("conflicting McpServers both report Conflict and nothing is patched", func(t *testing.T) {
		f := newFixture(t)
		f.createSecret("clerk", map[string]string{"secret-key": emu.SecretKey()})
		emu.SetSettings(clerktest.OAuthApplicationSettings{DynamicOAuthClientRegistration: true, OAuthJWTAccessTokens: true})
		_, patches0 := calls()
		issuer := clerkIssuer(tc, t)
		f.create(newMcpServer(f.ns, "one", usingEmulator(issuer, yes, nil)))
		f.create(newMcpServer(f.ns, "two", usingEmulator(issuer, no, nil)))
		for name, other := range map[string]string{"one": "two", "two": "one"} {
			mcp := f.waitMcp(name, condition(mcpv1.ConditionClerkConfigured, metav1.ConditionFalse, mcpv1.ReasonConflict))
			if msg := meta.FindStatusCondition(mcp.Status.Conditions, mcpv1.ConditionClerkConfigured).Message; !strings.Contains(msg, f.ns+"/"+other) {
				t.Errorf("%s: conflict message does not name %s: %q", name, other, msg)
			}
			if err := condition(mcpv1.ConditionReady, metav1.ConditionFalse, mcpv1.ReasonConflict)(mcp); err != nil {
				t.Error(err)
			}
		}
		if _, patches := calls(); patches != patches0 || !emu.Settings().DynamicOAuthClientRegistration {
			t.Errorf("conflicting declarations were applied: %d PATCH, settings %+v", patches-patches0, emu.Settings())
		}
		f.waitEvent("two", corev1.EventTypeWarning, mcpv1.ReasonConflict)

		// Resolving the conflict lets the sync proceed, for both.
		f.updateMcp("two", func(m *mcpv1.McpServer) { m.Spec.Clerk.DynamicClientRegistration = yes })
		for _, name := range []string{"one", "two"} {
			f.waitMcp(name, condition(mcpv1.ConditionClerkConfigured, metav1.ConditionTrue, mcpv1.ReasonSettingsSynced))
		}
	})

	t.Run("a Clerk outage is reported and recovered from", func(t *testing.T) {
		f := newFixture(t)
		f.createSecret("clerk", map[string]string{"secret-key": emu.SecretKey()})
		emu.SetSettings(clerktest.OAuthApplicationSettings{DynamicOAuthClientRegistration: false})
		emu.SetFault(getSettings, clerktest.Fault{Status: 500})
		defer emu.ClearFaults()
		f.create(newMcpServer(f.ns, "one", usingEmulator(clerkIssuer(tc, t), yes, nil)))
		mcp := f.waitMcp("one", condition(mcpv1.ConditionClerkConfigured, metav1.ConditionFalse, mcpv1.ReasonClerkUnavailable))
		f.waitEvent("one", corev1.EventTypeWarning, mcpv1.ReasonClerkUnavailable)
		// The outage does not hold back the gateway's objects.
		if mcp.Status.ObservedGeneration != mcp.Generation {
			t.Errorf("observedGeneration %d, generation %d", mcp.Status.ObservedGeneration, mcp.Generation)
		}
		waitFor(f, "one-gateway", &corev1.Service{}, nil)

		emu.ClearFaults()
		f.waitMcp("one", condition(mcpv1.ConditionClerkConfigured, metav1.ConditionTrue, mcpv1.ReasonSettingsSynced))
		if !emu.Settings().DynamicOAuthClientRegistration {
			t.Errorf("settings not patched after recovery: %+v", emu.Settings())
		}
	})

	t.Run("a wrong secret key is reported", func(t *testing.T) {
		f := newFixture(t)
		f.createSecret("clerk", map[string]string{"secret-key": "sk_test_wrong"})
		f.create(newMcpServer(f.ns, "one", usingEmulator(clerkIssuer(tc, t), yes, nil)))
		mcp := f.waitMcp("one", condition(mcpv1.ConditionClerkConfigured, metav1.ConditionFalse, mcpv1.ReasonClerkUnauthorized))
		if msg := meta.FindStatusCondition(mcp.Status.Conditions, mcpv1.ConditionClerkConfigured).Message; strings.Contains(msg, "sk_test_wrong") {
			t.Errorf("the condition message holds the secret key: %q", msg)
		}
		f.waitEvent("one", corev1.EventTypeWarning, mcpv1.ReasonClerkUnauthorized)
	})

	t.Run("a 429 is retried after Retry-After", func(t *testing.T) {
		f := newFixture(t)
		f.createSecret("clerk", map[string]string{"secret-key": emu.SecretKey()})
		emu.SetSettings(clerktest.OAuthApplicationSettings{OAuthJWTAccessTokens: false})
		emu.SetFault(getSettings, clerktest.Fault{Status: 429, RetryAfter: 2 * time.Second})
		defer emu.ClearFaults()
		gets0, _ := calls()
		f.create(newMcpServer(f.ns, "one", usingEmulator(clerkIssuer(tc, t), nil, yes)))
		f.waitMcp("one", condition(mcpv1.ConditionClerkConfigured, metav1.ConditionFalse, mcpv1.ReasonClerkRateLimited))
		limitedAt := time.Now()
		emu.ClearFaults()
		// Nothing is sent before Retry-After has passed, however often the
		// McpServer is reconciled meanwhile.
		f.updateMcp("one", func(m *mcpv1.McpServer) { m.Spec.Scopes = []mcpv1.Scope{"email"} })
		f.waitMcp("one", func(m *mcpv1.McpServer) error {
			if err := observed(m); err != nil {
				return err
			}
			return condition(mcpv1.ConditionClerkConfigured, metav1.ConditionFalse, mcpv1.ReasonClerkRateLimited)(m)
		})
		if time.Since(limitedAt) < 2*time.Second {
			if gets, _ := calls(); gets-gets0 != 1 {
				t.Errorf("%d GETs before Retry-After passed, want 1", gets-gets0)
			}
		}
		f.waitMcp("one", condition(mcpv1.ConditionClerkConfigured, metav1.ConditionTrue, mcpv1.ReasonSettingsSynced))
		if !emu.Settings().OAuthJWTAccessTokens {
			t.Errorf("settings not patched after the rate limit: %+v", emu.Settings())
		}
	})

	t.Run("nothing declared means no Backend API call", func(t *testing.T) {
		f := newFixture(t)
		f.createSecret("clerk", map[string]string{"secret-key": emu.SecretKey()})
		gets0, patches0 := calls()
		f.create(newMcpServer(f.ns, "one", usingEmulator(clerkIssuer(tc, t), nil, nil)))
		f.waitMcp("one", condition(mcpv1.ConditionClerkConfigured, metav1.ConditionTrue, mcpv1.ReasonNothingToConfigure))
		if gets, patches := calls(); gets != gets0 || patches != patches0 {
			t.Errorf("calls made for an McpServer that declares nothing: %d GET, %d PATCH", gets-gets0, patches-patches0)
		}
	})
}

package controllers

import (
	"context"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/gateway/config"
)

// withHeader adds a credential header set from a Secret key.
func withHeader(name, secret, key, prefix string) mcpOption {
	return func(m *mcpv1.McpServer) {
		if m.Spec.Upstream.Credentials == nil {
			m.Spec.Upstream.Credentials = &mcpv1.UpstreamCredentials{}
		}
		m.Spec.Upstream.Credentials.Headers = append(m.Spec.Upstream.Credentials.Headers, mcpv1.CredentialHeader{
			Name: mcpv1.HeaderName(name), SecretKeyRef: mcpv1.SecretKeyReference{Name: secret, Key: key}, Prefix: mcpv1.HeaderValuePrefix(prefix),
		})
	}
}

// withUserToken sets the user's OAuth token credential.
func withUserToken(token mcpv1.UserOAuthToken) mcpOption {
	return func(m *mcpv1.McpServer) {
		if m.Spec.Upstream.Credentials == nil {
			m.Spec.Upstream.Credentials = &mcpv1.UpstreamCredentials{}
		}
		m.Spec.Upstream.Credentials.UserOAuthToken = &token
	}
}

func TestBuildCredentials(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		mcp    *mcpv1.McpServer
		issuer string // the resolved issuer; testIssuer when empty
		want   *config.Credentials
	}{
		"none": {mcp: newMcpServer("team-a", "tools")},
		"headers, by index": {
			mcp: newMcpServer("team-a", "tools", withHeader("X-Api-Key", "api", "key", ""), withHeader("Authorization", "api", "token", "Bearer ")),
			want: &config.Credentials{Headers: []config.CredentialHeader{
				{Name: "X-Api-Key", File: "/etc/mcpgate/credentials/header-0"},
				{Name: "Authorization", File: "/etc/mcpgate/credentials/header-1", Prefix: "Bearer "},
			}},
		},
		"user token, as the API server defaults it": {
			mcp: newMcpServer("team-a", "tools", withUserToken(mcpv1.UserOAuthToken{Provider: "oauth_github", Header: "Authorization", Prefix: ptr.To[mcpv1.HeaderValuePrefix]("Bearer ")})),
			want: &config.Credentials{UserOAuthToken: &config.UserOAuthToken{
				Provider: "oauth_github", Header: "Authorization", Prefix: "Bearer ", ConnectURL: "https://happy-otter-12.accounts.dev/user",
			}},
		},
		"user token, not defaulted": {
			mcp: newMcpServer("team-a", "tools", withUserToken(mcpv1.UserOAuthToken{Provider: "oauth_github"})),
			want: &config.Credentials{UserOAuthToken: &config.UserOAuthToken{
				Provider: "oauth_github", Header: "Authorization", Prefix: "Bearer ", ConnectURL: "https://happy-otter-12.accounts.dev/user",
			}},
		},
		"user token, no prefix, own header and connect URL, production issuer": {
			mcp: newMcpServer("team-a", "tools", withUserToken(mcpv1.UserOAuthToken{
				Provider: "oauth_custom_acme", Header: "X-Acme-Token", Prefix: ptr.To[mcpv1.HeaderValuePrefix](""), ConnectURL: "https://app.example.com/connect",
			})),
			issuer: "https://clerk.example.com",
			want: &config.Credentials{UserOAuthToken: &config.UserOAuthToken{
				Provider: "oauth_custom_acme", Header: "X-Acme-Token", Prefix: "", ConnectURL: "https://app.example.com/connect",
			}},
		},
		"both": {
			mcp:    newMcpServer("team-a", "tools", withHeader("X-Api-Key", "api", "key", ""), withUserToken(mcpv1.UserOAuthToken{Provider: "oauth_github"})),
			issuer: "https://clerk.example.com",
			want: &config.Credentials{
				Headers:        []config.CredentialHeader{{Name: "X-Api-Key", File: "/etc/mcpgate/credentials/header-0"}},
				UserOAuthToken: &config.UserOAuthToken{Provider: "oauth_github", Header: "Authorization", Prefix: "Bearer ", ConnectURL: "https://accounts.example.com/user"},
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			issuer := tc.issuer
			if issuer == "" {
				issuer = testIssuer
			}
			data, err := config.Marshal(buildGatewayConfig(tc.mcp, testOptions, issuer, "http://upstream.team-a.svc:8080/mcp"))
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			cfg, err := config.Parse(data)
			if err != nil {
				t.Fatalf("the gateway would refuse the config: %v", err)
			}
			if !reflect.DeepEqual(cfg.Upstream.Credentials, tc.want) {
				t.Errorf("credentials = %+v, want %+v", cfg.Upstream.Credentials, tc.want)
			}
		})
	}
}

func TestAccountPortalProfileURL(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"https://happy-otter-12.clerk.accounts.dev": "https://happy-otter-12.accounts.dev/user",
		"https://Happy-Otter-12.Clerk.Accounts.dev": "https://happy-otter-12.accounts.dev/user",
		"https://clerk.example.com":                 "https://accounts.example.com/user",
		"https://clerk.tools.example.co.uk":         "https://accounts.tools.example.co.uk/user",
		"https://clerk.accounts.dev":                "", // no instance slug
		"https://a.b.clerk.accounts.dev":            "",
		"https://clerk.com":                         "", // no domain of one's own
		"https://example.com/__clerk":               "", // a proxy: the Account Portal is not derivable
		"https://auth.example.com":                  "",
		"https://clerk.example.com:8443":            "",
		"http://127.0.0.1:4455":                     "",
		"http://clerk.example.com":                  "",
		"::":                                        "",
	}
	for issuer, want := range tests {
		if got := accountPortalProfileURL(issuer); got != want {
			t.Errorf("accountPortalProfileURL(%q) = %q, want %q", issuer, got, want)
		}
	}
}

// TestBuildDeployment_credentials: each header's Secret key is a file of one
// read-only projected volume, group-readable only, and no credential reaches
// the environment, the arguments or the config.
func TestBuildDeployment_credentials(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		mcp         *mcpv1.McpServer
		wantSources []corev1.VolumeProjection // nil: no credentials volume
	}{
		"no credentials": {mcp: newMcpServer("team-a", "tools")},
		"user token only": {
			mcp: newMcpServer("team-a", "tools", withUserToken(mcpv1.UserOAuthToken{Provider: "oauth_github"})),
		},
		"two headers, one Secret": {
			mcp: newMcpServer("team-a", "tools", withHeader("X-Api-Key", "api", "key", ""), withHeader("X-Tenant-Token", "api", "tenant", "Token ")),
			wantSources: []corev1.VolumeProjection{
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "api"}, Items: []corev1.KeyToPath{{Key: "key", Path: "header-0"}}}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "api"}, Items: []corev1.KeyToPath{{Key: "tenant", Path: "header-1"}}}},
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d := typed[appsv1.Deployment](t, buildDeployment(tc.mcp, testOptions, "abc123", tc.mcp.Spec.Clerk.SecretKeyRef))
			pod := d.Spec.Template.Spec
			c := pod.Containers[0]
			if len(c.Env) != 0 || len(c.EnvFrom) != 0 {
				t.Errorf("container has environment %v %v; credentials must arrive only as files", c.Env, c.EnvFrom)
			}
			if want := []string{"gateway", "--config", "/etc/mcpgate/config/config.json"}; !reflect.DeepEqual(c.Args, want) {
				t.Errorf("args = %q, want %q", c.Args, want)
			}
			var vol *corev1.Volume
			for i := range pod.Volumes {
				if pod.Volumes[i].Name == credentialsVolume {
					vol = &pod.Volumes[i]
				}
			}
			var mount *corev1.VolumeMount
			for i := range c.VolumeMounts {
				if c.VolumeMounts[i].Name == credentialsVolume {
					mount = &c.VolumeMounts[i]
				}
			}
			if tc.wantSources == nil {
				if vol != nil || mount != nil {
					t.Errorf("credentials volume %+v mounted %+v, want none", vol, mount)
				}
				return
			}
			if vol == nil || vol.Projected == nil {
				t.Fatalf("credentials volume = %+v, want a projected volume", vol)
			}
			if m := vol.Projected.DefaultMode; m == nil || *m != 0o440 {
				t.Errorf("defaultMode = %v, want 0440", m)
			}
			if !reflect.DeepEqual(vol.Projected.Sources, tc.wantSources) {
				t.Errorf("sources = %+v, want %+v", vol.Projected.Sources, tc.wantSources)
			}
			if mount == nil || !mount.ReadOnly || mount.MountPath != credentialsDir {
				t.Errorf("credentials mount = %+v, want read-only at %s", mount, credentialsDir)
			}
			// The files the config names are the ones the volume holds.
			creds := buildCredentials(tc.mcp.Spec.Upstream.Credentials, testIssuer)
			for i, h := range creds.Headers {
				if want := mount.MountPath + "/" + tc.wantSources[i].Secret.Items[0].Path; h.File != want {
					t.Errorf("header %s file = %q, want %q", h.Name, h.File, want)
				}
			}
		})
	}
}

// TestMcpServerReconciler_credentials: a missing credential Secret, then a
// missing key, hold the McpServer at SecretNotFound with a Warning Event; the
// Secret watch recovers it as soon as the key exists; and a new value in the
// Secret changes neither the config nor the pod template.
func TestMcpServerReconciler_credentials(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.createSecret("clerk", map[string]string{"secret-key": "sk_test_x"})
	f.create(newMcpServer(f.ns, "tools", withUpstreamURL("https://mcp.example.com"), withHeader("X-Api-Key", "upstream-key", "key", ""),
		withUserToken(mcpv1.UserOAuthToken{Provider: "oauth_github"})))

	mcp := f.waitMcp("tools", condition(mcpv1.ConditionReady, metav1.ConditionFalse, mcpv1.ReasonSecretNotFound))
	if msg := meta.FindStatusCondition(mcp.Status.Conditions, mcpv1.ConditionReady).Message; !strings.Contains(msg, "spec.upstream.credentials.headers[0] (X-Api-Key)") ||
		!strings.Contains(msg, `"upstream-key"`) {
		t.Errorf("message does not name the header and the Secret: %q", msg)
	}
	f.waitEvent("tools", corev1.EventTypeWarning, mcpv1.ReasonSecretNotFound)
	// The rest is applied anyway; the pods wait for the Secret.
	d := waitFor(f, "tools-gateway", &appsv1.Deployment{}, nil)
	cm := waitFor(f, "tools-gateway", &corev1.ConfigMap{}, nil)
	cfg, err := gatewayConfig(cm)
	if err != nil {
		t.Fatal(err)
	}
	want := &config.Credentials{
		Headers:        []config.CredentialHeader{{Name: "X-Api-Key", File: "/etc/mcpgate/credentials/header-0"}},
		UserOAuthToken: &config.UserOAuthToken{Provider: "oauth_github", Header: "Authorization", Prefix: "Bearer ", ConnectURL: "https://happy-otter-12.accounts.dev/user"},
	}
	if !reflect.DeepEqual(cfg.Upstream.Credentials, want) {
		t.Errorf("credentials = %+v, want %+v (defaults from the API server)", cfg.Upstream.Credentials, want)
	}

	// A Secret without the key is no better.
	f.createSecret("upstream-key", map[string]string{"other": "x"})
	f.waitMcp("tools", func(m *mcpv1.McpServer) error {
		c := meta.FindStatusCondition(m.Status.Conditions, mcpv1.ConditionReady)
		if c == nil || c.Reason != mcpv1.ReasonSecretNotFound || !strings.Contains(c.Message, `no key "key"`) {
			return fmt.Errorf("ready = %+v", c)
		}
		return nil
	})

	// Adding the key recovers without touching the McpServer.
	updateSecret := func(value string) {
		eventually(t, func() error {
			s := &corev1.Secret{}
			if err := f.get("upstream-key", s); err != nil {
				return err
			}
			s.Data["key"] = []byte(value)
			return f.tc.client.Update(context.Background(), s)
		})
	}
	updateSecret("first-value")
	f.waitMcp("tools", condition(mcpv1.ConditionReady, metav1.ConditionFalse, mcpv1.ReasonDeploymentUnavailable))
	f.setDeploymentAvailable("tools-gateway", 1)
	f.waitMcp("tools", condition(mcpv1.ConditionReady, metav1.ConditionTrue, mcpv1.ReasonReady))

	// Rotation is the kubelet's and the gateway's business: no rollout.
	before := &appsv1.Deployment{}
	if err := f.get("tools-gateway", before); err != nil {
		t.Fatal(err)
	}
	updateSecret("rotated-value")
	eventually(t, func() error { // let the cache see the new Secret
		s := &corev1.Secret{}
		if err := f.tc.mgrClient.Get(context.Background(), types.NamespacedName{Namespace: f.ns, Name: "upstream-key"}, s); err != nil {
			return err
		}
		cur := &corev1.Secret{}
		if err := f.get("upstream-key", cur); err != nil {
			return err
		}
		if s.ResourceVersion != cur.ResourceVersion {
			return fmt.Errorf("cache at %s, server at %s", s.ResourceVersion, cur.ResourceVersion)
		}
		return nil
	})
	if _, err := f.tc.reconciler.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: f.ns, Name: "tools"}}); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	after := &appsv1.Deployment{}
	if err := f.get("tools-gateway", after); err != nil {
		t.Fatal(err)
	}
	if after.Generation != before.Generation || !reflect.DeepEqual(after.Spec.Template, before.Spec.Template) {
		t.Errorf("a new Secret value changed the Deployment: generation %d -> %d", before.Generation, after.Generation)
	}
	if after.Spec.Template.Annotations[config.ConfigHashAnnotation] != d.Spec.Template.Annotations[config.ConfigHashAnnotation] {
		t.Errorf("config hash changed with the Secret's value")
	}
	f.waitMcp("tools", condition(mcpv1.ConditionReady, metav1.ConditionTrue, mcpv1.ReasonReady))
	cm = waitFor(f, "tools-gateway", &corev1.ConfigMap{}, nil)
	for _, v := range []string{"first-value", "rotated-value"} {
		if strings.Contains(cm.Data[config.FileName], v) {
			t.Errorf("the ConfigMap holds the credential %q", v)
		}
	}
}

// FuzzAccountPortalProfileURL: whatever the issuer, the derived connect URL
// is none or an https Account Portal profile page the gateway accepts.
func FuzzAccountPortalProfileURL(f *testing.F) {
	for _, s := range []string{testIssuer, "https://clerk.example.com", "https://clerk.accounts.dev", "https://example.com/__clerk", "http://127.0.0.1:4455", "https://clerk.a/b?c#d", "https://clerk.exa%41mple.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, issuer string) {
		got := accountPortalProfileURL(issuer)
		if got == "" {
			return
		}
		u, err := url.Parse(got)
		if err != nil || u.Scheme != "https" || u.Path != "/user" || u.RawQuery != "" || u.Fragment != "" || u.User != nil || u.Port() != "" ||
			!(strings.HasPrefix(u.Host, "accounts.") || strings.HasSuffix(u.Host, ".accounts.dev")) {
			t.Fatalf("accountPortalProfileURL(%q) = %q, not an Account Portal profile page", issuer, got)
		}
		cfg := buildGatewayConfig(newMcpServer("team-a", "tools", withUserToken(mcpv1.UserOAuthToken{Provider: "oauth_github"})), testOptions, testIssuer, "http://upstream.team-a.svc:8080/mcp")
		cfg.Upstream.Credentials.UserOAuthToken.ConnectURL = got
		if _, err := config.Marshal(cfg); err != nil {
			t.Fatalf("the gateway refuses the connect URL %q derived from %q: %v", got, issuer, err)
		}
	})
}

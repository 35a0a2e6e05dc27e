package controllers

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/clock"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/gateway/config"
)

// typed converts an apply configuration into the typed object it describes.
func typed[T any](t *testing.T, ac any) *T {
	t.Helper()
	b, err := json.Marshal(ac)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	out := new(T)
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	return out
}

func assertOwnedBy(t *testing.T, meta metav1.ObjectMeta, mcp *mcpv1.McpServer) {
	t.Helper()
	if len(meta.OwnerReferences) != 1 {
		t.Fatalf("owner references = %v, want exactly one", meta.OwnerReferences)
	}
	ref := meta.OwnerReferences[0]
	if ref.APIVersion != "mcpgate.dev/v1alpha1" || ref.Kind != "McpServer" || ref.Name != mcp.Name || ref.UID != mcp.UID ||
		ref.Controller == nil || !*ref.Controller || ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
		t.Fatalf("owner reference = %+v, want controller reference to McpServer %s", ref, mcp.Name)
	}
	if meta.Labels[config.LabelManagedBy] != config.ManagedByValue || meta.Labels[config.LabelMcpServer] != mcp.Name {
		t.Fatalf("labels = %v, want managed-by and mcpserver labels", meta.Labels)
	}
}

// TestBuildDeploymentImagePull checks that the operator's gateway image pull
// settings reach the pod, and that none are set when none are configured.
func TestBuildDeploymentImagePull(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		policy      corev1.PullPolicy
		secrets     []string
		wantPolicy  corev1.PullPolicy
		wantSecrets []corev1.LocalObjectReference
	}{
		"unset":              {},
		"policy and secrets": {policy: corev1.PullAlways, secrets: []string{"ghcr", "mirror"}, wantPolicy: corev1.PullAlways, wantSecrets: []corev1.LocalObjectReference{{Name: "ghcr"}, {Name: "mirror"}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			opts := testOptions
			opts.GatewayImagePullPolicy, opts.GatewayImagePullSecrets = tc.policy, tc.secrets
			pod := typed[appsv1.Deployment](t, buildDeployment(newMcpServer("team-a", "tools"), opts, "h", mcpv1.SecretKeyReference{Name: "clerk", Key: "secret-key"})).Spec.Template.Spec
			if got := pod.Containers[0].ImagePullPolicy; got != tc.wantPolicy {
				t.Errorf("image pull policy = %q, want %q", got, tc.wantPolicy)
			}
			if !reflect.DeepEqual(pod.ImagePullSecrets, tc.wantSecrets) {
				t.Errorf("image pull secrets = %v, want %v", pod.ImagePullSecrets, tc.wantSecrets)
			}
		})
	}
}

func TestBuildDeployment(t *testing.T) {
	t.Parallel()
	resources := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
	}
	// Burstable, with a CPU request for an autoscaler.
	defaultRes := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
	}
	tests := map[string]struct {
		mcp          *mcpv1.McpServer
		wantReplicas int32
		wantSecret   corev1.KeyToPath // the Secret key projected into the pod
		wantSecretIn string           // the Secret's name
		wantRes      corev1.ResourceRequirements
	}{
		"defaults": {
			mcp:          newMcpServer("team-a", "tools"),
			wantReplicas: 1,
			wantSecret:   corev1.KeyToPath{Key: "secret-key", Path: "secret-key"},
			wantSecretIn: "clerk",
			wantRes:      defaultRes,
		},
		"replicas and resources": {
			mcp:          newMcpServer("team-a", "tools", withReplicas(3), func(m *mcpv1.McpServer) { m.Spec.Gateway.Resources = resources }),
			wantReplicas: 3,
			wantSecret:   corev1.KeyToPath{Key: "secret-key", Path: "secret-key"},
			wantSecretIn: "clerk",
			wantRes:      resources,
		},
		"other secret key": {
			mcp:          newMcpServer("team-a", "tools", withSecretRef("clerk-prod", "sk")),
			wantReplicas: 1,
			wantSecret:   corev1.KeyToPath{Key: "sk", Path: "secret-key"},
			wantSecretIn: "clerk-prod",
			wantRes:      defaultRes,
		},
		"scaled to zero": {
			mcp:          newMcpServer("team-a", "tools", withReplicas(0)),
			wantReplicas: 0,
			wantSecret:   corev1.KeyToPath{Key: "secret-key", Path: "secret-key"},
			wantSecretIn: "clerk",
			wantRes:      defaultRes,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d := typed[appsv1.Deployment](t, buildDeployment(tc.mcp, testOptions, "abc123", tc.mcp.Spec.Clerk.SecretKeyRef))
			if d.Name != "tools-gateway" || d.Namespace != "team-a" {
				t.Fatalf("name = %s/%s", d.Namespace, d.Name)
			}
			assertOwnedBy(t, d.ObjectMeta, tc.mcp)
			if *d.Spec.Replicas != tc.wantReplicas {
				t.Errorf("replicas = %d, want %d", *d.Spec.Replicas, tc.wantReplicas)
			}
			if !reflect.DeepEqual(d.Spec.Selector.MatchLabels, selectorLabels(tc.mcp)) {
				t.Errorf("selector = %v", d.Spec.Selector.MatchLabels)
			}
			tpl := d.Spec.Template
			for k, v := range d.Spec.Selector.MatchLabels {
				if tpl.Labels[k] != v {
					t.Errorf("pod label %s = %q, want %q", k, tpl.Labels[k], v)
				}
			}
			if tpl.Annotations[config.ConfigHashAnnotation] != "abc123" {
				t.Errorf("config hash annotation = %q", tpl.Annotations[config.ConfigHashAnnotation])
			}
			pod := tpl.Spec
			if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
				t.Error("service account token is mounted")
			}
			psc := pod.SecurityContext
			if psc == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("pod security context = %+v, want non-root with RuntimeDefault seccomp", psc)
			}
			if len(pod.Containers) != 1 {
				t.Fatalf("containers = %d", len(pod.Containers))
			}
			c := pod.Containers[0]
			if c.Image != testOptions.GatewayImage {
				t.Errorf("image = %q", c.Image)
			}
			wantCmd := []string{"mcpgate", "gateway", "--config", "/etc/mcpgate/config/config.json"}
			if got := append(append([]string{}, c.Command...), c.Args...); !reflect.DeepEqual(got, wantCmd) {
				t.Errorf("command = %q, want %q", got, wantCmd)
			}
			if len(c.Env) != 0 || len(c.EnvFrom) != 0 {
				t.Errorf("container has environment %v %v; the secret key must arrive only as a file", c.Env, c.EnvFrom)
			}
			sc := c.SecurityContext
			if sc == nil || *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem || !*sc.RunAsNonRoot ||
				sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
				t.Errorf("container security context = %+v, want the restricted profile", sc)
			}
			ports := map[string]int32{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}
			if !reflect.DeepEqual(ports, map[string]int32{"http": 8080, "health": 8081}) {
				t.Errorf("ports = %v", ports)
			}
			for probe, path := range map[*corev1.Probe]string{c.LivenessProbe: "/healthz", c.ReadinessProbe: "/readyz"} {
				if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != path || probe.HTTPGet.Port != intstr.FromString("health") {
					t.Errorf("probe = %+v, want GET %s on the health port", probe, path)
				}
			}
			if !reflect.DeepEqual(c.Resources, tc.wantRes) {
				t.Errorf("resources = %+v, want %+v", c.Resources, tc.wantRes)
			}
			mounts := map[string]corev1.VolumeMount{}
			for _, m := range c.VolumeMounts {
				mounts[m.Name] = m
			}
			for _, name := range []string{configVolume, secretVolume} {
				if m, ok := mounts[name]; !ok || !m.ReadOnly {
					t.Errorf("volume %s mounted %+v, want read-only", name, m)
				}
			}
			vols := map[string]corev1.Volume{}
			for _, v := range pod.Volumes {
				vols[v.Name] = v
			}
			if cm := vols[configVolume].ConfigMap; cm == nil || cm.Name != "tools-gateway" {
				t.Errorf("config volume = %+v", vols[configVolume])
			}
			sec := vols[secretVolume].Secret
			if sec == nil || sec.SecretName != tc.wantSecretIn || !reflect.DeepEqual(sec.Items, []corev1.KeyToPath{tc.wantSecret}) {
				t.Errorf("secret volume = %+v, want %s with %+v", sec, tc.wantSecretIn, tc.wantSecret)
			}
		})
	}
}

func TestBuildIngress(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		mcp       *mcpv1.McpServer
		wantPaths []string
		wantTLS   []networkingv1.IngressTLS
		wantClass *string
		wantAnn   map[string]string
	}{
		"tls, class and annotations": {
			mcp: newMcpServer("team-a", "tools", withIngress("tools.example.com", "tools-tls"),
				withIngressClass("nginx", map[string]string{"cert-manager.io/cluster-issuer": "le"})),
			wantPaths: []string{"/mcp", "/.well-known/oauth-protected-resource/mcp"},
			wantTLS:   []networkingv1.IngressTLS{{Hosts: []string{"tools.example.com"}, SecretName: "tools-tls"}},
			wantClass: ptrTo("nginx"),
			wantAnn:   map[string]string{"cert-manager.io/cluster-issuer": "le"},
		},
		"plain http at the root": {
			mcp:       newMcpServer("team-a", "tools", withIngress("tools.example.com", ""), withPath("/")),
			wantPaths: []string{"/", "/.well-known/oauth-protected-resource"},
		},
		"nested path": {
			mcp:       newMcpServer("team-a", "tools", withIngress("tools.example.com", ""), withPath("/github/mcp")),
			wantPaths: []string{"/github/mcp", "/.well-known/oauth-protected-resource/github/mcp"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ing := typed[networkingv1.Ingress](t, buildIngress(tc.mcp))
			assertOwnedBy(t, ing.ObjectMeta, tc.mcp)
			if len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].Host != "tools.example.com" {
				t.Fatalf("rules = %+v", ing.Spec.Rules)
			}
			var paths []string
			for _, p := range ing.Spec.Rules[0].HTTP.Paths {
				paths = append(paths, p.Path)
				if p.PathType == nil || *p.PathType != networkingv1.PathTypeExact {
					t.Errorf("path %s type = %v, want Exact", p.Path, p.PathType)
				}
				if b := p.Backend.Service; b == nil || b.Name != "tools-gateway" || b.Port.Name != "http" {
					t.Errorf("path %s backend = %+v", p.Path, p.Backend)
				}
			}
			if !reflect.DeepEqual(paths, tc.wantPaths) {
				t.Errorf("paths = %q, want %q", paths, tc.wantPaths)
			}
			if !reflect.DeepEqual(ing.Spec.TLS, tc.wantTLS) {
				t.Errorf("tls = %+v, want %+v", ing.Spec.TLS, tc.wantTLS)
			}
			if !reflect.DeepEqual(ing.Spec.IngressClassName, tc.wantClass) {
				t.Errorf("class = %v, want %v", ing.Spec.IngressClassName, tc.wantClass)
			}
			if !reflect.DeepEqual(ing.Annotations, tc.wantAnn) {
				t.Errorf("annotations = %v, want %v", ing.Annotations, tc.wantAnn)
			}
		})
	}
}

func ptrTo[T any](v T) *T { return &v }

func TestBuildServiceAndPodDisruptionBudget(t *testing.T) {
	t.Parallel()
	mcp := newMcpServer("team-a", "tools", withReplicas(2))

	svc := typed[corev1.Service](t, buildService(mcp))
	assertOwnedBy(t, svc.ObjectMeta, mcp)
	if svc.Spec.Type != corev1.ServiceTypeClusterIP || !reflect.DeepEqual(svc.Spec.Selector, selectorLabels(mcp)) {
		t.Errorf("service spec = %+v", svc.Spec)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 80 || svc.Spec.Ports[0].TargetPort != intstr.FromString("http") {
		t.Errorf("service ports = %+v, want 80 -> http", svc.Spec.Ports)
	}

	pdb := typed[policyv1.PodDisruptionBudget](t, buildPodDisruptionBudget(mcp))
	assertOwnedBy(t, pdb.ObjectMeta, mcp)
	if pdb.Spec.MaxUnavailable == nil || *pdb.Spec.MaxUnavailable != intstr.FromInt32(1) ||
		!reflect.DeepEqual(pdb.Spec.Selector.MatchLabels, selectorLabels(mcp)) {
		t.Errorf("pdb spec = %+v", pdb.Spec)
	}
}

func TestEndpointsFor(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		mcp          *mcpv1.McpServer
		wantURL      string
		wantMetadata string
		wantPublic   bool
	}{
		"in-cluster only": {
			mcp:          newMcpServer("team-a", "tools"),
			wantURL:      "http://tools-gateway.team-a.svc/mcp",
			wantMetadata: "http://tools-gateway.team-a.svc/.well-known/oauth-protected-resource/mcp",
		},
		"ingress with tls": {
			mcp:          newMcpServer("team-a", "tools", withIngress("tools.example.com", "tls")),
			wantURL:      "https://tools.example.com/mcp",
			wantMetadata: "https://tools.example.com/.well-known/oauth-protected-resource/mcp",
			wantPublic:   true,
		},
		"ingress without tls": {
			mcp:          newMcpServer("team-a", "tools", withIngress("tools.example.com", "")),
			wantURL:      "http://tools.example.com/mcp",
			wantMetadata: "http://tools.example.com/.well-known/oauth-protected-resource/mcp",
			wantPublic:   true,
		},
		"root path": {
			mcp:          newMcpServer("team-a", "tools", withIngress("tools.example.com", "tls"), withPath("/")),
			wantURL:      "https://tools.example.com/",
			wantMetadata: "https://tools.example.com/.well-known/oauth-protected-resource",
			wantPublic:   true,
		},
		"path not yet defaulted": {
			mcp:          newMcpServer("team-a", "tools", withPath("")),
			wantURL:      "http://tools-gateway.team-a.svc/mcp",
			wantMetadata: "http://tools-gateway.team-a.svc/.well-known/oauth-protected-resource/mcp",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ep := endpointsFor(tc.mcp)
			if ep.url != tc.wantURL || ep.resourceMetadataURL != tc.wantMetadata || ep.public != tc.wantPublic {
				t.Errorf("endpoints = %+v, want %s, %s, public %v", ep, tc.wantURL, tc.wantMetadata, tc.wantPublic)
			}
		})
	}
}

func TestUpstreamURL(t *testing.T) {
	t.Parallel()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "upstream"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "metrics", Port: 9090}, {Name: "mcp", Port: 3000}}},
	}
	tests := map[string]struct {
		mcp     *mcpv1.McpServer
		svc     *corev1.Service
		want    string
		wantErr string
	}{
		"numbered port":        {mcp: newMcpServer("ns", "a"), want: "http://upstream.ns.svc:8080/mcp"},
		"named port":           {mcp: newMcpServer("ns", "a", withUpstreamPort(intstr.FromString("mcp"))), svc: svc, want: "http://upstream.ns.svc:3000/mcp"},
		"named port, no svc":   {mcp: newMcpServer("ns", "a", withUpstreamPort(intstr.FromString("mcp"))), wantErr: "does not exist"},
		"named port, no match": {mcp: newMcpServer("ns", "a", withUpstreamPort(intstr.FromString("web"))), svc: svc, wantErr: `no port named "web"`},
		"external url": {
			mcp:  newMcpServer("ns", "a", withUpstreamURL("https://mcp.example.com/"), func(m *mcpv1.McpServer) { m.Spec.Upstream.Path = "/v1/mcp" }),
			want: "https://mcp.example.com/v1/mcp",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := upstreamURL(tc.mcp, tc.svc)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("upstreamURL = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestBuildGatewayConfig(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		mcp                *mcpv1.McpServer
		wantPublicURL      string
		wantAllowedOrigins []string
	}{
		"in-cluster: public URL left to the gateway": {
			mcp: newMcpServer("team-a", "tools", withScopes("profile", "email"), withToolScopes("delete_repo", "repo:admin")),
		},
		"ingress: public URL known": {
			mcp: newMcpServer("team-a", "tools", withScopes("profile", "email"), withToolScopes("delete_repo", "repo:admin"), withIngress("tools.example.com", "tls"),
				func(m *mcpv1.McpServer) { m.Spec.Gateway.AllowedOrigins = []mcpv1.Origin{"https://app.example.com"} }),
			wantPublicURL:      "https://tools.example.com/mcp",
			wantAllowedOrigins: []string{"https://app.example.com"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data, err := config.Marshal(buildGatewayConfig(tc.mcp, testOptions, testIssuer, "http://upstream.team-a.svc:8080/mcp"))
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			if strings.Contains(string(data), "sk_") {
				t.Fatal("config holds something that looks like a secret key")
			}
			cfg, err := config.Parse(data)
			if err != nil {
				t.Fatalf("the gateway would refuse the config: %v", err)
			}
			want := config.Config{
				APIVersion:     config.APIVersion,
				Kind:           config.Kind,
				Server:         config.ServerRef{Namespace: "team-a", Name: "tools"},
				Listen:         config.Listen{Traffic: ":8080", Health: ":8081"},
				Path:           "/mcp",
				PublicURL:      tc.wantPublicURL,
				ResourceName:   "team-a/tools",
				Upstream:       config.Upstream{URL: "http://upstream.team-a.svc:8080/mcp"},
				Scopes:         []string{"profile", "email"},
				ToolScopes:     []config.ToolScope{{Tool: "delete_repo", Scopes: []string{"repo:admin"}}},
				Clerk:          config.Clerk{Issuer: testIssuer, APIURL: testOptions.ClerkAPIURL, SecretKeyFile: "/etc/mcpgate/clerk/secret-key"},
				AllowedOrigins: tc.wantAllowedOrigins,
			}
			if !reflect.DeepEqual(cfg, want) {
				t.Errorf("config =\n%+v\nwant\n%+v", cfg, want)
			}
		})
	}
}

func TestBuildAccess(t *testing.T) {
	t.Parallel()
	org := mcpv1.AccessRule{Organization: "acme", Roles: []mcpv1.OrganizationRole{"org:admin", "org:member"}}
	tests := map[string]struct {
		access *mcpv1.AccessSpec // spec.access
		want   *config.Access    // nil: no access block in the gateway config
		mode   mcpv1.AccessMode  // status.access
	}{
		"no access": {mode: mcpv1.AccessAnySignedInUser},
		"access without rules": {
			access: &mcpv1.AccessSpec{CacheTTL: &metav1.Duration{Duration: time.Minute}},
			mode:   mcpv1.AccessAnySignedInUser,
		},
		"every kind of entry": {
			access: &mcpv1.AccessSpec{
				Allow: []mcpv1.AccessRule{
					org,
					{Organization: "org_2abcDEF", Permissions: []mcpv1.OrganizationPermission{"org:tools:write"}},
					{EmailDomain: "Example.COM"},
					{User: "user_2xyz"},
				},
				CacheTTL: &metav1.Duration{Duration: 5 * time.Minute},
			},
			want: &config.Access{
				Allow: []config.AccessRule{
					{Organization: "acme", Roles: []string{"org:admin", "org:member"}},
					{Organization: "org_2abcDEF", Permissions: []string{"org:tools:write"}},
					{EmailDomain: "example.com"},
					{User: "user_2xyz"},
				},
				CacheTTLSeconds: 300,
			},
			mode: mcpv1.AccessRestricted,
		},
		"tool rules only, TTL defaulted": {
			access: &mcpv1.AccessSpec{ToolAccess: []mcpv1.ToolAccess{
				{Tool: "delete_repo", Allow: []mcpv1.AccessRule{{Organization: "acme", Roles: []mcpv1.OrganizationRole{"org:admin"}}}},
				{Tool: "deploy", Allow: []mcpv1.AccessRule{{User: "user_1"}, {EmailDomain: "ops.example.com"}}},
			}},
			want: &config.Access{
				ToolAccess: []config.ToolAccess{
					{Tool: "delete_repo", Allow: []config.AccessRule{{Organization: "acme", Roles: []string{"org:admin"}}}},
					{Tool: "deploy", Allow: []config.AccessRule{{User: "user_1"}, {EmailDomain: "ops.example.com"}}},
				},
				CacheTTLSeconds: 60,
			},
			mode: mcpv1.AccessRestricted,
		},
		"server and tool rules, sub-second TTL rounded up": {
			access: &mcpv1.AccessSpec{
				Allow:      []mcpv1.AccessRule{org},
				ToolAccess: []mcpv1.ToolAccess{{Tool: "delete_repo", Allow: []mcpv1.AccessRule{{User: "user_1"}}}},
				CacheTTL:   &metav1.Duration{Duration: 5500 * time.Millisecond},
			},
			want: &config.Access{
				Allow:           []config.AccessRule{{Organization: "acme", Roles: []string{"org:admin", "org:member"}}},
				ToolAccess:      []config.ToolAccess{{Tool: "delete_repo", Allow: []config.AccessRule{{User: "user_1"}}}},
				CacheTTLSeconds: 6,
			},
			mode: mcpv1.AccessRestricted,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			mcp := newMcpServer("team-a", "tools", withAccess(tc.access))
			data, err := config.Marshal(buildGatewayConfig(mcp, testOptions, testIssuer, "http://upstream.team-a.svc:8080/mcp"))
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			cfg, err := config.Parse(data)
			if err != nil {
				t.Fatalf("the gateway would refuse the config: %v", err)
			}
			if !reflect.DeepEqual(cfg.Access, tc.want) {
				t.Errorf("access =\n%+v\nwant\n%+v", cfg.Access, tc.want)
			}
			if got := accessMode(mcp); got != tc.mode {
				t.Errorf("accessMode = %q, want %q", got, tc.mode)
			}
		})
	}
}

// TestBuildGatewayConfig_toolScopeChallenge: the gateway config carries
// AtSignIn, and nothing for StepUp or unset, so that servers without it keep
// their config hash (and their pods) across an operator upgrade.
func TestBuildGatewayConfig_toolScopeChallenge(t *testing.T) {
	t.Parallel()
	withChallenge := func(c mcpv1.ToolScopeChallenge) mcpOption {
		return func(m *mcpv1.McpServer) { m.Spec.ToolScopeChallenge = c }
	}
	build := func(t *testing.T, opts ...mcpOption) (config.Config, string) {
		t.Helper()
		data, err := config.Marshal(buildGatewayConfig(newMcpServer("team-a", "tools", opts...), testOptions, testIssuer, "http://upstream.team-a.svc:8080/mcp"))
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		cfg, err := config.Parse(data)
		if err != nil {
			t.Fatalf("the gateway would refuse the config: %v", err)
		}
		return cfg, configHash(data)
	}
	scoped := withToolScopes("delete_repo", "repo:admin")
	_, unsetHash := build(t, withScopes("profile"), scoped)
	tests := map[string]struct {
		opts     []mcpOption // of the McpServer, besides spec.scopes
		want     string      // the config's toolScopeChallenge
		sameHash bool        // the config hash equals that of the unset field
	}{
		"unset":    {opts: []mcpOption{scoped}, want: "", sameHash: true},
		"StepUp":   {opts: []mcpOption{scoped, withChallenge(mcpv1.ToolScopeChallengeStepUp)}, want: "", sameHash: true},
		"AtSignIn": {opts: []mcpOption{scoped, withChallenge(mcpv1.ToolScopeChallengeAtSignIn)}, want: config.ToolScopeChallengeAtSignIn},
		// The API refuses it; an object it did not check changes nothing.
		"AtSignIn without tool scopes": {opts: []mcpOption{withChallenge(mcpv1.ToolScopeChallengeAtSignIn)}, want: ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg, hash := build(t, append([]mcpOption{withScopes("profile")}, tc.opts...)...)
			if cfg.ToolScopeChallenge != tc.want {
				t.Errorf("toolScopeChallenge = %q, want %q", cfg.ToolScopeChallenge, tc.want)
			}
			if (hash == unsetHash) != tc.sameHash {
				t.Errorf("config hash %s, unset %s; want same: %v", hash, unsetHash, tc.sameHash)
			}
		})
	}
}

// TestBuildAccess_configHash: an access change rolls the gateway, and a
// change of an email domain's case alone does not.
func TestBuildAccess_configHash(t *testing.T) {
	t.Parallel()
	hash := func(access *mcpv1.AccessSpec) string {
		t.Helper()
		data, err := config.Marshal(buildGatewayConfig(newMcpServer("team-a", "tools", withAccess(access)), testOptions, testIssuer, "http://upstream.team-a.svc:8080/mcp"))
		if err != nil {
			t.Fatal(err)
		}
		return configHash(data)
	}
	open := hash(nil)
	lower := hash(&mcpv1.AccessSpec{Allow: []mcpv1.AccessRule{{EmailDomain: "example.com"}}})
	upper := hash(&mcpv1.AccessSpec{Allow: []mcpv1.AccessRule{{EmailDomain: "EXAMPLE.com"}}})
	other := hash(&mcpv1.AccessSpec{Allow: []mcpv1.AccessRule{{EmailDomain: "example.org"}}})
	if open == lower || lower == other {
		t.Errorf("config hash did not change with the access rules: %s %s %s", open, lower, other)
	}
	if lower != upper {
		t.Errorf("config hash changed with the case of an email domain: %s != %s", lower, upper)
	}
}

func TestReadiness(t *testing.T) {
	t.Parallel()
	cond := func(typ string, status metav1.ConditionStatus, reason string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: reason + " message", ObservedGeneration: 1}
	}
	gatewayUp := cond(mcpv1.ConditionGatewayAvailable, metav1.ConditionTrue, mcpv1.ReasonDeploymentAvailable)
	clerkOK := cond(mcpv1.ConditionClerkConfigured, metav1.ConditionTrue, mcpv1.ReasonSettingsSynced)
	tests := map[string]struct {
		ingress    bool               // whether spec.ingress is set
		conditions []metav1.Condition // conditions the steps set
		blocked    *blocker
		want       metav1.ConditionStatus
		wantReason string
	}{
		"blocked wins":         {conditions: []metav1.Condition{gatewayUp}, blocked: &blocker{mcpv1.ReasonSecretNotFound, "x"}, want: metav1.ConditionFalse, wantReason: mcpv1.ReasonSecretNotFound},
		"nothing yet":          {want: metav1.ConditionFalse, wantReason: mcpv1.ReasonProgressing},
		"gateway down":         {conditions: []metav1.Condition{clerkOK, cond(mcpv1.ConditionGatewayAvailable, metav1.ConditionFalse, mcpv1.ReasonDeploymentUnavailable)}, want: metav1.ConditionFalse, wantReason: mcpv1.ReasonDeploymentUnavailable},
		"clerk conflict":       {conditions: []metav1.Condition{cond(mcpv1.ConditionClerkConfigured, metav1.ConditionFalse, mcpv1.ReasonConflict), gatewayUp}, want: metav1.ConditionFalse, wantReason: mcpv1.ReasonConflict},
		"stale gateway":        {conditions: []metav1.Condition{clerkOK, {Type: mcpv1.ConditionGatewayAvailable, Status: metav1.ConditionTrue, Reason: "x", ObservedGeneration: 0}}, want: metav1.ConditionFalse, wantReason: mcpv1.ReasonProgressing},
		"gateway up":           {conditions: []metav1.Condition{clerkOK, gatewayUp}, want: metav1.ConditionTrue, wantReason: mcpv1.ReasonReady},
		"ingress pending":      {ingress: true, conditions: []metav1.Condition{clerkOK, gatewayUp, cond(mcpv1.ConditionIngressReady, metav1.ConditionFalse, mcpv1.ReasonAddressPending)}, want: metav1.ConditionFalse, wantReason: mcpv1.ReasonAddressPending},
		"ingress conflict":     {ingress: true, conditions: []metav1.Condition{clerkOK, gatewayUp, cond(mcpv1.ConditionIngressReady, metav1.ConditionFalse, mcpv1.ReasonHostPathConflict)}, want: metav1.ConditionFalse, wantReason: mcpv1.ReasonHostPathConflict},
		"ingress with address": {ingress: true, conditions: []metav1.Condition{clerkOK, gatewayUp, cond(mcpv1.ConditionIngressReady, metav1.ConditionTrue, mcpv1.ReasonAddressAssigned)}, want: metav1.ConditionTrue, wantReason: mcpv1.ReasonReady},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			mcp := newMcpServer("ns", "a")
			mcp.Generation = 1
			if tc.ingress {
				withIngress("tools.example.com", "")(mcp)
			}
			mcp.Status.Conditions = tc.conditions
			status, reason, _ := readiness(mcp, tc.blocked)
			if status != tc.want || reason != tc.wantReason {
				t.Errorf("readiness = %s/%s, want %s/%s", status, reason, tc.want, tc.wantReason)
			}
		})
	}
}

func TestSecretKeysOnly(t *testing.T) {
	t.Parallel()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{corev1.LastAppliedConfigAnnotation: `{"data":{"secret-key":"c2tfdGVzdA=="}}`, "keep": "me"}},
		Data:       map[string][]byte{"secret-key": []byte("sk_test_123")},
		StringData: map[string]string{"other": "sk_live_456"},
	}
	out, err := secretKeysOnly(s)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*corev1.Secret)
	if v, ok := got.Data["secret-key"]; !ok || v != nil {
		t.Errorf("data = %v, want the key kept without its value", got.Data)
	}
	if v := got.StringData["other"]; v != "" {
		t.Errorf("stringData value kept")
	}
	if _, ok := got.Annotations[corev1.LastAppliedConfigAnnotation]; ok || got.Annotations["keep"] != "me" {
		t.Errorf("annotations = %v, want only the last-applied copy dropped", got.Annotations)
	}
}

// TestSetProgress checks the kstatus conditions derived from Ready.
func TestSetProgress(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		ready                      metav1.ConditionStatus
		reason                     string
		wantReconciling, wantStall bool
	}{
		"ready":                      {ready: metav1.ConditionTrue, reason: mcpv1.ReasonReady},
		"scaled to zero is done":     {ready: metav1.ConditionFalse, reason: mcpv1.ReasonScaledToZero},
		"waiting for pods":           {ready: metav1.ConditionFalse, reason: mcpv1.ReasonDeploymentUnavailable, wantReconciling: true},
		"Secret not there yet":       {ready: metav1.ConditionFalse, reason: mcpv1.ReasonSecretNotFound, wantReconciling: true},
		"Clerk down, retrying":       {ready: metav1.ConditionFalse, reason: mcpv1.ReasonClerkUnavailable, wantReconciling: true},
		"invalid spec":               {ready: metav1.ConditionFalse, reason: mcpv1.ReasonInvalidSpec, wantStall: true},
		"host and path taken":        {ready: metav1.ConditionFalse, reason: mcpv1.ReasonHostPathConflict, wantStall: true},
		"Clerk refuses the key":      {ready: metav1.ConditionFalse, reason: mcpv1.ReasonClerkUnauthorized, wantStall: true},
		"conflicting Clerk settings": {ready: metav1.ConditionFalse, reason: mcpv1.ReasonConflict, wantStall: true},
		"instance not there yet":     {ready: metav1.ConditionFalse, reason: mcpv1.ReasonClerkInstanceNotFound, wantReconciling: true},
		"key needs the broker":       {ready: metav1.ConditionFalse, reason: mcpv1.ReasonBrokerRequired, wantStall: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := &McpServerReconciler{Clock: clock.RealClock{}}
			mcp := newMcpServer("team-a", "tools")
			// Start from the opposite, to see stale conditions removed.
			r.setCondition(mcp, mcpv1.ConditionReconciling, metav1.ConditionTrue, "Old", "old")
			r.setCondition(mcp, mcpv1.ConditionStalled, metav1.ConditionTrue, "Old", "old")
			setProgress(&mcp.Status.Conditions, mcp.Generation, time.Now(), tc.ready, tc.reason, "the message")
			for typ, want := range map[string]bool{mcpv1.ConditionReconciling: tc.wantReconciling, mcpv1.ConditionStalled: tc.wantStall} {
				c := meta.FindStatusCondition(mcp.Status.Conditions, typ)
				switch {
				case want && (c == nil || c.Status != metav1.ConditionTrue || c.Reason != tc.reason || c.Message != "the message"):
					t.Errorf("%s = %+v, want True/%s", typ, c, tc.reason)
				case !want && c != nil:
					t.Errorf("%s = %+v, want absent", typ, c)
				}
			}
		})
	}
}

// TestBuildAutoscaling: with autoscaling the Deployment leaves replicas to
// the HorizontalPodAutoscaler, which follows CPU use within the bounds.
func TestBuildAutoscaling(t *testing.T) {
	t.Parallel()
	mcp := newMcpServer("team-a", "tools", withReplicas(5), func(m *mcpv1.McpServer) {
		m.Spec.Gateway.Autoscaling = &mcpv1.GatewayAutoscaling{MinReplicas: 2, MaxReplicas: 10, TargetCPUUtilizationPercentage: 70}
	})
	d := typed[appsv1.Deployment](t, buildDeployment(mcp, testOptions, "h", mcp.Spec.Clerk.SecretKeyRef))
	if d.Spec.Replicas != nil {
		t.Errorf("replicas = %d with autoscaling, want unset so the autoscaler owns it", *d.Spec.Replicas)
	}
	hpa := typed[autoscalingv2.HorizontalPodAutoscaler](t, buildHorizontalPodAutoscaler(mcp))
	assertOwnedBy(t, hpa.ObjectMeta, mcp)
	ref := hpa.Spec.ScaleTargetRef
	if hpa.Name != "tools-gateway" || ref.Kind != "Deployment" || ref.Name != "tools-gateway" || ref.APIVersion != "apps/v1" ||
		*hpa.Spec.MinReplicas != 2 || hpa.Spec.MaxReplicas != 10 || len(hpa.Spec.Metrics) != 1 {
		t.Fatalf("hpa = %+v", hpa.Spec)
	}
	m := hpa.Spec.Metrics[0]
	if m.Type != autoscalingv2.ResourceMetricSourceType || m.Resource.Name != corev1.ResourceCPU ||
		m.Resource.Target.Type != autoscalingv2.UtilizationMetricType || *m.Resource.Target.AverageUtilization != 70 {
		t.Errorf("metric = %+v", m)
	}
	if got := minGatewayReplicas(mcp); got != 2 {
		t.Errorf("minGatewayReplicas = %d, want the autoscaler's floor 2", got)
	}
}

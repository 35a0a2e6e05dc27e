package localstack

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/mcpgate/mcpgate/gateway/config"
)

// gatewayPodSpec is a pod template's spec shaped like the one the
// controller writes: the config and secret mounts, and /tmp.
func gatewayPodSpec() corev1.PodSpec {
	return corev1.PodSpec{
		Containers: []corev1.Container{{
			Name:    "gateway",
			Image:   GatewayImage,
			Command: []string{"mcpgate"},
			Args:    []string{"gateway", "--config", "/etc/mcpgate/config/config.json"},
			VolumeMounts: []corev1.VolumeMount{
				{Name: "config", MountPath: "/etc/mcpgate/config", ReadOnly: true},
				{Name: "clerk-secret", MountPath: "/etc/mcpgate/clerk", ReadOnly: true},
				{Name: "tmp", MountPath: "/tmp"},
			},
		}},
		Volumes: []corev1.Volume{
			{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "tools-gateway"}, DefaultMode: ptr.To[int32](0o444)}}},
			{Name: "clerk-secret", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
				SecretName: "clerk", DefaultMode: ptr.To[int32](0o440),
				Items: []corev1.KeyToPath{{Key: "secret-key", Path: "secret-key"}}}}},
			{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		},
	}
}

func TestPlanMountsAndHostPathOf(t *testing.T) {
	t.Parallel()
	spec := gatewayPodSpec()
	mounts, err := planMounts(spec.Containers[0], spec.Volumes, "/pods/p1/root")
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		path string // in the container
		want string // local; "" for none
	}{
		"config file":        {"/etc/mcpgate/config/config.json", "/pods/p1/root/etc/mcpgate/config/config.json"},
		"secret key":         {"/etc/mcpgate/clerk/secret-key", "/pods/p1/root/etc/mcpgate/clerk/secret-key"},
		"mount itself":       {"/tmp", "/pods/p1/root/tmp"},
		"sibling of a mount": {"/etc/mcpgate/configuration", ""},
		"parent of a mount":  {"/etc/mcpgate", ""},
		"relative":           {"etc/mcpgate/config/config.json", ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, ok := hostPathOf(mounts, tc.path)
			if ok != (tc.want != "") || got != filepath.FromSlash(tc.want) {
				t.Errorf("hostPathOf(%q) = %q, %t; want %q", tc.path, got, ok, tc.want)
			}
		})
	}
}

func TestHostPathOfPrefersTheDeepestMount(t *testing.T) {
	t.Parallel()
	mounts := []mount{{mountPath: "/etc", hostPath: "/a"}, {mountPath: "/etc/mcpgate", hostPath: "/b"}}
	if got, _ := hostPathOf(mounts, "/etc/mcpgate/x"); got != filepath.FromSlash("/b/x") {
		t.Errorf("hostPathOf = %q, want /b/x", got)
	}
}

func TestPlanMountsRefusesWhatItCannotRun(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		edit func(*corev1.PodSpec) // breaks the spec
		want string                // in the error
	}{
		"unknown volume": {func(s *corev1.PodSpec) { s.Containers[0].VolumeMounts[0].Name = "nope" }, "names no volume"},
		"subPath":        {func(s *corev1.PodSpec) { s.Containers[0].VolumeMounts[0].SubPath = "x" }, "subPath"},
		"hostPath volume": {func(s *corev1.PodSpec) {
			s.Volumes[2].VolumeSource = corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}
		}, "neither"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			spec := gatewayPodSpec()
			tc.edit(&spec)
			if _, err := planMounts(spec.Containers[0], spec.Volumes, "/r"); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("planMounts: %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func TestGatewayContainer(t *testing.T) {
	t.Parallel()
	d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: gatewayPodSpec()}}}
	if _, err := gatewayContainer(d); err != nil {
		t.Errorf("the controller's container: %v", err)
	}
	d.Spec.Template.Spec.Containers[0].Command = []string{"/bin/sh", "-c", "rm -rf /"}
	if _, err := gatewayContainer(d); err == nil {
		t.Error("ran a command other than mcpgate")
	}
}

func TestLocalArgs(t *testing.T) {
	t.Parallel()
	mounts := []mount{{mountPath: "/etc/mcpgate/config", hostPath: "/local/cfg"}}
	tests := map[string]struct {
		args, want []string
	}{
		"separate value": {
			[]string{"gateway", "--config", "/etc/mcpgate/config/config.json"},
			[]string{"gateway", "--config", filepath.FromSlash("/local/cfg/config.json")},
		},
		"flag=value": {
			[]string{"gateway", "--config=/etc/mcpgate/config/config.json", "--log-level=debug"},
			[]string{"gateway", "--config=" + filepath.FromSlash("/local/cfg/config.json"), "--log-level=debug"},
		},
		"unmounted paths stay": {
			[]string{"gateway", "--config", "/etc/other.json"},
			[]string{"gateway", "--config", "/etc/other.json"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := localArgs(tc.args, mounts); !slices.Equal(got, tc.want) {
				t.Errorf("localArgs = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFlagValue(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		args  []string
		want  string
		found bool
	}{
		"double dash":     {[]string{"gateway", "--config", "a"}, "a", true},
		"single dash":     {[]string{"-config", "b"}, "b", true},
		"equals":          {[]string{"--config=c"}, "c", true},
		"missing value":   {[]string{"--config"}, "", false},
		"other flag":      {[]string{"--configure", "x"}, "", false},
		"positional word": {[]string{"config", "x"}, "", false},
		"triple dash":     {[]string{"---config", "x"}, "", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, found := flagValue(tc.args, "config")
			if got != tc.want || found != tc.found {
				t.Errorf("flagValue(%q) = %q, %t; want %q, %t", tc.args, got, found, tc.want, tc.found)
			}
		})
	}
}

func TestProjectVolume(t *testing.T) {
	t.Parallel()
	data := map[string][]byte{"secret-key": []byte("sk_test_1"), "other": []byte("x")}
	tests := map[string]struct {
		items    []corev1.KeyToPath
		optional bool
		want     map[string]projectedFile // nil: an error
	}{
		"every key, default mode": {nil, false, map[string]projectedFile{
			"secret-key": {[]byte("sk_test_1"), 0o440}, "other": {[]byte("x"), 0o440}}},
		"listed items at their paths and modes": {[]corev1.KeyToPath{{Key: "secret-key", Path: "dir/key", Mode: ptr.To[int32](0o400)}}, false,
			map[string]projectedFile{"dir/key": {[]byte("sk_test_1"), 0o400}}},
		"missing key":                  {[]corev1.KeyToPath{{Key: "nope", Path: "nope"}}, false, nil},
		"missing key, optional volume": {[]corev1.KeyToPath{{Key: "nope", Path: "nope"}}, true, map[string]projectedFile{}},
		"path leaving the volume":      {[]corev1.KeyToPath{{Key: "other", Path: "../escape"}}, false, nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := projectVolume(data, tc.items, ptr.To[int32](0o440), tc.optional)
			if (err != nil) != (tc.want == nil) {
				t.Fatalf("projectVolume: %v", err)
			}
			if !maps.EqualFunc(got, tc.want, func(a, b projectedFile) bool { return string(a.data) == string(b.data) && a.mode == b.mode }) {
				t.Errorf("projectVolume = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestWriteVolumeReplacesFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, content := range []string{"old", "new"} {
		if err := writeVolume(dir, map[string]projectedFile{"secret-key": {[]byte(content), 0o440}}); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, "secret-key"))
		if err != nil || string(got) != content {
			t.Fatalf("secret-key = %q, %v; want %q", got, err, content)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("the volume holds %d entries, want only secret-key", len(entries))
	}
}

func TestLocalConfig(t *testing.T) {
	t.Parallel()
	// As the controller writes it for a Service upstream without an Ingress.
	in := config.Config{
		Server:       config.ServerRef{Namespace: "demo", Name: "tools"},
		Listen:       config.Listen{Traffic: ":8080", Health: ":8081"},
		Path:         "/mcp",
		ResourceName: "demo/tools",
		Upstream: config.Upstream{URL: "http://sample-mcp.demo.svc:8080/mcp", Credentials: &config.Credentials{
			Headers: []config.CredentialHeader{{Name: "X-Api-Key", File: "/etc/mcpgate/credentials/0/value"}},
		}},
		Scopes:     []string{"profile"},
		ToolScopes: []config.ToolScope{{Tool: "delete_repo", Scopes: []string{"repo:admin"}}},
		Clerk:      config.Clerk{Issuer: "http://127.0.0.1:1", APIURL: "http://127.0.0.1:2/v1", SecretKeyFile: "/etc/mcpgate/clerk/secret-key"},
	}
	data, err := config.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	mounts := []mount{{mountPath: "/etc/mcpgate/clerk", hostPath: "/pod/clerk"}, {mountPath: "/etc/mcpgate/credentials/0", hostPath: "/pod/credentials/0"}}
	out, cfg, err := localConfig(data, mounts, "127.0.0.1:1001", "127.0.0.1:1002")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := config.Parse(out)
	if err != nil {
		t.Fatalf("the local config does not parse: %v", err)
	}
	want := in
	want.APIVersion, want.Kind = config.APIVersion, config.Kind
	want.Listen = config.Listen{Traffic: "127.0.0.1:1001", Health: "127.0.0.1:1002"}
	want.Clerk.SecretKeyFile = filepath.FromSlash("/pod/clerk/secret-key")
	want.Upstream.Credentials = &config.Credentials{Headers: []config.CredentialHeader{{Name: "X-Api-Key", File: filepath.FromSlash("/pod/credentials/0/value")}}}
	for _, got := range []config.Config{cfg, parsed} {
		if !configsEqual(got, want) {
			t.Errorf("local config = %+v\nwant %+v", got, want)
		}
	}
}

// TestLocalConfigBroker: a gateway that reaches the broker gets its CA
// bundle (in the config volume) and its projected token at their local
// paths; the broker's URL is left as the operator wrote it.
func TestLocalConfigBroker(t *testing.T) {
	t.Parallel()
	in := config.Config{
		Server:       config.ServerRef{Namespace: "demo", Name: "tools"},
		Listen:       config.Listen{Traffic: ":8080", Health: ":8081"},
		Path:         "/mcp",
		ResourceName: "demo/tools",
		Upstream:     config.Upstream{URL: "http://sample-mcp.demo.svc:8080/mcp"},
		Clerk:        config.Clerk{Issuer: "http://127.0.0.1:1", APIURL: "http://127.0.0.1:2/v1"},
		Broker: &config.Broker{
			URL:       "https://127.0.0.1:3",
			CAFile:    "/etc/mcpgate/config/" + config.BrokerCAKey,
			TokenFile: "/var/run/secrets/mcpgate.dev/broker/token",
		},
	}
	data, err := config.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	mounts := []mount{{mountPath: "/etc/mcpgate/config", hostPath: "/pod/config"}, {mountPath: "/var/run/secrets/mcpgate.dev/broker", hostPath: "/pod/broker"}}
	_, cfg, err := localConfig(data, mounts, "127.0.0.1:1001", "127.0.0.1:1002")
	if err != nil {
		t.Fatal(err)
	}
	want := config.Broker{URL: "https://127.0.0.1:3",
		CAFile: filepath.FromSlash("/pod/config/" + config.BrokerCAKey), TokenFile: filepath.FromSlash("/pod/broker/token")}
	if cfg.Broker == nil || *cfg.Broker != want {
		t.Errorf("broker = %+v, want %+v", cfg.Broker, want)
	}
}

func configsEqual(a, b config.Config) bool {
	x, errA := config.Marshal(a)
	y, errB := config.Marshal(b)
	return errA == nil && errB == nil && string(x) == string(y)
}

func TestUpstreamService(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		url  string
		want serviceRef // zero: not a Service
	}{
		"service":             {"http://sample-mcp.demo.svc:8080/mcp", serviceRef{"demo", "sample-mcp", "sample-mcp.demo.svc:8080", 8080}},
		"cluster.local":       {"http://mcp.team-a.svc.cluster.local:9000/mcp", serviceRef{"team-a", "mcp", "mcp.team-a.svc.cluster.local:9000", 9000}},
		"default http port":   {"http://mcp.team-a.svc/mcp", serviceRef{"team-a", "mcp", "mcp.team-a.svc:80", 80}},
		"default https port":  {"https://mcp.team-a.svc/mcp", serviceRef{"team-a", "mcp", "mcp.team-a.svc:443", 443}},
		"external host":       {"https://mcp.example.com/mcp", serviceRef{}},
		"no namespace":        {"http://mcp.svc:80/mcp", serviceRef{}},
		"subdomain of a name": {"http://a.b.c.svc:80/mcp", serviceRef{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, ok := upstreamService(tc.url)
			if ok != (tc.want != serviceRef{}) || got != tc.want {
				t.Errorf("upstreamService(%q) = %+v, %t; want %+v", tc.url, got, ok, tc.want)
			}
		})
	}
}

func TestResolveArg(t *testing.T) {
	t.Parallel()
	ref := serviceRef{namespace: "demo", name: "sample-mcp", hostPort: "sample-mcp.demo.svc:8080", port: 8080}
	tests := map[string]struct {
		ports []corev1.ServicePort
		want  string
	}{
		"numeric targetPort": {[]corev1.ServicePort{{Port: 8080, TargetPort: intstr.FromInt32(41234)}},
			"--resolve=sample-mcp.demo.svc:8080=127.0.0.1:41234"},
		"defaulted targetPort": {[]corev1.ServicePort{{Port: 8080}}, "--resolve=sample-mcp.demo.svc:8080=127.0.0.1:8080"},
		"other port only":      {[]corev1.ServicePort{{Port: 9090, TargetPort: intstr.FromInt32(1)}}, ""},
		"named targetPort":     {[]corev1.ServicePort{{Port: 8080, TargetPort: intstr.FromString("http")}}, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			svc := &corev1.Service{Spec: corev1.ServiceSpec{Ports: tc.ports}}
			if got := resolveArg(ref, svc); got != tc.want {
				t.Errorf("resolveArg = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestContainerEnv(t *testing.T) {
	t.Parallel()
	c := corev1.Container{Name: "gateway", Env: []corev1.EnvVar{{Name: "A", Value: "1"}}}
	env, err := containerEnv(c, "pod-1", "/pod", "/pod/tmp")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"HOME=/pod", "HOSTNAME=pod-1", "TMPDIR=/pod/tmp", "A=1"} {
		if !slices.Contains(env, want) {
			t.Errorf("env %q lacks %s", env, want)
		}
	}
	c.Env = append(c.Env, corev1.EnvVar{Name: "B", ValueFrom: &corev1.EnvVarSource{}})
	if _, err := containerEnv(c, "pod-1", "/pod", ""); err == nil {
		t.Error("valueFrom was accepted")
	}
}

func TestTemplateHashFollowsTheTemplate(t *testing.T) {
	t.Parallel()
	a := corev1.PodTemplateSpec{Spec: gatewayPodSpec()}
	a.Annotations = map[string]string{config.ConfigHashAnnotation: "1"}
	b := *a.DeepCopy()
	if templateHash(&a) != templateHash(&b) {
		t.Fatal("equal templates hash differently")
	}
	b.Annotations[config.ConfigHashAnnotation] = "2"
	c := *a.DeepCopy()
	c.Spec.Containers[0].Args = append(c.Spec.Containers[0].Args, "--log-level=debug")
	for name, other := range map[string]corev1.PodTemplateSpec{"config hash": b, "args": c} {
		if templateHash(&a) == templateHash(&other) {
			t.Errorf("a change of the %s keeps the hash", name)
		}
	}
}

package localstack

import (
	"testing"

	"sigs.k8s.io/yaml"
)

func TestRenderOverlay(t *testing.T) {
	t.Parallel()
	for _, format := range []TokenFormat{JWT, Opaque} {
		t.Run(format.String(), func(t *testing.T) {
			t.Parallel()
			data, err := renderOverlay("../../repo/config/samples", "demo", "http://127.0.0.1:4455", "sample-mcp", 8080, format)
			if err != nil {
				t.Fatal(err)
			}
			var k struct {
				APIVersion string   `json:"apiVersion"`
				Kind       string   `json:"kind"`
				Namespace  string   `json:"namespace"`
				Resources  []string `json:"resources"`
				Patches    []struct {
					Target map[string]string `json:"target"`
					Patch  string            `json:"patch"`
				} `json:"patches"`
			}
			if err := yaml.UnmarshalStrict(data, &k); err != nil {
				t.Fatalf("the overlay is not a kustomization: %v\n%s", err, data)
			}
			if k.Kind != "Kustomization" || k.Namespace != "demo" || len(k.Resources) != 1 || k.Resources[0] != "../../repo/config/samples" ||
				len(k.Patches) != 1 || k.Patches[0].Target["kind"] != "McpServer" || k.Patches[0].Target["group"] != "mcpgate.dev" {
				t.Fatalf("overlay = %+v", k)
			}
			var patch struct {
				Spec struct {
					Upstream struct {
						Service struct {
							Name string `json:"name"`
							Port int32  `json:"port"`
						} `json:"service"`
					} `json:"upstream"`
					Clerk   map[string]any `json:"clerk"`
					Ingress *struct{}      `json:"ingress"`
					Gateway struct {
						Replicas int32 `json:"replicas"`
					} `json:"gateway"`
				} `json:"spec"`
			}
			if err := yaml.Unmarshal([]byte(k.Patches[0].Patch), &patch); err != nil {
				t.Fatal(err)
			}
			s := patch.Spec
			clerk := s.Clerk
			key, hasKey := clerk["publishableKey"]
			if s.Upstream.Service.Name != "sample-mcp" || s.Upstream.Service.Port != 8080 || s.Ingress != nil || s.Gateway.Replicas != 1 ||
				!hasKey || key != nil || clerk["issuer"] != "http://127.0.0.1:4455" ||
				clerk["dynamicClientRegistration"] != true || clerk["jwtAccessTokens"] != (format == JWT) {
				t.Errorf("patch = %+v", s)
			}
		})
	}
}

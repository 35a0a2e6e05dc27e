package controllers

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
)

// testPublishableKey encodes the Frontend API host "happy-otter-12.clerk.accounts.dev".
const (
	testPublishableKey = "pk_test_aGFwcHktb3R0ZXItMTIuY2xlcmsuYWNjb3VudHMuZGV2JA"
	testIssuer         = "https://happy-otter-12.clerk.accounts.dev"
)

type mcpOption func(*mcpv1.McpServer)

// newMcpServer is a valid McpServer with a Service upstream on port 8080, the
// Clerk Secret "clerk"/"secret-key", and the API server's defaults filled in.
func newMcpServer(namespace, name string, opts ...mcpOption) *mcpv1.McpServer {
	mcp := &mcpv1.McpServer{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: mcpv1.McpServerSpec{
			Upstream: mcpv1.Upstream{
				Service: &mcpv1.UpstreamService{Name: "upstream", Port: intstr.FromInt32(8080)},
				Path:    "/mcp",
			},
			Path: "/mcp",
			Clerk: mcpv1.ClerkSpec{
				PublishableKey: testPublishableKey,
				SecretKeyRef:   mcpv1.SecretKeyReference{Name: "clerk", Key: "secret-key"},
			},
			Gateway: mcpv1.GatewaySpec{Replicas: ptr.To[int32](1)},
		},
	}
	for _, o := range opts {
		o(mcp)
	}
	return mcp
}

func withScopes(scopes ...mcpv1.Scope) mcpOption {
	return func(m *mcpv1.McpServer) { m.Spec.Scopes = scopes }
}

func withToolScopes(tool string, scopes ...mcpv1.Scope) mcpOption {
	return func(m *mcpv1.McpServer) {
		m.Spec.ToolScopes = append(m.Spec.ToolScopes, mcpv1.ToolScope{Tool: mcpv1.ToolName(tool), Scopes: scopes})
	}
}

func withPath(path string) mcpOption {
	return func(m *mcpv1.McpServer) { m.Spec.Path = mcpv1.URLPath(path) }
}

func withIngress(host string, tlsSecret string) mcpOption {
	return func(m *mcpv1.McpServer) {
		m.Spec.Ingress = &mcpv1.IngressSpec{Host: host}
		if tlsSecret != "" {
			m.Spec.Ingress.TLS = &mcpv1.IngressTLS{SecretName: tlsSecret}
		}
	}
}

func withIngressClass(class string, annotations map[string]string) mcpOption {
	return func(m *mcpv1.McpServer) {
		m.Spec.Ingress.ClassName = ptr.To(class)
		m.Spec.Ingress.Annotations = annotations
	}
}

func withReplicas(n int32) mcpOption {
	return func(m *mcpv1.McpServer) { m.Spec.Gateway.Replicas = ptr.To(n) }
}

func withIssuer(issuer string) mcpOption {
	return func(m *mcpv1.McpServer) {
		m.Spec.Clerk.PublishableKey, m.Spec.Clerk.Issuer = "", mcpv1.IssuerURL(issuer)
	}
}

func withUpstreamURL(url string) mcpOption {
	return func(m *mcpv1.McpServer) { m.Spec.Upstream.Service, m.Spec.Upstream.URL = nil, url }
}

func withUpstreamPort(port intstr.IntOrString) mcpOption {
	return func(m *mcpv1.McpServer) { m.Spec.Upstream.Service.Port = port }
}

func withSecretRef(name, key string) mcpOption {
	return func(m *mcpv1.McpServer) { m.Spec.Clerk.SecretKeyRef = mcpv1.SecretKeyReference{Name: name, Key: key} }
}

func withAccess(access *mcpv1.AccessSpec) mcpOption {
	return func(m *mcpv1.McpServer) { m.Spec.Access = access }
}

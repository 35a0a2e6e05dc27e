package config

// The naming contract between the controller and everything that reads what
// it builds: the gateway (its metadata paths), internal/localstack (which
// plays the node for the gateways it finds) and hack/bench (which waits for
// them). They import these names rather than spell them again, so a rename
// in the controller cannot leave a reader looking for the old one.
const (
	// LabelManagedBy with value ManagedByValue is on every object the
	// controller owns; it also filters the controller's own cache.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is LabelManagedBy's value on the controller's objects.
	ManagedByValue = "mcpgate"

	// ConfigHashAnnotation on a gateway's pod template is the hash of its
	// configuration; a change rolls the gateway's pods.
	ConfigHashAnnotation = "mcpgate.dev/config-hash"

	// LabelMcpServer on the controller's objects names their McpServer.
	LabelMcpServer = "mcpgate.dev/mcpserver"

	// GatewaySuffix follows the McpServer's name in the names of the objects
	// the controller builds for it (Deployment, Service, ConfigMap...), which
	// keeps them apart from the upstream's own objects of the same name.
	GatewaySuffix = "-gateway"

	// WellKnownResourceMetadata is RFC 9728's well-known path prefix for a
	// protected resource's metadata document.
	WellKnownResourceMetadata = "/.well-known/oauth-protected-resource"
)

// GatewayName is the name of the objects the controller builds for the
// McpServer named mcpServer.
func GatewayName(mcpServer string) string { return mcpServer + GatewaySuffix }

// ResourceMetadataPath is where RFC 9728 (section 3.1) puts the metadata of
// the resource at path p: the well-known prefix followed by p, or the prefix
// alone for the root, whose lone terminating slash is dropped.
func ResourceMetadataPath(p string) string {
	if p == "" || p == "/" {
		return WellKnownResourceMetadata
	}
	return WellKnownResourceMetadata + p
}

// Package argocd holds the Argo CD health check for McpServer and the Go code
// that runs it in tests.
//
// Argo CD has no built-in health check for McpServer, so it cannot tell one
// that serves from one that is stuck. mcpserver-health.lua reads the
// operator's kstatus conditions for it:
//
//   - Progressing while the operator has not yet observed the current
//     metadata.generation, while Reconciling is True, or while Ready is False
//     for a reason that fixes itself (pods starting, an address pending);
//   - Degraded when Stalled is True, with the condition's reason and message:
//     an invalid spec, a missing Secret, a host and path conflict or a Clerk
//     refusal needs a human;
//   - Healthy when Ready is True for the current generation.
//
// To install it, put the script under the key
// resource.customizations.health.mcpgate.dev_McpServer of the argocd-cm
// ConfigMap in Argo CD's namespace:
//
//	apiVersion: v1
//	kind: ConfigMap
//	metadata:
//	  name: argocd-cm
//	  namespace: argocd
//	  labels:
//	    app.kubernetes.io/part-of: argocd
//	data:
//	  resource.customizations.health.mcpgate.dev_McpServer: |
//	    -- the contents of internal/argocd/mcpserver-health.lua
//
// or, with Argo CD installed by its Helm chart, under configs.cm in the
// chart's values.
//
// Evaluate runs a script the way Argo CD does (gopher-lua, the same libraries,
// the object as the global obj), and Script is the embedded
// mcpserver-health.lua, so tests can check the health Argo CD will report for
// a real McpServer.
package argocd

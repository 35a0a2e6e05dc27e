// Package e2e holds the end-to-end tests: mcpgate as `make demo` runs it
// (a real kube-apiserver and etcd, the real kubectl, `mcpgate manager` and
// gateway processes, the Clerk emulator, the sample MCP server, real MCP
// clients), driven through internal/localstack.
//
// They are part of `go test ./...`. They need etcd, kube-apiserver and
// kubectl: $KUBEBUILDER_ASSETS when it holds them, else what
// hack/setup-envtest.sh provides (cached after its first run).
package e2e

// Package install tests what mcpgate ships for installation: the Helm chart
// (charts/mcpgate), the kustomize install (config/default) and the release
// manifest (hack/release.sh). The chart is linted and rendered by a real helm,
// built from its Go module (hack/setup-helm.sh); every rendered object is
// applied with a server-side dry run to a real kube-apiserver (envtest); and
// the operator runs as the chart's ServiceAccount, with exactly the chart's
// permissions, to prove they are enough and no more than the chart claims.
package install

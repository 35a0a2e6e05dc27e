#!/usr/bin/env bash
# test-packages.sh prints the import paths of one test tier, one a line:
#
#   e2e          the packages under test/: install, faults, end-to-end,
#                client compatibility, image. They need a control plane, helm,
#                and node and npm for the TypeScript clients.
#   integration  the other packages whose tests start a control plane
#                (envtest's etcd and kube-apiserver): a test file uses
#                controller-runtime's envtest, testenv's cluster, the local
#                stack, or names $KUBEBUILDER_ASSETS.
#   unit         every other package: no control plane, helm or node.
#
# The tiers are computed from the test files, so a new package lands in the
# right one; `make test-unit` points KUBEBUILDER_ASSETS and HELM nowhere, so a
# package this misses fails there at once rather than slowly.
set -euo pipefail
cd "$(dirname "$0")/.."

tier="${1:-}"
module="$(go list -m)"

# What a test file that starts a control plane says.
needs_cluster='sigs\.k8s\.io/controller-runtime/pkg/envtest"|testenv\.(NewCluster|StartCluster|Assets)\(|localstack\.[A-Z]|KUBEBUILDER_ASSETS'

e2e() { go list ./test/...; }

integration() {
  local pkg dir files
  go list -f '{{.ImportPath}} {{.Dir}} {{join .TestGoFiles " "}} {{join .XTestGoFiles " "}}' ./... |
    while read -r pkg dir files; do
      case "${pkg}" in "${module}/test/"*) continue ;; esac
      [ -n "${files}" ] || continue
      # shellcheck disable=SC2086 # files is a list of names without spaces
      if (cd "${dir}" && grep -qE "${needs_cluster}" ${files}); then
        echo "${pkg}"
      fi
    done
}

case "${tier}" in
  e2e) e2e ;;
  integration) integration ;;
  unit)
    others="$(e2e; integration)"
    go list ./... | grep -vxF "${others}"
    ;;
  *)
    echo "usage: $0 unit|integration|e2e" >&2
    exit 2
    ;;
esac

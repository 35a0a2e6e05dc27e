#!/usr/bin/env bash
# test.sh is `make test-cluster`: it starts the cluster (up.sh), runs the Go
# tests of test/cluster against it, and tears it down (down.sh) whatever the
# outcome, failing when anything is left behind.
#
# On a machine without root or the kernel features, it fails at once with one
# line saying what is missing. Outside CI a person may skip it explicitly with
# MCPGATE_SKIP_CLUSTER=1; with CI=true it never skips.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "${HERE}/../.." && pwd)"
# shellcheck source=lib.sh
source "${HERE}/lib.sh"

if [ "${MCPGATE_SKIP_CLUSTER:-}" = 1 ]; then
  if [ "${CI:-}" = true ]; then
    die "MCPGATE_SKIP_CLUSTER=1 is ignored in CI: the cluster tests always run there"
  fi
  echo "test-cluster: skipped (MCPGATE_SKIP_CLUSTER=1)"
  exit 0
fi
"${HERE}/preflight.sh"
ENVTEST_BIN="$("${REPO}/hack/setup-envtest.sh")"
# The image tool's own test: how the local base differs from distroless.
( cd "${REPO}/hack/tools/image" && go test ./... -count=1 )

start=$(date +%s)
cleanup() {
  local rc=$?
  "${HERE}/down.sh" || rc=1
  log "test-cluster took $(( $(date +%s) - start ))s"
  exit "$rc"
}
trap cleanup EXIT
"${HERE}/up.sh" >/dev/null
log "cluster up after $(( $(date +%s) - start ))s"
# The mcpgate and sample MCP server images, from this checkout.
tag="cluster-test-$(date +%s)"
"${HERE}/images.sh" mcpgate "${tag}"
cd "${REPO}"
KUBECTL="${ENVTEST_BIN}/kubectl" MCPGATE_CLUSTER_IMAGE_TAG="${tag}" MCPGATE_CLUSTER_KUBECONFIG="${KUBECONFIG_ADMIN}" HELM="$("${REPO}/hack/setup-helm.sh")" \
  go test -tags cluster ./test/cluster/... -count=1 -timeout 30m ${TESTFLAGS:-}

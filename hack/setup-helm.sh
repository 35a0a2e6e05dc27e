#!/usr/bin/env bash
# setup-helm.sh prints the path of a helm binary of a pinned version, built from
# helm's Go module (helm.sh/helm/v4) and cached outside the repository, so it
# needs nothing but the Go module proxy. The first run takes a minute or two;
# later runs answer from the cache at once.
#
# $HELM, when it points at an executable, wins. Only the path goes to stdout;
# progress goes to stderr. Idempotent.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v4.3.1}"
CACHE_ROOT="${MCPGATE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mcpgate}"
DEST="${CACHE_ROOT}/helm/${HELM_VERSION}-$(go env GOOS)-$(go env GOARCH)"

if [ -n "${HELM:-}" ] && [ -x "${HELM}" ]; then
  echo "${HELM}"
  exit 0
fi
if [ -x "${DEST}/helm" ]; then
  echo "${DEST}/helm"
  exit 0
fi

mkdir -p "$(dirname "${DEST}")"
# Build into a staging directory and rename it at the end, so that an
# interrupted run never leaves a half-filled cache behind.
STAGE="$(mktemp -d "${DEST}.tmp.XXXXXX")"
trap 'rm -rf "${STAGE}"' EXIT
echo "setup-helm: building helm ${HELM_VERSION} from helm.sh/helm/v4 (a minute or two, once)" >&2
major="${HELM_VERSION%%.*}"
# helm's own release builds stamp the version this way; `helm version` shows it.
GOBIN="${STAGE}" CGO_ENABLED=0 go install -trimpath \
  -ldflags "-s -w -X helm.sh/helm/${major}/internal/version.version=${HELM_VERSION}" \
  "helm.sh/helm/${major}/cmd/helm@${HELM_VERSION}" >&2
chmod 755 "${STAGE}"
# Another run may have finished first; its result is as good as ours.
mv -T "${STAGE}" "${DEST}" 2>/dev/null || [ -x "${DEST}/helm" ]
trap - EXIT
rm -rf "${STAGE}"
echo "${DEST}/helm"

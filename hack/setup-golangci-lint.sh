#!/usr/bin/env bash
# setup-golangci-lint.sh prints the path of a golangci-lint binary of the version
# pinned in hack/tools/lint/go.mod, built from its Go module and cached outside
# the repository, so it needs nothing but the Go module proxy. The first run
# takes a few minutes; later runs answer from the cache at once.
#
# golangci-lint has its own module because its dependency graph is large and
# would otherwise move the versions of controller-gen's in hack/tools/go.mod.
# The cache key is the pinned module graph (go.sum) and the Go version: a linter
# built by an older Go than the code it checks refuses to load that code.
#
# $GOLANGCI_LINT, when it points at an executable, wins. Only the path goes to
# stdout; progress goes to stderr. Idempotent.
set -euo pipefail

if [ -n "${GOLANGCI_LINT:-}" ] && [ -x "${GOLANGCI_LINT}" ]; then
  echo "${GOLANGCI_LINT}"
  exit 0
fi

MODDIR="$(cd "$(dirname "$0")/tools/lint" && pwd)"
PKG="github.com/golangci/golangci-lint/v2"
VERSION="$(awk -v pkg="${PKG}" '$1 == pkg { print $2 }' "${MODDIR}/go.mod")"
if [ -z "${VERSION}" ]; then
  echo "setup-golangci-lint: no ${PKG} version in ${MODDIR}/go.mod" >&2
  exit 1
fi
KEY="$(cat "${MODDIR}/go.sum" <(go env GOVERSION) | sha256sum | cut -c1-12)"
CACHE_ROOT="${MCPGATE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mcpgate}"
DEST="${CACHE_ROOT}/golangci-lint/${VERSION}-$(go env GOOS)-$(go env GOARCH)-${KEY}"

if [ -x "${DEST}/golangci-lint" ]; then
  echo "${DEST}/golangci-lint"
  exit 0
fi

mkdir -p "$(dirname "${DEST}")"
# Build into a staging directory and rename it at the end, so that an
# interrupted run never leaves a half-filled cache behind.
STAGE="$(mktemp -d "${DEST}.tmp.XXXXXX")"
trap 'rm -rf "${STAGE}"' EXIT
echo "setup-golangci-lint: building golangci-lint ${VERSION} from ${PKG} (a few minutes, once)" >&2
# golangci-lint's release builds stamp the version this way; `golangci-lint version` shows it.
(cd "${MODDIR}" && CGO_ENABLED=0 go build -trimpath \
  -ldflags "-s -w -X main.version=${VERSION#v}" \
  -o "${STAGE}/golangci-lint" "${PKG}/cmd/golangci-lint") >&2
chmod 755 "${STAGE}"
# Another run may have finished first; its result is as good as ours.
mv -T "${STAGE}" "${DEST}" 2>/dev/null || [ -x "${DEST}/golangci-lint" ]
trap - EXIT
rm -rf "${STAGE}"
echo "${DEST}/golangci-lint"

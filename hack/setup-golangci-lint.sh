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
HACK="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib/cached-tool.sh
. "${HACK}/lib/cached-tool.sh"
MODDIR="${HACK}/tools/lint"
PKG="github.com/golangci/golangci-lint/v2"
VERSION="$(awk -v pkg="${PKG}" '$1 == pkg { print $2 }' "${MODDIR}/go.mod")"
# golangci-lint's release builds stamp the version this way; `golangci-lint version` shows it.
cached_tool golangci-lint "${MODDIR}" "${PKG}" "${PKG}/cmd/golangci-lint" "-X main.version=${VERSION#v}" \
  "golangci-lint from ${PKG} (a few minutes)" "${MODDIR}/go.sum"

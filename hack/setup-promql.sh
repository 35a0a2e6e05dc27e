#!/usr/bin/env bash
# setup-promql.sh prints the path of hack/tools/promql built into the cache:
# a small program that parses PromQL with Prometheus' own parser and prints
# the metric names each expression selects (see its main.go). The chart's
# dashboard and alert test (test/observability) runs it.
#
# It has its own module because the Prometheus server module's dependency
# graph is large and would otherwise enter mcpgate's go.mod. The cache key is
# the tool's source, its pinned module graph (go.sum) and the Go version, so
# an edit to the tool rebuilds it. The first run takes a minute or so; later
# runs answer from the cache at once.
#
# $PROMQL, when it points at an executable, wins. Only the path goes to
# stdout; progress goes to stderr. Idempotent.
set -euo pipefail

if [ -n "${PROMQL:-}" ] && [ -x "${PROMQL}" ]; then
  echo "${PROMQL}"
  exit 0
fi

MODDIR="$(cd "$(dirname "$0")/tools/promql" && pwd)"
PKG="github.com/prometheus/prometheus"
# "require pkg v" on one line, or "pkg v" inside a require block.
VERSION="$(awk -v pkg="${PKG}" '$1 == pkg { print $2 } $1 == "require" && $2 == pkg { print $3 }' "${MODDIR}/go.mod")"
if [ -z "${VERSION}" ]; then
  echo "setup-promql: no ${PKG} version in ${MODDIR}/go.mod" >&2
  exit 1
fi
KEY="$(cat "${MODDIR}/go.mod" "${MODDIR}/go.sum" "${MODDIR}"/*.go <(go env GOVERSION) | sha256sum | cut -c1-12)"
CACHE_ROOT="${MCPGATE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mcpgate}"
DEST="${CACHE_ROOT}/promql/${VERSION}-$(go env GOOS)-$(go env GOARCH)-${KEY}"

if [ -x "${DEST}/promql" ]; then
  echo "${DEST}/promql"
  exit 0
fi

mkdir -p "$(dirname "${DEST}")"
# Build into a staging directory and rename it at the end, so that an
# interrupted run never leaves a half-filled cache behind.
STAGE="$(mktemp -d "${DEST}.tmp.XXXXXX")"
trap 'rm -rf "${STAGE}"' EXIT
echo "setup-promql: building the PromQL checker on ${PKG} ${VERSION} (a minute or so, once)" >&2
(cd "${MODDIR}" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${STAGE}/promql" .) >&2
chmod 755 "${STAGE}"
# Another run may have finished first; its result is as good as ours.
mv -T "${STAGE}" "${DEST}" 2>/dev/null || [ -x "${DEST}/promql" ]
trap - EXIT
rm -rf "${STAGE}"
echo "${DEST}/promql"

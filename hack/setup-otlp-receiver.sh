#!/usr/bin/env bash
# setup-otlp-receiver.sh prints the path of hack/tools/otlpreceiver built
# into the cache: the OpenTelemetry Collector's OTLP receiver component
# (go.opentelemetry.io/collector/receiver/otlpreceiver) behind a consumer
# that writes each export as a JSON line (see its main.go). The gateway's
# tracing test (gateway/tracing_receiver_test.go) and the bench's tracing
# mode send their spans to it.
#
# It has its own module because the collector's dependency graph (gRPC,
# confighttp, pdata and a hundred more) would otherwise enter mcpgate's
# go.mod. The cache key is the tool's source, its pinned module graph
# (go.sum) and the Go version. The first run takes two or three minutes;
# later runs answer from the cache at once.
#
# $OTLP_RECEIVER, when it points at an executable, wins. Only the path goes
# to stdout; progress goes to stderr. Idempotent.
set -euo pipefail

if [ -n "${OTLP_RECEIVER:-}" ] && [ -x "${OTLP_RECEIVER}" ]; then
  echo "${OTLP_RECEIVER}"
  exit 0
fi

MODDIR="$(cd "$(dirname "$0")/tools/otlpreceiver" && pwd)"
PKG="go.opentelemetry.io/collector/receiver/otlpreceiver"
# "require pkg v" on one line, or "pkg v" inside a require block.
VERSION="$(awk -v pkg="${PKG}" '$1 == pkg { print $2 } $1 == "require" && $2 == pkg { print $3 }' "${MODDIR}/go.mod")"
if [ -z "${VERSION}" ]; then
  echo "setup-otlp-receiver: no ${PKG} version in ${MODDIR}/go.mod" >&2
  exit 1
fi
KEY="$(cat "${MODDIR}/go.mod" "${MODDIR}/go.sum" "${MODDIR}"/*.go <(go env GOVERSION) | sha256sum | cut -c1-12)"
CACHE_ROOT="${MCPGATE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mcpgate}"
DEST="${CACHE_ROOT}/otlp-receiver/${VERSION}-$(go env GOOS)-$(go env GOARCH)-${KEY}"

if [ -x "${DEST}/otlp-receiver" ]; then
  echo "${DEST}/otlp-receiver"
  exit 0
fi

mkdir -p "$(dirname "${DEST}")"
# Build into a staging directory and rename it at the end, so that an
# interrupted run never leaves a half-filled cache behind.
STAGE="$(mktemp -d "${DEST}.tmp.XXXXXX")"
trap 'rm -rf "${STAGE}"' EXIT
echo "setup-otlp-receiver: building the OTLP receiver on ${PKG} ${VERSION} (two or three minutes, once)" >&2
(cd "${MODDIR}" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${STAGE}/otlp-receiver" .) >&2
chmod 755 "${STAGE}"
# Another run may have finished first; its result is as good as ours.
mv -T "${STAGE}" "${DEST}" 2>/dev/null || [ -x "${DEST}/otlp-receiver" ]
trap - EXIT
rm -rf "${STAGE}"
echo "${DEST}/otlp-receiver"

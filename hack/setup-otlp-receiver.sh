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
HACK="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib/cached-tool.sh
. "${HACK}/lib/cached-tool.sh"
MODDIR="${HACK}/tools/otlpreceiver"
cached_tool otlp-receiver "${MODDIR}" go.opentelemetry.io/collector/receiver/otlpreceiver . "" \
  "the Collector's OTLP receiver (two or three minutes)" "${MODDIR}/go.mod" "${MODDIR}/go.sum" "${MODDIR}"/*.go

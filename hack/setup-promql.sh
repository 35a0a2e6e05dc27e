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
HACK="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib/cached-tool.sh
. "${HACK}/lib/cached-tool.sh"
MODDIR="${HACK}/tools/promql"
cached_tool promql "${MODDIR}" github.com/prometheus/prometheus . "" \
  "the PromQL checker on Prometheus' parser (a minute or so)" "${MODDIR}/go.mod" "${MODDIR}/go.sum" "${MODDIR}"/*.go

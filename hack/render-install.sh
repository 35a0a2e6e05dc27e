#!/usr/bin/env bash
# render-install.sh IMAGE prints the complete kustomize install (config/default)
# with the operator and gateway image set to IMAGE. kubectl's built-in kustomize
# renders it; $KUBECTL picks another kubectl.
set -euo pipefail
if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 IMAGE" >&2
  exit 2
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
# config/manager names ghcr.io/mcpgate/mcpgate:latest in two places, the
# container image and the gateway image variable, and both follow IMAGE.
"${KUBECTL:-kubectl}" kustomize "${root}/config/default" | sed "s|ghcr.io/mcpgate/mcpgate:latest|$1|g"

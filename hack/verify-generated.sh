#!/usr/bin/env bash
# verify-generated.sh regenerates the CRD, RBAC and deepcopy code, the Helm
# chart's copies of the CRD and RBAC, and the API reference
# (docs/api-reference.md), in a scratch copy of the tree and fails
# when the result differs from the files at hand, naming each stale file. It
# never touches the working tree.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
scratch="$(mktemp -d)"
trap 'rm -rf "${scratch}"' EXIT

cd "${root}"
# The inputs of generation: Go sources, modules, markers' boilerplate, outputs.
tar -cf - --exclude=./bin --exclude=./.git . | tar -xf - -C "${scratch}"
make -s -C "${scratch}" manifests generate >/dev/null

status=0
for dir in config/crd config/rbac charts/mcpgate/files api docs/api-reference.md; do
  if ! diff -r -q "${root}/${dir}" "${scratch}/${dir}" >/dev/null; then
    diff -r -u "${root}/${dir}" "${scratch}/${dir}" | head -40 >&2 || true
    status=1
  fi
done
if [ "${status}" -ne 0 ]; then
  echo "generated files are stale: run 'make manifests generate' and commit the result" >&2
fi
exit "${status}"

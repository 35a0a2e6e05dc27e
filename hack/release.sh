#!/usr/bin/env bash
# release.sh --version VERSION --image IMAGE --out DIR writes the release
# artifacts into DIR:
#   install.yaml            the single-file install (kustomize's config/default)
#   mcpgate-<chart>.tgz     the packaged Helm chart
# Both default to IMAGE for the operator and the gateway. A release VERSION
# (v1.2.3, v1.2.3-rc.1) becomes the chart version 1.2.3; any other (a commit)
# becomes 0.0.0-dev.<VERSION>, so development charts never sort above a release.
# Needs kubectl ($KUBECTL) and helm ($HELM, see hack/setup-helm.sh).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version="" image="" out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --version) version="$2"; shift 2 ;;
    --image) image="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "release.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "${version}" ] || [ -z "${image}" ] || [ -z "${out}" ]; then
  echo "usage: $0 --version VERSION --image IMAGE --out DIR" >&2
  exit 2
fi

# IMAGE is repository:tag; a registry port (host:5000/x) is not a tag.
repository="${image%:*}" tag="${image##*:}"
if [ "${repository}" = "${image}" ] || [[ "${tag}" == */* ]]; then
  echo "release.sh: --image ${image} has no tag" >&2
  exit 2
fi
if [[ "${version}" =~ ^v([0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?)$ ]]; then
  chart_version="${BASH_REMATCH[1]}"
else
  chart_version="0.0.0-dev.${version//[^0-9A-Za-z-]/-}"
fi

mkdir -p "${out}"
{
  echo "# mcpgate ${version}: the operator, its CRD and RBAC in namespace mcpgate-system."
  echo "# Install or upgrade: kubectl apply --server-side -f install.yaml"
  "${root}/hack/render-install.sh" "${image}"
} >"${out}/install.yaml.tmp"
mv "${out}/install.yaml.tmp" "${out}/install.yaml"

# Package a copy of the chart whose images default to IMAGE.
stage="$(mktemp -d)"
trap 'rm -rf "${stage}"' EXIT
cp -R "${root}/charts/mcpgate" "${stage}/mcpgate"
sed -i.orig "s|repository: ghcr.io/mcpgate/mcpgate$|repository: ${repository}|" "${stage}/mcpgate/values.yaml"
rm -f "${stage}/mcpgate/values.yaml.orig"
"${HELM:-helm}" package "${stage}/mcpgate" --version "${chart_version}" --app-version "${tag}" \
  --destination "${out}" >&2
echo "${out}/install.yaml"
echo "${out}/mcpgate-${chart_version}.tgz"

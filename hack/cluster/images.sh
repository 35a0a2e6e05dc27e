#!/usr/bin/env bash
# images.sh assembles the cluster's own container images without a Docker
# engine or a registry, with hack/tools/image (mkimage), and caches each
# tarball under ~/.cache/mcpgate/cluster/images.
#
#   images.sh build           build the tarballs that are missing
#   images.sh import          build, then import them into the cluster's containerd
#   images.sh path NAME       print the tarball of NAME
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "${HERE}/lib.sh"
REPO="$(cd "${HERE}/../.." && pwd)"
TOOL_SRC="${REPO}/hack/tools/image"

# The tools are keyed by their source, so a change rebuilds them.
tools_key="$(cat "${TOOL_SRC}"/go.mod "${TOOL_SRC}"/go.sum "${TOOL_SRC}"/*.go "${TOOL_SRC}"/pause/*.go "${TOOL_SRC}"/netcheck/*.go | sha256sum | cut -c1-12)"
TOOLS="${CLUSTER_CACHE}/image-tools-${tools_key}"
IMAGES="${CLUSTER_CACHE}/images"

build_tools() {
  [ -x "${TOOLS}/mkimage" ] && [ -x "${TOOLS}/pause" ] && [ -x "${TOOLS}/netcheck" ] && return 0
  mkdir -p "${CLUSTER_CACHE}"
  local stage; stage="$(mktemp -d "${TOOLS}.tmp.XXXXXX")"
  ( cd "${TOOL_SRC}" &&
    nice -n 19 env CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${stage}/mkimage" . &&
    nice -n 19 env CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${stage}/pause" ./pause &&
    nice -n 19 env CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${stage}/netcheck" ./netcheck ) ||
    { rm -rf "${stage}"; die "building hack/tools/image failed"; }
  chmod 755 "${stage}"
  mv -T "${stage}" "${TOOLS}" 2>/dev/null || rm -rf "${stage}"
}

# image NAME TAG MKIMAGE-ARGS... writes IMAGES/NAME.tar once.
image() {
  local name="$1" tag="$2"; shift 2
  local out="${IMAGES}/${name}.tar"
  [ -f "${out}" ] && return 0
  mkdir -p "${IMAGES}"
  "${TOOLS}/mkimage" -o "${out}" -tag "${tag}" "$@"
}

build_all() {
  build_tools
  image "pause-${tools_key}" mcpgate.local/pause:1 -file "${TOOLS}/pause:/pause" -entrypoint /pause -user 65535:65535
  image "netcheck-${tools_key}" mcpgate.local/netcheck:1 -base -file "${TOOLS}/netcheck:/netcheck" \
    -entrypoint /netcheck -user 65532:65532
  image "coredns-${COREDNS_VERSION}" "mcpgate.local/coredns:${COREDNS_VERSION}" -base \
    -file "${CLUSTER_CACHE}/coredns-${COREDNS_VERSION}/coredns:/coredns" -entrypoint /coredns -user 65532:65532
}

case "${1:-build}" in
  build) build_all ;;
  import)
    build_all
    for t in "${IMAGES}/pause-${tools_key}.tar" "${IMAGES}/coredns-${COREDNS_VERSION}.tar" "${IMAGES}/netcheck-${tools_key}.tar"; do
      ctr --address "${CONTAINERD_SOCK}" -n k8s.io images import "$t" >/dev/null
    done
    ;;
  path) echo "${IMAGES}/$2.tar" ;;
  *) die "usage: images.sh build|import|path NAME" ;;
esac

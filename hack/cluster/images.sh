#!/usr/bin/env bash
# images.sh assembles the cluster's own container images without a Docker
# engine or a registry, with hack/tools/image (mkimage), and caches each
# tarball under ~/.cache/mcpgate/cluster/images.
#
#   images.sh build [NAME...]   build the tarballs that are missing
#   images.sh import [NAME...]  build, then import them into the cluster's containerd
#   images.sh path NAME         print the tarball of NAME
# NAME is pause, netcheck, coredns (the default three) or traefik.
#   images.sh mcpgate TAG     build the mcpgate image from this checkout (the
#                             Dockerfile's go build command and flags, on the
#                             distroless-like base) and the sample MCP server's,
#                             and import both as mcpgate.local/{mcpgate,sample-mcp-server}:TAG
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "${HERE}/lib.sh"
REPO="$(cd "${HERE}/../.." && pwd)"
TOOL_SRC="${REPO}/hack/tools/image"

# The tools are keyed by their source, so a change rebuilds them.
tools_key="$(find "${TOOL_SRC}" -name '*.go' ! -name '*_test.go' -o -name go.mod -o -name go.sum | sort | xargs cat | sha256sum | cut -c1-12)"
TOOLS="${CLUSTER_CACHE}/image-tools-${tools_key}"
IMAGES="${CLUSTER_CACHE}/images"

build_tools() {
  [ -x "${TOOLS}/mkimage" ] && [ -x "${TOOLS}/pause" ] && [ -x "${TOOLS}/netcheck" ] || compile_tools
  # Tools and images of earlier sources are of no more use.
  find "${CLUSTER_CACHE}" -maxdepth 1 -name 'image-tools-*' ! -name "image-tools-${tools_key}" ! -name '*.tmp.*' -exec rm -rf {} +
  find "${IMAGES}" -maxdepth 1 \( -name 'pause-*.tar' -o -name 'netcheck-*.tar' \) ! -name "*-${tools_key}.tar" -delete 2>/dev/null || true
}

compile_tools() {
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

# build_image NAME writes the tarball of one of the cluster's images once and
# prints its path.
build_image() {
  case "$1" in
    pause)
      image "pause-${tools_key}" mcpgate.local/pause:1 -file "${TOOLS}/pause:/pause" -entrypoint /pause -user 65535:65535
      echo "${IMAGES}/pause-${tools_key}.tar" ;;
    netcheck)
      image "netcheck-${tools_key}" mcpgate.local/netcheck:1 -base -file "${TOOLS}/netcheck:/netcheck" \
        -entrypoint /netcheck -user 65532:65532
      echo "${IMAGES}/netcheck-${tools_key}.tar" ;;
    coredns)
      image "coredns-${COREDNS_VERSION}" "mcpgate.local/coredns:${COREDNS_VERSION}" -base \
        -file "${CLUSTER_CACHE}/coredns-${COREDNS_VERSION}/coredns:/coredns" -entrypoint /coredns -user 65532:65532
      echo "${IMAGES}/coredns-${COREDNS_VERSION}.tar" ;;
    traefik)
      image "traefik-${TRAEFIK_VERSION}" "mcpgate.local/traefik:${TRAEFIK_VERSION}" -base \
        -file "${CLUSTER_CACHE}/traefik-${TRAEFIK_VERSION}/traefik:/usr/local/bin/traefik" \
        -entrypoint /usr/local/bin/traefik -user 65532:65532
      echo "${IMAGES}/traefik-${TRAEFIK_VERSION}.tar" ;;
    *) die "no image named $1" ;;
  esac
}

DEFAULT_IMAGES="pause netcheck coredns"
cmd="${1:-build}"; shift || true
case "${cmd}" in
  build)
    build_tools
    for n in ${*:-${DEFAULT_IMAGES}}; do build_image "$n" >/dev/null; done ;;
  import)
    build_tools
    for n in ${*:-${DEFAULT_IMAGES}}; do
      ctr --address "${CONTAINERD_SOCK}" -n k8s.io images import "$(build_image "$n")" >/dev/null
    done
    ;;
  path) build_tools; build_image "$1" ;;
  mcpgate)
    tag="${1:?usage: images.sh mcpgate TAG}"
    build_tools
    out="${STATE_DIR}/images"; mkdir -p "${out}"
    version_pkg=github.com/mcpgate/mcpgate/internal/version
    # The Dockerfile's build stage, run with the local toolchain.
    ( cd "${REPO}" && nice -n 19 env CGO_ENABLED=0 go build -trimpath \
        -ldflags "-s -w -X ${version_pkg}.Version=${tag} -X ${version_pkg}.Commit=$(git rev-parse HEAD 2>/dev/null) -X ${version_pkg}.Date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        -o "${out}/mcpgate" ./cmd/mcpgate &&
      nice -n 19 env CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${out}/sample-mcp-server" ./hack/sample-mcp-server )
    # The test image trusts the cluster CA besides the public ones (pki.sh), so
    # that gateways reach the Clerk emulator on the node over TLS.
    "${TOOLS}/mkimage" -o "${out}/mcpgate.tar" -tag "mcpgate.local/mcpgate:${tag}" -base -ca-certs "${PKI_DIR}/trust-bundle.crt" \
      -file "${out}/mcpgate:/usr/local/bin/mcpgate" -entrypoint /usr/local/bin/mcpgate -cmd manager -user 65532:65532
    "${TOOLS}/mkimage" -o "${out}/sample-mcp-server.tar" -tag "mcpgate.local/sample-mcp-server:${tag}" -base \
      -file "${out}/sample-mcp-server:/usr/local/bin/sample-mcp-server" -entrypoint /usr/local/bin/sample-mcp-server -user 65532:65532
    for t in "${out}/mcpgate.tar" "${out}/sample-mcp-server.tar"; do
      ctr --address "${CONTAINERD_SOCK}" -n k8s.io images import "$t" >/dev/null
    done
    ;;
  *) die "usage: images.sh build|import|path NAME|mcpgate TAG" ;;
esac

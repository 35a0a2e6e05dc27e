#!/usr/bin/env bash
# setup-envtest.sh prints a directory holding etcd, kube-apiserver and kubectl for
# a pinned Kubernetes version, ready to be used as KUBEBUILDER_ASSETS.
#
# Where the binaries come from, first match wins:
#   1. $KUBEBUILDER_ASSETS, when it already holds all three binaries;
#   2. the cache ($MCPGATE_CACHE_DIR, default ~/.cache/mcpgate), filled by an earlier run;
#   3. controller-runtime's setup-envtest download (the usual route);
#   4. a build from Go modules: kube-apiserver and kubectl from k8s.io/kubernetes with
#      every k8s.io/<staging> module pinned to its published v0.X.Y release, etcd from
#      go.etcd.io/etcd/server/v3. This is the route where only the Go module proxy is
#      reachable; it takes a few minutes once, then the cache answers in milliseconds.
#
# Only the directory goes to stdout; progress goes to stderr. Idempotent.
set -euo pipefail

K8S_VERSION="${ENVTEST_K8S_VERSION:-1.36.3}"
# The etcd release that k8s.io/kubernetes v${K8S_VERSION} itself requires.
ETCD_VERSION="${ENVTEST_ETCD_VERSION:-3.6.8}"
SETUP_ENVTEST_VERSION="${SETUP_ENVTEST_VERSION:-v0.25.1}"
CACHE_ROOT="${MCPGATE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mcpgate}"
GOOS="$(go env GOOS)"
GOARCH="$(go env GOARCH)"
DEST="${CACHE_ROOT}/envtest/k8s-${K8S_VERSION}-${GOOS}-${GOARCH}"
BINARIES=(etcd kube-apiserver kubectl)

log() { echo "setup-envtest: $*" >&2; }

complete() {
  local dir="$1" bin
  [ -n "$dir" ] || return 1
  for bin in "${BINARIES[@]}"; do
    [ -x "${dir}/${bin}" ] || return 1
  done
}

if complete "${KUBEBUILDER_ASSETS:-}"; then
  echo "${KUBEBUILDER_ASSETS}"
  exit 0
fi
if complete "${DEST}"; then
  echo "${DEST}"
  exit 0
fi

mkdir -p "$(dirname "${DEST}")"
# Build into a staging directory and rename at the end, so that an interrupted run
# never leaves a half-filled cache behind.
STAGE="$(mktemp -d "${DEST}.tmp.XXXXXX")"
trap 'rm -rf "${STAGE}"' EXIT
chmod 755 "${STAGE}"

try_download() {
  [ "${ENVTEST_SKIP_DOWNLOAD:-}" = "1" ] && return 1
  log "downloading envtest ${K8S_VERSION} with setup-envtest ${SETUP_ENVTEST_VERSION}"
  local dir
  dir="$(timeout "${ENVTEST_DOWNLOAD_TIMEOUT:-180}" \
    go run "sigs.k8s.io/controller-runtime/tools/setup-envtest@${SETUP_ENVTEST_VERSION}" \
    use "${K8S_VERSION}" --bin-dir "${STAGE}/download" -p path 2>/dev/null)" || return 1
  complete "${dir}" || return 1
  cp "${dir}"/etcd "${dir}"/kube-apiserver "${dir}"/kubectl "${STAGE}/"
  rm -rf "${STAGE}/download"
}

build_from_modules() {
  local work="${STAGE}/build" minor="${K8S_VERSION#*.}"
  minor="${minor%%.*}"
  local staging_version="v0.${minor}.${K8S_VERSION##*.}"
  mkdir -p "${work}/etcd" "${work}/kube"

  log "building etcd v${ETCD_VERSION} from go.etcd.io/etcd/server/v3 (about a minute)"
  (
    cd "${work}/etcd"
    cat >main.go <<'GO'
// Command etcd is etcd's server, built from its Go module for envtest.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
    go mod init mcpgate.local/envtest/etcd >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@v${ETCD_VERSION}" >/dev/null 2>&1
    go mod tidy >/dev/null 2>&1
    CGO_ENABLED=0 go build -trimpath -o "${STAGE}/etcd" .
  )

  log "building kube-apiserver and kubectl v${K8S_VERSION} from k8s.io/kubernetes (a few minutes)"
  (
    cd "${work}/kube"
    go mod init mcpgate.local/envtest/kube >/dev/null 2>&1
    # k8s.io/kubernetes points each staging module at ./staging/src; point them at
    # the published releases of the same version instead.
    local gomod
    gomod="$(go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\1#p' "${gomod}" | while read -r mod; do
      go mod edit -replace "${mod}=${mod}@${staging_version}"
    done
    go mod edit -require "k8s.io/kubernetes@v${K8S_VERSION}"
    go get "k8s.io/kubernetes/cmd/kube-apiserver@v${K8S_VERSION}" "k8s.io/kubernetes/cmd/kubectl@v${K8S_VERSION}" >/dev/null
    local pkg="k8s.io/component-base/version" cgo="k8s.io/client-go/pkg/version"
    local ldflags="-s -w"
    for p in "${pkg}" "${cgo}"; do
      ldflags+=" -X ${p}.gitVersion=v${K8S_VERSION} -X ${p}.gitMajor=${K8S_VERSION%%.*} -X ${p}.gitMinor=${minor} -X ${p}.gitTreeState=clean"
    done
    CGO_ENABLED=0 go build -trimpath -ldflags "${ldflags}" -o "${STAGE}/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
    CGO_ENABLED=0 go build -trimpath -ldflags "${ldflags}" -o "${STAGE}/kubectl" k8s.io/kubernetes/cmd/kubectl
  )
  rm -rf "${work}"
}

if ! try_download; then
  log "download unavailable; building from Go modules instead"
  rm -rf "${STAGE:?}"/*
  build_from_modules
fi
complete "${STAGE}" || { log "binaries missing after setup"; exit 1; }

rm -rf "${DEST}"
mv "${STAGE}" "${DEST}"
trap - EXIT
log "envtest binaries ready in ${DEST}"
echo "${DEST}"

#!/usr/bin/env bash
# build.sh builds each cluster component from its Go module into
# ~/.cache/mcpgate/cluster/<component>-<version>/, once. A re-run with a warm
# cache only checks that the binaries are there. `build.sh NAME...` builds only
# those components (k8s, coredns, kube-router, traefik, images).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "${HERE}/lib.sh"
REPO="$(cd "${HERE}/../.." && pwd)"
GOOS="$(go env GOOS)"; GOARCH="$(go env GOARCH)"

# build_into NAME VERSION BINARIES... -- runs the function build_NAME in a
# staging directory and renames it into the cache when every binary is there,
# so an interrupted build never leaves a half-filled cache.
build_into() {
  local name="$1" version="$2"; shift 2
  local dest="${CLUSTER_CACHE}/${name}-${version}" bin ok=1
  for bin in "$@"; do [ -x "${dest}/${bin}" ] || ok=0; done
  [ "$ok" = 1 ] && return 0
  mkdir -p "${CLUSTER_CACHE}"
  local stage start
  stage="$(mktemp -d "${dest}.tmp.XXXXXX")"
  start=$(date +%s)
  log "building ${name} ${version} (once; cached in ${dest})"
  if ! ( "build_${name//-/_}" "${stage}" "${version}" ) >"${stage}.log" 2>&1; then
    tail -30 "${stage}.log" >&2
    rm -rf "${stage}"
    die "building ${name} failed; the log is ${stage}.log"
  fi
  for bin in "$@"; do [ -x "${stage}/${bin}" ] || die "${name}: ${bin} missing after the build"; done
  chmod 755 "${stage}"
  rm -rf "${dest}"; mv -T "${stage}" "${dest}"; rm -f "${stage}.log"
  log "built ${name} ${version} in $(( $(date +%s) - start ))s"
}

go_build() { nice -n 19 env CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath "$@"; }

# k8s: kube-controller-manager, kube-scheduler, kubelet and kube-proxy from
# k8s.io/kubernetes, with each k8s.io staging module pinned to its published
# v0.X.Y release (as hack/setup-envtest.sh does for the API server).
build_k8s() {
  local out="$1" version="$2" work minor staging gomod
  work="$(mktemp -d)"; trap 'rm -rf "${work}"' RETURN
  minor="${version#*.}"; minor="${minor%%.*}"
  staging="v0.${minor}.${version##*.}"
  cd "${work}"
  go mod init mcpgate.local/cluster/k8s
  gomod="$(go mod download -json "k8s.io/kubernetes@v${version}" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
  sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\1#p' "${gomod}" | while read -r mod; do
    go mod edit -replace "${mod}=${mod}@${staging}"
  done
  go mod edit -require "k8s.io/kubernetes@v${version}"
  local cmds=(kube-controller-manager kube-scheduler kubelet kube-proxy) c
  for c in "${cmds[@]}"; do go get "k8s.io/kubernetes/cmd/${c}@v${version}"; done
  local ldflags="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X ${p}.gitVersion=v${version} -X ${p}.gitMajor=${version%%.*} -X ${p}.gitMinor=${minor} -X ${p}.gitTreeState=clean"
  done
  for c in "${cmds[@]}"; do
    go_build -ldflags "${ldflags}" -o "${out}/${c}" "k8s.io/kubernetes/cmd/${c}"
  done
}

# coredns: the coredns command with its default plugin set.
build_coredns() {
  local out="$1" version="$2" work
  work="$(mktemp -d)"; trap 'rm -rf "${work}"' RETURN
  cd "${work}"
  cat >main.go <<'GO'
// Command coredns is CoreDNS with its default plugins, for the test cluster.
package main

import (
	_ "github.com/coredns/coredns/core/plugin"
	"github.com/coredns/coredns/coremain"
)

func main() { coremain.Run() }
GO
  go mod init mcpgate.local/cluster/coredns
  go get "github.com/coredns/coredns@v${version}"
  go mod tidy
  go_build -ldflags "-s -w" -o "${out}/coredns" .
}

# kube-router: its NetworkPolicy firewall (iptables and ipset). v2.1.0 is the
# only release the module proxy serves, and the flaws reported against it are
# in the golang.org/x modules it pins; they are raised to current releases
# here (API-compatible), the rest of its module graph is kept.
build_kube_router() {
  local out="$1" version="$2" work
  work="$(mktemp -d)"; trap 'rm -rf "${work}"' RETURN
  cd "${work}"
  go mod init mcpgate.local/cluster/kube-router
  go get "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@v${version}"
  go get golang.org/x/net@latest golang.org/x/crypto@latest golang.org/x/sys@latest golang.org/x/text@latest \
    golang.org/x/oauth2@latest golang.org/x/term@latest
  go_build -ldflags "-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=v${version}" \
    -o "${out}/kube-router" github.com/cloudnativelabs/kube-router/v2/cmd/kube-router
}

# traefik: the ingress controller (Ingress and Gateway API HTTPRoute). A
# dependency's replace and exclude directives are ignored, so traefik's own are
# repeated here, with one change: its fork github.com/containous/go-http-auth
# is refused by the module proxy, so github.com/abbot/go-http-auth is the
# upstream v0.4.0 from the module cache plus the two things traefik calls
# that only the fork has: CheckSecret (an htpasswd secret against a password,
# by the comparison CheckAuth picks) and DigestAuth.RequireAuthStale (the
# digest challenge with stale=true). Releases that
# point github.com/traefik/traefik/dynamic/ext at an unpublished directory get
# an equivalent module: it only declares two empty extension structs.
build_traefik() {
  local out="$1" version="$2" work gomod
  work="$(mktemp -d)"; trap 'rm -rf "${work}"' RETURN
  cd "${work}"
  go mod init mcpgate.local/cluster/traefik
  gomod="$(go mod download -json "github.com/traefik/traefik/v3@v${version}" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
  if grep -q 'traefik/dynamic/ext =>' "${gomod}"; then
    mkdir -p ext
    printf 'module github.com/traefik/traefik/dynamic/ext\n\ngo 1.26.0\n' >ext/go.mod
    printf '// Package ext stands in for traefik'"'"'s unpublished extension module.\npackage ext\n\n// HTTP extends dynamic.HTTP with nothing.\ntype HTTP struct{}\n\n// Router extends dynamic.Router with nothing.\ntype Router struct{}\n' >ext/ext.go
    go mod edit -replace github.com/traefik/traefik/dynamic/ext=./ext
  fi
  # Every "module => module version" replacement of traefik's go.mod but the
  # refused go-http-auth fork.
  sed -n 's#^[[:space:]]*\(replace[[:space:]]*\)\{0,1\}\([^ /]*\.[^ ]*\) => \([^ .][^ ]*\) \(v[^ ]*\)$#\2=\3@\4#p' "${gomod}" |
    grep -v '^github.com/abbot/go-http-auth=' | while read -r r; do go mod edit -replace "$r"; done
  local upstream
  upstream="$(go mod download -json github.com/abbot/go-http-auth@v0.4.0 | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  mkdir -p go-http-auth
  cp "${upstream}"/*.go go-http-auth/ && rm -f go-http-auth/*_test.go && chmod -R u+w go-http-auth
  cat >go-http-auth/checksecret.go <<'GO'
package auth

import "strings"

// CheckSecret reports whether password matches the htpasswd secret.
func CheckSecret(password, secret string) bool {
	compare := compareFuncs[0].compare
	for _, cmp := range compareFuncs[1:] {
		if strings.HasPrefix(secret, cmp.prefix) {
			compare = cmp.compare
			break
		}
	}
	return compare([]byte(secret), []byte(password)) == nil
}
GO
  cat >go-http-auth/stale.go <<'GO'
package auth

import "net/http"

// staleWriter adds stale=true to the digest challenge as it is sent.
type staleWriter struct {
	http.ResponseWriter
	header string
}

func (s staleWriter) WriteHeader(code int) {
	if v := s.Header().Get(s.header); v != "" {
		s.Header().Set(s.header, v+", stale=true")
	}
	s.ResponseWriter.WriteHeader(code)
}

// RequireAuthStale answers as RequireAuth does, telling the client that only
// its nonce was out of date (RFC 7616, section 3.3).
func (a *DigestAuth) RequireAuthStale(w http.ResponseWriter, r *http.Request) {
	a.RequireAuth(staleWriter{ResponseWriter: w, header: a.Headers.V().Authenticate}, r)
}
GO
  ( cd go-http-auth && go mod init github.com/abbot/go-http-auth && go mod edit -require golang.org/x/crypto@v0.48.0 -require golang.org/x/net@v0.50.0 )
  go mod edit -replace github.com/abbot/go-http-auth=./go-http-auth
  sed -n 's#^exclude \([^ ]*\) \(v[^ ]*\)$#\1@\2#p' "${gomod}" | while read -r e; do go mod edit -exclude "$e"; done
  go mod edit -require "github.com/traefik/traefik/v3@v${version}"
  go get "github.com/traefik/traefik/v3/cmd/traefik@v${version}"
  go_build -ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=v${version}" \
    -o "${out}/traefik" github.com/traefik/traefik/v3/cmd/traefik
}

want() { [ $# -eq 0 ] || [[ " ${SELECTED} " == *" $1 "* ]]; }
SELECTED="$*"
if [ -z "${SELECTED}" ] || want k8s; then build_into k8s "${K8S_VERSION}" kube-controller-manager kube-scheduler kubelet kube-proxy; fi
if [ -z "${SELECTED}" ] || want coredns; then build_into coredns "${COREDNS_VERSION}" coredns; fi
if [ -z "${SELECTED}" ] || want kube-router; then build_into kube-router "${KUBE_ROUTER_VERSION}" kube-router; fi
if [ -z "${SELECTED}" ] || want traefik; then build_into traefik "${TRAEFIK_VERSION}" traefik; fi

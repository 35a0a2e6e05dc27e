# cached-tool.sh, sourced by the hack/setup-*.sh scripts of the tools that
# have a Go module of their own under hack/tools: it builds such a tool once
# into the cache outside the repository and prints its path.
#
# A tool has its own module when its dependency graph is large and would
# otherwise enter mcpgate's go.mod (or move the versions of another tool's).

# cached_tool NAME MODDIR PKG TARGET LDFLAGS WHAT KEYFILE...
#
# Prints the path of the binary NAME, built with `go build` of TARGET in
# module MODDIR, in <cache>/NAME/<version of PKG>-<os>-<arch>-<key>, where
# the key hashes the KEYFILEs and the Go version: what must rebuild the tool
# when it changes. Builds it first when it is not there, into a staging
# directory renamed at the end, so an interrupted run never leaves a
# half-filled cache. WHAT says, on stderr, what is being built and how long
# it takes. Only the path goes to stdout.
cached_tool() {
  local name="$1" moddir="$2" pkg="$3" target="$4" ldflags="$5" what="$6"
  shift 6
  local version key cache_root dest stage
  # "require pkg v" on one line, or "pkg v" inside a require block.
  version="$(awk -v pkg="${pkg}" '$1 == pkg { print $2 } $1 == "require" && $2 == pkg { print $3 }' "${moddir}/go.mod")"
  if [ -z "${version}" ]; then
    echo "setup-${name}: no ${pkg} version in ${moddir}/go.mod" >&2
    return 1
  fi
  key="$(cat "$@" <(go env GOVERSION) | sha256sum | cut -c1-12)"
  cache_root="${MCPGATE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mcpgate}"
  dest="${cache_root}/${name}/${version}-$(go env GOOS)-$(go env GOARCH)-${key}"
  if [ -x "${dest}/${name}" ]; then
    echo "${dest}/${name}"
    return 0
  fi
  mkdir -p "$(dirname "${dest}")"
  stage="$(mktemp -d "${dest}.tmp.XXXXXX")"
  # shellcheck disable=SC2064 # the path is fixed now, on purpose
  trap "rm -rf '${stage}'" EXIT
  echo "setup-${name}: building ${what} (${version}; once)" >&2
  (cd "${moddir}" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w ${ldflags}" -o "${stage}/${name}" "${target}") >&2
  chmod 755 "${stage}"
  # Another run may have finished first; its result is as good as ours.
  mv -T "${stage}" "${dest}" 2>/dev/null || [ -x "${dest}/${name}" ]
  trap - EXIT
  rm -rf "${stage}"
  echo "${dest}/${name}"
}

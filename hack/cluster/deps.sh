#!/usr/bin/env bash
# deps.sh installs the node's Debian packages when any is missing: containerd and
# runc (the container runtime), the CNI plugins, and the netfilter tools that
# kube-proxy and the NetworkPolicy enforcer call, and openssl and the public CA
# bundle for the cluster's certificates (pki.sh). Idempotent: with everything
# present it only checks.
set -euo pipefail

PACKAGES=(containerd runc containernetworking-plugins iptables ipset conntrack nftables iproute2 kmod openssl ca-certificates)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "cluster deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# The lists may be absent on a new machine; one update is enough.
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's containerd package ships a service that no init system runs here; the
# cluster starts its own containerd with its own config, sockets and root.

#!/usr/bin/env bash
# preflight.sh checks that this machine can run the test cluster: root, the
# kernel features (overlayfs, cgroup v1 or v2 with the controllers the kubelet
# needs, network namespaces, bridge netfilter, ipset, iptables), free disk and
# Go. On a miss it prints one line saying what is missing and exits 1.
set -uo pipefail

miss() { echo "test-cluster: cannot run here: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || miss "needs root (running as uid $(id -u))"
[ "$(uname -s)" = Linux ] || miss "needs Linux"
command -v go >/dev/null || miss "needs Go on PATH"
grep -qw overlay /proc/filesystems || miss "the kernel has no overlayfs (CONFIG_OVERLAY_FS)"
[ -e /proc/self/ns/net ] || miss "the kernel has no network namespaces (CONFIG_NET_NS)"
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  for c in cpu memory pids; do
    grep -qw "$c" /sys/fs/cgroup/cgroup.controllers || miss "cgroup v2 lacks the $c controller"
  done
else
  for c in cpu cpuacct memory pids devices freezer; do
    grep -qE "^$c[[:space:]].*[[:space:]]1$" /proc/cgroups || miss "cgroup v1 lacks the $c controller"
    [ -n "$(awk -v c="$c" '$3 == "cgroup" && $4 ~ ("(^|,)" c "(,|$)") { print }' /proc/self/mounts)" ] ||
      miss "the cgroup v1 $c controller is not mounted under /sys/fs/cgroup"
  done
fi
[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] || miss "bridge netfilter is missing (CONFIG_BRIDGE_NETFILTER; modprobe br_netfilter)"
# Disk: the kubelet reports DiskPressure, and taints the node so that no pod
# is scheduled, below 2% free (evictionHard in up.sh); the images, etcd and the
# logs need about 3 GiB more.
state="${CLUSTER_STATE_DIR:-/var/lib/mcpgate-cluster}"
while [ ! -d "${state}" ]; do state="$(dirname "${state}")"; done
read -r size_kib free_kib < <(df -Pk "${state}" | awk 'NR == 2 { print $2, $4 }')
need_kib=$(( size_kib * 3 / 100 + 3 * 1024 * 1024 ))
[ "${free_kib}" -ge "${need_kib}" ] ||
  miss "$((free_kib / 1048576)) GiB free on the filesystem of ${state} ($((size_kib / 1048576)) GiB); the node needs more than 2% free (the kubelet's eviction threshold) and about 3 GiB for images and logs: free at least $((need_kib / 1048576 + 1)) GiB"
if [ -e /proc/config.gz ]; then
  config="$(zcat /proc/config.gz)"
  for opt in CONFIG_IP_SET CONFIG_NETFILTER_XT_SET CONFIG_VETH CONFIG_BRIDGE CONFIG_NF_NAT CONFIG_NETFILTER_XT_MATCH_COMMENT CONFIG_NETFILTER_XT_MATCH_STATISTIC; do
    grep -qE "^${opt}=(y|m)" <<<"${config}" || miss "the kernel lacks ${opt}"
  done
fi
exit 0

#!/usr/bin/env bash
# down.sh stops the test cluster and removes everything it made: its processes
# (each found by its pid file and checked against its command line), the pods'
# processes (through the kubepods cgroups), containerd's shims, every mount and
# network namespace under the state directory, the bridge, the iptables rules
# and ipsets of kube-proxy, kube-router and the CNI plugins, the guard table,
# the sysctls it changed, and the state directory. Safe to run at any time,
# also when nothing is running. `down.sh --check` only reports leftovers and
# exits 1 when there are any.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "${HERE}/lib.sh"

# cmdline_of PID prints the process's command line with spaces.
cmdline_of() { cat "/proc/$1/cmdline" 2>/dev/null | tr '\0' ' '; }

# ours PID is true when the process is alive and its command line names the
# state directory, so a recycled pid is never signalled.
ours() { [ -d "/proc/$1" ] && cmdline_of "$1" | grep -qF -- "${STATE_DIR}"; }

# stop NAME: SIGTERM, up to 15 s, then SIGKILL.
stop() {
  local name="$1" f="${PID_DIR}/$1.pid" pid i t0=${SECONDS}
  [ -f "$f" ] || return 0
  pid="$(cat "$f")"
  if ours "$pid"; then
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 20); do ours "$pid" || break; sleep 0.5; done
    if ours "$pid"; then
      log "${name} ignored SIGTERM for 10s; killing it"
      kill -KILL "$pid" 2>/dev/null; sleep 0.5
    fi
  fi
  rm -f "$f"
  [ $((SECONDS - t0)) -lt 3 ] || log "stopping ${name} took $((SECONDS - t0))s"
}

# kubepods_cgroups prints the pod cgroup directories, deepest first.
kubepods_cgroups() {
  local h
  for h in /sys/fs/cgroup/*/; do
    [ -d "${h}kubepods" ] && find "${h}kubepods" -type d 2>/dev/null
  done | awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2-
}

kill_pods() {
  local d pid round
  for round in 1 2 3 4 5; do
    local any=0
    while read -r d; do
      [ -f "$d/cgroup.procs" ] || continue
      while read -r pid; do
        [ -n "$pid" ] || continue
        any=1; kill -KILL "$pid" 2>/dev/null
      done <"$d/cgroup.procs"
    done < <(kubepods_cgroups)
    [ "$any" = 0 ] && break
    sleep 1
  done
}

shim_pids() {
  local p
  for p in /proc/[0-9]*; do
    cmdline_of "${p#/proc/}" | grep -q -- "containerd-shim.*-address ${CONTAINERD_SOCK}" && echo "${p#/proc/}"
  done
}

unmount_state() {
  local m round
  for round in 1 2 3; do
    # Deepest first; /proc/self/mountinfo escapes spaces, which our paths lack.
    mapfile -t mounts < <(awk -v d="${STATE_DIR}" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
    [ ${#mounts[@]} -eq 0 ] && return 0
    for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
  done
}

# cluster_chains TOOL TABLE prints the chains of TABLE that the cluster's
# components make.
cluster_chains() {
  "$1" -t "$2" -S 2>/dev/null | awk '$1 == "-N" { print $2 }' | grep -E '^(KUBE-|CNI-|MCPGATE-)'
}

clean_iptables() {
  local tool table chain rule
  for tool in iptables ip6tables; do
    command -v "$tool" >/dev/null || continue
    for table in filter nat mangle raw; do
      # Rules in any chain that jump to a cluster chain, then the chains.
      "$tool" -t "$table" -S 2>/dev/null | grep -E -- '-j (KUBE-|CNI-|MCPGATE-)' | grep '^-A' |
        while read -r rule; do
          eval "\"$tool\" -t \"$table\" ${rule/-A/-D}" 2>/dev/null
        done
      for chain in $(cluster_chains "$tool" "$table"); do "$tool" -t "$table" -F "$chain" 2>/dev/null; done
      for chain in $(cluster_chains "$tool" "$table"); do "$tool" -t "$table" -X "$chain" 2>/dev/null; done
    done
  done
  if command -v ipset >/dev/null; then
    local set
    for set in $(ipset list -n 2>/dev/null | grep -E '^(inet6:)?KUBE-'); do ipset destroy "$set" 2>/dev/null; done
  fi
}

# clean_nft_tables removes the nftables tables that appeared with the cluster
# (iptables-nft's own, made on first use) once they hold no rule.
clean_nft_tables() {
  command -v nft >/dev/null || return 0
  local before="${STATE_DIR}/nft-tables-before" family name
  [ -f "${before}" ] || return 0
  nft list tables 2>/dev/null | while read -r _ family name; do
    grep -qx "table ${family} ${name}" "${before}" && continue
    nft list table "${family}" "${name}" 2>/dev/null | grep -qE '^[[:space:]]+(ip|ip6|meta|ct|counter|jump|goto|accept|drop|reject|iifname|oifname|tcp|udp|mark|fib)' && continue
    nft delete table "${family}" "${name}" 2>/dev/null
  done
}

restore_sysctls() {
  local f="${STATE_DIR}/sysctls" key value
  [ -f "$f" ] || return 0
  while read -r key value; do
    echo "$value" >"/proc/sys/${key//.//}" 2>/dev/null
  done <"$f"
}

# leftovers prints one line per thing the cluster left behind.
leftovers() {
  local p
  for p in /proc/[0-9]*; do
    p="${p#/proc/}"
    [ "$p" = "$$" ] && continue
    cmdline_of "$p" | grep -qF -- "${STATE_DIR}" && echo "process $p: $(cmdline_of "$p" | cut -c1-120)"
  done
  awk -v d="${STATE_DIR}" 'index($5, d) == 1 { print "mount " $5 }' /proc/self/mountinfo
  ip link show "${BRIDGE}" >/dev/null 2>&1 && echo "interface ${BRIDGE}"
  # The CNI bridge plugin names the host ends veth plus 8 hex digits.
  ip -o link show type veth 2>/dev/null | awk -F': ' '$2 ~ /^veth[0-9a-f]{8}@/ { print "veth " $2 }'
  ip netns list 2>/dev/null | awk '$1 ~ /^(cni-|mcpgate-)/ { print "netns " $1 }'
  local tool table
  for tool in iptables ip6tables; do
    command -v "$tool" >/dev/null || continue
    for table in filter nat mangle raw; do
      cluster_chains "$tool" "$table" | sed "s/^/${tool} ${table} chain /"
    done
  done
  command -v ipset >/dev/null && ipset list -n 2>/dev/null | grep -E '^(inet6:)?KUBE-' | sed 's/^/ipset /'
  command -v nft >/dev/null && nft list tables 2>/dev/null | grep -E 'kube|cni|mcpgate' | sed 's/^/nft /'
  kubepods_cgroups | sed 's/^/cgroup /'
  [ -d "${STATE_DIR}" ] && echo "directory ${STATE_DIR}"
}

if [ "${1:-}" = "--check" ]; then
  out="$(leftovers)"
  [ -z "$out" ] && { log "nothing left behind"; exit 0; }
  echo "$out"; exit 1
fi

[ "$(id -u)" = 0 ] || die "down.sh needs root"

stop kube-router
stop traefik
stop kubelet
kill_pods
stop containerd
for pid in $(shim_pids); do kill -KILL "$pid" 2>/dev/null; done
kill_pods
stop kube-proxy
stop kube-scheduler
stop kube-controller-manager
stop kube-apiserver
stop etcd
# Anything else still naming the state directory (a component started by hand).
for p in /proc/[0-9]*; do
  p="${p#/proc/}"; [ "$p" = "$$" ] && continue
  ours "$p" && kill -KILL "$p" 2>/dev/null
done
sleep 0.5
unmount_state
# A CNI network namespace whose bind mount lived elsewhere (containerd's default).
for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^cni-/ { print $1 }'); do
  if [ -d "${STATE_DIR}" ] && grep -rqs "${ns}" "${STATE_DIR}/cni" 2>/dev/null; then ip netns del "$ns"; fi
done
# The test host of test/cluster's TestNothingLeavesTheNode, if a test crashed.
for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^mcpgate-/ { print $1 }'); do
  ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
  ip netns del "$ns"
done
while read -r d; do rmdir "$d" 2>/dev/null; done < <(kubepods_cgroups)
ip link del "${BRIDGE}" 2>/dev/null
clean_iptables
nft delete table inet "${GUARD_TABLE}" 2>/dev/null
clean_nft_tables
restore_sysctls
rm -rf "${STATE_DIR}"

out="$(leftovers)"
if [ -n "$out" ]; then
  echo "$out" >&2
  die "teardown left the above behind"
fi
log "cluster stopped; nothing left behind"

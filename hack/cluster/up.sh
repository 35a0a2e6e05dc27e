#!/usr/bin/env bash
# up.sh starts a single-node Kubernetes cluster on this machine from the
# project's own builds: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, containerd (Debian's) with runc, the kubelet, kube-proxy in
# iptables mode, the CNI bridge on a node-local bridge, CoreDNS, and
# kube-router's NetworkPolicy firewall. It waits until the node is Ready and
# DNS answers, then prints the KUBECONFIG. down.sh removes all of it.
#
# Network safety: the node's address is the bridge's own (${BRIDGE_IP}), the
# Service range is routed onto the bridge, the CNI plugin never masquerades,
# and a guard (an nftables table ahead of iptables) drops anything forwarded
# between the bridge and another interface. Every listener binds the bridge address or loopback.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "${HERE}/lib.sh"
REPO="$(cd "${HERE}/../.." && pwd)"

"${HERE}/preflight.sh"
"${HERE}/deps.sh"
# CLUSTER_STEPS (for debugging the script) runs only the named steps, in
# order; the builds then are the caller's business.
STEPS="${CLUSTER_STEPS:-network pki etcd apiserver controllers containerd kubelet proxy node-ready kube-router coredns traefik}"
[ -n "${CLUSTER_STEPS:-}" ] || "${HERE}/build.sh"
ENVTEST_BIN="$("${REPO}/hack/setup-envtest.sh")"
K8S_BIN="${CLUSTER_K8S_BIN:-${CLUSTER_CACHE}/k8s-${K8S_VERSION}}"
KUBECTL="${ENVTEST_BIN}/kubectl"
kubectl() { "${KUBECTL}" --kubeconfig "${KUBECONFIG_ADMIN}" "$@"; }

if [ -z "${CLUSTER_STEPS:-}" ]; then
  [ -f "${PID_DIR}/kube-apiserver.pid" ] && die "a cluster is already up (${STATE_DIR}); run hack/cluster/down.sh first"
  "${HERE}/down.sh" >/dev/null 2>&1 || true
fi

mkdir -p "${STATE_DIR}" "${RUN_DIR}" "${LOG_DIR}" "${PID_DIR}" "${STATE_DIR}/cni/net.d" "${STATE_DIR}/etc"
chmod 700 "${STATE_DIR}"

# start NAME BINARY ARGS... runs one component in its own session, logging to
# LOG_DIR/NAME.log and recording its pid.
start() {
  local name="$1"; shift
  setsid "$@" >"${LOG_DIR}/${name}.log" 2>&1 </dev/null &
  echo $! >"${PID_DIR}/${name}.pid"
}

# wait_for WHAT SECONDS COMMAND... retries COMMAND until it succeeds.
wait_for() {
  local what="$1" secs="$2" i; shift 2
  for ((i = 0; i < secs * 2; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  # A tainted node (disk or memory pressure) is the usual reason pods never
  # start: say so rather than leave it to the logs.
  local taints
  taints="$(kubectl get nodes --request-timeout=5s -o jsonpath='{range .items[*].spec.taints[*]}{.key} {end}' 2>/dev/null)"
  [ -z "${taints}" ] || what="${what} (the node has the taints ${taints% })"
  die "timed out after ${secs}s waiting for ${what}; logs are in ${LOG_DIR}"
}

# Sysctls: remember each value before the first change, so down.sh restores it.
set_sysctl() {
  local key="$1" value="$2" path="/proc/sys/${1//.//}"
  grep -q "^${key} " "${STATE_DIR}/sysctls" 2>/dev/null || echo "${key} $(cat "${path}")" >>"${STATE_DIR}/sysctls"
  echo "${value}" >"${path}"
}

step_network() {
# --- node network -------------------------------------------------------------
# The nftables tables that exist before: iptables-nft makes its tables on first
# use, and down.sh removes those it finds empty that were not here.
nft list tables 2>/dev/null >"${STATE_DIR}/nft-tables-before" || true
ip link add "${BRIDGE}" type bridge
ip addr add "${BRIDGE_IP}/${POD_CIDR#*/}" dev "${BRIDGE}"
ip link set "${BRIDGE}" up
ip route add "${SERVICE_CIDR}" dev "${BRIDGE}" src "${BRIDGE_IP}"
# The guard: an nftables table of its own whose forward hook runs before
# iptables' filter table (priority -160, ahead of mangle's -150), so no rule
# that kube-proxy or kube-router insert can accept a packet past it.
nft -f - <<NFT
table inet ${GUARD_TABLE} {
  chain forward {
    type filter hook forward priority -160; policy accept;
    iifname "${BRIDGE}" oifname != "${BRIDGE}" counter drop comment "pods reach only this machine"
    oifname "${BRIDGE}" iifname != "${BRIDGE}" counter drop comment "nothing is routed into the pods"
  }
}
NFT
set_sysctl net.ipv4.ip_forward 1
set_sysctl net.bridge.bridge-nf-call-iptables 1
set_sysctl net.bridge.bridge-nf-call-ip6tables 1
}

step_pki() {
# --- certificates -------------------------------------------------------------
"${HERE}/pki.sh"
}

step_etcd() {
# --- etcd -----------------------------------------------------------------------
start etcd "${ENVTEST_BIN}/etcd" --name mcpgate-cluster --data-dir "${STATE_DIR}/etcd" \
  --listen-client-urls "http://127.0.0.1:${ETCD_CLIENT_PORT}" --advertise-client-urls "http://127.0.0.1:${ETCD_CLIENT_PORT}" \
  --listen-peer-urls "http://127.0.0.1:${ETCD_PEER_PORT}" --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PEER_PORT}" \
  --initial-cluster "mcpgate-cluster=http://127.0.0.1:${ETCD_PEER_PORT}" --unsafe-no-fsync=true
wait_for etcd 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/${ETCD_CLIENT_PORT}"
}

step_apiserver() {
# --- control plane ---------------------------------------------------------------
start kube-apiserver "${ENVTEST_BIN}/kube-apiserver" \
  --bind-address "${BRIDGE_IP}" --advertise-address "${BRIDGE_IP}" --secure-port "${APISERVER_PORT}" \
  --etcd-servers "http://127.0.0.1:${ETCD_CLIENT_PORT}" \
  --tls-cert-file "${PKI_DIR}/apiserver.crt" --tls-private-key-file "${PKI_DIR}/apiserver.key" \
  --client-ca-file "${PKI_DIR}/ca.crt" \
  --kubelet-client-certificate "${PKI_DIR}/apiserver-kubelet-client.crt" --kubelet-client-key "${PKI_DIR}/apiserver-kubelet-client.key" \
  --kubelet-preferred-address-types InternalIP \
  --service-account-issuer "https://kubernetes.default.svc.${CLUSTER_DOMAIN}" \
  --service-account-key-file "${PKI_DIR}/sa.pub" --service-account-signing-key-file "${PKI_DIR}/sa.key" \
  --service-cluster-ip-range "${SERVICE_CIDR}" --service-node-port-range 30000-30100 \
  --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
  --allow-privileged=true --profiling=false --cert-dir "${PKI_DIR}/apiserver-generated"
wait_for kube-apiserver 90 kubectl get --raw /readyz
}

step_controllers() {
start kube-controller-manager "${K8S_BIN}/kube-controller-manager" \
  --kubeconfig "${PKI_DIR}/controller-manager.kubeconfig" \
  --authentication-kubeconfig "${PKI_DIR}/controller-manager.kubeconfig" \
  --authorization-kubeconfig "${PKI_DIR}/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "${KCM_PORT}" --leader-elect=false \
  --service-account-private-key-file "${PKI_DIR}/sa.key" --root-ca-file "${PKI_DIR}/ca.crt" \
  --cluster-signing-cert-file "${PKI_DIR}/ca.crt" --cluster-signing-key-file "${PKI_DIR}/ca.key" \
  --use-service-account-credentials=true \
  --allocate-node-cidrs=true --cluster-cidr "${POD_CIDR}" --node-cidr-mask-size 24 \
  --service-cluster-ip-range "${SERVICE_CIDR}" --cert-dir "${PKI_DIR}/kcm-generated"
start kube-scheduler "${K8S_BIN}/kube-scheduler" \
  --kubeconfig "${PKI_DIR}/scheduler.kubeconfig" \
  --authentication-kubeconfig "${PKI_DIR}/scheduler.kubeconfig" \
  --authorization-kubeconfig "${PKI_DIR}/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "${SCHEDULER_PORT}" --leader-elect=false \
  --cert-dir "${PKI_DIR}/scheduler-generated"
}

step_containerd() {
# --- containerd -------------------------------------------------------------------
cat >"${STATE_DIR}/cni/net.d/10-mcpgate.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "mcpgate",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "${BRIDGE}",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "${POD_CIDR}", "gateway": "${BRIDGE_IP}"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "${STATE_DIR}/cni/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
mkdir -p "${STATE_DIR}/containerd"
cat >"${STATE_DIR}/containerd/config.toml" <<TOML
version = 2
root = "${STATE_DIR}/containerd/root"
state = "${RUN_DIR}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "${CONTAINERD_SOCK}"
[ttrpc]
  address = "${RUN_DIR}/containerd/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "${STATE_DIR}/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "mcpgate.local/pause:1"
  netns_mounts_under_state_dir = true
  enable_unprivileged_ports = true
  enable_unprivileged_icmp = true
  # The machine withholds CAP_SYS_RESOURCE, so no process may lower its OOM
  # score below containerd's; without this, runc fails to start every pod
  # sandbox (the kubelet asks -998 for them).
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${STATE_DIR}/cni/net.d"
TOML
start containerd containerd --config "${STATE_DIR}/containerd/config.toml"
CTR=(ctr --address "${CONTAINERD_SOCK}" -n k8s.io)
wait_for containerd 30 "${CTR[@]}" version

# Images: the sandbox image and the network probe, assembled by hack/cluster/images.sh.
"${HERE}/images.sh" import pause netcheck
}

step_kubelet() {
# --- kubelet ------------------------------------------------------------------------
printf 'nameserver 127.0.0.1\n' >"${STATE_DIR}/etc/resolv.conf"
cat >"${STATE_DIR}/kubelet-config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: ${BRIDGE_IP}
port: ${KUBELET_PORT}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: ${KUBELET_HEALTHZ_PORT}
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: ${PKI_DIR}/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://${CONTAINERD_SOCK}
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
clusterDNS: [${DNS_SVC_IP}]
clusterDomain: ${CLUSTER_DOMAIN}
resolvConf: ${STATE_DIR}/etc/resolv.conf
podLogsDir: ${STATE_DIR}/pod-logs
maxPods: 60
serializeImagePulls: false
evictionHard: {memory.available: 200Mi, nodefs.available: 2%, imagefs.available: 2%, nodefs.inodesFree: 2%}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
YAML
start kubelet "${K8S_BIN}/kubelet" --config "${STATE_DIR}/kubelet-config.yaml" \
  --kubeconfig "${PKI_DIR}/kubelet.kubeconfig" --root-dir "${STATE_DIR}/kubelet" \
  --cert-dir "${STATE_DIR}/kubelet/pki" --hostname-override "${NODE_NAME}" --node-ip "${BRIDGE_IP}"
}

step_proxy() {
# --- kube-proxy ---------------------------------------------------------------------
cat >"${STATE_DIR}/kube-proxy-config.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: ${PKI_DIR}/kube-proxy.kubeconfig}
hostnameOverride: ${NODE_NAME}
bindAddress: ${BRIDGE_IP}
healthzBindAddress: 127.0.0.1:${PROXY_HEALTHZ_PORT}
metricsBindAddress: 127.0.0.1:${PROXY_METRICS_PORT}
clusterCIDR: ${POD_CIDR}
nodePortAddresses: [${BRIDGE_IP}/32]
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
start kube-proxy "${K8S_BIN}/kube-proxy" --config "${STATE_DIR}/kube-proxy-config.yaml"
}

step_node_ready() {
wait_for "node ${NODE_NAME} Ready" 120 kubectl wait --for=condition=Ready "node/${NODE_NAME}" --timeout=1s
}

step_kube_router() {
# --- NetworkPolicy: kube-router's firewall only -------------------------------------
kubectl apply -f "${HERE}/manifests/kube-router-rbac.yaml" >/dev/null
start kube-router "${CLUSTER_CACHE}/kube-router-${KUBE_ROUTER_VERSION}/kube-router" \
  --kubeconfig "${PKI_DIR}/kube-router.kubeconfig" --hostname-override "${NODE_NAME}" \
  --run-firewall=true --run-router=false --run-service-proxy=false \
  --enable-ipv4=true --enable-ipv6=false --metrics-port 0 --health-port 0 \
  --service-cluster-ip-range "${SERVICE_CIDR}"
# Its health port would listen on every address; its first sync shows instead.
wait_for "kube-router's firewall" 60 iptables -n -L KUBE-ROUTER-FORWARD
}

step_coredns() {
# --- CoreDNS ------------------------------------------------------------------------
"${HERE}/images.sh" import coredns
sed -e "s/@DNS_SVC_IP@/${DNS_SVC_IP}/g" -e "s/@CLUSTER_DOMAIN@/${CLUSTER_DOMAIN}/g" \
  -e "s/@BRIDGE_IP@/${BRIDGE_IP}/g" -e "s/@CLERK_HOST@/${CLERK_HOST}/g" \
  -e "s/@COREDNS_VERSION@/${COREDNS_VERSION}/g" "${HERE}/manifests/coredns.yaml" | kubectl apply -f - >/dev/null
wait_for "CoreDNS" 120 kubectl -n kube-system wait --for=condition=Available deployment/coredns --timeout=1s
}

step_traefik() {
# --- ingress: Traefik, with the Gateway API CRDs of the release it is built against ---
local crds
crds="$(go mod download -json "sigs.k8s.io/gateway-api@v${GATEWAY_API_VERSION}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')/config/crd/standard"
kubectl apply --server-side -f "${crds}/gateway.networking.k8s.io_gatewayclasses.yaml" \
  -f "${crds}/gateway.networking.k8s.io_gateways.yaml" -f "${crds}/gateway.networking.k8s.io_httproutes.yaml" \
  -f "${crds}/gateway.networking.k8s.io_grpcroutes.yaml" -f "${crds}/gateway.networking.k8s.io_referencegrants.yaml" \
  -f "${crds}/gateway.networking.k8s.io_backendtlspolicies.yaml" >/dev/null
wait_for "Gateway API CRDs" 60 kubectl wait --for condition=Established crd/gateways.gateway.networking.k8s.io crd/httproutes.gateway.networking.k8s.io --timeout=1s
"${HERE}/images.sh" import traefik
sed -e "s/@TRAEFIK_VERSION@/${TRAEFIK_VERSION}/g" -e "s/@INGRESS_DOMAIN@/${INGRESS_DOMAIN}/g" "${HERE}/manifests/traefik.yaml" |
  kubectl apply -f - >/dev/null
kubectl -n traefik create secret tls ingress-tls --cert "${PKI_DIR}/ingress.crt" --key "${PKI_DIR}/ingress.key" \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null
wait_for "Traefik" 120 kubectl -n traefik wait --for=condition=Available deployment/traefik --timeout=1s
}

for step in ${STEPS}; do
  "step_${step//-/_}"
done
[ -n "${CLUSTER_STEPS:-}" ] && exit 0

log "cluster up in ${STATE_DIR}"
cat <<EOT
export KUBECONFIG=${KUBECONFIG_ADMIN}
# then: ${KUBECTL} get nodes,pods -A
# images from this checkout: hack/cluster/images.sh mcpgate TAG  (mcpgate.local/{mcpgate,sample-mcp-server}:TAG)
# the tests against it: see docs/cluster.md; stop: make cluster-down
EOT

# lib.sh holds the cluster's pinned versions, paths, ports and address ranges,
# sourced by the other scripts in hack/cluster.

# Versions. The control plane matches envtest (ENVTEST_K8S_VERSION in the
# Makefile); the kubelet and kube-proxy are the same release.
K8S_VERSION="${CLUSTER_K8S_VERSION:-1.36.3}"
COREDNS_VERSION="${CLUSTER_COREDNS_VERSION:-1.14.7}"
KUBE_ROUTER_VERSION="${CLUSTER_KUBE_ROUTER_VERSION:-2.1.0}"
# v3.7.x pulls lego DNS-provider SDK versions the module proxy refuses; 3.6.12
# resolves (docs/cluster.md, "Ingress").
TRAEFIK_VERSION="${CLUSTER_TRAEFIK_VERSION:-3.6.12}"
# The Gateway API release that Traefik ${TRAEFIK_VERSION} is built against.
GATEWAY_API_VERSION="${CLUSTER_GATEWAY_API_VERSION:-1.4.0}"

CACHE_ROOT="${MCPGATE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mcpgate}"
CLUSTER_CACHE="${CACHE_ROOT}/cluster"

# Everything the running cluster writes: pids, logs, certificates, kubeconfigs,
# containerd's and the kubelet's roots. down.sh removes it.
STATE_DIR="${CLUSTER_STATE_DIR:-/var/lib/mcpgate-cluster}"
RUN_DIR="${STATE_DIR}/run"
PKI_DIR="${STATE_DIR}/pki"
LOG_DIR="${STATE_DIR}/logs"
PID_DIR="${STATE_DIR}/pids"
CONTAINERD_SOCK="${RUN_DIR}/containerd/containerd.sock"
KUBECONFIG_ADMIN="${STATE_DIR}/admin.kubeconfig"

# Ports: away from the defaults and from envtest's random high ports.
ETCD_CLIENT_PORT=16379
ETCD_PEER_PORT=16380
APISERVER_PORT=16443
KCM_PORT=16257
SCHEDULER_PORT=16259
KUBELET_PORT=16250
KUBELET_HEALTHZ_PORT=16248
PROXY_HEALTHZ_PORT=16256
PROXY_METRICS_PORT=16249

# Address ranges: the pod network is one /24 on the node's own bridge, the
# Service range is routed onto that bridge too, so nothing in either ever leaves
# the machine.
BRIDGE=mcpgbr0
POD_CIDR=10.217.0.0/24
BRIDGE_IP=10.217.0.1
SERVICE_CIDR=10.218.0.0/24
KUBERNETES_SVC_IP=10.218.0.1
DNS_SVC_IP=10.218.0.10
CLUSTER_DOMAIN=cluster.local
NODE_NAME=mcpgate-node
# Hosts under this domain are served by the ingress controller with the
# cluster CA's wildcard certificate (pki.sh); nothing resolves them outside
# the tests, which dial the controller's Service directly.
INGRESS_DOMAIN=mcpgate.test
# The Clerk emulator of the tests runs on the node at BRIDGE_IP under this
# name, which the cluster DNS resolves (MCP clients refuse an authorization
# server at a private IP address).
CLERK_HOST=clerk.node.test
# The public CAs the images ship (Debian's ca-certificates).
SYSTEM_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
# The nftables table (family inet) holding the off-machine guard rules.
GUARD_TABLE=mcpgate_cluster_guard

log() { echo "cluster: $*" >&2; }
die() { echo "cluster: $*" >&2; exit 1; }

# node_ip prints the address of the interface that holds the default route: the
# API server advertises it and the kubelet registers it. Traffic to it stays on
# the machine.
node_ip() {
  ip -4 -o route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p'
}

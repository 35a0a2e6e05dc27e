#!/usr/bin/env bash
# pki.sh makes the cluster's certificates, the ServiceAccount signing key and
# the kubeconfigs under $STATE_DIR/pki, once: one CA signs everything.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "${HERE}/lib.sh"

mkdir -p "${PKI_DIR}"
chmod 700 "${PKI_DIR}"
cd "${PKI_DIR}"

if [ ! -f ca.crt ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 \
    -subj "/CN=mcpgate-cluster-ca" >/dev/null 2>&1
fi
if [ ! -f sa.key ]; then
  openssl genrsa -out sa.key 2048 >/dev/null 2>&1
  openssl rsa -in sa.key -pubout -out sa.pub >/dev/null 2>&1
fi

# cert NAME SUBJECT [SANS] signs NAME.crt for the subject (client and server use).
cert() {
  local name="$1" subj="$2" sans="${3:-}"
  [ -f "${name}.crt" ] && return 0
  openssl req -newkey rsa:2048 -nodes -keyout "${name}.key" -out "${name}.csr" -subj "${subj}" >/dev/null 2>&1
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=serverAuth,clientAuth"
    [ -n "${sans}" ] && echo "subjectAltName=${sans}"
  } >"${name}.ext"
  openssl x509 -req -in "${name}.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
    -extfile "${name}.ext" -out "${name}.crt" >/dev/null 2>&1
  rm -f "${name}.csr" "${name}.ext"
}

cert apiserver "/CN=kube-apiserver" \
  "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.${CLUSTER_DOMAIN},DNS:localhost,IP:127.0.0.1,IP:${BRIDGE_IP},IP:${KUBERNETES_SVC_IP}"
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
cert admin "/O=system:masters/CN=mcpgate-cluster-admin"
cert controller-manager "/CN=system:kube-controller-manager"
cert scheduler "/CN=system:kube-scheduler"
cert kubelet "/O=system:nodes/CN=system:node:${NODE_NAME}" "DNS:${NODE_NAME},IP:${BRIDGE_IP}"
cert kube-proxy "/CN=system:kube-proxy"
cert kube-router "/CN=mcpgate-cluster:kube-router"
# What the tests serve with TLS: the Clerk emulator, on the node's bridge
# address where pods reach it, and the ingress controller, for every host
# under INGRESS_DOMAIN. Pods trust the cluster CA through the test image
# (images.sh mcpgate) and the host's clients through trust-bundle.crt.
cert clerk-emulator "/CN=${CLERK_HOST}" "DNS:${CLERK_HOST},IP:${BRIDGE_IP}"
cert ingress "/CN=*.${INGRESS_DOMAIN}" "DNS:*.${INGRESS_DOMAIN}"
# The public CAs and the cluster's: the CA bundle of the test images.
cat "${SYSTEM_CA_BUNDLE}" ca.crt >trust-bundle.crt

# kubeconfig NAME writes NAME.kubeconfig for the NAME certificate.
kubeconfig() {
  local name="$1" out="${2:-${PKI_DIR}/$1.kubeconfig}"
  cat >"${out}" <<KC
apiVersion: v1
kind: Config
clusters:
- name: mcpgate
  cluster:
    server: https://${BRIDGE_IP}:${APISERVER_PORT}
    certificate-authority: ${PKI_DIR}/ca.crt
users:
- name: ${name}
  user:
    client-certificate: ${PKI_DIR}/${name}.crt
    client-key: ${PKI_DIR}/${name}.key
contexts:
- name: mcpgate
  context: {cluster: mcpgate, user: ${name}}
current-context: mcpgate
KC
  chmod 600 "${out}"
}
for n in controller-manager scheduler kubelet kube-proxy kube-router; do kubeconfig "$n"; done
kubeconfig admin "${KUBECONFIG_ADMIN}"

// Package localstack runs a whole mcpgate installation on one machine, with
// nothing installed but Go: a real kube-apiserver and etcd (envtest), the
// McpServer CRD, the Clerk emulator, the sample MCP server, the operator
// (`mcpgate manager`) and, for every gateway Deployment the operator writes,
// a local `mcpgate gateway` process. `make demo` (hack/demo) and the
// end-to-end tests (test/e2e) are built on it.
//
// # What starts, and in which order
//
// Start brings up, in order, and Close tears down in reverse (also when a
// later step failed):
//
//  1. etcd and kube-apiserver, from hack/setup-envtest.sh's directory (or
//     $KUBEBUILDER_ASSETS), with a cluster admin's kubeconfig written to
//     <WorkDir>/kubeconfig;
//  2. the CRDs, applied with the real kubectl as `make install` does;
//  3. the Clerk emulator, in-process (clerk/clerktest; the default, so tests
//     can read its call counters and settings) or as the hack/clerk-emulator
//     subprocess, with the custom scope repo:admin that config/samples
//     needs for step-up;
//  4. the sample MCP server, in-process or as hack/sample-mcp-server, and a
//     Service in front of it (namespace "demo", sample-mcp:8080);
//  5. the Secret clerk/secret-key holding the emulator's secret key;
//  6. `mcpgate manager` as a subprocess, the binary built with go build into
//     ${MCPGATE_CACHE_DIR:-~/.cache/mcpgate}/bin (outside the repository;
//     go build relinks only what changed), with --clerk-api-url pointing at
//     the emulator's Backend API, its metrics and probes on free ports, and
//     --cluster-resource-namespace mcpgate-system (OperatorNamespace);
//  7. `mcpgate broker` (unless Options.NoBroker), the Clerk key broker, as a
//     subprocess: the manager runs with --broker-url naming a loopback
//     address the stack holds (a forwarder, like a gateway's, so the URL
//     survives a restart of the broker; the operator's certificate names it
//     as an IP address, since there is no cluster DNS for a Service name),
//     and the broker starts once the operator has created its TLS Secret,
//     with the certificate and key written from it as the kubelet would
//     mount them and kept in step with it;
//  8. the kubelet emulation (below).
//
// Every child process runs in a process group of its own and, on Linux, is
// killed by the kernel if the stack's process dies first; each writes to a
// log file in <WorkDir>/logs.
//
// # The kubelet emulation
//
// envtest is an API server without controllers or nodes: a Deployment never
// gets pods, and its status never changes, so an McpServer would never be
// Ready. The emulation plays the Deployment controller and the kubelet for
// gateway Deployments (label app.kubernetes.io/managed-by=mcpgate) only. It
// is a controller-runtime controller in the stack's process; per Deployment
// it
//
//   - runs the container's command and arguments as a local process: the
//     same mcpgate binary, the same arguments, except that paths under the
//     container's volume mounts (/etc/mcpgate/config, /etc/mcpgate/clerk)
//     are mapped to a per-process directory where the ConfigMap and Secret
//     contents are written, as the kubelet would mount them;
//   - rewrites the listen addresses in that copy of the configuration
//     (:8080 and :8081 in every pod) to free loopback ports. There is no pod
//     network: all gateways share the host's ports, and a gateway should
//     not be reachable from outside the machine;
//   - appends --resolve <svc>.<ns>.svc:<port>=127.0.0.1:<targetPort> for an
//     upstream Service, since cluster DNS does not exist here. Every "pod"
//     is on the host network of a node at 127.0.0.1, so a Service's numeric
//     targetPort is where its backend listens;
//   - gives the gateway a stable loopback address (Gateway.URL), a TCP
//     forwarder standing in for its Service, so that the URL clients and
//     their tokens (whose audience it is) use survives restarts;
//   - restarts the process when the pod template changes (the
//     mcpgate.dev/config-hash annotation, the arguments, anything else),
//     starting the new one before stopping the old, like a rolling update
//     with maxSurge 1; restarts it after a crash, with a growing back-off;
//     stops it when the Deployment goes or is scaled to zero (the address
//     stays, as the gateway's Service would);
//   - updates mounted Secret and ConfigMap files in place when the Secret
//     or ConfigMap changes, as the kubelet does, so a rotated Clerk key or
//     broker CA bundle reaches the gateway unrestarted (the configuration
//     file itself is left as rewritten: a change to it changes the config
//     hash, and so the pod template);
//   - projects ServiceAccount tokens (a projected volume's
//     serviceAccountToken source): it asks the API server for a token of
//     the pod's ServiceAccount with the source's audience and lifetime
//     (TokenRequest), writes it as the file, and replaces it once 80% of its
//     lifetime has passed, as the kubelet does. The tokens are not bound to
//     a pod (there are no Pod objects), which is all that differs;
//   - writes the Deployment status a cluster would (readyReplicas,
//     availableReplicas, the Available condition) once the process answers
//     /readyz, so `kubectl get mcps` shows READY True.
//
// One process stands in for all replicas of a Deployment. envtest has no
// garbage collector either: deleting an McpServer leaves its Deployment
// (and so its gateway process) until the stack stops.
//
// # Why config/samples goes through an overlay
//
// ApplySamples applies config/samples with `kubectl apply -k` through a
// kustomize overlay written to <WorkDir>/samples-overlay. The sample is
// written for a real cluster and a real Clerk instance, and four of its
// fields cannot work on one machine: its publishableKey names a real Clerk
// host (https, no port) while the emulator's issuer is plain http on a
// loopback port, which only spec.clerk.issuer can express; its Ingress
// needs an ingress controller (without one Ready stays False with
// AddressPending, and tools.example.com does not resolve anyway); its
// upstream, github-mcp, does not exist (the sample server's Service does);
// and two replicas mean nothing with one local process. The overlay also
// turns on dynamic client registration, which MCP clients need, and states
// the access token format, so the operator's settings sync has work to do.
// Patching the repository's sample, rather than keeping a second copy, keeps
// the sample the one source of truth and lists every local difference in
// one generated file.
package localstack

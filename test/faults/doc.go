// Package faults tests that the operator runs unattended through faults of
// the control plane: `mcpgate manager`, built from this repository and run as
// a subprocess, against a real kube-apiserver and etcd (envtest) in which the
// tests cause the faults.
//
//   - TestManagerSurvivesAPIServerRestart stops the kube-apiserver (etcd keeps
//     running) for a few seconds and starts it again on the same address with
//     the same certificates: the manager must not exit, and must go on
//     reconciling both new McpServers and changes to existing ones.
//   - TestLeaderElectionHandover runs two managers with leader election: only
//     the leader reconciles; when it is stopped with SIGTERM it releases the
//     Lease and exits 0, and the other one takes over and reconciles.
//
// They are part of `go test ./...`. They need etcd and kube-apiserver:
// $KUBEBUILDER_ASSETS when it is set (make test sets it), else what
// hack/setup-envtest.sh provides (cached after its first run).
package faults

// Package cluster holds the tests that run on a real node: the single-node
// cluster that hack/cluster/up.sh starts (a kubelet with containerd and runc,
// kube-proxy, the CNI bridge, CoreDNS and kube-router's NetworkPolicy
// firewall). They are built only with the `cluster` build tag, so `go test
// ./...` leaves them out:
//
//	hack/cluster/up.sh
//	go test -tags cluster ./test/cluster/ -count=1
//	hack/cluster/down.sh
//
// MCPGATE_CLUSTER_KUBECONFIG names the cluster's kubeconfig; the default is
// the one up.sh writes.
package cluster

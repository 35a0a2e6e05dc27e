//go:build cluster

package cluster_test

import (
	"context"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// offNode is a test host outside the cluster but on this machine: a network
// namespace of its own behind a veth pair, standing for "anywhere off the
// node". down.sh removes a namespace of this name prefix that a crashed test
// left behind.
const (
	offNodeNS     = "mcpgate-offnode"
	offNodeHostIf = "mcpgoff0"
	offNodeIf     = "mcpgoff1"
	offNodeHostIP = "203.0.113.1"
	offNodeIP     = "203.0.113.2"
)

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// TestNothingLeavesTheNode: a pod cannot open a connection to an address
// beyond the node's bridge, although the node itself reaches it: the guard
// chain drops what would be forwarded off the bridge, and nothing is
// masqueraded. The address is a test host in a network namespace made here,
// so even a failing guard sends nothing off the machine.
func TestNothingLeavesTheNode(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)

	netcheck := filepath.Join(t.TempDir(), "netcheck")
	build := exec.CommandContext(ctx, "go", "build", "-C", filepath.Join(repoRoot(t), "hack", "tools", "image"), "-o", netcheck, "./netcheck")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build netcheck: %v\n%s", err, out)
	}

	run(t, "ip", "netns", "add", offNodeNS)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", offNodeNS).Run() })
	run(t, "ip", "link", "add", offNodeHostIf, "type", "veth", "peer", "name", offNodeIf, "netns", offNodeNS)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", offNodeHostIf).Run() })
	run(t, "ip", "addr", "add", offNodeHostIP+"/24", "dev", offNodeHostIf)
	run(t, "ip", "link", "set", offNodeHostIf, "up")
	run(t, "ip", "-n", offNodeNS, "addr", "add", offNodeIP+"/24", "dev", offNodeIf)
	run(t, "ip", "-n", offNodeNS, "link", "set", offNodeIf, "up")
	// A way back to the pods, as a real network would have: without it the
	// test host could not answer a pod even if the guard let the pod through.
	run(t, "ip", "-n", offNodeNS, "route", "add", "default", "via", offNodeHostIP)

	server := exec.Command("ip", "netns", "exec", offNodeNS, netcheck, "serve", offNodeIP+":8080")
	if err := server.Start(); err != nil {
		t.Fatalf("start the off-node server: %v", err)
	}
	t.Cleanup(func() { _ = server.Process.Kill(); _ = server.Wait() })

	// The node reaches the test host: the path is live.
	url := "http://" + offNodeIP + ":8080/"
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		resp, err := http.Get(url)
		if err != nil {
			return false, nil
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		t.Fatalf("the node cannot reach its own test host %s: %v", url, err)
	}

	ns := restrictedNamespace(t, "offnode")
	if out, ok := runProbe(ctx, t, ns, "leaver", nil, "-timeout", "3s", "dial", offNodeIP+":8080"); ok {
		t.Fatalf("a pod connected to %s, beyond the node's bridge:\n%s", offNodeIP, out)
	}
}

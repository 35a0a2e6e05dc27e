package faults_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

// TestManagerSurvivesAPIServerRestart stops the kube-apiserver under a
// running manager, keeps it down for a few seconds (etcd keeps running) and
// starts it again. The manager must ride it out without exiting, and go on
// reconciling: a new McpServer gets its gateway, and a change to one that
// existed before the outage reaches its Deployment.
func TestManagerSurvivesAPIServerRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := startCluster(t)
	m := startManager(t, c, "manager")

	before := c.declare(t, "before")
	c.waitDeployment(t, time.Minute, before.Name, nil, m)

	apiServer := c.env.ControlPlane.APIServer
	addr := apiServer.SecureServing.HostPort()
	logStart := len(m.Logs.String())
	if err := apiServer.Stop(); err != nil {
		t.Fatalf("stop kube-apiserver: %v", err)
	}
	stopped := time.Now()
	// The fault is real: nothing answers on the API server's address.
	if err := c.client.Get(ctx, client.ObjectKeyFromObject(before), &mcpv1.McpServer{}); err == nil {
		t.Fatal("the API server still answers after Stop")
	}
	time.Sleep(3 * time.Second) // the outage
	mustRun(t, m, "while the API server was down")
	if err := apiServer.Start(); err != nil {
		t.Fatalf("start kube-apiserver again: %v", err)
	}
	restarted := time.Now()
	if got := apiServer.SecureServing.HostPort(); got != addr {
		t.Fatalf("the API server came back on %s, not on %s: the manager's kubeconfig points at the old address", got, addr)
	}
	t.Logf("kube-apiserver down for %s (from Stop returning to Start returning)", restarted.Sub(stopped).Round(time.Millisecond))
	mustRun(t, m, "across the API server restart")

	// The test's own client uses the same certificates as the manager's
	// kubeconfig: once it gets McpServers, the API server serves them again.
	eventually(t, 30*time.Second, "the restarted API server serving McpServers", func() error {
		return c.client.Get(ctx, client.ObjectKeyFromObject(before), &mcpv1.McpServer{})
	}, m)

	after := c.declare(t, "after")
	c.waitDeployment(t, time.Minute, after.Name, nil, m)
	t.Logf("McpServer %s reconciled %s after the restart", after.Name, time.Since(restarted).Round(time.Millisecond))
	// What the manager went through, for the -v output: it logs the watches
	// the API server closed and the reconciles that failed meanwhile, and
	// backs off (the reflectors silently, up to 30s between attempts).
	recovery := m.Logs.String()[logStart:]
	t.Logf("the manager's log from the stop until then (%d lines, %d of them Reconciler errors):\n%s",
		strings.Count(recovery, "\n"), len(linesWith(recovery, `"Reconciler error"`)), summarize(recovery, 20))

	// A change to an McpServer that existed before the outage, whose gateway
	// objects are already in the cache: it must be reconciled too, and not
	// held back by the failure backoff of reconciles during the outage.
	patch := client.MergeFrom(before.DeepCopy())
	before.Spec.Gateway.Replicas = ptr.To[int32](2)
	if err := c.client.Patch(ctx, before, patch); err != nil {
		t.Fatal(err)
	}
	c.waitDeployment(t, time.Minute, before.Name, func(d *appsv1.Deployment) error {
		if got := ptr.Deref(d.Spec.Replicas, 1); got != 2 {
			return fmt.Errorf("replicas = %d, want 2", got)
		}
		return nil
	}, m)
	t.Logf("spec.gateway.replicas 1→2 of McpServer %s reconciled %s after the restart", before.Name, time.Since(restarted).Round(time.Millisecond))

	mustRun(t, m, "after the API server restart")
}

// TestLeaderElectionHandover runs two managers with leader election against
// one API server. Only the one holding the Lease reconciles; the other
// stands by without starting the controller. SIGTERM makes the leader
// release the Lease and exit 0, and the other one takes over: it acquires
// the Lease and reconciles.
func TestLeaderElectionHandover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := startCluster(t)
	flags := []string{"--leader-elect", "--leader-election-namespace=" + namespace}
	a := startManager(t, c, "a", flags...)
	b := startManager(t, c, "b", flags...)

	// client-go's leader elector logs "Successfully acquired lease" (klog,
	// on stderr); older versions wrote it in lower case.
	const acquired = "successfully acquired lease"
	says := func(m *manager) bool { return strings.Contains(strings.ToLower(m.Logs.String()), acquired) }
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	var holder string
	eventually(t, 30*time.Second, "a holder of the Lease", func() error {
		h, err := leaseHolder(ctx, c)
		if err != nil {
			return err
		}
		if h == "" {
			return errors.New("the Lease has no holder")
		}
		holder = h
		return nil
	}, a, b)
	// Both managers run on this host: the identities differ only in their
	// UUIDs, which neither logs. The log of the holder says it acquired.
	if !strings.HasPrefix(holder, hostname+"_") {
		t.Errorf("Lease holder %q is not %s_<uuid>", holder, hostname)
	}
	var leader, standby *manager
	eventually(t, 10*time.Second, "the leader saying it acquired the Lease", func() error {
		inA, inB := says(a), says(b)
		switch {
		case inA && inB:
			t.Fatalf("both managers say %q", acquired)
		case inA:
			leader, standby = a, b
		case inB:
			leader, standby = b, a
		default:
			return fmt.Errorf("neither manager says %q", acquired)
		}
		return nil
	}, a, b)
	t.Logf("manager %s leads as %s; manager %s stands by", leader.Name, holder, standby.Name)

	first := c.declare(t, "first")
	c.waitDeployment(t, 30*time.Second, first.Name, nil, a, b)
	// The controller's start-up lines are the proof that it ran; they must be
	// in the leader's log, and none of the controller's lines in the other's.
	if len(controllerLines(leader.Logs.String(), "Starting workers")) == 0 {
		t.Errorf("the leader's log has no line of the mcpserver controller starting its workers")
	}
	if lines := controllerLines(standby.Logs.String(), ""); len(lines) > 0 {
		t.Errorf("the standby manager ran the mcpserver controller:\n%s", strings.Join(lines, "\n"))
	}

	// The leader goes, as on a rolling update or a node drain.
	terminated := time.Now()
	if !leader.Stop(30 * time.Second) {
		t.Fatalf("the leader did not exit within 30s of SIGTERM\noutput (last lines):\n%s", testenv.LastLines(leader.Logs.String(), 30))
	}
	if err := leader.ExitErr(); err != nil {
		t.Errorf("the leader exited with %v after SIGTERM, want 0\noutput (last lines):\n%s", err, testenv.LastLines(leader.Logs.String(), 30))
	}
	t.Logf("the leader exited %s after SIGTERM", time.Since(terminated).Round(time.Millisecond))

	var newHolder string
	eventually(t, 30*time.Second, "the standby manager taking over the Lease", func() error {
		h, err := leaseHolder(ctx, c)
		if err != nil {
			return err
		}
		if h == "" || h == holder {
			return fmt.Errorf("Lease holder %q", h)
		}
		if !says(standby) {
			return fmt.Errorf("Lease holder %q, but manager %s does not say %q", h, standby.Name, acquired)
		}
		newHolder = h
		return nil
	}, standby)
	t.Logf("manager %s took over as %s %s after SIGTERM to the leader", standby.Name, newHolder, time.Since(terminated).Round(time.Millisecond))

	second := c.declare(t, "second")
	c.waitDeployment(t, 30*time.Second, second.Name, nil, standby)
	if len(controllerLines(standby.Logs.String(), "Starting workers")) == 0 {
		t.Errorf("the new leader's log has no line of the mcpserver controller starting its workers")
	}
	t.Logf("McpServer %s reconciled by the new leader %s after SIGTERM to the old one", second.Name, time.Since(terminated).Round(time.Millisecond))
	mustRun(t, standby, "after taking over")
}

// leaseHolder returns the holder of the manager's leader election Lease.
func leaseHolder(ctx context.Context, c *cluster) (string, error) {
	lease := &coordinationv1.Lease{}
	if err := c.client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "mcpgate.mcpgate.dev"}, lease); err != nil {
		return "", err
	}
	return ptr.Deref(lease.Spec.HolderIdentity, ""), nil
}

// controllerLines returns the log lines of the mcpserver controller (its
// logger names the controller) that contain msg.
func controllerLines(logs, msg string) []string {
	var out []string
	for _, line := range linesWith(logs, msg) {
		if strings.Contains(line, `"controller":"mcpserver"`) || strings.Contains(line, `"controller": "mcpserver"`) {
			out = append(out, line)
		}
	}
	return out
}

// summarize returns up to n lines of logs, the rest counted: a readable
// account of what the manager logged. Of a JSON line it keeps the level,
// the message, the object type and the error, cut to 160 bytes.
func summarize(logs string, n int) string {
	lines := strings.Split(strings.TrimRight(logs, "\n"), "\n")
	more := 0
	if len(lines) > n {
		lines, more = lines[:n], len(lines)-n
	}
	var b strings.Builder
	for _, line := range lines {
		var entry struct {
			Level, TS, Msg, Type, Error, Err string
		}
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg != "" {
			line = strings.TrimSpace(strings.Join([]string{entry.TS, entry.Level, entry.Msg, entry.Type, entry.Error + entry.Err}, " "))
		}
		if len(line) > 160 {
			line = line[:160] + "…"
		}
		b.WriteString(line + "\n")
	}
	if more > 0 {
		fmt.Fprintf(&b, "… and %d more lines\n", more)
	}
	return strings.TrimRight(b.String(), "\n")
}

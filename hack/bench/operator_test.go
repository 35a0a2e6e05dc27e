package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestOperatorScaleSmoke runs the operator scale benchmark at a size that
// takes seconds, to keep the driver working: it needs envtest's binaries
// ($KUBEBUILDER_ASSETS, or hack/setup-envtest.sh) and builds mcpgate.
func TestOperatorScaleSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane and the manager")
	}
	for name, opts := range map[string]operatorOptions{
		"inline":               {},
		"ClusterClerkInstance": {ClusterInstances: true},
		"mixed":                {MixedReferences: true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			opts.McpServers, opts.Namespaces, opts.ClerkInstances, opts.Timeout = 6, 2, 2, 60*time.Second
			operatorScaleSmoke(t, name, opts)
		})
	}
}

func operatorScaleSmoke(t *testing.T, references string, opts operatorOptions) {
	var log bytes.Buffer
	opts.Log = &log
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	res, err := runOperatorScale(ctx, opts)
	if err != nil {
		t.Fatalf("runOperatorScale: %v\nprogress:\n%s", err, log.String())
	}
	t.Logf("%+v\nprogress:\n%s", res, log.String())
	if res.ClerkReferences != references {
		t.Errorf("clerk references = %q, want %q", res.ClerkReferences, references)
	}
	// A mixed run times each half; the last half to settle is the phase's end.
	for phase, byRefs := range map[string]map[string]float64{"create": res.CreateSettleByReferences, "update": res.UpdateSettleByReferences} {
		if !opts.MixedReferences {
			if byRefs != nil {
				t.Errorf("%s times by references %v without MixedReferences", phase, byRefs)
			}
			continue
		}
		all := map[string]float64{"create": res.CreateSettleSeconds, "update": res.UpdateSettleSeconds}[phase]
		inline, cluster := byRefs["inline"], byRefs["ClusterClerkInstance"]
		if len(byRefs) != 2 || inline <= 0 || cluster <= 0 || max(inline, cluster) > all {
			t.Errorf("%s times by references = %v, want inline and ClusterClerkInstance, each > 0 and <= the phase's %.2fs", phase, byRefs, all)
		}
	}

	if res.McpServers != opts.McpServers || res.Namespaces != opts.Namespaces || res.ClerkInstances != opts.ClerkInstances {
		t.Errorf("counts = %d McpServers, %d namespaces, %d instances; want the options' %d, %d, %d",
			res.McpServers, res.Namespaces, res.ClerkInstances, opts.McpServers, opts.Namespaces, opts.ClerkInstances)
	}
	if res.CreateSettleSeconds <= 0 || res.UpdateSettleSeconds <= 0 {
		t.Errorf("settle times = %.2fs create, %.2fs update; want both > 0", res.CreateSettleSeconds, res.UpdateSettleSeconds)
	}
	if res.ManagerPeakRSSMiB <= 0 {
		t.Errorf("manager peak RSS = %.1f MiB, want > 0", res.ManagerPeakRSSMiB)
	}
	if res.ManagerCPUSeconds < 0 {
		t.Errorf("manager CPU = %.2fs, want >= 0", res.ManagerCPUSeconds)
	}
	// Each Clerk instance is read once (GET) and, since every instance
	// starts with dynamic client registration off, written once (PATCH);
	// the slack of 2 allows for a retried call. A count that grew with the
	// McpServers (6 here) would mean the per-instance cache is not working.
	if maxCalls := 2*opts.ClerkInstances + 2; res.BackendAPICalls < 1 || res.BackendAPICalls > maxCalls {
		t.Errorf("Backend API calls = %d, want 1 to %d", res.BackendAPICalls, maxCalls)
	}
	if !strings.Contains(log.String(), "converged 6/6") {
		t.Errorf("progress lacks the final \"converged 6/6\":\n%s", log.String())
	}
}

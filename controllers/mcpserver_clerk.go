package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/clerk"
)

// eventReasonSettingsPatched is the reason of the Event for a PATCH of the
// instance settings.
const eventReasonSettingsPatched = "ClerkSettingsPatched"

// reconcileClerk brings the Clerk instance's OAuth application settings in
// line with what the McpServers using it declare. It owns the ClerkConfigured
// condition. It runs last and never fails the reconcile for a Clerk problem:
// those are reported on the condition and retried after a backoff, while the
// Deployment, Service and Ingress are already in place. With an instanceRef,
// the instance object owns the settings and ClerkConfigured follows its
// Ready condition.
func (r *McpServerReconciler) reconcileClerk(ctx context.Context, mcp *mcpv1.McpServer, st *reconcileState) error {
	if st.clerk.instance != nil {
		r.followInstance(mcp, st.clerk)
		return nil
	}
	self := mcpServerDeclarer(mcp)
	if self.declared.empty() {
		r.setCondition(mcp, mcpv1.ConditionClerkConfigured, metav1.ConditionTrue, mcpv1.ReasonNothingToConfigure,
			"No Clerk instance settings declared")
		return nil
	}
	if st.secretMissing != "" {
		r.setClerkCondition(mcp, metav1.ConditionFalse, mcpv1.ReasonSecretNotFound, st.secretMissing)
		return nil
	}

	declarers, err := listDeclarers(ctx, r.Client, st.issuer)
	if err != nil {
		return err
	}
	merged, conflict := mergeDeclared(self, declarers)
	if conflict != "" {
		r.setClerkCondition(mcp, metav1.ConditionFalse, mcpv1.ReasonConflict, conflict)
		return nil
	}

	connect := func(ctx context.Context) (settingsAPI, error) {
		key, err := readSecretKey(ctx, r.APIReader, mcp.Namespace, mcp.Spec.Clerk.SecretKeyRef)
		if err != nil {
			return nil, err
		}
		return clerk.NewSettingsClient(r.Options.ClerkAPIURL, key, r.Options.ClerkHTTPClient), nil
	}
	patched, err := r.clerk.sync(ctx, st.issuer, merged, connect)
	if ce, ok := asClerkError(err); ok {
		r.setClerkCondition(mcp, metav1.ConditionFalse, ce.reason, "Clerk Backend API: "+ce.Error())
		st.requeueAfter(ce.retryIn)
		return nil
	}
	if err != nil {
		return err
	}
	if len(patched) > 0 {
		r.Recorder.Eventf(mcp, nil, corev1.EventTypeNormal, eventReasonSettingsPatched, "PatchClerkSettings",
			"Patched Clerk instance %s: %s", st.issuer, strings.Join(patched, ", "))
	}
	r.setClerkCondition(mcp, metav1.ConditionTrue, mcpv1.ReasonSettingsSynced, "Clerk instance settings match: "+self.declared.String())
	st.requeueAfter(r.Options.ClerkResyncInterval)
	return nil
}

// followInstance sets ClerkConfigured from the Ready condition of the
// instance object that owns the settings.
func (r *McpServerReconciler) followInstance(mcp *mcpv1.McpServer, b clerkBinding) {
	status := b.instance.GetInstanceStatus()
	ready := meta.FindStatusCondition(status.Conditions, mcpv1.ConditionReady)
	switch {
	case ready == nil || status.ObservedGeneration != b.instance.GetGeneration():
		r.setCondition(mcp, mcpv1.ConditionClerkConfigured, metav1.ConditionFalse, mcpv1.ReasonProgressing,
			"Waiting for "+b.describe()+" to sync the instance settings")
	case ready.Status == metav1.ConditionTrue:
		r.setClerkCondition(mcp, metav1.ConditionTrue, mcpv1.ReasonSettingsSynced, "Instance settings are kept by "+b.describe())
	default:
		r.setClerkCondition(mcp, metav1.ConditionFalse, ready.Reason, b.describe()+": "+ready.Message)
	}
}

// listDeclarers finds every object that declares settings for the Clerk
// instance of issuer: McpServers with an inline block, ClerkInstances and
// ClusterClerkInstances.
func listDeclarers(ctx context.Context, c client.Reader, issuer string) ([]declarer, error) {
	var servers mcpv1.McpServerList
	if err := c.List(ctx, &servers, client.MatchingFields{issuerIndex: issuer}); err != nil {
		return nil, fmt.Errorf("list mcpservers of issuer %s: %w", issuer, err)
	}
	var instances mcpv1.ClerkInstanceList
	if err := c.List(ctx, &instances, client.MatchingFields{instanceIssuerIndex: issuer}); err != nil {
		return nil, fmt.Errorf("list clerkinstances of issuer %s: %w", issuer, err)
	}
	var clusterInstances mcpv1.ClusterClerkInstanceList
	if err := c.List(ctx, &clusterInstances, client.MatchingFields{instanceIssuerIndex: issuer}); err != nil {
		return nil, fmt.Errorf("list clusterclerkinstances of issuer %s: %w", issuer, err)
	}
	out := make([]declarer, 0, len(servers.Items)+len(instances.Items)+len(clusterInstances.Items))
	for i := range servers.Items {
		out = append(out, mcpServerDeclarer(&servers.Items[i]))
	}
	for i := range instances.Items {
		out = append(out, instanceDeclarer(mcpv1.KindClerkInstance, &instances.Items[i]))
	}
	for i := range clusterInstances.Items {
		out = append(out, instanceDeclarer(mcpv1.KindClusterClerkInstance, &clusterInstances.Items[i]))
	}
	return out, nil
}

// setClerkCondition sets ClerkConfigured, with a Warning Event when it turns
// False or changes reason.
func (r *McpServerReconciler) setClerkCondition(mcp *mcpv1.McpServer, status metav1.ConditionStatus, reason, message string) {
	if status == metav1.ConditionFalse {
		if was := findCondition(mcp, mcpv1.ConditionClerkConfigured); was == nil || was.Status != status || was.Reason != reason {
			r.Recorder.Eventf(mcp, nil, corev1.EventTypeWarning, reason, "SyncClerkSettings", "%s", message)
		}
	}
	r.setCondition(mcp, mcpv1.ConditionClerkConfigured, status, reason, message)
}

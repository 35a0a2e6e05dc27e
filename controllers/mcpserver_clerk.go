package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
)

// reconcileClerk declares the settings of the inline clerk block to the
// shared ClerkSync, which brings the Clerk instance's OAuth application
// settings in line with what every object using it declares. It owns the
// ClerkConfigured condition. It runs last and never fails the reconcile for a Clerk problem:
// those are reported on the condition and retried after a backoff, while the
// Deployment, Service and Ingress are already in place. With an instanceRef,
// the instance object owns the settings and ClerkConfigured follows its
// Ready condition.
func (r *McpServerReconciler) reconcileClerk(ctx context.Context, mcp *mcpv1.McpServer, st *reconcileState) error {
	if st.clerk.instance != nil {
		r.followInstance(mcp, st.clerk)
		return nil
	}
	out, err := r.ClerkSync.declare(ctx, settingsDeclaration{
		object: mcp, self: mcpServerDeclarer(mcp), issuer: st.issuer,
		secretNamespace: mcp.Namespace, secretRef: mcp.Spec.Clerk.SecretKeyRef, secretMissing: st.secretMissing,
	})
	if err != nil {
		return err
	}
	r.setClerkCondition(mcp, out.status, out.reason, out.message)
	st.requeueAfter(out.requeue)
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

package controllers

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
)

// setCondition sets one condition, stamped with the generation it describes.
// LastTransitionTime moves only when the status changes.
func (r *McpServerReconciler) setCondition(mcp *mcpv1.McpServer, typ string, status metav1.ConditionStatus, reason, message string) {
	setCondition(&mcp.Status.Conditions, mcp.Generation, r.Clock.Now(), typ, status, reason, message)
}

// setCondition sets one condition in conds, stamped with generation;
// LastTransitionTime becomes now only when the status changes.
func setCondition(conds *[]metav1.Condition, generation int64, now time.Time, typ string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(conds, metav1.Condition{
		Type:               typ,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: generation,
		LastTransitionTime: metav1.NewTime(now),
	})
}

// summarize fills the URLs, the access mode and the Ready condition from
// the spec and what the steps found.
func (r *McpServerReconciler) summarize(ctx context.Context, mcp *mcpv1.McpServer, st *reconcileState) {
	ep := endpointsFor(mcp)
	mcp.Status.URL = ep.url
	mcp.Status.ResourceMetadataURL = ep.resourceMetadataURL
	if access := accessMode(mcp); access != mcp.Status.Access {
		ctrl.LoggerFrom(ctx).Info("Changed access", "access", access, "previous", mcp.Status.Access)
		mcp.Status.Access = access
	}
	status, reason, message := readiness(mcp, st.blocked)
	r.setCondition(mcp, mcpv1.ConditionReady, status, reason, message)
	setProgress(&mcp.Status.Conditions, mcp.Generation, r.Clock.Now(), status, reason, message)
}

// setProgress writes the kstatus conditions that GitOps tools read beside
// Ready: Reconciling while the object is on its way to Ready, Stalled when it
// cannot get there without a change. Both are "abnormal-true": they are
// removed rather than set to False. A gateway scaled to zero is done, not
// reconciling.
func setProgress(conds *[]metav1.Condition, generation int64, now time.Time, ready metav1.ConditionStatus, reason, message string) {
	reconciling, stalled := false, false
	if p := policyOf(reason); ready != metav1.ConditionTrue && !p.settled {
		stalled = p.stalled
		reconciling = !stalled
	}
	for typ, on := range map[string]bool{mcpv1.ConditionReconciling: reconciling, mcpv1.ConditionStalled: stalled} {
		if on {
			setCondition(conds, generation, now, typ, metav1.ConditionTrue, reason, message)
		} else {
			meta.RemoveStatusCondition(conds, typ)
		}
	}
}

// readiness is the Ready condition: a blocker first, then each part in the
// order a request meets them.
func readiness(mcp *mcpv1.McpServer, blocked *blocker) (metav1.ConditionStatus, string, string) {
	if blocked != nil {
		return metav1.ConditionFalse, blocked.reason, blocked.message
	}
	parts := []string{mcpv1.ConditionClerkConfigured, mcpv1.ConditionGatewayAvailable}
	if mcp.Spec.Ingress != nil {
		parts = append(parts, mcpv1.ConditionIngressReady)
	}
	if mcp.Spec.HTTPRoute != nil {
		parts = append(parts, mcpv1.ConditionHTTPRouteReady)
	}
	for _, typ := range parts {
		c := meta.FindStatusCondition(mcp.Status.Conditions, typ)
		switch {
		case c == nil || c.ObservedGeneration != mcp.Generation:
			return metav1.ConditionFalse, mcpv1.ReasonProgressing, "Reconciling " + typ
		case c.Status != metav1.ConditionTrue:
			return metav1.ConditionFalse, c.Reason, c.Message
		}
	}
	return metav1.ConditionTrue, mcpv1.ReasonReady, "Serving at " + mcp.Status.URL
}

// recordReadyTransition emits an Event when Ready changes: Normal when the
// McpServer became Ready, Warning when it stopped being Ready or is blocked
// by something a user must fix. A new object waiting for its pods is not
// news, so it gets no Warning.
func (r *McpServerReconciler) recordReadyTransition(before, after *mcpv1.McpServer) {
	was := meta.FindStatusCondition(before.Status.Conditions, mcpv1.ConditionReady)
	now := meta.FindStatusCondition(after.Status.Conditions, mcpv1.ConditionReady)
	if now == nil || (was != nil && was.Status == now.Status && was.Reason == now.Reason) {
		return
	}
	switch {
	case now.Status == metav1.ConditionTrue:
		r.Recorder.Eventf(after, nil, corev1.EventTypeNormal, now.Reason, "Reconcile", "%s", now.Message)
	case (was != nil && was.Status == metav1.ConditionTrue) || policyOf(now.Reason).warns:
		r.Recorder.Eventf(after, nil, corev1.EventTypeWarning, now.Reason, "Reconcile", "%s", now.Message)
	}
}

func findCondition(mcp *mcpv1.McpServer, typ string) *metav1.Condition {
	return meta.FindStatusCondition(mcp.Status.Conditions, typ)
}

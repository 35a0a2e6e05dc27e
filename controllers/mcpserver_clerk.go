package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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
// Deployment, Service and Ingress are already in place.
func (r *McpServerReconciler) reconcileClerk(ctx context.Context, mcp *mcpv1.McpServer, st *reconcileState) error {
	want := declaredBy(mcp.Spec.Clerk)
	if want.empty() {
		r.setCondition(mcp, mcpv1.ConditionClerkConfigured, metav1.ConditionTrue, mcpv1.ReasonNothingToConfigure,
			"No Clerk instance settings declared")
		return nil
	}
	if st.secretMissing != "" {
		r.setClerkCondition(mcp, metav1.ConditionFalse, mcpv1.ReasonSecretNotFound, st.secretMissing)
		return nil
	}

	var users mcpv1.McpServerList
	if err := r.List(ctx, &users, client.MatchingFields{issuerIndex: st.issuer}); err != nil {
		return fmt.Errorf("list mcpservers of issuer %s: %w", st.issuer, err)
	}
	merged, conflict := mergeDeclared(mcp, users.Items)
	if conflict != "" {
		r.setClerkCondition(mcp, metav1.ConditionFalse, mcpv1.ReasonConflict, conflict)
		return nil
	}

	connect := func(ctx context.Context) (settingsAPI, error) {
		key, err := r.secretKey(ctx, mcp)
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
	r.setClerkCondition(mcp, metav1.ConditionTrue, mcpv1.ReasonSettingsSynced, "Clerk instance settings match: "+want.String())
	st.requeueAfter(r.Options.ClerkResyncInterval)
	return nil
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

// secretKey reads the Clerk secret key with the uncached reader: the cache
// holds Secret keys, never their values.
func (r *McpServerReconciler) secretKey(ctx context.Context, mcp *mcpv1.McpServer) (string, error) {
	ref := mcp.Spec.Clerk.SecretKeyRef
	secret := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: mcp.Namespace, Name: ref.Name}, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return "", &clerkError{reason: mcpv1.ReasonSecretNotFound, err: fmt.Errorf("secret %q not found", ref.Name)}
		}
		return "", fmt.Errorf("get secret %s: %w", ref.Name, err)
	}
	key := strings.TrimSpace(string(secret.Data[ref.Key]))
	if key == "" {
		return "", &clerkError{reason: mcpv1.ReasonSecretNotFound, err: fmt.Errorf("secret %q has no key %q", ref.Name, ref.Key)}
	}
	return key, nil
}

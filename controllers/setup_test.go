package controllers

import (
	"context"
	"fmt"

	ctrl "sigs.k8s.io/controller-runtime"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
)

// setupReconcilers registers r and the ClerkInstance and ClusterClerkInstance
// reconcilers with mgr as cmd/mcpgate does: the field indexes, one Clerk
// settings sync for all, and each reconciler on its own.
func setupReconcilers(ctx context.Context, mgr ctrl.Manager, r *McpServerReconciler) error {
	if err := AddIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	r.ClerkSync = NewClerkSettingsSync(mgr, r.Recorder, r.Clock, r.Options)
	if err := r.SetupWithManager(mgr); err != nil {
		return err
	}
	for _, kind := range []string{mcpv1.KindClerkInstance, mcpv1.KindClusterClerkInstance} {
		ir := &ClerkInstanceReconciler{Client: r.Client, Recorder: r.Recorder, Clock: r.Clock, Options: r.Options, Kind: kind, ClerkSync: r.ClerkSync}
		if err := ir.SetupWithManager(mgr); err != nil {
			return fmt.Errorf("set up %s controller: %w", kind, err)
		}
	}
	return nil
}

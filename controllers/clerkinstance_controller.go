package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/clerk"
)

// ClerkInstanceReconciler reports, in the status of each ClerkInstance or
// ClusterClerkInstance (one reconciler per kind), the settings of the Clerk
// instance it names, and has ClerkSync keep them as it declares.
type ClerkInstanceReconciler struct {
	client.Client
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	Options  Options
	// Kind is mcpv1.KindClerkInstance or mcpv1.KindClusterClerkInstance.
	Kind string
	// ClerkSync is shared with the other reconcilers that declare settings.
	ClerkSync *ClerkSettingsSync
}

// Reconcile syncs one instance object's settings and writes its status.
func (r *ClerkInstanceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	inst := newInstance(r.Kind)
	if err := r.Get(ctx, req.NamespacedName, inst); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !inst.GetDeletionTimestamp().IsZero() {
		return ctrl.Result{}, nil
	}
	before := inst.DeepCopyObject().(client.Object)
	status := inst.GetInstanceStatus()

	ready, reason, message, requeue, err := r.sync(ctx, inst)
	if err != nil && !errors.Is(err, reconcile.TerminalError(nil)) {
		ready, reason, message = metav1.ConditionFalse, mcpv1.ReasonReconcileError, err.Error()
	} else {
		status.ObservedGeneration = inst.GetGeneration()
	}
	r.setReady(inst, ready, reason, message)
	if !equality.Semantic.DeepEqual(before.(instanceObject).GetInstanceStatus(), status) {
		if perr := r.Status().Patch(ctx, inst, client.MergeFrom(before)); client.IgnoreNotFound(perr) != nil {
			return ctrl.Result{}, errors.Join(err, fmt.Errorf("patch status: %w", perr))
		}
	}
	return ctrl.Result{RequeueAfter: requeue}, err
}

// sync brings the instance's settings in line with what is declared for it,
// and returns what Ready should say and when to look again.
func (r *ClerkInstanceReconciler) sync(ctx context.Context, inst instanceObject) (ready metav1.ConditionStatus, reason, message string, requeue time.Duration, err error) {
	spec, status := inst.GetInstanceSpec(), inst.GetInstanceStatus()
	issuer, err := resolveIssuer(spec.PublishableKey, spec.Issuer, "spec.publishableKey")
	if err != nil {
		return metav1.ConditionFalse, mcpv1.ReasonInvalidSpec, err.Error(), 0, reconcile.TerminalError(err)
	}
	status.Issuer = issuer

	namespace := inst.GetNamespace()
	if r.Kind == mcpv1.KindClusterClerkInstance {
		namespace = r.Options.ClusterResourceNamespace
	}
	if namespace == "" {
		return metav1.ConditionFalse, mcpv1.ReasonSecretNotFound,
			"the operator has no cluster resource namespace (--cluster-resource-namespace) to read the Secret from", 0, nil
	}
	// A missing Secret is reported even when the settings need no call.
	_, missing, err := findSecretKey(ctx, r.Client, namespace, spec.SecretKeyRef)
	if err != nil {
		return "", "", "", 0, err
	}
	if missing != "" {
		missing += " in namespace " + namespace
	}
	out, err := r.ClerkSync.declare(ctx, settingsDeclaration{
		object: inst, self: instanceDeclarer(r.Kind, inst), issuer: issuer,
		secretNamespace: namespace, secretRef: spec.SecretKeyRef, secretMissing: missing,
		report: true,
	})
	if err != nil {
		return "", "", "", 0, err
	}
	if out.observed != nil {
		status.Settings = observedSettings(out.observed)
		status.LastSyncTime = &metav1.Time{Time: out.observedAt}
	}
	return out.status, out.reason, out.message, out.requeue, nil
}

// setReady sets Ready and the kstatus conditions, with a Warning Event when
// Ready turns False or changes reason.
func (r *ClerkInstanceReconciler) setReady(inst instanceObject, status metav1.ConditionStatus, reason, message string) {
	conds := &inst.GetInstanceStatus().Conditions
	if status == metav1.ConditionFalse {
		if was := meta.FindStatusCondition(*conds, mcpv1.ConditionReady); was == nil || was.Status != status || was.Reason != reason {
			r.Recorder.Eventf(inst, nil, corev1.EventTypeWarning, reason, "SyncClerkSettings", "%s", message)
		}
	}
	now := r.Clock.Now()
	setCondition(conds, inst.GetGeneration(), now, mcpv1.ConditionReady, status, reason, message)
	setProgress(conds, inst.GetGeneration(), now, status, reason, message)
}

// observedSettings is the status form of the settings Clerk returned.
func observedSettings(s *clerk.OAuthApplicationSettings) *mcpv1.ObservedClerkSettings {
	return &mcpv1.ObservedClerkSettings{
		DynamicClientRegistration: s.DynamicOAuthClientRegistration,
		ClientIDMetadataDocuments: s.ClientIDMetadataDocumentsAdvertised,
		JWTAccessTokens:           s.OAuthJWTAccessTokens,
		DefaultScopes:             slices.Clone(s.DefaultScopes),
	}
}

// SetupWithManager registers the controller of r.Kind and its watches. The
// field indexes must be in place (AddIndexes).
func (r *ClerkInstanceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Kind != mcpv1.KindClerkInstance && r.Kind != mcpv1.KindClusterClerkInstance {
		return fmt.Errorf("ClerkInstanceReconciler: kind %q is neither %s nor %s", r.Kind, mcpv1.KindClerkInstance, mcpv1.KindClusterClerkInstance)
	}
	if r.ClerkSync == nil {
		return errors.New("ClerkInstanceReconciler: no ClerkSync")
	}
	r.Options = r.Options.withDefaults()
	// Another object declaring settings for the same Clerk instance may now
	// conflict with one of r.Kind, or no longer.
	conflicts := newConflictPeers(r.Kind, r.Client, r.ClerkSync.forget)
	declarations := builder.WithPredicates(declarationChanged())
	return ctrl.NewControllerManagedBy(mgr).
		Named(strings.ToLower(r.Kind)).
		For(newInstance(r.Kind), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.secretRequests)).
		Watches(&mcpv1.McpServer{}, conflicts.handler(), declarations).
		Watches(&mcpv1.ClerkInstance{}, conflicts.handler(), declarations).
		Watches(&mcpv1.ClusterClerkInstance{}, conflicts.handler(), declarations).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Options.MaxConcurrentReconciles}).
		Complete(traceReconciler(r.Kind, r.Options.Tracer, r))
}

// secretRequests maps a Secret to the instance objects of r.Kind that name it.
func (r *ClerkInstanceReconciler) secretRequests(ctx context.Context, obj client.Object) []reconcile.Request {
	opts := []client.ListOption{client.MatchingFields{instanceSecretIndex: obj.GetName()}}
	if r.Kind == mcpv1.KindClusterClerkInstance {
		if obj.GetNamespace() != r.Options.ClusterResourceNamespace {
			return nil
		}
	} else {
		opts = append(opts, client.InNamespace(obj.GetNamespace()))
	}
	return r.list(ctx, opts...)
}

// list lists the instance objects of r.Kind as requests.
func (r *ClerkInstanceReconciler) list(ctx context.Context, opts ...client.ListOption) []reconcile.Request {
	var list client.ObjectList = &mcpv1.ClerkInstanceList{}
	if r.Kind == mcpv1.KindClusterClerkInstance {
		list = &mcpv1.ClusterClerkInstanceList{}
	}
	if err := r.List(ctx, list, opts...); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Failed to list instance objects", "kind", r.Kind)
		return nil
	}
	var reqs []reconcile.Request
	_ = meta.EachListItem(list, func(o runtime.Object) error {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(o.(client.Object))})
		return nil
	})
	return reqs
}

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

// clerkInstanceReconciler keeps the OAuth application settings of the Clerk
// instance a ClerkInstance or a ClusterClerkInstance declares, and reports
// them in its status. One runs per kind; both share the McpServer
// reconciler's per-issuer state, so an instance is read once per resync
// however many objects name it.
type clerkInstanceReconciler struct {
	client.Client
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	Options   Options

	kind  string
	clerk *clerkInstances
}

// Reconcile syncs one instance object's settings and writes its status.
func (r *clerkInstanceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	inst := newInstance(r.kind)
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
func (r *clerkInstanceReconciler) sync(ctx context.Context, inst instanceObject) (ready metav1.ConditionStatus, reason, message string, requeue time.Duration, err error) {
	spec, status := inst.GetInstanceSpec(), inst.GetInstanceStatus()
	issuer, err := resolveIssuer(spec.PublishableKey, spec.Issuer, "spec.publishableKey")
	if err != nil {
		return metav1.ConditionFalse, mcpv1.ReasonInvalidSpec, err.Error(), 0, reconcile.TerminalError(err)
	}
	status.Issuer = issuer

	namespace := inst.GetNamespace()
	if r.kind == mcpv1.KindClusterClerkInstance {
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
		return metav1.ConditionFalse, mcpv1.ReasonSecretNotFound, missing + " in namespace " + namespace, 0, nil
	}

	self := instanceDeclarer(r.kind, inst)
	declarers, err := listDeclarers(ctx, r.Client, issuer)
	if err != nil {
		return "", "", "", 0, err
	}
	merged, conflict := mergeDeclared(self, declarers)
	if conflict != "" {
		return metav1.ConditionFalse, mcpv1.ReasonConflict, conflict, 0, nil
	}

	connect := func(ctx context.Context) (settingsAPI, error) {
		key, err := readSecretKey(ctx, r.APIReader, namespace, spec.SecretKeyRef)
		if err != nil {
			return nil, err
		}
		return clerk.NewSettingsClient(r.Options.ClerkAPIURL, key, r.Options.ClerkHTTPClient), nil
	}
	// The instance's settings are read even when it declares none, so that
	// the status shows them and proves the secret key works.
	patched, err := r.clerk.sync(ctx, issuer, merged, connect)
	if ce, ok := asClerkError(err); ok {
		return metav1.ConditionFalse, ce.reason, "Clerk Backend API: " + ce.Error(), ce.retryIn, nil
	}
	if err != nil {
		return "", "", "", 0, err
	}
	if len(patched) > 0 {
		r.Recorder.Eventf(inst, nil, corev1.EventTypeNormal, eventReasonSettingsPatched, "PatchClerkSettings",
			"Patched Clerk instance %s: %s", issuer, strings.Join(patched, ", "))
	}
	if observed, at := r.clerk.observed(issuer); observed != nil {
		status.Settings = observedSettings(observed)
		status.LastSyncTime = &metav1.Time{Time: at}
	}
	message = "Clerk instance settings match: " + self.declared.String()
	if self.declared.empty() {
		message = "No settings declared; the instance's are shown in status.settings"
	}
	return metav1.ConditionTrue, mcpv1.ReasonSettingsSynced, message, r.Options.ClerkResyncInterval, nil
}

// setReady sets Ready and the kstatus conditions, with a Warning Event when
// Ready turns False or changes reason.
func (r *clerkInstanceReconciler) setReady(inst instanceObject, status metav1.ConditionStatus, reason, message string) {
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

// setupWithManager registers the controller of r.kind and its watches.
func (r *clerkInstanceReconciler) setupWithManager(mgr ctrl.Manager) error {
	generation := builder.WithPredicates(predicate.GenerationChangedPredicate{})
	return ctrl.NewControllerManagedBy(mgr).
		Named(strings.ToLower(r.kind)).
		For(newInstance(r.kind), generation).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.secretRequests)).
		// Another object declaring settings for the same Clerk instance may
		// now conflict with this one, or no longer.
		Watches(&mcpv1.McpServer{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, obj client.Object) []reconcile.Request {
			return r.sameIssuer(ctx, issuerKey(obj.(*mcpv1.McpServer)), nil)
		}), generation).
		Watches(&mcpv1.ClerkInstance{}, handler.EnqueueRequestsFromMapFunc(r.peers), generation).
		Watches(&mcpv1.ClusterClerkInstance{}, handler.EnqueueRequestsFromMapFunc(r.peers), generation).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Options.MaxConcurrentReconciles}).
		Complete(r)
}

// secretRequests maps a Secret to the instance objects of r.kind that name it.
func (r *clerkInstanceReconciler) secretRequests(ctx context.Context, obj client.Object) []reconcile.Request {
	opts := []client.ListOption{client.MatchingFields{instanceSecretIndex: obj.GetName()}}
	if r.kind == mcpv1.KindClusterClerkInstance {
		if obj.GetNamespace() != r.Options.ClusterResourceNamespace {
			return nil
		}
	} else {
		opts = append(opts, client.InNamespace(obj.GetNamespace()))
	}
	return r.list(ctx, nil, opts...)
}

// peers maps an instance object of either kind to the other instance
// objects of r.kind with the same issuer.
func (r *clerkInstanceReconciler) peers(ctx context.Context, obj client.Object) []reconcile.Request {
	return r.sameIssuer(ctx, instanceIssuerKey(obj.(mcpv1.GenericClerkInstance)), obj)
}

// sameIssuer lists the instance objects of r.kind for issuer, except skip.
func (r *clerkInstanceReconciler) sameIssuer(ctx context.Context, issuer string, skip client.Object) []reconcile.Request {
	if issuer == "" {
		return nil
	}
	return r.list(ctx, skip, client.MatchingFields{instanceIssuerIndex: issuer})
}

func (r *clerkInstanceReconciler) list(ctx context.Context, skip client.Object, opts ...client.ListOption) []reconcile.Request {
	var list client.ObjectList = &mcpv1.ClerkInstanceList{}
	if r.kind == mcpv1.KindClusterClerkInstance {
		list = &mcpv1.ClusterClerkInstanceList{}
	}
	if err := r.List(ctx, list, opts...); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Failed to list instance objects", "kind", r.kind)
		return nil
	}
	var reqs []reconcile.Request
	_ = meta.EachListItem(list, func(o runtime.Object) error {
		obj := o.(client.Object)
		if skip == nil || obj.GetUID() != skip.GetUID() {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(obj)})
		}
		return nil
	})
	return reqs
}

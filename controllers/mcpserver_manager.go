package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/gateway/config"
)

// Field indexes over McpServers, so that an event on a referenced object
// finds its McpServers without listing them all.
const (
	secretIndex          = "secrets" // spec.clerk.secretKeyRef and spec.upstream.credentials.headers[*].secretKeyRef
	upstreamServiceIndex = ".spec.upstream.service.name"
	hostPathIndex        = ".spec.ingress.hostPath"
	issuerIndex          = ".spec.clerk.issuer"
	instanceRefIndex     = ".spec.clerk.instanceRef"
)

// Field indexes over ClerkInstances and ClusterClerkInstances.
const (
	instanceSecretIndex = ".spec.secretKeyRef.name"
	instanceIssuerIndex = "issuer" // resolved from the publishable key or the issuer field
)

// CacheOptions is how the manager's cache must be set up for the reconciler:
//   - Secrets are held with their keys but without their values, so the
//     operator's memory never holds a Clerk secret key (read values with an
//     uncached client when they are needed);
//   - the owned kinds other than Service are held only when mcpgate manages
//     them, so the cache does not grow with every ConfigMap (or
//     ServiceAccount, with the broker) in the cluster
//     (Services are also read as upstreams, so all are held);
//   - managed fields are dropped from everything;
//   - with namespaces given, only those are watched, so the manager needs
//     no cluster-wide permissions on namespaced kinds; none means the whole
//     cluster. Secrets are also watched in clusterResourceNamespace, where
//     ClusterClerkInstances keep theirs.
func CacheOptions(clusterResourceNamespace string, namespaces ...string) cache.Options {
	managed := labels.SelectorFromSet(labels.Set{config.LabelManagedBy: config.ManagedByValue})
	var watched, secretNamespaces map[string]cache.Config
	if len(namespaces) > 0 {
		watched = make(map[string]cache.Config, len(namespaces))
		for _, ns := range namespaces {
			watched[ns] = cache.Config{}
		}
		secretNamespaces = maps.Clone(watched)
		if clusterResourceNamespace != "" {
			secretNamespaces[clusterResourceNamespace] = cache.Config{}
		}
	}
	return cache.Options{
		DefaultNamespaces: watched,
		DefaultTransform:  cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}:                         {Transform: secretKeysOnly, Namespaces: secretNamespaces},
			&corev1.ConfigMap{}:                      {Label: managed},
			&appsv1.Deployment{}:                     {Label: managed},
			&networkingv1.Ingress{}:                  {Label: managed},
			&policyv1.PodDisruptionBudget{}:          {Label: managed},
			&networkingv1.NetworkPolicy{}:            {Label: managed},
			&autoscalingv2.HorizontalPodAutoscaler{}: {Label: managed},
			&corev1.ServiceAccount{}:                 {Label: managed},
		},
	}
}

// secretKeysOnly blanks every value of a Secret, including the copy that
// kubectl's last-applied annotation may hold.
func secretKeysOnly(obj any) (any, error) {
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return obj, nil
	}
	for k := range s.Data {
		s.Data[k] = nil
	}
	for k := range s.StringData {
		s.StringData[k] = ""
	}
	delete(s.Annotations, corev1.LastAppliedConfigAnnotation)
	s.ManagedFields = nil
	return s, nil
}

// SetupWithManager registers the McpServer controller and its watches. The
// field indexes must be in place (AddIndexes).
func (r *McpServerReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.ClerkSync == nil {
		return errors.New("McpServerReconciler: no ClerkSync")
	}
	r.Options = r.Options.withDefaults()

	// HTTPRoutes are watched only where the API exists; elsewhere
	// spec.httpRoute gets a condition saying so.
	available, err := httpRouteAPIAvailable(mgr.GetRESTMapper())
	if err != nil {
		return err
	}
	r.httpRoutes = available
	// When one object changes what it declares for a Clerk instance, the
	// inline McpServers whose conflict with it starts or ends look again.
	conflicts := newConflictPeers(kindMcpServer, r.Client, r.ClerkSync.forget)
	declarations := builder.WithPredicates(declarationChanged())
	b := ctrl.NewControllerManagedBy(mgr)
	if r.httpRoutes {
		b = b.Owns(newHTTPRoute())
	}
	if r.Options.brokered() {
		// Only with the broker, so that an operator without one needs no
		// access to ServiceAccounts.
		b = b.Owns(&corev1.ServiceAccount{}).
			Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.allMcpServers),
				builder.WithPredicates(brokerBundleChanged(r.Options.ClusterResourceNamespace, r.Options.BrokerTLSSecret)))
	}
	return b.
		Named("mcpserver").
		For(&mcpv1.McpServer{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&corev1.ConfigMap{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.Secret{}). // copies of ClusterClerkInstance secret keys (without the broker; with it, so they can go)
		Owns(&networkingv1.Ingress{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Owns(&networkingv1.NetworkPolicy{}).
		Owns(&autoscalingv2.HorizontalPodAutoscaler{}).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.secretRequests)).
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(r.requestsFor(upstreamServiceIndex))).
		// When a host and path change hands (an McpServer deleted or moved),
		// the others claiming them must look again.
		Watches(&mcpv1.McpServer{}, handler.EnqueueRequestsFromMapFunc(r.peers(hostPathIndex, hostPathKey)),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&mcpv1.McpServer{}, conflicts.handler(), declarations).
		Watches(&mcpv1.ClerkInstance{}, handler.EnqueueRequestsFromMapFunc(r.instanceUsers(mcpv1.KindClerkInstance)),
			builder.WithPredicates(instanceChanged())).
		Watches(&mcpv1.ClusterClerkInstance{}, handler.EnqueueRequestsFromMapFunc(r.instanceUsers(mcpv1.KindClusterClerkInstance)),
			builder.WithPredicates(instanceChanged())).
		Watches(&mcpv1.ClerkInstance{}, conflicts.handler(), declarations).
		Watches(&mcpv1.ClusterClerkInstance{}, conflicts.handler(), declarations).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Options.MaxConcurrentReconciles}).
		Complete(traceReconciler("McpServer", r.Options.Tracer, r))
}

// AddIndexes registers the field indexes the reconcilers look objects up by,
// once for all of them: call it before setting them up.
func AddIndexes(ctx context.Context, indexer client.FieldIndexer) error {
	single := func(v string) []string {
		if v == "" {
			return nil
		}
		return []string{v}
	}
	if err := indexer.IndexField(ctx, &mcpv1.McpServer{}, secretIndex, func(o client.Object) []string {
		return secretNames(o.(*mcpv1.McpServer))
	}); err != nil {
		return fmt.Errorf("index mcpservers by %s: %w", secretIndex, err)
	}
	mcpServerIndexes := map[string]func(*mcpv1.McpServer) string{
		upstreamServiceIndex: func(m *mcpv1.McpServer) string {
			if svc := m.Spec.Upstream.Service; svc != nil {
				return svc.Name
			}
			return ""
		},
		hostPathIndex:    hostPathKey,
		issuerIndex:      issuerKey,
		instanceRefIndex: instanceRefKey,
	}
	for field, key := range mcpServerIndexes {
		fn := func(o client.Object) []string { return single(key(o.(*mcpv1.McpServer))) }
		if err := indexer.IndexField(ctx, &mcpv1.McpServer{}, field, fn); err != nil {
			return fmt.Errorf("index mcpservers by %s: %w", field, err)
		}
	}
	instanceIndexes := map[string]func(mcpv1.GenericClerkInstance) string{
		instanceSecretIndex: func(i mcpv1.GenericClerkInstance) string { return i.GetInstanceSpec().SecretKeyRef.Name },
		instanceIssuerIndex: instanceIssuerKey,
	}
	for _, obj := range []client.Object{&mcpv1.ClerkInstance{}, &mcpv1.ClusterClerkInstance{}} {
		for field, key := range instanceIndexes {
			fn := func(o client.Object) []string { return single(key(o.(mcpv1.GenericClerkInstance))) }
			if err := indexer.IndexField(ctx, obj, field, fn); err != nil {
				return fmt.Errorf("index %T by %s: %w", obj, field, err)
			}
		}
	}
	return nil
}

// secretNames are the Secrets in mcp's namespace that its gateway mounts
// directly: the inline Clerk secret key's and the credential headers'.
func secretNames(mcp *mcpv1.McpServer) []string {
	var names []string
	if name := mcp.Spec.Clerk.SecretKeyRef.Name; name != "" {
		names = append(names, name)
	}
	if creds := mcp.Spec.Upstream.Credentials; creds != nil {
		for _, h := range creds.Headers {
			if !slices.Contains(names, h.SecretKeyRef.Name) {
				names = append(names, h.SecretKeyRef.Name)
			}
		}
	}
	if name := tracingSecretName(mcp); name != "" && !slices.Contains(names, name) {
		names = append(names, name)
	}
	return names
}

// instanceIssuerKey is the issuer an instance object declares, "" when its
// publishable key does not decode.
func instanceIssuerKey(inst mcpv1.GenericClerkInstance) string {
	spec := inst.GetInstanceSpec()
	issuer, err := resolveIssuer(spec.PublishableKey, spec.Issuer, "")
	if err != nil {
		return ""
	}
	return issuer
}

// instanceChanged passes the instance events McpServers care about: a new
// spec, or a new Ready condition to mirror. A resync that only moves
// lastSyncTime passes nothing.
func instanceChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		if e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration() {
			return true
		}
		before := meta.FindStatusCondition(e.ObjectOld.(mcpv1.GenericClerkInstance).GetInstanceStatus().Conditions, mcpv1.ConditionReady)
		after := meta.FindStatusCondition(e.ObjectNew.(mcpv1.GenericClerkInstance).GetInstanceStatus().Conditions, mcpv1.ConditionReady)
		if before == nil || after == nil {
			return before != after
		}
		return before.Status != after.Status || before.Reason != after.Reason || before.Message != after.Message ||
			before.ObservedGeneration != after.ObservedGeneration
	}}
}

// instanceUsers maps an instance object to the McpServers that reference it.
func (r *McpServerReconciler) instanceUsers(kind string) handler.MapFunc {
	return func(ctx context.Context, obj client.Object) []reconcile.Request {
		var users mcpv1.McpServerList
		key := instanceKey(kind, obj.GetNamespace(), obj.GetName())
		if err := r.List(ctx, &users, client.MatchingFields{instanceRefIndex: key}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Failed to list McpServers", "index", instanceRefIndex)
			return nil
		}
		return requests(users.Items, "")
	}
}

// secretRequests maps a Secret to the McpServers whose gateway uses it:
// directly (an inline Clerk secret key or an upstream credential header),
// through a ClerkInstance in the same namespace, or, in the cluster
// resource namespace, through a ClusterClerkInstance.
func (r *McpServerReconciler) secretRequests(ctx context.Context, obj client.Object) []reconcile.Request {
	reqs := r.requestsFor(secretIndex)(ctx, obj)
	var keys []string
	var instances mcpv1.ClerkInstanceList
	if err := r.List(ctx, &instances, client.InNamespace(obj.GetNamespace()), client.MatchingFields{instanceSecretIndex: obj.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Failed to list ClerkInstances", "index", instanceSecretIndex)
		return reqs
	}
	for _, inst := range instances.Items {
		keys = append(keys, instanceKey(mcpv1.KindClerkInstance, inst.Namespace, inst.Name))
	}
	if ns := r.Options.ClusterResourceNamespace; ns != "" && obj.GetNamespace() == ns {
		var cluster mcpv1.ClusterClerkInstanceList
		if err := r.List(ctx, &cluster, client.MatchingFields{instanceSecretIndex: obj.GetName()}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Failed to list ClusterClerkInstances", "index", instanceSecretIndex)
			return reqs
		}
		for _, inst := range cluster.Items {
			keys = append(keys, instanceKey(mcpv1.KindClusterClerkInstance, "", inst.Name))
		}
	}
	for _, key := range keys {
		var users mcpv1.McpServerList
		if err := r.List(ctx, &users, client.MatchingFields{instanceRefIndex: key}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Failed to list McpServers", "index", instanceRefIndex)
			continue
		}
		reqs = append(reqs, requests(users.Items, "")...)
	}
	return reqs
}

// requestsFor maps a namespaced object to the McpServers in its namespace
// whose field index entry is the object's name.
func (r *McpServerReconciler) requestsFor(field string) handler.MapFunc {
	return func(ctx context.Context, obj client.Object) []reconcile.Request {
		var list mcpv1.McpServerList
		if err := r.List(ctx, &list, client.InNamespace(obj.GetNamespace()), client.MatchingFields{field: obj.GetName()}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Failed to list McpServers", "index", field)
			return nil
		}
		return requests(list.Items, types.UID(""))
	}
}

// peers maps an McpServer to the other McpServers sharing its key in a field index.
func (r *McpServerReconciler) peers(field string, key func(*mcpv1.McpServer) string) handler.MapFunc {
	return func(ctx context.Context, obj client.Object) []reconcile.Request {
		k := key(obj.(*mcpv1.McpServer))
		if k == "" {
			return nil
		}
		var list mcpv1.McpServerList
		if err := r.List(ctx, &list, client.MatchingFields{field: k}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Failed to list McpServers", "index", field)
			return nil
		}
		return requests(list.Items, obj.GetUID())
	}
}

// issuerKey is the issuer of mcp's inline Clerk block, "" when it has none.
func issuerKey(mcp *mcpv1.McpServer) string {
	if mcp.Spec.Clerk.InstanceRef != nil {
		return ""
	}
	issuer, err := resolveIssuer(mcp.Spec.Clerk.PublishableKey, mcp.Spec.Clerk.Issuer, "")
	if err != nil {
		return ""
	}
	return issuer
}

func requests(items []mcpv1.McpServer, skip types.UID) []reconcile.Request {
	reqs := make([]reconcile.Request, 0, len(items))
	for _, m := range items {
		if m.UID != skip {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&m)})
		}
	}
	return reqs
}

package controllers

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
)

// Field indexes over McpServers, so that an event on a referenced object
// finds its McpServers without listing them all.
const (
	secretIndex          = ".spec.clerk.secretKeyRef.name"
	upstreamServiceIndex = ".spec.upstream.service.name"
	hostPathIndex        = ".spec.ingress.hostPath"
	issuerIndex          = ".spec.clerk.issuer"
)

// CacheOptions is how the manager's cache must be set up for the reconciler:
//   - Secrets are held with their keys but without their values, so the
//     operator's memory never holds a Clerk secret key (read values with an
//     uncached client when they are needed);
//   - the owned kinds other than Service are held only when mcpgate manages
//     them, so the cache does not grow with every ConfigMap in the cluster
//     (Services are also read as upstreams, so all are held);
//   - managed fields are dropped from everything;
//   - with namespaces given, only those are watched (everything the
//     reconciler reads is namespaced), so the manager needs no cluster-wide
//     permissions; none means the whole cluster.
func CacheOptions(namespaces ...string) cache.Options {
	managed := labels.SelectorFromSet(labels.Set{labelManagedBy: managedByValue})
	var watched map[string]cache.Config
	if len(namespaces) > 0 {
		watched = make(map[string]cache.Config, len(namespaces))
		for _, ns := range namespaces {
			watched[ns] = cache.Config{}
		}
	}
	return cache.Options{
		DefaultNamespaces: watched,
		DefaultTransform:  cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}:                         {Transform: secretKeysOnly},
			&corev1.ConfigMap{}:                      {Label: managed},
			&appsv1.Deployment{}:                     {Label: managed},
			&networkingv1.Ingress{}:                  {Label: managed},
			&policyv1.PodDisruptionBudget{}:          {Label: managed},
			&networkingv1.NetworkPolicy{}:            {Label: managed},
			&autoscalingv2.HorizontalPodAutoscaler{}: {Label: managed},
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

// SetupWithManager registers the field indexes and the watches of the reconciler.
func (r *McpServerReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	indexes := map[string]client.IndexerFunc{
		secretIndex: func(o client.Object) []string {
			return []string{o.(*mcpv1.McpServer).Spec.Clerk.SecretKeyRef.Name}
		},
		upstreamServiceIndex: func(o client.Object) []string {
			if svc := o.(*mcpv1.McpServer).Spec.Upstream.Service; svc != nil {
				return []string{svc.Name}
			}
			return nil
		},
		hostPathIndex: func(o client.Object) []string {
			if key := hostPathKey(o.(*mcpv1.McpServer)); key != "" {
				return []string{key}
			}
			return nil
		},
		issuerIndex: func(o client.Object) []string {
			if issuer := issuerKey(o.(*mcpv1.McpServer)); issuer != "" {
				return []string{issuer}
			}
			return nil
		},
	}
	r.Options = r.Options.withDefaults()
	r.clerk = newClerkInstances(r.Clock.Now, r.Options.ClerkResyncInterval, r.Options.ClerkRetryBase, r.Options.ClerkRetryMax)
	for field, fn := range indexes {
		if err := mgr.GetFieldIndexer().IndexField(ctx, &mcpv1.McpServer{}, field, fn); err != nil {
			return err
		}
	}

	// HTTPRoutes are watched only where the API exists; elsewhere
	// spec.httpRoute gets a condition saying so.
	available, err := httpRouteAPIAvailable(mgr.GetRESTMapper())
	if err != nil {
		return err
	}
	r.httpRoutes = available
	b := ctrl.NewControllerManagedBy(mgr)
	if r.httpRoutes {
		b = b.Owns(newHTTPRoute())
	}
	return b.
		Named("mcpserver").
		For(&mcpv1.McpServer{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&corev1.ConfigMap{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Owns(&networkingv1.Ingress{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Owns(&networkingv1.NetworkPolicy{}).
		Owns(&autoscalingv2.HorizontalPodAutoscaler{}).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.requestsFor(secretIndex))).
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(r.requestsFor(upstreamServiceIndex))).
		// When a host and path change hands (an McpServer deleted or moved),
		// the others claiming them must look again.
		Watches(&mcpv1.McpServer{}, handler.EnqueueRequestsFromMapFunc(r.peers(hostPathIndex, hostPathKey)),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// When one McpServer changes what it declares for its Clerk instance,
		// the others using that instance must re-check for conflicts.
		Watches(&mcpv1.McpServer{}, handler.EnqueueRequestsFromMapFunc(r.peers(issuerIndex, issuerKey)),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Options.MaxConcurrentReconciles}).
		Complete(r)
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

// issuerKey is the issuer of mcp's Clerk instance, "" when it has none.
func issuerKey(mcp *mcpv1.McpServer) string {
	issuer, err := resolveIssuer(mcp.Spec.Clerk)
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

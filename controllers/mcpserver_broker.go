package controllers

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/gateway/config"
)

// How a gateway proves to the broker who it is: a ServiceAccount token of its
// own ServiceAccount, for the broker's audience only, projected by the
// kubelet, which renews it well before it expires.
const (
	brokerTokenVolume = "broker-token"
	brokerTokenDir    = "/var/run/secrets/mcpgate.dev/broker"
	brokerTokenFile   = "token"
	// brokerTokenExpiration is the token's lifetime; the kubelet rotates it
	// at 80% of that, and the gateway reads the file on each broker call.
	brokerTokenExpiration = 3600
)

// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get;list;watch;create;update;patch;delete

// buildServiceAccount is the gateway's own identity towards the broker. It
// grants nothing in the Kubernetes API, and its token is not mounted
// automatically: the pod gets only the projected broker-audience token.
func buildServiceAccount(mcp *mcpv1.McpServer) *corev1ac.ServiceAccountApplyConfiguration {
	return corev1ac.ServiceAccount(gatewayName(mcp), mcp.Namespace).
		WithLabels(objectLabels(mcp)).
		WithOwnerReferences(ownerReference(mcp)).
		WithAutomountServiceAccountToken(false)
}

// reconcileServiceAccount applies the gateway's ServiceAccount when gateways
// use the broker; without one, gateways run as the namespace's default
// ServiceAccount with no token, as before.
func (r *McpServerReconciler) reconcileServiceAccount(ctx context.Context, mcp *mcpv1.McpServer, _ *reconcileState) error {
	if !r.Options.brokered() {
		return nil
	}
	if err := r.apply(ctx, buildServiceAccount(mcp)); err != nil {
		return fmt.Errorf("apply serviceaccount: %w", err)
	}
	return nil
}

// removeKeyCopies deletes the copy of a ClusterClerkInstance's secret key
// that versions before the broker made in mcp's namespace: no team
// namespace holds a key it does not own, with the broker or without. It runs first, before
// anything can end the reconcile (a missing instance, a bad spec), so every
// McpServer's copy goes on the reconcile that every McpServer gets when the
// manager starts. A copy is always named copiedSecretName in its McpServer's
// namespace and controlled by it, so the cached Get finds it; copies of
// deleted McpServers went with them through their owner references. A Secret
// of that name that mcpgate did not copy is left alone.
func (r *McpServerReconciler) removeKeyCopies(ctx context.Context, mcp *mcpv1.McpServer, _ *reconcileState) error {
	name := copiedSecretName(mcp)
	s := &corev1.Secret{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: mcp.Namespace, Name: name}, s); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !metav1.IsControlledBy(s, mcp) || s.Annotations[sourceSecretAnnotation] == "" {
		return nil
	}
	if err := r.Delete(ctx, s, client.Preconditions{UID: &s.UID}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete copied secret %s: %w", name, err)
	}
	ctrl.LoggerFrom(ctx).Info("Deleted the copy of a ClusterClerkInstance's secret key that an earlier version made: no team namespace holds it now", "secret", name)
	return nil
}

// brokerCAMemo remembers the broker's CA bundle with the resourceVersion of
// the TLS Secret it was read from, so that a reconcile reads the Secret's
// values (which the cache does not hold) only after the Secret changed.
type brokerCAMemo struct {
	mu      sync.Mutex
	version string
	bundle  string
}

// brokerCABundle is the CA bundle gateways trust the broker with, from the
// broker's TLS Secret. missing says why there is none yet.
func (r *McpServerReconciler) brokerCABundle(ctx context.Context) (bundle, missing string, err error) {
	key := types.NamespacedName{Namespace: r.Options.ClusterResourceNamespace, Name: r.Options.BrokerTLSSecret}
	if key.Namespace == "" {
		return "", "the operator has no cluster resource namespace (--cluster-resource-namespace) to read the broker's TLS Secret from", nil
	}
	cached := &corev1.Secret{}
	err = r.Get(ctx, key, cached)
	switch {
	case apierrors.IsNotFound(err):
		return "", fmt.Sprintf("Waiting for the broker's CA bundle: Secret %s does not exist yet", key), nil
	case err != nil:
		return "", "", fmt.Errorf("get broker tls secret: %w", err)
	}

	m := &r.brokerCA
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.version != "" && m.version == cached.ResourceVersion {
		return m.bundle, "", nil
	}
	full := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, key, full); apierrors.IsNotFound(err) {
		return "", fmt.Sprintf("Waiting for the broker's CA bundle: Secret %s does not exist yet", key), nil
	} else if err != nil {
		return "", "", fmt.Errorf("get broker tls secret: %w", err)
	}
	ca := full.Data[brokerCABundleKey]
	if len(parseCertificates(ca)) == 0 {
		return "", fmt.Sprintf("Waiting for the broker's CA bundle: Secret %s holds no certificate in %s", key, brokerCABundleKey), nil
	}
	m.version, m.bundle = full.ResourceVersion, string(ca)
	return m.bundle, "", nil
}

// brokerBundleChanged passes the events of the broker's TLS Secret that may
// change the bundle in every gateway's ConfigMap: its creation, its
// deletion, and an update of the bundle's hash (a renewed serving
// certificate alone passes nothing). A Secret without the hash (not the
// operator's) passes on every change.
func brokerBundleChanged(namespace, name string) predicate.Predicate {
	is := func(o client.Object) bool { return o.GetNamespace() == namespace && o.GetName() == name }
	return predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool { return is(e.Object) },
		DeleteFunc: func(e event.DeleteEvent) bool { return is(e.Object) },
		UpdateFunc: func(e event.UpdateEvent) bool {
			if !is(e.ObjectNew) {
				return false
			}
			before, after := e.ObjectOld.GetAnnotations()[brokerCABundleAnnotation], e.ObjectNew.GetAnnotations()[brokerCABundleAnnotation]
			if after == "" {
				return e.ObjectOld.GetResourceVersion() != e.ObjectNew.GetResourceVersion()
			}
			return before != after
		},
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

// allMcpServers maps an event to every McpServer: a new broker CA bundle
// goes into every gateway's ConfigMap. It happens once per CA rotation.
func (r *McpServerReconciler) allMcpServers(ctx context.Context, _ client.Object) []reconcile.Request {
	var list mcpv1.McpServerList
	if err := r.List(ctx, &list); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Failed to list McpServers for a new broker CA bundle")
		return nil
	}
	return requests(list.Items, "")
}

// brokerConfig is the gateway's broker block: the CA bundle is the file of
// the ConfigMap's config.BrokerCAKey next to the configuration, the token
// the projected one.
func brokerConfig(opts Options) *config.Broker {
	return &config.Broker{
		URL:       opts.BrokerURL,
		CAFile:    configDir + "/" + config.BrokerCAKey,
		TokenFile: brokerTokenDir + "/" + brokerTokenFile,
	}
}

// volumeAndMount is a pod volume and the gateway container's mount of it.
type volumeAndMount struct {
	volume *corev1ac.VolumeApplyConfiguration
	mount  *corev1ac.VolumeMountApplyConfiguration
}

// clerkAccessVolume is how the gateway gets what needs Clerk's secret key:
// without the broker, the key itself as a file from its Secret (ref, in the
// McpServer's namespace); with it, only the gateway's ServiceAccount token
// for the broker's audience, which the kubelet rotates.
func clerkAccessVolume(opts Options, ref mcpv1.SecretKeyReference) volumeAndMount {
	if opts.brokered() {
		return volumeAndMount{
			volume: corev1ac.Volume().WithName(brokerTokenVolume).WithProjected(
				corev1ac.ProjectedVolumeSource().WithSources(corev1ac.VolumeProjection().WithServiceAccountToken(
					corev1ac.ServiceAccountTokenProjection().
						WithAudience(config.BrokerAudience).
						WithExpirationSeconds(brokerTokenExpiration).
						WithPath(brokerTokenFile)))),
			mount: corev1ac.VolumeMount().WithName(brokerTokenVolume).WithMountPath(brokerTokenDir).WithReadOnly(true),
		}
	}
	return volumeAndMount{
		volume: corev1ac.Volume().WithName(secretVolume).WithSecret(
			corev1ac.SecretVolumeSource().WithSecretName(ref.Name).WithDefaultMode(0o440).
				WithItems(corev1ac.KeyToPath().WithKey(ref.Key).WithPath(secretFileName))),
		mount: corev1ac.VolumeMount().WithName(secretVolume).WithMountPath(secretDir).WithReadOnly(true),
	}
}

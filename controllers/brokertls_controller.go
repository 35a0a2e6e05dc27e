package controllers

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/mcpgate/mcpgate/gateway/config"
)

// Keys of the broker's Secrets: the TLS Secret has the kubernetes.io/tls
// keys and ca.crt; the CA Secret (brokerCASecretName) holds the signing CA's
// key apart, so that the broker, which mounts the TLS Secret, never holds it.
const (
	brokerCABundleKey = "ca.crt"
	brokerCAKeyKey    = "ca.key"
	// brokerCABundleAnnotation on the TLS Secret is bundleHash of its
	// ca.crt, so that a watch tells a new bundle from a renewed serving
	// certificate without reading Secret values.
	brokerCABundleAnnotation = "mcpgate.dev/ca-bundle-hash"
)

// brokerCASecretName is the Secret beside the TLS Secret that holds the
// signing CA's private key.
func brokerCASecretName(tlsSecret string) string { return tlsSecret + "-ca" }

// BrokerTLSReconciler keeps the broker's CA and serving certificate in the
// TLS Secret Options.BrokerTLSSecret of Options.ClusterResourceNamespace,
// created and rotated as planBrokerTLS says. A TLS Secret that the operator
// did not make (no managed-by label: cert-manager's, or your own PKI's) is
// used as it is and never touched.
type BrokerTLSReconciler struct {
	client.Client
	// APIReader reads the Secrets' values, which the cache does not hold.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	Options   Options

	// policy sets lifetimes and the handover time (tests shorten them);
	// zero fields take the defaults, and its names come from
	// Options.BrokerURL.
	policy brokerTLSPolicy
}

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;patch;delete

// SetupWithManager registers the controller: one request, for the TLS
// Secret, made at start, on every change of either Secret, and when the
// plan says something is next due.
func (r *BrokerTLSReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.Options = r.Options.withDefaults()
	if r.Options.BrokerURL == "" || r.Options.BrokerTLSSecret == "" || r.Options.ClusterResourceNamespace == "" {
		return errors.New("BrokerTLSReconciler: needs a broker url, a tls secret name and a cluster resource namespace")
	}
	names, ips, err := brokerServingNames(r.Options.BrokerURL, r.Options.ClusterResourceNamespace)
	if err != nil {
		return err
	}
	r.policy.dnsNames, r.policy.ips = names, ips
	ns, name := r.Options.ClusterResourceNamespace, r.Options.BrokerTLSSecret
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}
	ours := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetNamespace() == ns && (o.GetName() == name || o.GetName() == brokerCASecretName(name))
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("brokertls").
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
			return []reconcile.Request{req}
		}), builder.WithPredicates(ours)).
		// The Secrets may not exist yet, so no watch event would come.
		WatchesRawSource(source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
			q.Add(req)
			return nil
		})).
		Complete(traceReconciler("BrokerTLS", r.Options.Tracer, r))
}

// Reconcile brings the two Secrets to what the plan says for now, and
// comes back when the next renewal or removal is due.
func (r *BrokerTLSReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	tlsSecret, err := r.read(ctx, req.Namespace, req.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	if tlsSecret != nil && tlsSecret.Labels[config.LabelManagedBy] != config.ManagedByValue {
		log.V(1).Info("Left the broker's TLS Secret alone: it is not managed by mcpgate")
		return ctrl.Result{}, nil
	}
	caSecret, err := r.read(ctx, req.Namespace, brokerCASecretName(req.Name))
	if err != nil {
		return ctrl.Result{}, err
	}
	var cur brokerTLSMaterial
	if tlsSecret != nil {
		cur.caBundle, cur.cert, cur.key = tlsSecret.Data[brokerCABundleKey], tlsSecret.Data[corev1.TLSCertKey], tlsSecret.Data[corev1.TLSPrivateKeyKey]
	}
	if caSecret != nil {
		cur.caKey = caSecret.Data[brokerCAKeyKey]
	}

	now := r.Clock.Now()
	plan, err := planBrokerTLS(cur, now, r.policy)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("plan broker certificates: %w", err)
	}
	result := ctrl.Result{RequeueAfter: plan.next.Sub(now)}
	if plan.material.equal(cur) {
		return result, nil
	}

	// NOTE: the CA key is written first. Should the TLS Secret's write then
	// fail, the next plan finds a key without its certificate and issues
	// another CA; nothing that was trusted stops being trusted.
	if !bytes.Equal(plan.material.caKey, cur.caKey) {
		if err := r.apply(ctx, buildBrokerCASecret(req.Namespace, brokerCASecretName(req.Name), plan.material.caKey)); err != nil {
			return ctrl.Result{}, fmt.Errorf("apply broker ca secret: %w", err)
		}
	}
	if tlsSecret != nil && tlsSecret.Type != corev1.SecretTypeTLS {
		// A Secret's type cannot change: make it anew.
		if err := r.Delete(ctx, tlsSecret); client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, fmt.Errorf("delete broker tls secret of type %s: %w", tlsSecret.Type, err)
		}
	}
	applied := buildBrokerTLSSecret(req.Namespace, req.Name, plan.material)
	if err := r.apply(ctx, applied); err != nil {
		return ctrl.Result{}, fmt.Errorf("apply broker tls secret: %w", err)
	}
	regarding := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: req.Namespace, Name: req.Name}}
	if applied.UID != nil {
		regarding.UID = *applied.UID
	}
	for _, c := range plan.changes {
		log.Info(c.message, "reason", c.reason, "secret", req.NamespacedName, "next", plan.next)
		r.Recorder.Eventf(regarding, nil, corev1.EventTypeNormal, c.reason, "RotateBrokerCertificates", "%s", c.message)
	}
	return result, nil
}

// read gets a Secret with its values, nil when there is none.
func (r *BrokerTLSReconciler) read(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, s)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("get secret %s/%s: %w", namespace, name, err)
	}
	return s, nil
}

func (r *BrokerTLSReconciler) apply(ctx context.Context, obj *corev1ac.SecretApplyConfiguration) error {
	return r.Apply(ctx, obj, client.FieldOwner(FieldOwner), client.ForceOwnership)
}

// brokerLabels are on the broker's Secrets.
func brokerLabels() map[string]string {
	return map[string]string{
		config.LabelManagedBy: config.ManagedByValue,
		labelComponent:        "broker",
		labelPartOf:           "mcpgate",
	}
}

// buildBrokerTLSSecret is the Secret the broker serves from and whose
// ca.crt the gateways trust.
func buildBrokerTLSSecret(namespace, name string, m brokerTLSMaterial) *corev1ac.SecretApplyConfiguration {
	return corev1ac.Secret(name, namespace).
		WithLabels(brokerLabels()).
		WithAnnotations(map[string]string{brokerCABundleAnnotation: bundleHash(m.caBundle)}).
		WithType(corev1.SecretTypeTLS).
		WithData(map[string][]byte{
			corev1.TLSCertKey:       m.cert,
			corev1.TLSPrivateKeyKey: m.key,
			brokerCABundleKey:       m.caBundle,
		})
}

// buildBrokerCASecret holds the signing CA's private key, read by the
// operator only.
func buildBrokerCASecret(namespace, name string, caKey []byte) *corev1ac.SecretApplyConfiguration {
	return corev1ac.Secret(name, namespace).
		WithLabels(brokerLabels()).
		WithType(corev1.SecretTypeOpaque).
		WithData(map[string][]byte{brokerCAKeyKey: caKey})
}

// Package controllers holds the McpServer reconciler, its watches and the pure
// builders of the objects it owns.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"go.opentelemetry.io/otel/trace"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/clerk"
	"github.com/mcpgate/mcpgate/gateway/config"
)

// FieldOwner is the server-side apply field manager of everything the controller writes.
const FieldOwner = "mcpgate"

// Options configure the reconciler.
type Options struct {
	// GatewayImage is the image of gateway pods (the operator's own image, so
	// that control plane and data plane share a version).
	GatewayImage string
	// GatewayImagePullPolicy is the gateway container's pull policy; empty
	// leaves it to Kubernetes (Always for :latest, IfNotPresent otherwise).
	GatewayImagePullPolicy corev1.PullPolicy
	// GatewayImagePullSecrets name Secrets, in each McpServer's namespace,
	// that the kubelet uses to pull the gateway image.
	GatewayImagePullSecrets []string
	// ClerkAPIURL is the Clerk Backend API base URL handed to gateways.
	ClerkAPIURL string
	// MaxConcurrentReconciles bounds parallel reconciles; 0 means 1.
	MaxConcurrentReconciles int
	// ClerkResyncInterval is how long a Clerk instance's settings, once read,
	// are trusted before they are read again (default 5m).
	ClerkResyncInterval time.Duration
	// ClerkRetryBase and ClerkRetryMax bound the exponential backoff after a
	// failed Backend API call (defaults 5s and 5m); a 429's Retry-After wins.
	ClerkRetryBase, ClerkRetryMax time.Duration
	// ClerkHTTPClient calls the Backend API; nil uses clerk.NewHTTPClient.
	ClerkHTTPClient *http.Client
	// ClusterResourceNamespace holds the Secrets ClusterClerkInstances
	// name: the operator's own namespace, which service teams need no
	// access to. Empty leaves ClusterClerkInstances without a secret key.
	ClusterResourceNamespace string
	// BrokerURL is the Clerk key broker's base URL. Set, gateways hold no
	// Clerk secret key: each runs as a ServiceAccount of its own, reaches the
	// broker with a projected token of it, and trusts the CA bundle of
	// BrokerTLSSecret; ClusterClerkInstance keys are no longer copied into
	// team namespaces. Empty keeps the keys in the gateways, for setups
	// without a broker.
	BrokerURL string
	// BrokerTLSSecret names the broker's TLS Secret in
	// ClusterResourceNamespace, which BrokerTLSReconciler keeps.
	BrokerTLSSecret string
	// GatewayTracing is the tracing of gateways whose McpServer sets no
	// spec.gateway.tracing; the zero value traces nothing.
	GatewayTracing TracingDefaults
	// Tracer records the manager's own spans: a span per reconcile and a
	// client span per Clerk call (see traceReconciler); nil records none.
	Tracer trace.Tracer
}

// DefaultBrokerTLSSecret is BrokerTLSSecret's usual name.
const DefaultBrokerTLSSecret = "mcpgate-broker-tls"

// brokered tells whether gateways reach Clerk's Backend API through the broker.
func (o Options) brokered() bool { return o.BrokerURL != "" }

// withDefaults fills in the unset options.
func (o Options) withDefaults() Options {
	if o.MaxConcurrentReconciles < 1 {
		o.MaxConcurrentReconciles = 1
	}
	if o.ClerkResyncInterval <= 0 {
		o.ClerkResyncInterval = 5 * time.Minute
	}
	if o.ClerkRetryBase <= 0 {
		o.ClerkRetryBase = 5 * time.Second
	}
	if o.ClerkRetryMax <= 0 {
		o.ClerkRetryMax = 5 * time.Minute
	}
	if o.ClerkHTTPClient == nil {
		o.ClerkHTTPClient = clerk.NewHTTPClient()
	}
	if o.BrokerTLSSecret == "" {
		o.BrokerTLSSecret = DefaultBrokerTLSSecret
	}
	return o
}

// McpServerReconciler turns each McpServer into a running, reachable gateway.
type McpServerReconciler struct {
	client.Client
	// APIReader reads what the cache must not hold: Secret values.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	Options   Options

	// ClerkSync keeps the Clerk instance settings that inline clerk blocks
	// declare; it is shared with the ClerkInstance reconcilers.
	ClerkSync *ClerkSettingsSync
	// httpRoutes is whether the cluster serves the Gateway API's HTTPRoute,
	// found by SetupWithManager.
	httpRoutes bool
	// brokerCA is the broker's CA bundle last read, with the broker.
	brokerCA brokerCAMemo
}

// reconcileState carries what one step learns to the steps after it.
type reconcileState struct {
	// clerk is the Clerk instance the McpServer uses.
	clerk       clerkBinding
	issuer      string
	upstreamURL string
	configHash  string
	// brokerCA is the broker's CA bundle for the gateway's ConfigMap, with
	// the broker.
	brokerCA string
	// blocked, when set, is why the McpServer cannot be Ready whatever the
	// Deployment does: a Ready=False reason and its message.
	blocked *blocker
	// secretMissing says why the Clerk secret key cannot be read, if so.
	secretMissing string
	// stop ends the reconcile after the current step, with the status
	// written, when a later step has nothing to work with.
	stop bool
	// requeue is when to look again without an event, 0 for never.
	requeue time.Duration
}

// requeueAfter asks for another reconcile within d; the soonest request wins.
func (st *reconcileState) requeueAfter(d time.Duration) {
	if d > 0 && (st.requeue == 0 || d < st.requeue) {
		st.requeue = d
	}
}

type blocker struct{ reason, message string }

// block records why the McpServer cannot be Ready. The first cause found is
// kept: steps run in the order a user should fix things.
func (st *reconcileState) block(reason, message string) {
	if st.blocked == nil {
		st.blocked = &blocker{reason, message}
	}
}

// +kubebuilder:rbac:groups=mcpgate.dev,resources=mcpservers,verbs=get;list;watch
// +kubebuilder:rbac:groups=mcpgate.dev,resources=mcpservers/status,verbs=get;patch
// +kubebuilder:rbac:groups=mcpgate.dev,resources=mcpservers/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=configmaps;services,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=mcpgate.dev,resources=clerkinstances;clusterclerkinstances,verbs=get;list;watch
// +kubebuilder:rbac:groups=mcpgate.dev,resources=clerkinstances/status;clusterclerkinstances/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// Reconcile brings the gateway of one McpServer in line with its spec, in
// steps, and writes the status once at the end.
func (r *McpServerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	mcp := &mcpv1.McpServer{}
	if err := r.Get(ctx, req.NamespacedName, mcp); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !mcp.DeletionTimestamp.IsZero() {
		// Owned objects go with the McpServer through their owner references.
		return ctrl.Result{}, nil
	}

	before := mcp.DeepCopy()
	st := &reconcileState{}
	defer func() {
		if retErr == nil || errors.Is(retErr, reconcile.TerminalError(nil)) {
			mcp.Status.ObservedGeneration = mcp.Generation
		}
		r.summarize(ctx, mcp, st)
		r.recordReadyTransition(before, mcp)
		if err := r.patchStatus(ctx, before, mcp); err != nil {
			retErr = kerrors.NewAggregate([]error{retErr, err})
		}
	}()

	steps := []func(context.Context, *mcpv1.McpServer, *reconcileState) error{
		r.removeKeyCopies,
		r.resolveClerk,
		r.reconcileSecret,
		r.reconcileCredentials,
		r.reconcileTracing,
		r.reconcileConfig,
		r.reconcileServiceAccount,
		r.reconcileDeployment,
		r.reconcileService,
		r.reconcileIsolation,
		r.reconcileIngress,
		r.reconcileHTTPRoute,
		r.reconcileClerk,
	}
	for _, step := range steps {
		if err := step(ctx, mcp, st); err != nil {
			if !errors.Is(err, reconcile.TerminalError(nil)) {
				// Retried with backoff; until then, Ready says what failed.
				st.block(mcpv1.ReasonReconcileError, err.Error())
			}
			return ctrl.Result{}, err
		}
		if st.stop {
			break
		}
	}
	return ctrl.Result{RequeueAfter: st.requeue}, nil
}

// reconcileConfig resolves the issuer and the upstream URL and applies the
// gateway's ConfigMap, with the broker's CA bundle when there is a broker. A
// spec it cannot act on ends the reconcile with Ready=False: InvalidSpec
// (terminal) or UpstreamPortNotFound (waits for the upstream Service to
// change). A bundle not there yet blocks Ready with Progressing.
func (r *McpServerReconciler) reconcileConfig(ctx context.Context, mcp *mcpv1.McpServer, st *reconcileState) error {
	issuer, err := resolveIssuer(st.clerk.publishableKey, st.clerk.issuer, st.clerk.field)
	if err != nil {
		st.block(mcpv1.ReasonInvalidSpec, err.Error())
		return reconcile.TerminalError(err)
	}
	st.issuer = issuer
	mcp.Status.Issuer = issuer

	var upstreamSvc *corev1.Service
	if svc := mcp.Spec.Upstream.Service; svc != nil && svc.Port.Type == intstr.String {
		upstreamSvc = &corev1.Service{}
		err := r.Get(ctx, types.NamespacedName{Namespace: mcp.Namespace, Name: svc.Name}, upstreamSvc)
		if apierrors.IsNotFound(err) {
			upstreamSvc = nil
		} else if err != nil {
			return fmt.Errorf("get upstream service %s: %w", svc.Name, err)
		}
	}
	st.upstreamURL, err = upstreamURL(mcp, upstreamSvc)
	if err != nil {
		st.block(mcpv1.ReasonUpstreamPortNotFound, err.Error())
		st.stop = true
		return nil
	}

	data, err := config.Marshal(buildGatewayConfig(mcp, r.Options, st.issuer, st.upstreamURL))
	if err != nil {
		st.block(mcpv1.ReasonInvalidSpec, err.Error())
		return reconcile.TerminalError(err)
	}
	st.configHash = configHash(data)
	if r.Options.brokered() {
		bundle, missing, err := r.brokerCABundle(ctx)
		if err != nil {
			return err
		}
		if missing != "" {
			// The gateway fails closed until the bundle arrives; the
			// watch on the broker's TLS Secret brings it.
			st.block(mcpv1.ReasonProgressing, missing)
		}
		st.brokerCA = bundle
	}
	if err := r.apply(ctx, buildConfigMap(mcp, data, st.brokerCA)); err != nil {
		return fmt.Errorf("apply configmap: %w", err)
	}
	return nil
}

// apply writes obj with server-side apply, taking ownership of its fields.
func (r *McpServerReconciler) apply(ctx context.Context, obj runtime.ApplyConfiguration) error {
	return r.Apply(ctx, obj, client.FieldOwner(FieldOwner), client.ForceOwnership)
}

// deleteIfOwned removes obj, found through the cache, if mcp controls it.
// Objects someone else created under the same name are left alone.
func (r *McpServerReconciler) deleteIfOwned(ctx context.Context, mcp *mcpv1.McpServer, obj client.Object) error {
	return r.deleteOwnedNamed(ctx, mcp, obj, gatewayName(mcp))
}

// deleteOwnedNamed is deleteIfOwned for an object of another name.
func (r *McpServerReconciler) deleteOwnedNamed(ctx context.Context, mcp *mcpv1.McpServer, obj client.Object, name string) error {
	key := types.NamespacedName{Namespace: mcp.Namespace, Name: name}
	if err := r.Get(ctx, key, obj); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !metav1.IsControlledBy(obj, mcp) {
		return nil
	}
	if err := r.Delete(ctx, obj); err != nil {
		return client.IgnoreNotFound(err)
	}
	return nil
}

// patchStatus writes the status, if it changed, in one merge patch.
func (r *McpServerReconciler) patchStatus(ctx context.Context, before, mcp *mcpv1.McpServer) error {
	if equality.Semantic.DeepEqual(before.Status, mcp.Status) {
		return nil
	}
	if err := r.Status().Patch(ctx, mcp, client.MergeFrom(before)); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("patch status: %w", err)
	}
	return nil
}

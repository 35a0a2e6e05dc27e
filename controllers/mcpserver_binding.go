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

// sourceSecretAnnotation named, on the copies of a ClusterClerkInstance's
// secret key that versions before the broker made in team namespaces, the
// Secret a copy was made from; removeKeyCopies finds the copies by it.
const sourceSecretAnnotation = "mcpgate.dev/source-secret"

// clerkBinding is the Clerk instance an McpServer uses, resolved once per
// reconcile from its inline clerk block or from the instance object it
// references.
type clerkBinding struct {
	// kind and instance are the referenced instance object; instance is nil
	// for an inline block.
	kind     string
	instance mcpv1.GenericClerkInstance

	publishableKey mcpv1.PublishableKey
	issuer         mcpv1.IssuerURL
	// field is the spec path of the issuer fields, for messages.
	field string

	// secretNamespace and secretRef locate the secret key. Without the
	// broker, the gateway mounts it (always in the McpServer's namespace);
	// with it, the broker reads it.
	secretNamespace string
	secretRef       mcpv1.SecretKeyReference
}

// describe names where the binding comes from, for messages.
func (b clerkBinding) describe() string {
	if b.instance == nil {
		return "spec.clerk"
	}
	return b.kind + " " + instanceID(b.instance)
}

// copiedSecretName is the Secret in which versions before the broker kept
// mcp's copy of a ClusterClerkInstance's secret key.
func copiedSecretName(mcp *mcpv1.McpServer) string { return gatewayName(mcp) + "-clerk" }

// instanceRefKey is the instanceRef index entry of mcp: kind/namespace/name
// for a ClerkInstance, kind/name for a ClusterClerkInstance, "" inline.
func instanceRefKey(mcp *mcpv1.McpServer) string {
	ref := mcp.Spec.Clerk.InstanceRef
	if ref == nil {
		return ""
	}
	if refKind(ref) == mcpv1.KindClusterClerkInstance {
		return instanceKey(mcpv1.KindClusterClerkInstance, "", ref.Name)
	}
	return instanceKey(mcpv1.KindClerkInstance, mcp.Namespace, ref.Name)
}

func instanceKey(kind, namespace, name string) string {
	if namespace == "" {
		return kind + "/" + name
	}
	return kind + "/" + namespace + "/" + name
}

// refKind is the kind a reference names, with the API default applied.
func refKind(ref *mcpv1.ClerkInstanceReference) string {
	if ref.Kind == "" {
		return mcpv1.KindClerkInstance
	}
	return ref.Kind
}

// newInstance returns an empty object of an instance kind.
func newInstance(kind string) instanceObject {
	if kind == mcpv1.KindClusterClerkInstance {
		return &mcpv1.ClusterClerkInstance{}
	}
	return &mcpv1.ClerkInstance{}
}

// instanceObject is an instance object the client can read and write.
type instanceObject interface {
	client.Object
	mcpv1.GenericClerkInstance
}

// resolveClerk finds the Clerk instance of mcp. A reference to an instance
// that does not exist ends the reconcile with Ready=False
// (ClerkInstanceNotFound) and leaves what was built alone: the gateway keeps
// serving with what it has until the instance is back or the reference
// changes.
func (r *McpServerReconciler) resolveClerk(ctx context.Context, mcp *mcpv1.McpServer, st *reconcileState) error {
	spec := mcp.Spec.Clerk
	if spec.InstanceRef == nil {
		st.clerk = clerkBinding{
			publishableKey:  spec.PublishableKey,
			issuer:          spec.Issuer,
			field:           "spec.clerk.publishableKey",
			secretNamespace: mcp.Namespace,
			secretRef:       spec.SecretKeyRef,
		}
		return nil
	}

	kind := refKind(spec.InstanceRef)
	inst := newInstance(kind)
	key := types.NamespacedName{Name: spec.InstanceRef.Name}
	if kind == mcpv1.KindClerkInstance {
		key.Namespace = mcp.Namespace
	}
	if err := r.Get(ctx, key, inst); apierrors.IsNotFound(err) {
		msg := fmt.Sprintf("%s %q not found", kind, spec.InstanceRef.Name)
		if key.Namespace != "" {
			msg += " in namespace " + key.Namespace
		}
		st.block(mcpv1.ReasonClerkInstanceNotFound, msg)
		r.setClerkCondition(mcp, metav1.ConditionFalse, mcpv1.ReasonClerkInstanceNotFound, msg)
		st.stop = true
		return nil
	} else if err != nil {
		return fmt.Errorf("get %s %s: %w", kind, spec.InstanceRef.Name, err)
	}

	is := inst.GetInstanceSpec()
	b := clerkBinding{
		kind:            kind,
		instance:        inst,
		publishableKey:  is.PublishableKey,
		issuer:          is.Issuer,
		field:           kind + " " + instanceID(inst) + ": spec.publishableKey",
		secretNamespace: mcp.Namespace,
		secretRef:       is.SecretKeyRef,
	}
	if kind == mcpv1.KindClusterClerkInstance {
		b.secretNamespace = r.Options.ClusterResourceNamespace
	}
	st.clerk = b
	if kind == mcpv1.KindClusterClerkInstance && !r.Options.brokered() {
		// The key stays in the operator's namespace: a gateway may use it
		// only through the broker. The instance keeps its settings either
		// way, so ClerkConfigured still follows it.
		r.followInstance(mcp, b)
		st.block(mcpv1.ReasonBrokerRequired, b.describe()+" keeps its secret key in the operator's namespace, and gateways may use it only through the Clerk key broker, which this operator runs without: "+
			"enable the broker (chart value broker.enabled=true, the default, or the manager's --broker-url), or use a ClerkInstance in this namespace or an inline spec.clerk block")
		st.stop = true
	}
	return nil
}

// reconcileSecret checks that the Clerk Secret and its key exist. A missing
// one blocks Ready (reason SecretNotFound) but not the other steps: the
// gateway pods (or, with the broker, the broker) wait for the Secret and use
// it as soon as it appears.
func (r *McpServerReconciler) reconcileSecret(ctx context.Context, mcp *mcpv1.McpServer, st *reconcileState) error {
	b := st.clerk
	if b.secretNamespace == "" {
		st.secretMissing = "the operator has no cluster resource namespace (--cluster-resource-namespace) to read " + b.describe() + "'s Secret from"
		st.block(mcpv1.ReasonSecretNotFound, st.secretMissing)
		return nil
	}
	_, missing, err := findSecretKey(ctx, r.Client, b.secretNamespace, b.secretRef)
	if err != nil {
		return err
	}
	if st.secretMissing = missing; missing != "" {
		if b.instance != nil {
			st.secretMissing = b.describe() + ": " + st.secretMissing
		}
		st.block(mcpv1.ReasonSecretNotFound, st.secretMissing)
	}
	return nil
}

// resolveIssuer is the token issuer: issuer itself, or the Frontend API URL a
// publishable key encodes. field names the key in errors.
func resolveIssuer(publishableKey mcpv1.PublishableKey, issuer mcpv1.IssuerURL, field string) (string, error) {
	if issuer != "" {
		return string(issuer), nil
	}
	resolved, err := clerk.IssuerFromPublishableKey(string(publishableKey))
	if err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	return resolved, nil
}

// findSecretKey looks up, in the cache, the Secret that ref names; the cache
// holds Secret keys without their values (see CacheOptions). missing says
// why the key cannot be had, "" when the Secret holds it.
func findSecretKey(ctx context.Context, c client.Reader, namespace string, ref mcpv1.SecretKeyReference) (secret *corev1.Secret, missing string, err error) {
	secret = &corev1.Secret{}
	err = c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ref.Name}, secret)
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Sprintf("Secret %q not found", ref.Name), nil
	case err != nil:
		return nil, "", fmt.Errorf("get secret %s: %w", ref.Name, err)
	}
	if _, ok := secret.Data[ref.Key]; !ok {
		return nil, fmt.Sprintf("Secret %q has no key %q", ref.Name, ref.Key), nil
	}
	return secret, "", nil
}

// readSecretKey reads a Clerk secret key with the uncached reader: the cache
// holds Secret keys, never their values.
func readSecretKey(ctx context.Context, reader client.Reader, namespace string, ref mcpv1.SecretKeyReference) (string, error) {
	secret := &corev1.Secret{}
	if err := reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ref.Name}, secret); err != nil {
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

package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/clerk"
)

// Annotations on the copy of a ClusterClerkInstance's Secret.
const (
	// sourceSecretAnnotation names the Secret the copy was made from.
	sourceSecretAnnotation = "mcpgate.dev/source-secret"
	// sourceVersionAnnotation is the source's resourceVersion when it was
	// copied, so that only a changed source is read again.
	sourceVersionAnnotation = "mcpgate.dev/source-resource-version"
)

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

	// secretNamespace and secretRef locate the secret key's source.
	secretNamespace string
	secretRef       mcpv1.SecretKeyReference
	// gatewaySecret is what the gateway mounts, in the McpServer's
	// namespace: the source itself, or the copy of a ClusterClerkInstance's.
	// Unused with the broker, which reads the source.
	gatewaySecret mcpv1.SecretKeyReference
	// brokered: the broker holds the key, and nothing is copied.
	brokered bool
}

// describe names where the binding comes from, for messages.
func (b clerkBinding) describe() string {
	if b.instance == nil {
		return "spec.clerk"
	}
	return b.kind + " " + instanceID(b.instance)
}

// copiesSecret tells whether the gateway gets a copy of the secret key
// rather than the source: a ClusterClerkInstance's key, without the broker.
func (b clerkBinding) copiesSecret() bool {
	return b.kind == mcpv1.KindClusterClerkInstance && !b.brokered
}

// copiedSecretName is the Secret that holds mcp's copy of a
// ClusterClerkInstance's secret key.
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
			gatewaySecret:   spec.SecretKeyRef,
			brokered:        r.Options.brokered(),
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
		gatewaySecret:   is.SecretKeyRef,
		brokered:        r.Options.brokered(),
	}
	if kind == mcpv1.KindClusterClerkInstance {
		b.secretNamespace = r.Options.ClusterResourceNamespace
	}
	if b.copiesSecret() {
		b.gatewaySecret = mcpv1.SecretKeyReference{Name: copiedSecretName(mcp), Key: secretFileName}
	}
	st.clerk = b
	return nil
}

// reconcileSecret checks that the Clerk Secret and its key exist and, for a
// ClusterClerkInstance without the broker, keeps the McpServer's copy of it
// current (with the broker, removeKeyCopies has deleted any copy). A missing
// one blocks Ready (reason SecretNotFound) but not the other steps: the
// gateway pods wait for the Secret and start as soon as it appears.
func (r *McpServerReconciler) reconcileSecret(ctx context.Context, mcp *mcpv1.McpServer, st *reconcileState) error {
	b := st.clerk
	if !b.copiesSecret() {
		// A copy left from an earlier ClusterClerkInstance reference goes.
		if err := r.deleteOwnedNamed(ctx, mcp, &corev1.Secret{}, copiedSecretName(mcp)); err != nil {
			return fmt.Errorf("delete copied secret: %w", err)
		}
	}
	if b.secretNamespace == "" {
		st.secretMissing = "the operator has no cluster resource namespace (--cluster-resource-namespace) to read " + b.describe() + "'s Secret from"
		st.block(mcpv1.ReasonSecretNotFound, st.secretMissing)
		return nil
	}

	source, missing, err := findSecretKey(ctx, r.Client, b.secretNamespace, b.secretRef)
	if err != nil {
		return err
	}
	if st.secretMissing = missing; missing != "" {
		if b.instance != nil {
			st.secretMissing = b.describe() + ": " + st.secretMissing
		}
		st.block(mcpv1.ReasonSecretNotFound, st.secretMissing)
		return nil
	}
	if b.copiesSecret() {
		return r.copySecret(ctx, mcp, st, source)
	}
	return nil
}

// copySecret keeps mcp's copy of a ClusterClerkInstance's secret key equal to
// its source. The value is read, with the uncached reader, only when the
// source's resourceVersion differs from the one the copy was made from.
func (r *McpServerReconciler) copySecret(ctx context.Context, mcp *mcpv1.McpServer, st *reconcileState, source *corev1.Secret) error {
	name := copiedSecretName(mcp)
	existing := &corev1.Secret{}
	err := r.Get(ctx, types.NamespacedName{Namespace: mcp.Namespace, Name: name}, existing)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("get copied secret %s: %w", name, err)
	case !metav1.IsControlledBy(existing, mcp):
		// Never overwrite a Secret someone else made.
		st.block(mcpv1.ReasonSecretConflict, fmt.Sprintf("Secret %q, where the gateway's copy of the Clerk secret key goes, exists and is not managed by this McpServer", name))
		st.stop = true
		return nil
	case existing.Annotations[sourceVersionAnnotation] == source.ResourceVersion:
		return nil
	}

	key, err := readSecretKey(ctx, r.APIReader, source.Namespace, st.clerk.secretRef)
	if ce, ok := asClerkError(err); ok {
		st.secretMissing = st.clerk.describe() + ": " + ce.Error()
		st.block(mcpv1.ReasonSecretNotFound, st.secretMissing)
		return nil
	}
	if err != nil {
		return err
	}
	if err := r.apply(ctx, buildCopiedSecret(mcp, source, key)); err != nil {
		return fmt.Errorf("apply copied secret: %w", err)
	}
	return nil
}

// buildCopiedSecret is mcp's copy of a ClusterClerkInstance's secret key,
// owned by mcp so that it goes with it.
func buildCopiedSecret(mcp *mcpv1.McpServer, source *corev1.Secret, key string) *corev1ac.SecretApplyConfiguration {
	return corev1ac.Secret(copiedSecretName(mcp), mcp.Namespace).
		WithLabels(objectLabels(mcp)).
		WithAnnotations(map[string]string{
			sourceSecretAnnotation:  source.Namespace + "/" + source.Name,
			sourceVersionAnnotation: source.ResourceVersion,
		}).
		WithOwnerReferences(ownerReference(mcp)).
		WithType(corev1.SecretTypeOpaque).
		WithData(map[string][]byte{secretFileName: []byte(key)})
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

package localstack

import (
	"context"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// This file is the kubelet emulation's projected ServiceAccount tokens: a
// gateway proves who it is to the broker with a token the API server issued
// for its ServiceAccount and the broker's audience, which the kubelet
// requests (TokenRequest), writes into the pod's volume and replaces before
// it expires. The emulation does the same, so the broker's TokenReview sees
// exactly what it would in a cluster.

const (
	// defaultTokenExpiration is a projection's expirationSeconds when it
	// does not say (the API's default).
	defaultTokenExpiration = int64(3600)
	// tokenMaxAge is when the kubelet refreshes a token at the latest,
	// however long it lives.
	tokenMaxAge = 24 * time.Hour
)

// projectedToken is the token a pod holds for one serviceAccountToken source.
type projectedToken struct {
	data      []byte
	expires   time.Time
	refreshAt time.Time
}

// kubeletTokenRefresh is when the kubelet replaces a token issued at issued
// that expires at expires: past 80% of its lifetime, or 24 hours old.
func kubeletTokenRefresh(issued, expires time.Time) time.Time {
	at := issued.Add(expires.Sub(issued) * 8 / 10)
	if latest := issued.Add(tokenMaxAge); at.After(latest) {
		at = latest
	}
	return at
}

// tokenFiles is the file one serviceAccountToken source contributes to a
// volume: the token p holds for it, or a new one from the API server when p
// holds none or it is due. A failed refresh keeps the old token while it is
// still valid, as the kubelet does, and tries again on the next reconcile.
//
// NOTE: p.tokens is touched only by reconciles of p's Deployment, which the
// controller never runs concurrently, so it needs no lock.
func (k *kubelet) tokenFiles(ctx context.Context, namespace, volume string, src corev1.ServiceAccountTokenProjection, mode *int32, p *pod) (map[string]projectedFile, error) {
	file := path.Clean(src.Path)
	if src.Path == "" || path.IsAbs(file) || file == ".." || strings.HasPrefix(file, "../") {
		return nil, fmt.Errorf("volume %s: token path %q leaves the volume", volume, src.Path)
	}
	key := volume + "/" + file
	now := k.clock()
	held, ok := p.tokens[key]
	if !ok || !now.Before(held.refreshAt) {
		fresh, err := k.requestToken(ctx, namespace, p.serviceAccount, src)
		switch {
		case err == nil:
			held = fresh
			p.tokens[key] = fresh
		case ok && now.Before(held.expires):
			k.log.Info("Could not refresh a projected token; keeping the current one", "pod", p.name, "volume", volume, "error", err.Error())
		default:
			return nil, fmt.Errorf("volume %s: %w", volume, err)
		}
	}
	fm := os.FileMode(0o644)
	if mode != nil {
		fm = os.FileMode(*mode) & os.ModePerm
	}
	return map[string]projectedFile{file: {data: held.data, mode: fm}}, nil
}

// requestToken asks the API server for a token of ServiceAccount
// namespace/name with the projection's audience and lifetime. The token is
// not bound to a pod: the emulation's pods are not API objects.
func (k *kubelet) requestToken(ctx context.Context, namespace, name string, src corev1.ServiceAccountTokenProjection) (*projectedToken, error) {
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: ptr.To(ptr.Deref(src.ExpirationSeconds, defaultTokenExpiration)),
	}}
	if src.Audience != "" {
		tr.Spec.Audiences = []string{src.Audience}
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	issued := k.clock()
	if err := k.client.SubResource("token").Create(ctx, sa, tr); err != nil {
		// The error is the API server's; it holds no token.
		return nil, fmt.Errorf("request a token for service account %s/%s: %w", namespace, name, err)
	}
	if tr.Status.Token == "" {
		return nil, fmt.Errorf("request a token for service account %s/%s: the answer holds no token", namespace, name)
	}
	expires := tr.Status.ExpirationTimestamp.Time
	return &projectedToken{data: []byte(tr.Status.Token), expires: expires, refreshAt: kubeletTokenRefresh(issued, expires)}, nil
}

// nextTokenRefresh is how long until the first of p's tokens is due, or 0
// when p holds none.
func (k *kubelet) nextTokenRefresh(p *pod) time.Duration {
	var first time.Time
	for _, t := range p.tokens {
		if first.IsZero() || t.refreshAt.Before(first) {
			first = t.refreshAt
		}
	}
	if first.IsZero() {
		return 0
	}
	// A token already due is refreshed on the next reconcile: soon, but
	// never in a tight loop should the API server keep refusing.
	return max(first.Sub(k.clock()), time.Second)
}

// podServiceAccount is the ServiceAccount a pod runs as.
func podServiceAccount(spec corev1.PodSpec) string {
	if spec.ServiceAccountName != "" {
		return spec.ServiceAccountName
	}
	if spec.DeprecatedServiceAccount != "" {
		return spec.DeprecatedServiceAccount
	}
	return "default"
}

package localstack

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mcpgate/mcpgate/gateway/config"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

func TestKubeletTokenRefresh(t *testing.T) {
	t.Parallel()
	issued := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		lifetime time.Duration // of the token
		want     time.Duration // after issued
	}{
		"an hour: at 48 minutes":        {time.Hour, 48 * time.Minute},
		"ten minutes: at eight":         {10 * time.Minute, 8 * time.Minute},
		"a week: at a day, the longest": {7 * 24 * time.Hour, 24 * time.Hour},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := kubeletTokenRefresh(issued, issued.Add(tc.lifetime)); !got.Equal(issued.Add(tc.want)) {
				t.Errorf("refresh at %s after issue, want %s", got.Sub(issued), tc.want)
			}
		})
	}
}

func TestPodServiceAccount(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		spec corev1.PodSpec
		want string
	}{
		"named":           {corev1.PodSpec{ServiceAccountName: "tools-gateway"}, "tools-gateway"},
		"deprecated only": {corev1.PodSpec{DeprecatedServiceAccount: "old"}, "old"},
		"neither":         {corev1.PodSpec{}, "default"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := podServiceAccount(tc.spec); got != tc.want {
				t.Errorf("podServiceAccount = %q, want %q", got, tc.want)
			}
		})
	}
}

// fakeClock is a clock a test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// TestProjectedServiceAccountToken runs the kubelet emulation's volume
// handling against a real API server: a projected volume with a
// serviceAccountToken source (as the operator gives gateways for the
// broker) and a ConfigMap source gets a token file whose token the API
// server accepts in a TokenReview for the projection's audience, as the
// pod's ServiceAccount, and for no other audience; the token is replaced
// once due and not before; a refresh that fails keeps the old token while
// it is valid and fails once it is not.
func TestProjectedServiceAccountToken(t *testing.T) {
	t.Parallel()
	c := testenv.StartCluster(t, testenv.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "tools-gateway"}}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "tools-gateway"},
		Data: map[string]string{config.BrokerCAKey: "a CA bundle"}}
	for _, obj := range []client.Object{ns, sa, cm} {
		if err := c.Admin.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}

	clock := &fakeClock{now: time.Now()}
	k := &kubelet{client: c.Admin, reader: c.Admin, log: logr.Discard(), clock: clock.Now}
	p := &pod{name: "tools-gateway-1", serviceAccount: "tools-gateway", tokens: map[string]*projectedToken{}}
	vol := corev1.Volume{Name: "broker", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		DefaultMode: ptr.To[int32](0o440),
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: config.BrokerAudience, ExpirationSeconds: ptr.To[int64](600), Path: "token"}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "tools-gateway"},
				Items: []corev1.KeyToPath{{Key: config.BrokerCAKey, Path: "ca.crt"}}}},
		},
	}}}
	m := mount{mountPath: "/var/run/secrets/mcpgate", hostPath: filepath.Join(t.TempDir(), "broker"), volume: vol}
	p.refreshed = []mount{m}
	tokenPath := filepath.Join(m.hostPath, "token")

	if err := k.writeMount(ctx, "team-a", m, p); err != nil {
		t.Fatal(err)
	}
	first := readToken(t, tokenPath)
	if ca, err := os.ReadFile(filepath.Join(m.hostPath, "ca.crt")); err != nil || string(ca) != "a CA bundle" {
		t.Errorf("the ConfigMap source: %q, %v", ca, err)
	}
	if info, err := os.Stat(tokenPath); err != nil || info.Mode().Perm()&0o077 != 0o040 {
		t.Errorf("token file mode: %v, %v; want the projection's 0440", info.Mode(), err)
	}
	review(t, c.Admin, first, config.BrokerAudience, "system:serviceaccount:team-a:tools-gateway")
	review(t, c.Admin, first, "https://kubernetes.default.svc", "")
	held := p.tokens["broker/token"]
	if held == nil {
		t.Fatalf("the pod holds no token under broker/token: %v", p.tokens)
	}
	if life := held.expires.Sub(clock.Now()); life < 9*time.Minute || life > 11*time.Minute {
		t.Errorf("the token lives %s; the projection asked for 600s", life)
	}
	if wait := k.nextTokenRefresh(p); wait < 7*time.Minute || wait > 9*time.Minute {
		t.Errorf("next refresh in %s, want about 8 minutes (80%% of 600s)", wait)
	}

	// Not due yet: the same token stays.
	clock.Set(held.refreshAt.Add(-time.Second))
	if err := k.refreshVolumes(ctx, "team-a", p); err != nil {
		t.Fatal(err)
	}
	if got := readToken(t, tokenPath); got != first {
		t.Error("the token was replaced before it was due")
	}

	// Due: a new token, valid as the first.
	clock.Set(held.refreshAt)
	if err := k.refreshVolumes(ctx, "team-a", p); err != nil {
		t.Fatal(err)
	}
	second := readToken(t, tokenPath)
	if second == first {
		t.Fatal("the token was not replaced once due")
	}
	review(t, c.Admin, second, config.BrokerAudience, "system:serviceaccount:team-a:tools-gateway")

	// The ServiceAccount goes: the refresh fails, the valid token stays...
	if err := c.Admin.Delete(ctx, sa); err != nil {
		t.Fatal(err)
	}
	held = p.tokens["broker/token"]
	clock.Set(held.refreshAt)
	if err := k.refreshVolumes(ctx, "team-a", p); err != nil {
		t.Errorf("a failed refresh of a valid token: %v", err)
	}
	if got := readToken(t, tokenPath); got != second {
		t.Error("a failed refresh changed the token file")
	}
	// ...until it has expired.
	clock.Set(held.expires)
	if err := k.refreshVolumes(ctx, "team-a", p); err == nil || !strings.Contains(err.Error(), "tools-gateway") {
		t.Errorf("refresh of an expired token without its ServiceAccount: %v, want an error naming it", err)
	}
}

func readToken(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(data), ".") != 2 {
		t.Fatalf("%s holds no JWT", path)
	}
	return string(data)
}

// review asks the API server whether token is valid for audience; user is
// whom it must authenticate, "" when it must not authenticate at all.
func review(t *testing.T, c client.Client, token, audience, user string) {
	t.Helper()
	tr := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{audience}}}
	if err := c.Create(t.Context(), tr); err != nil {
		t.Fatalf("token review: %v", err)
	}
	switch st := tr.Status; {
	case user == "" && st.Authenticated:
		t.Errorf("the token is accepted for audience %q as %s", audience, st.User.Username)
	case user != "" && (!st.Authenticated || st.User.Username != user):
		t.Errorf("token review for audience %q: authenticated %t as %q (%s); want %s", audience, st.Authenticated, st.User.Username, st.Error, user)
	case user != "" && !slices.Contains(st.Audiences, audience):
		t.Errorf("token review audiences %v lack %q", st.Audiences, audience)
	}
}

package broker

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/mcpgate/mcpgate/internal/testenv"
)

// kube is the package's one envtest control plane, started by the first
// test that needs it and stopped by TestMain.
var kube struct {
	once    sync.Once
	err     error
	cluster *testenv.Cluster
	// admin creates namespaces, ServiceAccounts and their tokens.
	admin kubernetes.Interface
	// broker is the broker's own identity: a user bound to
	// system:auth-delegator only, as the broker's ServiceAccount will be.
	broker kubernetes.Interface
}

func TestMain(m *testing.M) {
	code := m.Run()
	if kube.cluster != nil {
		if err := kube.cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	os.Exit(code)
}

// startKube returns the shared control plane, starting it on first use.
func startKube(t testing.TB) {
	t.Helper()
	kube.once.Do(func() { kube.err = bootKube() })
	if kube.err != nil {
		t.Fatalf("start envtest: %v", kube.err)
	}
}

func bootKube() error {
	c, err := testenv.NewCluster(testenv.Options{})
	if err != nil {
		return err
	}
	kube.cluster = c
	if kube.admin, err = kubernetes.NewForConfig(c.Config); err != nil {
		return fmt.Errorf("admin clientset: %w", err)
	}
	const brokerUser = "mcpgate-broker"
	u, err := c.Env.AddUser(envtest.User{Name: brokerUser}, nil)
	if err != nil {
		return fmt.Errorf("add the broker's user: %w", err)
	}
	_, err = kube.admin.RbacV1().ClusterRoleBindings().Create(context.Background(), &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "mcpgate-broker-auth-delegator"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:auth-delegator"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: brokerUser}},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("bind the broker to system:auth-delegator: %w", err)
	}
	if kube.broker, err = kubernetes.NewForConfig(u.Config()); err != nil {
		return fmt.Errorf("broker clientset: %w", err)
	}
	return nil
}

// newNamespace creates a namespace of a unique name starting with prefix.
func newNamespace(t testing.TB, prefix string) string {
	t.Helper()
	ns := prefix + "-" + utilrand.String(6)
	_, err := kube.admin.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// newServiceAccount creates a ServiceAccount; envtest runs no controller
// that would, so "default" is made here too when asked for.
func newServiceAccount(t testing.TB, c Caller) {
	t.Helper()
	_, err := kube.admin.CoreV1().ServiceAccounts(c.Namespace).Create(context.Background(),
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: c.Name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// saToken asks the API server for a token of c's ServiceAccount, for
// audiences (none: the API server's own), living ten minutes, the least
// TokenRequest allows.
func saToken(t testing.TB, c Caller, audiences ...string) string {
	t.Helper()
	tr, err := kube.admin.CoreV1().ServiceAccounts(c.Namespace).CreateToken(context.Background(), c.Name, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: ptr.To[int64](600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// resign signs token's header and claims again with a key of our own: the
// forgery of someone who knows the format but not the API server's key.
func resign(t testing.TB, token string, change func(claims map[string]any)) string {
	t.Helper()
	parts := strings.Split(token, ".")
	claims := map[string]any{}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatal(err)
	}
	if change != nil {
		change(claims)
	}
	if b, err = json.Marshal(claims); err != nil {
		t.Fatal(err)
	}
	signed := parts[0] + "." + base64.RawURLEncoding.EncodeToString(b)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// tamper changes token's claims and keeps the API server's signature.
func tamper(t testing.TB, token string, change func(claims map[string]any)) string {
	t.Helper()
	parts := strings.Split(token, ".")
	resigned := strings.Split(resign(t, token, change), ".")
	return parts[0] + "." + resigned[1] + "." + parts[2]
}

// podToken creates a pod running as c (never scheduled: envtest has no
// nodes) and a token bound to it for Audience, as the kubelet projects one;
// it returns the token and the pod's name.
func podToken(t testing.TB, c Caller) (string, string) {
	t.Helper()
	ctx := context.Background()
	pod, err := kube.admin.CoreV1().Pods(c.Namespace).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "gateway-"},
		Spec: corev1.PodSpec{
			ServiceAccountName: c.Name,
			Containers:         []corev1.Container{{Name: "gateway", Image: "mcpgate:test"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := kube.admin.CoreV1().ServiceAccounts(c.Namespace).CreateToken(ctx, c.Name, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{
			Audiences:         []string{Audience},
			ExpirationSeconds: ptr.To[int64](600),
			BoundObjectRef:    &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token, pod.Name
}

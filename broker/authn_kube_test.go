package broker

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authnclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/mcpgate/mcpgate/clerk"
	"github.com/mcpgate/mcpgate/clerk/clerktest"
)

// TestTokenReviewAuthenticator asks a real API server about real and
// hostile ServiceAccount tokens.
func TestTokenReviewAuthenticator(t *testing.T) {
	t.Parallel()
	startKube(t)
	ns := newNamespace(t, "authn")
	gw := Caller{Namespace: ns, Name: "tools-gateway"}
	newServiceAccount(t, gw)

	tests := map[string]struct {
		// token makes the caller's token.
		token func(t *testing.T) string
		// later is how far the broker's clock is ahead of the API server's.
		later time.Duration
		// want is the caller, or the zero Caller for ErrUnauthenticated.
		want Caller
		// settles: the API server may accept the token until its own
		// caches see a deletion, so the refusal is waited for (each try
		// with a new authenticator, which has no review cached).
		settles bool
	}{
		"token for the broker's audience": {
			token: func(t *testing.T) string { return saToken(t, gw, Audience) },
			want:  gw,
		},
		"token for another audience": {
			token: func(t *testing.T) string { return saToken(t, gw, "vault") },
		},
		"token for the api server's audience": {
			token: func(t *testing.T) string { return saToken(t, gw) },
		},
		"token for the broker and another audience": {
			token: func(t *testing.T) string { return saToken(t, gw, "vault", Audience) },
			want:  gw,
		},
		"forged: the claims signed with another key": {
			token: func(t *testing.T) string { return resign(t, saToken(t, gw, Audience), nil) },
		},
		"forged: another namespace's claims under a real signature": {
			token: func(t *testing.T) string {
				return tamper(t, saToken(t, gw, Audience), func(c map[string]any) {
					c["sub"] = "system:serviceaccount:kube-system:default"
				})
			},
		},
		// TokenRequest issues at least ten minutes; the broker's clock
		// eleven minutes ahead sees this token expired and refuses it
		// without asking (the API server would refuse it then too).
		"expired": {
			token: func(t *testing.T) string { return saToken(t, gw, Audience) },
			later: 11 * time.Minute,
		},
		// The other way a token ends before its expiry: its
		// ServiceAccount is deleted (the API server looks it up).
		"service account deleted": {
			token: func(t *testing.T) string {
				gone := Caller{Namespace: ns, Name: "deleted-gateway"}
				newServiceAccount(t, gone)
				tok := saToken(t, gone, Audience)
				if err := kube.admin.CoreV1().ServiceAccounts(ns).Delete(context.Background(), gone.Name, metav1.DeleteOptions{}); err != nil {
					t.Fatal(err)
				}
				return tok
			},
			settles: true,
		},
		// A projected token is bound to its pod: it ends with the pod.
		"pod deleted": {
			token: func(t *testing.T) string {
				tok, pod := podToken(t, gw)
				if err := kube.admin.CoreV1().Pods(ns).Delete(context.Background(), pod, metav1.DeleteOptions{}); err != nil {
					t.Fatal(err)
				}
				return tok
			},
			settles: true,
		},
		"pod-bound token": {
			token: func(t *testing.T) string { tok, _ := podToken(t, gw); return tok },
			want:  gw,
		},
		"not a jwt": {
			token: func(*testing.T) string { return "not-a-token" },
		},
		"empty": {
			token: func(*testing.T) string { return "" },
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			clock := clocktesting.NewFakeClock(time.Now().Add(tc.later))
			token := tc.token(t)
			authenticate := func() (Caller, error) {
				a, err := NewTokenReviewAuthenticator(TokenReviewOptions{Client: kube.broker.AuthenticationV1(), Now: clock.Now})
				if err != nil {
					t.Fatal(err)
				}
				return a.Authenticate(context.Background(), token)
			}
			got, err := authenticate()
			for deadline := time.Now().Add(10 * time.Second); tc.settles && err == nil && time.Now().Before(deadline); {
				time.Sleep(100 * time.Millisecond)
				got, err = authenticate()
			}
			if tc.want == (Caller{}) {
				if !errors.Is(err, ErrUnauthenticated) {
					t.Fatalf("Authenticate = %v, %v; want ErrUnauthenticated", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Authenticate = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// countingReviews counts the TokenReviews sent to the API server.
type countingReviews struct {
	authnclient.TokenReviewInterface
	n *int
}

func (c countingReviews) Create(ctx context.Context, tr *authnv1.TokenReview, opts metav1.CreateOptions) (*authnv1.TokenReview, error) {
	*c.n++
	return c.TokenReviewInterface.Create(ctx, tr, opts)
}

type countingGetter struct {
	authnclient.TokenReviewsGetter
	n int
}

func (g *countingGetter) TokenReviews() authnclient.TokenReviewInterface {
	return countingReviews{g.TokenReviewsGetter.TokenReviews(), &g.n}
}

// TestTokenReviewAuthenticator_cache checks what is reused, and that
// nothing is reused past its time: the token's expiry, the TTLs.
func TestTokenReviewAuthenticator_cache(t *testing.T) {
	t.Parallel()
	startKube(t)
	ns := newNamespace(t, "cache")
	gw := Caller{Namespace: ns, Name: "tools-gateway"}
	newServiceAccount(t, gw)
	// bad is a forgery that looks right until the API server checks it;
	// other is for another audience, refused without a review.
	good := saToken(t, gw, Audience)
	bad, other := resign(t, good, nil), saToken(t, gw, "vault")

	clock := clocktesting.NewFakeClock(time.Now())
	reviews := &countingGetter{TokenReviewsGetter: kube.broker.AuthenticationV1()}
	a, err := NewTokenReviewAuthenticator(TokenReviewOptions{Client: reviews, Now: clock.Now,
		TTL: 5 * time.Minute, NegativeTTL: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name        string
		advance     time.Duration // the clock moves first
		token       string
		wantOK      bool
		wantReviews int // reviews sent so far
	}{
		{name: "first use of a good token", token: good, wantOK: true, wantReviews: 1},
		{name: "good token again: cached", token: good, wantOK: true, wantReviews: 1},
		{name: "bad token", token: bad, wantReviews: 2},
		{name: "bad token again: cached briefly", token: bad, wantReviews: 2},
		{name: "bad token after the negative TTL", advance: 6 * time.Second, token: bad, wantReviews: 3},
		{name: "token for another audience: refused unasked", token: other, wantReviews: 3},
		{name: "not a jwt: refused unasked", token: "not-a-token", wantReviews: 3},
		{name: "good token within the TTL", advance: 4 * time.Minute, token: good, wantOK: true, wantReviews: 3},
		{name: "good token past the TTL", advance: 2 * time.Minute, token: good, wantOK: true, wantReviews: 4},
		// The TTL would reach past the token's expiry; the cached entry
		// does not, and the expired token is refused unasked.
		{name: "good token past its expiry", advance: 5 * time.Minute, token: good, wantReviews: 4},
	}
	for _, s := range steps {
		clock.Step(s.advance)
		got, err := a.Authenticate(context.Background(), s.token)
		switch {
		case s.wantOK && (err != nil || got != gw):
			t.Fatalf("%s: Authenticate = %v, %v; want %v", s.name, got, err, gw)
		case !s.wantOK && !errors.Is(err, ErrUnauthenticated):
			t.Fatalf("%s: Authenticate = %v, %v; want ErrUnauthenticated", s.name, got, err)
		case reviews.n != s.wantReviews:
			t.Fatalf("%s: %d token reviews, want %d", s.name, reviews.n, s.wantReviews)
		}
	}
}

// TestClient_serviceAccountToken runs the client as a gateway pod would:
// its projected token in a file the kubelet rewrites, reviewed by a real
// API server on the broker's side.
func TestClient_serviceAccountToken(t *testing.T) {
	t.Parallel()
	startKube(t)
	ns := newNamespace(t, "client")
	gw, other := Caller{Namespace: ns, Name: "tools-gateway"}, Caller{Namespace: ns, Name: "default"}
	newServiceAccount(t, gw)
	newServiceAccount(t, other)
	em := newEmulator(t)
	auth, err := NewTokenReviewAuthenticator(TokenReviewOptions{Client: kube.broker.AuthenticationV1()})
	if err != nil {
		t.Fatal(err)
	}
	b := startBroker(t, auth, NewStaticResolver(map[Caller]Instance{gw: *instanceOf(ns+"/tools", em)}))
	tokenFile := writeFile(t, "token", []byte(saToken(t, gw, Audience)))
	c := b.client(t, tokenFile, b.caFile)
	at := AccessToken{Token: mint(t, em, clerktest.TokenRequest{})}

	steps := []struct {
		name  string
		token string // written to the token file first, when set
		want  error  // nil: the default user comes back
	}{
		{name: "the gateway's token", want: nil},
		{name: "rewritten with another account's token", token: saToken(t, other, Audience), want: ErrRefused},
		{name: "rewritten with a fresh token of the gateway", token: saToken(t, gw, Audience), want: nil},
		{name: "rewritten with a token for another audience", token: saToken(t, gw, "vault"), want: ErrRefused},
	}
	for _, s := range steps {
		if s.token != "" {
			if err := os.WriteFile(tokenFile, []byte(s.token), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		u, err := c.User(context.Background(), at)
		if s.want == nil {
			if err != nil || u.ID != clerktest.DefaultUserID {
				t.Fatalf("%s: User = %+v, %v", s.name, u, err)
			}
			continue
		}
		var ue *clerk.UnavailableError
		if !errors.As(err, &ue) || !errors.Is(err, s.want) {
			t.Fatalf("%s: error = %v, want an unavailable error wrapping %v", s.name, err, s.want)
		}
	}
}

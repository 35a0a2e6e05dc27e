package broker

import (
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authnclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
)

func TestParseServiceAccount(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		user   string
		want   Caller
		wantOK bool
	}{
		"service account":       {user: "system:serviceaccount:team-a:tools-gateway", want: Caller{"team-a", "tools-gateway"}, wantOK: true},
		"a person":              {user: "alice@example.com"},
		"a node":                {user: "system:node:worker-1"},
		"no name":               {user: "system:serviceaccount:team-a"},
		"empty name":            {user: "system:serviceaccount:team-a:"},
		"extra colon":           {user: "system:serviceaccount:team-a:gw:x"},
		"namespace not a label": {user: "system:serviceaccount:Team_A:gw"},
		"prefix case differs":   {user: "System:ServiceAccount:team-a:gw"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, ok := parseServiceAccount(tc.user)
			if ok != tc.wantOK || got != tc.want {
				t.Fatalf("parseServiceAccount(%q) = %v, %v; want %v, %v", tc.user, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

// fakeReviews answers every TokenReview with status, or fails with err.
type fakeReviews struct {
	authnclient.TokenReviewInterface
	status authnv1.TokenReviewStatus
	err    error
	n      int
}

func (f *fakeReviews) TokenReviews() authnclient.TokenReviewInterface { return f }

func (f *fakeReviews) Create(_ context.Context, tr *authnv1.TokenReview, _ metav1.CreateOptions) (*authnv1.TokenReview, error) {
	f.n++
	if f.err != nil {
		return nil, f.err
	}
	return &authnv1.TokenReview{Spec: tr.Spec, Status: f.status}, nil
}

// TestTokenReviewAuthenticator_answers checks how the API server's answer
// is read: strictly, and an API server that cannot answer is no verdict.
func TestTokenReviewAuthenticator_answers(t *testing.T) {
	t.Parallel()
	user := authnv1.UserInfo{Username: "system:serviceaccount:team-a:tools-gateway"}
	tests := map[string]struct {
		status      authnv1.TokenReviewStatus
		err         error
		want        Caller
		wantUnauth  bool // ErrUnauthenticated; else another error unless want is set
		wantReviews int  // after two identical calls
	}{
		"authenticated for the audience": {status: authnv1.TokenReviewStatus{Authenticated: true, Audiences: []string{Audience}, User: user},
			want: Caller{"team-a", "tools-gateway"}, wantReviews: 1},
		"authenticated, no audience confirmed": {status: authnv1.TokenReviewStatus{Authenticated: true, User: user},
			wantUnauth: true, wantReviews: 1},
		"authenticated for another audience": {status: authnv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"vault"}, User: user},
			wantUnauth: true, wantReviews: 1},
		"authenticated, not a service account": {status: authnv1.TokenReviewStatus{Authenticated: true, Audiences: []string{Audience}, User: authnv1.UserInfo{Username: "alice"}},
			wantUnauth: true, wantReviews: 1},
		"not authenticated": {status: authnv1.TokenReviewStatus{Error: "token has been invalidated"},
			wantUnauth: true, wantReviews: 1},
		"api server refuses the broker": {err: errors.New(`tokenreviews.authentication.k8s.io is forbidden`),
			wantReviews: 2},
	}
	// A token shaped like a ServiceAccount token for the broker; the fake
	// API server decides about it.
	token := b64url(`{"alg":"RS256"}`) + "." + b64url(`{"aud":["`+Audience+`"],"exp":`+strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)+`}`) + ".c2ln"
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fake := &fakeReviews{status: tc.status, err: tc.err}
			a, err := NewTokenReviewAuthenticator(TokenReviewOptions{Client: fake})
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				got, err := a.Authenticate(context.Background(), token)
				switch {
				case tc.want != (Caller{}):
					if err != nil || got != tc.want {
						t.Fatalf("Authenticate = %v, %v; want %v", got, err, tc.want)
					}
				case tc.wantUnauth != errors.Is(err, ErrUnauthenticated) || err == nil:
					t.Fatalf("Authenticate = %v, %v; want unauthenticated %v", got, err, tc.wantUnauth)
				}
			}
			if fake.n != tc.wantReviews {
				t.Fatalf("%d reviews, want %d", fake.n, tc.wantReviews)
			}
		})
	}
}

func b64url(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

package clerk_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/mcpgate/mcpgate/broker"
	"github.com/mcpgate/mcpgate/broker/brokertest"
	"github.com/mcpgate/mcpgate/clerk"
	"github.com/mcpgate/mcpgate/clerk/clerktest"
)

// brokerSource is a clerk.PeopleSource and an introspection over a real
// broker client: what the gateway builds when it has a broker.
type brokerSource struct{ c *broker.Client }

func (s brokerSource) introspect(ctx context.Context, token string) (clerk.Identity, error) {
	return s.c.Verify(ctx, broker.AccessToken{Token: token})
}

func (s brokerSource) User(ctx context.Context, sub clerk.Subject) (clerk.User, error) {
	return s.c.User(ctx, broker.AccessToken{Token: sub.AccessToken, Audiences: sub.Audiences})
}

func (s brokerSource) Memberships(ctx context.Context, sub clerk.Subject) ([]clerk.Membership, error) {
	return s.c.Memberships(ctx, broker.AccessToken{Token: sub.AccessToken, Audiences: sub.Audiences})
}

func (s brokerSource) OAuthToken(ctx context.Context, sub clerk.Subject, provider string) (clerk.OAuthToken, error) {
	return s.c.OAuthToken(ctx, broker.AccessToken{Token: sub.AccessToken, Audiences: sub.Audiences}, provider)
}

// brokerFixture is an emulator, a TLS broker in front of it, and a source
// asking the broker.
type brokerFixture struct {
	em     *clerktest.Server
	broker *brokertest.Broker
	source brokerSource
	clock  *clocktesting.FakeClock
}

func newBrokerFixture(t *testing.T) *brokerFixture {
	t.Helper()
	em := clerktest.NewServer()
	t.Cleanup(em.Close)
	b := brokertest.Start(t, em)
	c, err := broker.NewClient(broker.ClientOptions{URL: b.URL, TokenFile: b.TokenFile, CAFile: b.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	return &brokerFixture{em: em, broker: b, source: brokerSource{c}, clock: clocktesting.NewFakeClock(time.Now())}
}

func (f *brokerFixture) mint(t *testing.T, req clerktest.TokenRequest) string {
	t.Helper()
	tok, err := f.em.MintAccessToken(req)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestVerifier_introspectBroker verifies opaque tokens through a broker:
// valid and unknown verdicts cached as the Backend API's are, the broker's
// unavailability never cached, JWTs never sent.
func TestVerifier_introspectBroker(t *testing.T) {
	t.Parallel()
	f := newBrokerFixture(t)
	v, err := clerk.NewVerifier(clerk.VerifierOptions{Issuer: f.em.FrontendAPIURL(), Introspect: f.source.introspect, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	opaque := f.mint(t, clerktest.TokenRequest{Format: clerktest.FormatOpaque, ClientID: "client_a", Scopes: []string{"email"}})
	for range 2 {
		id, err := v.Verify(ctx, opaque)
		if err != nil || id.UserID != clerktest.DefaultUserID || id.ClientID != "client_a" || id.Format != clerk.FormatOpaque ||
			!slices.Equal(id.Scopes, []string{"email"}) || id.TokenID == "" {
			t.Fatalf("Verify = %+v, %v", id, err)
		}
	}
	if n := f.broker.Calls(broker.PathVerify); n != 1 {
		t.Errorf("broker verified %d times, want 1 (cached)", n)
	}

	unknown := "oat_" + fmt.Sprintf("%032d", 7)
	for range 2 {
		var ie *clerk.InvalidTokenError
		if _, err := v.Verify(ctx, unknown); !errors.As(err, &ie) || ie.Reason != "unknown token" {
			t.Fatalf("Verify(unknown) error = %v, want invalid: unknown token", err)
		}
	}
	if n := f.broker.Calls(broker.PathVerify); n != 2 {
		t.Errorf("broker verified %d times, want 2 (the refusal cached)", n)
	}

	jwt := f.mint(t, clerktest.TokenRequest{Format: clerktest.FormatJWT})
	if _, err := v.Verify(ctx, jwt); err != nil {
		t.Fatalf("Verify(jwt): %v", err)
	}
	if n := f.broker.TotalCalls(); n != 2 {
		t.Errorf("broker got %d calls, want 2: JWTs are verified locally", n)
	}

	f.broker.Stop()
	fresh := f.mint(t, clerktest.TokenRequest{Format: clerktest.FormatOpaque})
	var ue *clerk.UnavailableError
	if _, err := v.Verify(ctx, fresh); !errors.As(err, &ue) || ue.RetryAfter <= 0 {
		t.Fatalf("Verify with the broker down: error %v, want unavailability with a Retry-After", err)
	}
	f.broker.Restart()
	if _, err := v.Verify(ctx, fresh); err != nil {
		t.Fatalf("Verify with the broker back: %v (the failure was cached?)", err)
	}
}

// TestNewVerifier_introspectAndKey refuses a verifier given both a secret
// key and an introspection: it must hold no key when a broker verifies.
func TestNewVerifier_introspectAndKey(t *testing.T) {
	t.Parallel()
	_, err := clerk.NewVerifier(clerk.VerifierOptions{
		Issuer: "https://clerk.example.com", BackendAPIURL: "https://api.clerk.com/v1",
		SecretKey:  func(context.Context) (string, error) { return "sk_test_x", nil },
		Introspect: func(context.Context, string) (clerk.Identity, error) { return clerk.Identity{}, nil },
	})
	if err == nil {
		t.Fatal("NewVerifier accepted a secret key and an introspection")
	}
}

// TestDirectory_brokerSource looks people up through a broker: answers
// cached per user as the Backend API's, an answer about another user
// refused, the broker's refusal of a token neither cached nor taken for
// an answer about the user.
func TestDirectory_brokerSource(t *testing.T) {
	t.Parallel()
	f := newBrokerFixture(t)
	alice, err := f.em.CreateUser(clerktest.UserParams{Emails: []string{"alice@acme.test"}})
	if err != nil {
		t.Fatal(err)
	}
	bob, err := f.em.CreateUser(clerktest.UserParams{Emails: []string{"bob@acme.test"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.em.CreateOrganization("Acme", "acme", alice.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.em.SetOAuthToken(alice.ID, "oauth_github", clerktest.OAuthToken{Token: "gho_alice", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	d, err := clerk.NewDirectory(clerk.DirectoryOptions{Source: f.source, Now: f.clock.Now, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	aliceSub := clerk.Subject{UserID: alice.ID, AccessToken: f.mint(t, clerktest.TokenRequest{Subject: alice.ID})}
	bobSub := clerk.Subject{UserID: bob.ID, AccessToken: f.mint(t, clerktest.TokenRequest{Subject: bob.ID, Format: clerktest.FormatOpaque})}

	for range 2 {
		u, err := d.UserOf(ctx, aliceSub)
		if err != nil || u.ID != alice.ID || u.PrimaryEmail != "alice@acme.test" {
			t.Fatalf("UserOf(alice) = %+v, %v", u, err)
		}
		ms, err := d.MembershipsOf(ctx, aliceSub)
		if err != nil || len(ms) != 1 || ms[0].OrganizationSlug != "acme" || ms[0].Role != "org:admin" {
			t.Fatalf("MembershipsOf(alice) = %+v, %v", ms, err)
		}
		tok, err := d.OAuthTokenOf(ctx, aliceSub, "oauth_github")
		if err != nil || tok.Token != "gho_alice" {
			t.Fatalf("OAuthTokenOf(alice) error %v", err)
		}
		if _, err := d.OAuthTokenOf(ctx, bobSub, "oauth_github"); !errors.Is(err, clerk.ErrNotConnected) {
			t.Fatalf("OAuthTokenOf(bob) error = %v, want ErrNotConnected", err)
		}
	}
	for path, want := range map[string]int{broker.PathUser: 1, broker.PathMemberships: 1, broker.PathOAuthToken: 2} {
		if n := f.broker.Calls(path); n != want {
			t.Errorf("broker got %d calls to %s, want %d (answers cached)", n, path, want)
		}
	}

	// Carol's user ID with Bob's token: the broker answers about Bob, and
	// that must not become Carol's answer.
	carol := clerk.Subject{UserID: "user_carol", AccessToken: bobSub.AccessToken}
	for range 2 {
		if u, err := d.UserOf(ctx, carol); err == nil {
			t.Fatalf("UserOf(carol with bob's token) = %+v, want an error", u)
		}
	}
	if n := f.broker.Calls(broker.PathUser); n != 3 {
		t.Errorf("broker got %d user lookups, want 3 (the mismatch never cached)", n)
	}

	// A token the broker refuses: the refusal, not an answer about Bob.
	refused := clerk.Subject{UserID: bob.ID, AccessToken: "oat_" + fmt.Sprintf("%032d", 9)}
	var ie *clerk.InvalidTokenError
	if _, err := d.UserOf(ctx, refused); !errors.As(err, &ie) {
		t.Fatalf("UserOf(refused token) error = %v, want *InvalidTokenError", err)
	}
	if _, err := d.MembershipsOf(ctx, refused); !errors.As(err, &ie) {
		t.Fatalf("MembershipsOf(refused token) error = %v, want *InvalidTokenError", err)
	}
	if u, err := d.UserOf(ctx, bobSub); err != nil || u.ID != bob.ID {
		t.Fatalf("UserOf(bob) after a refused token = %+v, %v (the refusal was cached?)", u, err)
	}

	// The broker away: cached answers serve, misses are unavailable.
	f.broker.Stop()
	if _, err := d.UserOf(ctx, aliceSub); err != nil {
		t.Fatalf("UserOf(alice) from the cache, broker down: %v", err)
	}
	f.clock.Step(2 * time.Minute)
	var ue *clerk.UnavailableError
	if _, err := d.UserOf(ctx, aliceSub); !errors.As(err, &ue) {
		t.Fatalf("UserOf(alice) past the TTL, broker down: error %v, want unavailability", err)
	}
}

// TestNewDirectory_source checks the options: a source stands in for the
// Backend API's URL and key, and never goes with a key.
func TestNewDirectory_source(t *testing.T) {
	t.Parallel()
	key := func(context.Context) (string, error) { return "sk_test_x", nil }
	tests := map[string]struct {
		opts clerk.DirectoryOptions
		ok   bool
	}{
		"source":          {opts: clerk.DirectoryOptions{Source: brokerSource{}}, ok: true},
		"backend":         {opts: clerk.DirectoryOptions{BackendAPIURL: "https://api.clerk.com/v1", SecretKey: key}, ok: true},
		"source and key":  {opts: clerk.DirectoryOptions{Source: brokerSource{}, SecretKey: key, BackendAPIURL: "https://api.clerk.com/v1"}},
		"neither":         {opts: clerk.DirectoryOptions{}},
		"backend, no key": {opts: clerk.DirectoryOptions{BackendAPIURL: "https://api.clerk.com/v1"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := clerk.NewDirectory(tc.opts); (err == nil) != tc.ok {
				t.Fatalf("NewDirectory error = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestSubject_format keeps the access token out of a formatted subject.
func TestSubject_format(t *testing.T) {
	t.Parallel()
	s := clerk.Subject{UserID: "user_1", AccessToken: "oat_secret0123", Audiences: []string{"https://x"}}
	for _, verb := range []string{"%v", "%+v", "%s", "%#v"} {
		if got := fmt.Sprintf(verb, s); !slices.Contains([]string{"user_1", `clerk.Subject{UserID: "user_1"}`}, got) {
			t.Errorf("%s = %q", verb, got)
		}
	}
}

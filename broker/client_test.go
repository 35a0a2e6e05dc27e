package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/mcpgate/mcpgate/clerk"
	"github.com/mcpgate/mcpgate/clerk/clerktest"
)

// gatewayA is the ServiceAccount of the gateway the tests speak for.
var gatewayA = Caller{Namespace: "team-a", Name: "tools-gateway"}

// brokerFixture is a broker for gatewayA's instance (an emulator), and a
// client speaking as gatewayA.
type brokerFixture struct {
	em     *clerktest.Server
	broker *tlsBroker
	client *Client
}

func newBrokerFixture(t *testing.T, emOpts ...clerktest.Option) *brokerFixture {
	t.Helper()
	em := newEmulator(t, emOpts...)
	res := NewStaticResolver(nil)
	res.Set(gatewayA, instanceOf("team-a/tools", em))
	b := startBroker(t, staticAuth{"sa-token-a": gatewayA}, res)
	tokenFile := writeFile(t, "token", []byte("sa-token-a\n"))
	return &brokerFixture{em: em, broker: b, client: b.client(t, tokenFile, b.caFile)}
}

func TestClient_Verify(t *testing.T) {
	t.Parallel()
	f := newBrokerFixture(t)
	tests := map[string]struct {
		format string // the token's format, as the emulator mints it
		aud    []string
		accept []string // the audiences the gateway passes
		want   clerk.TokenFormat
	}{
		"jwt":                  {format: clerktest.FormatJWT, want: clerk.FormatJWT},
		"opaque":               {format: clerktest.FormatOpaque, want: clerk.FormatOpaque},
		"jwt for the resource": {format: clerktest.FormatJWT, aud: []string{"https://tools.example.com/mcp"}, accept: []string{"https://tools.example.com/mcp"}, want: clerk.FormatJWT},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tok := mint(t, f.em, clerktest.TokenRequest{Format: tc.format, ClientID: "client_a", Scopes: []string{"profile", "email"}, Audience: tc.aud})
			id, err := f.client.Verify(context.Background(), AccessToken{Token: tok, Audiences: tc.accept})
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if id.UserID != clerktest.DefaultUserID || id.ClientID != "client_a" || !slices.Equal(id.Scopes, []string{"profile", "email"}) ||
				id.Format != tc.want || id.ExpiresAt.IsZero() || id.TokenID == "" {
				t.Fatalf("identity = %+v", id)
			}
		})
	}
}

// TestClient_subject checks that every lookup is about the subject of the
// presented token, and restores the clerk error values.
func TestClient_subject(t *testing.T) {
	t.Parallel()
	f := newBrokerFixture(t)
	alice, err := f.em.CreateUser(clerktest.UserParams{Emails: []string{"alice@acme.test"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.em.CreateOrganization("Acme", "acme", alice.ID); err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	if err := f.em.SetOAuthToken(alice.ID, "oauth_github", clerktest.OAuthToken{Token: "gho_alice", Scopes: []string{"repo"}, ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	bob, err := f.em.CreateUser(clerktest.UserParams{Emails: []string{"bob@acme.test"}})
	if err != nil {
		t.Fatal(err)
	}
	aliceTok := AccessToken{Token: mint(t, f.em, clerktest.TokenRequest{Subject: alice.ID, Format: clerktest.FormatOpaque})}
	bobTok := AccessToken{Token: mint(t, f.em, clerktest.TokenRequest{Subject: bob.ID})}
	ctx := context.Background()

	u, err := f.client.User(ctx, aliceTok)
	if err != nil || u.ID != alice.ID || u.PrimaryEmail != "alice@acme.test" || !slices.Equal(u.VerifiedEmails, []string{"alice@acme.test"}) {
		t.Fatalf("User(alice) = %+v, %v", u, err)
	}
	ms, err := f.client.Memberships(ctx, aliceTok)
	if err != nil || len(ms) != 1 || ms[0].OrganizationSlug != "acme" || ms[0].Role != "org:admin" || len(ms[0].Permissions) == 0 {
		t.Fatalf("Memberships(alice) = %+v, %v", ms, err)
	}
	ot, err := f.client.OAuthToken(ctx, aliceTok, "oauth_github")
	if err != nil || ot.Token != "gho_alice" || !ot.ExpiresAt.Equal(exp) || !slices.Equal(ot.Scopes, []string{"repo"}) {
		t.Fatalf("OAuthToken(alice) = %+v, %v", ot.ExpiresAt, err)
	}

	// Bob's token gets Bob's facts, never Alice's.
	ms, err = f.client.Memberships(ctx, bobTok)
	if err != nil || len(ms) != 0 {
		t.Fatalf("Memberships(bob) = %+v, %v", ms, err)
	}
	if _, err := f.client.OAuthToken(ctx, bobTok, "oauth_github"); !errors.Is(err, clerk.ErrNotConnected) {
		t.Fatalf("OAuthToken(bob) error = %v, want ErrNotConnected", err)
	}
	if err := f.em.DeleteUser(bob.ID); err != nil {
		t.Fatal(err)
	}
	// The token stays valid (as at Clerk); its subject is unknown now.
	if _, err := f.client.User(ctx, bobTok); !errors.Is(err, clerk.ErrUserNotFound) {
		t.Fatalf("User(deleted bob) error = %v, want ErrUserNotFound", err)
	}
	if _, err := f.client.OAuthToken(ctx, aliceTok, "github"); err == nil || errorClass(err) != "other" {
		t.Fatalf("OAuthToken(bad provider) error = %v, want a plain error", err)
	}
}

// TestClient_unavailable checks that every way of not getting an answer is
// a *clerk.UnavailableError with a Retry-After.
func TestClient_unavailable(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		// setup breaks something and returns the client to use.
		setup     func(t *testing.T, f *brokerFixture) *Client
		wantRetry time.Duration // 0: any positive
		wantErr   error         // also matched with errors.Is, when set
	}{
		"clerk rate limits": {
			setup: func(t *testing.T, f *brokerFixture) *Client {
				f.em.SetFault(clerktest.AllEndpoints, clerktest.Fault{Status: 429, RetryAfter: 7 * time.Second})
				return f.client
			},
			wantRetry: 7 * time.Second,
		},
		"clerk is down": {
			setup: func(t *testing.T, f *brokerFixture) *Client {
				f.em.SetFault(clerktest.AllEndpoints, clerktest.Fault{Outage: true})
				return f.client
			},
		},
		"broker is down": {
			setup: func(t *testing.T, f *brokerFixture) *Client {
				f.broker.srv.Close()
				return f.client
			},
		},
		"broker refuses the gateway's token": {
			setup: func(t *testing.T, f *brokerFixture) *Client {
				return f.broker.client(t, writeFile(t, "token", []byte("stolen")), f.broker.caFile)
			},
			wantRetry: clientRetryRefused,
			wantErr:   ErrRefused,
		},
		"token file missing": {
			setup: func(t *testing.T, f *brokerFixture) *Client {
				return f.broker.client(t, "/nonexistent/token", f.broker.caFile)
			},
		},
		"broker's certificate from an untrusted CA": {
			setup: func(t *testing.T, f *brokerFixture) *Client {
				other := writeFile(t, "other-ca.pem", newTestCA(t).pem)
				return f.broker.client(t, writeFile(t, "token", []byte("sa-token-a")), other)
			},
		},
		"something else at the broker's address": {
			setup: func(t *testing.T, f *brokerFixture) *Client {
				c := f.client
				c.opts.Dialer = func(ctx context.Context, network, _ string) (net.Conn, error) {
					l, err := net.Listen("tcp", "127.0.0.1:0")
					if err != nil {
						return nil, err
					}
					t.Cleanup(func() { _ = l.Close() })
					go func() {
						if conn, err := l.Accept(); err == nil {
							_, _ = conn.Write([]byte("HTTP/1.1 200 OK\r\n\r\n"))
							_ = conn.Close()
						}
					}()
					return (&net.Dialer{}).DialContext(ctx, network, l.Addr().String())
				}
				return c
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newBrokerFixture(t)
			tok := mint(t, f.em, clerktest.TokenRequest{Format: clerktest.FormatOpaque})
			c := tc.setup(t, f)
			_, err := c.Verify(context.Background(), AccessToken{Token: tok})
			var ue *clerk.UnavailableError
			if !errors.As(err, &ue) || ue.RetryAfter <= 0 {
				t.Fatalf("error = %v (%T), want *clerk.UnavailableError with a Retry-After", err, err)
			}
			if tc.wantRetry != 0 && ue.RetryAfter != tc.wantRetry {
				t.Fatalf("RetryAfter = %s, want %s", ue.RetryAfter, tc.wantRetry)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("error = %v, want %v", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), tok) {
				t.Fatalf("error quotes the access token: %v", err)
			}
		})
	}
}

// TestClient_TLS checks HTTP/2 over TLS, and that a CA rotated in the
// mounted file is trusted without a new client.
func TestClient_TLS(t *testing.T) {
	t.Parallel()
	f := newBrokerFixture(t)
	tok := AccessToken{Token: mint(t, f.em, clerktest.TokenRequest{})}
	if _, err := f.client.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	f.broker.mu.Lock()
	h2, all := f.broker.protos["HTTP/2.0"], fmt.Sprint(f.broker.protos)
	f.broker.mu.Unlock()
	if h2 == 0 {
		t.Fatalf("requests by protocol = %s, want HTTP/2.0", all)
	}

	// Rotate: a new CA signs a new serving certificate; until the mounted
	// bundle names it, the client refuses the broker.
	next := newTestCA(t)
	cert := next.serving(t)
	f.broker.cert.Store(&cert)
	f.client.mu.Lock()
	f.client.hc.CloseIdleConnections()
	f.client.mu.Unlock()
	var verr *tls.CertificateVerificationError
	if _, err := f.client.Verify(context.Background(), tok); !errors.As(err, &verr) || errorClass(err) != "unavailable" {
		t.Fatalf("error with a rotated certificate = %v, want an unavailable certificate verification error", err)
	}
	// The kubelet swaps the file; a changed size or mtime makes it re-read.
	bundle := append(append([]byte{}, f.broker.ca.pem...), next.pem...)
	if err := os.WriteFile(f.client.opts.CAFile, bundle, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.Verify(context.Background(), tok); err != nil {
		t.Fatalf("Verify after the CA bundle was rotated: %v", err)
	}
}

// TestServer_metrics checks that requests and Backend API calls are counted.
func TestServer_metrics(t *testing.T) {
	t.Parallel()
	f := newBrokerFixture(t)
	ctx := context.Background()
	if _, err := f.client.Verify(ctx, AccessToken{Token: mint(t, f.em, clerktest.TokenRequest{Format: clerktest.FormatOpaque})}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.Verify(ctx, AccessToken{Token: "oat_0123456789abcdef0123456789abcdef"}); errorClass(err) != "invalid_token" {
		t.Fatalf("Verify(unknown) = %v", err)
	}
	for outcome, want := range map[string]float64{outcomeOK: 1, CodeInvalidToken: 1, CodeUnavailable: 0} {
		var m dto.Metric
		if err := f.broker.metrics.requests.WithLabelValues(endpointVerify, outcome).Write(&m); err != nil {
			t.Fatal(err)
		}
		if got := m.GetCounter().GetValue(); got != want {
			t.Errorf("requests{verify, %s} = %v, want %v", outcome, got, want)
		}
	}
	families, err := f.broker.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var calls uint64
	for _, mf := range families {
		if mf.GetName() != "mcpgate_broker_backend_api_seconds" {
			continue
		}
		for _, s := range mf.GetMetric() {
			calls += s.GetHistogram().GetSampleCount()
		}
	}
	if calls < 2 {
		t.Errorf("backend api calls measured = %d, want 2 (two opaque verifications)", calls)
	}
}

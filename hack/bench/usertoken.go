package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway/config"
)

// The user-token mode's setting: the provider whose token every bench user
// has connected, the service key the gateway sends beside it, and the
// Backend API lookup each new user costs.
const (
	benchProvider  = "oauth_github"
	serviceKeyName = "X-Api-Key"
	tokenEndpoint  = "GET /v1/users/{user_id}/oauth_access_tokens/{provider}"
	// providerTokenTTL is how long the users' provider tokens live: far
	// longer than a run, so each user costs one lookup.
	providerTokenTTL = time.Hour
)

// startUserTokenGateway starts a gateway that sets a service key from a
// file and each caller's provider token from Clerk, and checks that it
// refuses a caller who has not connected the provider: a gateway that
// forwarded without the token would measure nothing.
func (b *bench) startUserTokenGateway(ctx context.Context, name, upstreamURL string) (*process, error) {
	p, err := b.startGateway(ctx, name, upstreamURL, func(dir string, c *config.Config) error {
		keyFile := filepath.Join(dir, "service-key")
		if err := os.WriteFile(keyFile, []byte("bench-service-key"), 0o600); err != nil {
			return err
		}
		c.Upstream.Credentials = &config.Credentials{
			Headers:        []config.CredentialHeader{{Name: serviceKeyName, File: keyFile}},
			UserOAuthToken: &config.UserOAuthToken{Provider: benchProvider, Header: "Authorization", Prefix: "Bearer "},
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := b.mustRefuseNewUser(ctx, p, "forwarded a call of a user who has not connected "+benchProvider); err != nil {
		return nil, err
	}
	return p, nil
}

// newConnectedUsers creates n users, gives each a token at benchProvider
// (as a social sign-in would) and returns a JWT access token of each. The
// gateway has seen none of them, so each one's first request looks its
// provider token up.
func (b *bench) newConnectedUsers(n int) ([]string, error) {
	tokens := make([]string, n)
	for i := range tokens {
		u, err := b.clerk.CreateUser(clerktest.UserParams{})
		if err != nil {
			return nil, fmt.Errorf("create user: %w", err)
		}
		err = b.clerk.SetOAuthToken(u.ID, benchProvider, clerktest.OAuthToken{
			Token: "gho_bench_" + u.ID, Scopes: []string{"repo"}, ExpiresAt: time.Now().Add(providerTokenTTL),
		})
		if err != nil {
			return nil, fmt.Errorf("connect %s: %w", benchProvider, err)
		}
		if tokens[i], err = b.clerk.MintAccessToken(clerktest.TokenRequest{
			Subject: u.ID, Scopes: []string{"profile"}, TTL: time.Hour, Format: clerktest.FormatJWT,
		}); err != nil {
			return nil, fmt.Errorf("mint token: %w", err)
		}
	}
	return tokens, nil
}

// Package mcpclient connects to an OAuth-protected MCP server with the
// official Go SDK, headless: it registers itself dynamically, runs the
// authorization code flow without a browser, and steps up to more scopes when
// a call is refused for insufficient_scope. Tests, the demo and smoke checks
// use it as a real MCP client of the gateway.
//
// Running without a browser works only against an authorization server that
// redirects straight back with a code, such as the Clerk emulator with
// auto-consent (clerktest.WithAutoConsent). Real Clerk shows a sign-in and a
// consent page instead, which Connect reports as an error.
//
// What the SDK (v1.8.0) does, and so what a server must offer it:
//   - On a 401, and on a 403 whose challenge says error="insufficient_scope",
//     it authorizes and retries the request once (mcp.streamableClientConn.Write).
//     A 403 with any other error is retried once without authorizing.
//   - It looks for protected resource metadata at the challenge's
//     resource_metadata URL and at /.well-known/oauth-protected-resource/<path>,
//     where "resource" must equal the MCP URL exactly, then at the root, where
//     it must equal the MCP URL's origin; authorization_servers must not be empty.
//   - It fetches authorization server metadata for authorization_servers[0]
//     (RFC 8414, then OpenID discovery); "issuer" must equal that URL (a
//     trailing slash aside) and code_challenge_methods_supported must not be
//     empty. Every such URL must be https or loopback.
//   - It requests the challenge's scope, else the metadata's scopes_supported,
//     united with every scope granted before (so a step-up keeps them).
//   - It registers a new client at every authorization, the step-up included:
//     the client id changes. Authorization.ClientID reports each one.
//   - With Options.ClientMetadataURL, and an authorization server that
//     advertises client_id_metadata_document_supported, it registers nothing:
//     the URL is the client_id at every authorization. The SDK takes only an
//     https URL with a path.
//   - Connect tries server/discover (2026-07-28) first and falls back to
//     initialize; when authorization fails, each of the two tries it.
package mcpclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/mcpgate/mcpgate/internal/version"
)

// Defaults for Options.
const (
	// DefaultClientName is the client_name registered and the MCP client
	// name reported.
	DefaultClientName = "mcpgate-mcpclient"
	// DefaultRedirectURL is a loopback redirect URI, as native apps use (RFC
	// 8252). Nothing listens there: the client reads the code from the
	// authorization server's redirect itself.
	DefaultRedirectURL = "http://127.0.0.1/callback"
)

// Options configures Connect.
type Options struct {
	// URL is the MCP endpoint, such as http://127.0.0.1:8080/mcp. It is also
	// the resource the tokens are requested for, so it must be exactly the
	// URL the server advertises as its resource.
	URL string

	// Scopes are requested in addition to those the server asks for (its
	// challenge's scope, else its scopes_supported). They are not registered
	// with the client, so that a step-up can still ask for more.
	Scopes []string

	// HTTPClient carries every request: MCP, metadata, registration, token.
	// Nil uses http.DefaultClient. Its CheckRedirect is not used for the
	// authorization request, whose redirects the client reads itself.
	HTTPClient *http.Client

	// ClientName is registered as client_name and reported as the MCP client
	// name; empty means DefaultClientName.
	ClientName string

	// RedirectURL is the registered redirect URI, which must be on loopback
	// for the authorization server to accept http; empty means
	// DefaultRedirectURL.
	RedirectURL string

	// ClientOptions are passed to mcp.NewClient, for handlers such as
	// ProgressNotificationHandler. Nil uses the SDK's defaults.
	ClientOptions *mcp.ClientOptions

	// LoginHint, if set, goes into the authorization request as the OIDC
	// login_hint parameter: the user (an ID or email address) to sign in as.
	// The Clerk emulator signs that user in, so tests can act as different
	// people; real Clerk pre-fills its sign-in form with it.
	LoginHint string

	// ClientMetadataURL, if set, is the URL of a client ID metadata document
	// (CIMD, SEP-991) that describes this client; it must be https with a
	// path. When the authorization server advertises
	// client_id_metadata_document_supported, that URL is the client_id and
	// nothing is registered; otherwise the client falls back to dynamic
	// registration. Authorization.ClientID tells which one was used. The
	// document must list RedirectURL among its redirect_uris.
	ClientMetadataURL string

	// OnAuthorize, if set, is called once per authorization request sent to
	// the authorization server, after it answered, so that callers (tests)
	// can count authorizations and see what each asked for. It may be called
	// from any goroutine, so it must be safe for concurrent use.
	OnAuthorize func(Authorization)
}

// Authorization describes one authorization request.
type Authorization struct {
	// ClientID is the client the request was made for (a new one each time;
	// see the package documentation).
	ClientID string
	// Scopes are the scopes requested.
	Scopes []string
	// Resource is the RFC 8707 resource requested: the MCP URL.
	Resource string
	// Err is why no authorization code came back; nil when one did.
	Err error
}

// Connect connects to the MCP server at opts.URL, authorizing when the server
// asks. The session is initialized and ready; the caller closes it.
func Connect(ctx context.Context, opts Options) (*mcp.ClientSession, error) {
	if u, err := url.Parse(opts.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("mcp url %q is not an absolute http(s) URL", opts.URL)
	}
	if opts.ClientName == "" {
		opts.ClientName = DefaultClientName
	}
	if opts.RedirectURL == "" {
		opts.RedirectURL = DefaultRedirectURL
	}
	redirect, err := url.Parse(opts.RedirectURL)
	if err != nil || !redirect.IsAbs() {
		return nil, fmt.Errorf("redirect url %q is not an absolute URL", opts.RedirectURL)
	}
	f := &fetcher{client: noRedirects(opts.HTTPClient), redirect: redirect, onAuthorize: opts.OnAuthorize, loginHint: opts.LoginHint}
	var cimd *auth.ClientIDMetadataDocumentConfig
	if opts.ClientMetadataURL != "" {
		cimd = &auth.ClientIDMetadataDocumentConfig{URL: opts.ClientMetadataURL}
	}
	handler, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		ClientIDMetadataDocumentConfig: cimd,
		DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{
			Metadata: &oauthex.ClientRegistrationMetadata{
				RedirectURIs: []string{opts.RedirectURL},
				// A public client: nothing to keep secret, PKCE protects the code.
				TokenEndpointAuthMethod: "none",
				GrantTypes:              []string{"authorization_code", "refresh_token"},
				ResponseTypes:           []string{"code"},
				ClientName:              opts.ClientName,
			},
		},
		RedirectURL:              opts.RedirectURL,
		AuthorizationCodeFetcher: f.fetch,
		ScopeFilter:              withScopes(opts.Scopes),
		Client:                   opts.HTTPClient,
	})
	if err != nil {
		return nil, fmt.Errorf("configure oauth: %w", err)
	}
	client := mcp.NewClient(&mcp.Implementation{Name: opts.ClientName, Version: version.Get().Version}, opts.ClientOptions)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:     opts.URL,
		HTTPClient:   opts.HTTPClient,
		OAuthHandler: handler,
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", opts.URL, err)
	}
	return cs, nil
}

// withScopes returns a scope filter that adds extra to the scopes the SDK
// discovered. A filter that replaced them would defeat step-up, which passes
// the challenged scopes through the same filter.
func withScopes(extra []string) func([]string) []string {
	if len(extra) == 0 {
		return nil
	}
	return func(discovered []string) []string {
		out := slices.Clone(discovered)
		for _, s := range extra {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
		return out
	}
}

// noRedirects copies base (or a zero client) so that it returns redirects
// instead of following them: the authorization response is a redirect to a
// URL nobody listens on.
func noRedirects(base *http.Client) *http.Client {
	c := &http.Client{}
	if base != nil {
		c.Transport, c.Jar, c.Timeout = base.Transport, base.Jar, base.Timeout
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

// ErrInteractionRequired means the authorization server showed a page (a
// sign-in or consent screen) instead of redirecting: a person is needed.
var ErrInteractionRequired = errors.New("the authorization server wants a person to sign in or consent")

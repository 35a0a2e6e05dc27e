// Command clerk-emulator runs the Clerk emulator (package clerk/clerktest)
// on its own, for the demo and local development:
//
//	go run ./hack/clerk-emulator --listen 127.0.0.1:8787
//
// It prints one JSON line to stdout with the URLs and keys a gateway or
// controller needs (frontendAPIURL, backendAPIURL, publishableKey,
// secretKey, issuer), then serves until SIGINT or SIGTERM and exits 0.
// Request logs go to stderr and never contain a token or secret.
//
// The Backend API creates users, email addresses, organizations and
// memberships as Clerk's does, and the authorization endpoint signs in the
// user named by login_hint. Flags choose the scope rule for registered
// clients and turn on client ID metadata document clients; see usage below
// and docs/development.md.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/internal/cmdutil"
)

func main() { cmdutil.Main(run, nil) }

// usage is printed by -h before the flags. It shows how to give the instance
// people, since access rules are about users, addresses and organizations.
const usage = `Usage: clerk-emulator [flags]

Runs an emulated Clerk instance: the Frontend API (the OAuth authorization
server and token issuer) on --listen and the Backend API on --backend-listen.
It prints one JSON line with frontendAPIURL, backendAPIURL, publishableKey,
secretKey and issuer, then serves until interrupted.

The instance starts with one user (--user-id, --user-email, verified), who
signs in by default. The Backend API, with the secret key, adds more:

  B=<backendAPIURL>; K=<secretKey>
  curl -s -H "Authorization: Bearer $K" -H 'Content-Type: application/json' \
    -d '{"email_address":["ada@corp.example"]}' $B/users           # id: user_...
  curl -s -H "Authorization: Bearer $K" -H 'Content-Type: application/json' \
    -d '{"name":"Acme","slug":"acme","created_by":"user_..."}' $B/organizations  # creator is org:admin
  curl -s -H "Authorization: Bearer $K" -H 'Content-Type: application/json' \
    -d '{"user_id":"user_...","role":"org:member"}' $B/organizations/org_.../memberships
  curl -s -H "Authorization: Bearer $K" $B/users/user_.../organization_memberships

Addresses made by POST /v1/users are verified; POST /v1/email_addresses with
"verified":false adds an unverified one. PATCH and DELETE
/v1/organizations/{organization_id}/memberships/{user_id} change a role or
remove a member; DELETE /v1/users/{user_id} removes a user. Roles are
org:admin and org:member, with Clerk's system permissions.

To sign in as someone else, add login_hint=<user ID or verified email
address> to the authorization request; a hint naming nobody who can sign in
is redirected back with error=access_denied (login_required with
prompt=none).

A client registered with a scope may request only that scope
(--client-scopes=registered) or any scope the instance knows
(--client-scopes=instance); a refresh never widens a grant. With
--client-metadata-documents, a client_id that is the https URL of a client
metadata document is fetched (at most 5 KiB, no redirects) and may request
any scope the instance knows; --loopback-client-metadata lets that URL be on
this machine, over http too, and --client-metadata-ca-file trusts a local
https server's CA.

Flags:
`

// endpoints is the one line printed on start.
type endpoints struct {
	FrontendAPIURL string `json:"frontendAPIURL"`
	BackendAPIURL  string `json:"backendAPIURL"`
	PublishableKey string `json:"publishableKey"`
	SecretKey      string `json:"secretKey"`
	Issuer         string `json:"issuer"`
}

// run starts the emulator and serves until ctx ends; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := cmdutil.NewFlagSet("clerk-emulator", usage, stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address of the Frontend API (the issuer)")
	backendListen := fs.String("backend-listen", "127.0.0.1:0", "address of the Backend API")
	jwtTokens := fs.Bool("jwt-access-tokens", true, "issue JWT access tokens (false: opaque oat_ tokens)")
	dcr := fs.Bool("dynamic-client-registration", true, "allow dynamic client registration (RFC 7591)")
	userID := fs.String("user-id", clerktest.DefaultUserID, "ID of the user who signs in")
	userEmail := fs.String("user-email", clerktest.DefaultUserEmail, "email address of the user who signs in")
	scopes := fs.String("scopes", "", "comma-separated custom scopes the instance supports, besides the built-in ones")
	ttl := fs.Duration("access-token-ttl", clerktest.DefaultAccessTokenTTL, "lifetime of access tokens")
	autoConsent := fs.Bool("auto-consent", true, "the user consents to every client (false: every authorization is denied)")
	scopeRule := clerktest.ScopesOfRegistration
	fs.Func("client-scopes", "scopes a dynamically registered client may request: registered (its registered scope, RFC 7591; the default) or instance (any scope the instance knows)",
		func(v string) error {
			r, err := clerktest.ParseClientScopeRule(v)
			scopeRule = r
			return err
		})
	cimd := fs.Bool("client-metadata-documents", false, "accept client ID metadata document clients (a client_id that is the URL of its metadata) and advertise them")
	loopbackCIMD := fs.Bool("loopback-client-metadata", false, "fetch client metadata documents from loopback hosts, over http too (for local clients only)")
	cimdCAFile := fs.String("client-metadata-ca-file", "", "PEM file of CA certificates to trust, besides the system's, when fetching client metadata documents over https (e.g. a local test server's)")
	if err := cmdutil.Parse(fs, args); err != nil {
		return cmdutil.UsageExit(stderr, "clerk-emulator", err)
	}

	logger := slog.New(slog.NewTextHandler(stderr, nil))
	opts := []clerktest.Option{
		clerktest.WithJWTAccessTokens(*jwtTokens),
		clerktest.WithDynamicClientRegistration(*dcr),
		clerktest.WithUser(clerktest.User{ID: *userID, Email: *userEmail}),
		clerktest.WithAccessTokenTTL(*ttl),
		clerktest.WithAutoConsent(*autoConsent),
		clerktest.WithClientScopeRule(scopeRule),
		clerktest.WithClientMetadataDocuments(*cimd),
		clerktest.WithLoopbackClientMetadata(*loopbackCIMD),
		clerktest.WithLogger(logger),
	}
	if *scopes != "" {
		opts = append(opts, clerktest.WithScopes(strings.Split(*scopes, ",")...))
	}
	if *cimdCAFile != "" {
		rt, err := trustingTransport(*cimdCAFile)
		if err != nil {
			logger.Error("Failed to read the client metadata CA file", "error", err)
			return 2
		}
		opts = append(opts, clerktest.WithClientMetadataTransport(rt))
	}
	s, err := clerktest.Start(*listen, *backendListen, opts...)
	if err != nil {
		logger.Error("Failed to start the Clerk emulator", "error", err)
		return 1
	}

	err = cmdutil.PrintLine(stdout, endpoints{
		FrontendAPIURL: s.FrontendAPIURL(),
		BackendAPIURL:  s.BackendAPIURL(),
		PublishableKey: s.PublishableKey(),
		SecretKey:      s.SecretKey(),
		Issuer:         s.FrontendAPIURL(),
	})
	if err != nil {
		logger.Error("Failed to write the endpoints", "error", err)
		s.Close()
		return 1
	}
	cmdutil.StopWithin(ctx, logger, 10*time.Second, s.Close)
	return 0
}

// trustingTransport is the default transport trusting the certificates in
// the PEM file too, so that a client metadata document served over https
// by a local server with its own CA can be fetched, as MCP clients that
// insist on an https client_id need.
func trustingTransport(pemFile string) (http.RoundTripper, error) {
	pem, err := os.ReadFile(pemFile)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no PEM certificate in %s", pemFile)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return t, nil
}

package clerk

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/clerk/clerktest/openapicheck"
)

// rawHeader marks requests a test sends by hand, invalid on purpose, so that
// only the emulator's answer to them is checked against the spec.
const rawHeader = "X-Fidelity-Raw"

// undocumentedStatuses are answers Clerk really gives that its Backend API
// spec documents for no operation (401 for a bad secret key, 429 for rate
// limits); their bodies are Clerk's standard error body, checked elsewhere.
var undocumentedStatuses = map[int]bool{http.StatusUnauthorized: true, http.StatusTooManyRequests: true}

// TestFidelityToClerkSpec checks every Backend API exchange between our
// client and the emulator against Clerk's published OpenAPI spec: each
// request our verifier, directory and settings client send, and each response the
// emulator gives, including its error responses.
func TestFidelityToClerkSpec(t *testing.T) {
	t.Parallel()
	checker := openapicheck.Load(t)

	var mu sync.Mutex
	var exchanges []clerktest.Exchange
	emu := clerktest.NewServer(clerktest.WithJWTAccessTokens(false), clerktest.WithObserver(func(e clerktest.Exchange) {
		mu.Lock()
		defer mu.Unlock()
		exchanges = append(exchanges, e)
	}))
	defer emu.Close()
	ctx := context.Background()

	// The verifier: each kind of opaque verdict. Its key set comes from the
	// Frontend API, which the emulator does not report to the observer.
	v, err := NewVerifier(VerifierOptions{
		Issuer:        emu.FrontendAPIURL(),
		BackendAPIURL: emu.BackendAPIURL(),
		SecretKey:     func(context.Context) (string, error) { return emu.SecretKey(), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	jwt, err := emu.MintAccessToken(clerktest.TokenRequest{Subject: clerktest.DefaultUserID, ClientID: "client_a", Format: clerktest.FormatJWT})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, jwt); err != nil {
		t.Fatalf("verify jwt: %v", err)
	}
	for name, req := range map[string]clerktest.TokenRequest{
		"valid":   {Subject: clerktest.DefaultUserID, ClientID: "client_a", Scopes: []string{"email"}},
		"expired": {Subject: clerktest.DefaultUserID, ClientID: "client_a", TTL: -time.Minute},
		"revoked": {Subject: clerktest.DefaultUserID, ClientID: "client_a"},
	} {
		token, err := emu.MintAccessToken(req)
		if err != nil {
			t.Fatal(err)
		}
		if name == "revoked" {
			if err := emu.RevokeAccessToken(token); err != nil {
				t.Fatal(err)
			}
		}
		_, err = v.Verify(ctx, token)
		var invalid *InvalidTokenError
		if (name == "valid") != (err == nil) || (err != nil && !errors.As(err, &invalid)) {
			t.Errorf("%s opaque token: %v", name, err)
		}
	}
	if _, err := v.Verify(ctx, "oat_"+strings.Repeat("0", 32)); err == nil {
		t.Error("an unknown opaque token was accepted")
	}

	// The settings client.
	settings := NewSettingsClient(emu.BackendAPIURL(), emu.SecretKey(), nil)
	if _, err := settings.Get(ctx); err != nil {
		t.Fatal(err)
	}
	on, off, scopes := true, false, []string{"profile", "email", "openid"}
	for _, p := range []OAuthApplicationSettingsPatch{
		{DynamicOAuthClientRegistration: &on, OAuthJWTAccessTokens: &off},
		{ClientIDMetadataDocumentsAdvertised: &on, ClientIDMetadataDocumentsOnlyAllowPreRegisteredClients: &off, ClientIDMetadataDocumentsBlockImplicitlyAllowedClients: &on},
		{DefaultScopes: &scopes},
	} {
		if _, err := settings.Patch(ctx, p); err != nil {
			t.Fatalf("patch %+v: %v", p, err)
		}
	}

	// The directory: a user with verified and unverified addresses and two
	// memberships, and a user Clerk does not know. (One page: a second one
	// differs only in offset, and validating a hundred memberships is slow.)
	dir, err := NewDirectory(DirectoryOptions{
		BackendAPIURL: emu.BackendAPIURL(),
		SecretKey:     func(context.Context) (string, error) { return emu.SecretKey(), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	person, err := emu.CreateUser(clerktest.UserParams{Emails: []string{"ada@example.com"}, UnverifiedEmails: []string{"ada@unverified.example"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := emu.AddEmailAddress(person.ID, "ada@pending.example", false); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := emu.CreateOrganization(fmt.Sprintf("Fidelity %d", i), fmt.Sprintf("fidelity-%d", i), person.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := dir.User(ctx, person.ID); err != nil {
		t.Fatalf("directory user: %v", err)
	}
	if ms, err := dir.Memberships(ctx, person.ID); err != nil || len(ms) != 2 {
		t.Fatalf("directory memberships: %d, %v", len(ms), err)
	}
	if _, err := dir.Memberships(ctx, "user_2fidelityUnknown000000000"); err != nil {
		t.Fatalf("memberships of an unknown user: %v", err)
	}
	if _, err := dir.User(ctx, "user_2fidelityUnknown000000000"); !errors.Is(err, ErrUserNotFound) {
		t.Fatalf("unknown user: %v", err)
	}

	// The directory's OAuth token lookups: a token with an expiry (set
	// through the emulator-only route, which is not Clerk's and is left out
	// below), one without, none, and a user Clerk does not know.
	tokenRoute := "/emulator/users/" + person.ID + "/oauth_access_tokens/oauth_github"
	if status := rawStatus(t, ctx, emu, http.MethodPost, tokenRoute, `{"token":"gho_fidelity","scopes":["repo"],"expires_in_seconds":3600}`); status != http.StatusOK {
		t.Fatalf("emulator-only route: %d", status)
	}
	if tok, err := dir.OAuthToken(ctx, person.ID, "oauth_github"); err != nil || tok.Token != "gho_fidelity" || tok.ExpiresAt.IsZero() {
		t.Fatalf("directory oauth token: %+v, %v", tok.ExpiresAt, err)
	}
	if err := emu.SetOAuthToken(person.ID, "oauth_google", clerktest.OAuthToken{Token: "ya29.fidelity"}); err != nil {
		t.Fatal(err)
	}
	if tok, err := dir.OAuthToken(ctx, person.ID, "oauth_google"); err != nil || !tok.ExpiresAt.IsZero() {
		t.Fatalf("directory oauth token without expiry: %+v, %v", tok.ExpiresAt, err)
	}
	if _, err := dir.OAuthToken(ctx, person.ID, "oauth_gitlab"); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("not connected: %v", err)
	}
	if _, err := dir.OAuthToken(ctx, "user_2fidelityNoTokens0000000", "oauth_github"); !errors.Is(err, ErrUserNotFound) {
		t.Fatalf("oauth token of an unknown user: %v", err)
	}

	// The emulator's error answers to requests our client never sends.
	raw := func(method, path, body string) { rawStatus(t, ctx, emu, method, path, body) }
	raw(http.MethodPatch, "/instance/oauth_application_settings", `{"unknown_field": true}`)
	raw(http.MethodPost, "/oauth_applications/access_tokens/verify", `{"access_token": 42}`)
	raw(http.MethodPost, "/oauth_applications/access_tokens/verify", `{}`)

	mu.Lock()
	defer mu.Unlock()
	// userPath finds a user ID in a Backend API path, to name the endpoint.
	userPath := regexp.MustCompile(`/users/[^/]+`)
	providerPath := regexp.MustCompile(`/oauth_access_tokens/[^/]+`)
	seen := map[string]int{}
	for _, e := range exchanges {
		if clerktest.IsEmulatorOnly(e.Request.URL.Path) {
			continue // the emulator's own routes: Clerk's spec has no word on them
		}
		endpoint := e.Request.Method + " " + providerPath.ReplaceAllString(
			userPath.ReplaceAllString(e.Request.URL.Path, "/users/{user_id}"), "/oauth_access_tokens/{provider}")
		seen[endpoint+" "+http.StatusText(e.Status)]++
		if e.Request.Header.Get(rawHeader) == "" {
			if err := checker.ValidateRequest(e.Request, e.RequestBody); err != nil {
				t.Errorf("our client's request does not conform: %v", err)
			}
		}
		if undocumentedStatuses[e.Status] {
			continue
		}
		if err := checker.ValidateResponse(e.Request, e.Status, e.Header, e.ResponseBody); err != nil {
			t.Errorf("the emulator's response does not conform: %v", err)
		}
	}
	for _, want := range []string{
		"POST /v1/oauth_applications/access_tokens/verify OK",
		"POST /v1/oauth_applications/access_tokens/verify Not Found",
		"POST /v1/oauth_applications/access_tokens/verify Bad Request",
		"GET /v1/instance/oauth_application_settings OK",
		"PATCH /v1/instance/oauth_application_settings OK",
		"PATCH /v1/instance/oauth_application_settings Unprocessable Entity",
		"GET /v1/users/{user_id} OK",
		"GET /v1/users/{user_id} Not Found",
		"GET /v1/users/{user_id}/organization_memberships OK",
		"GET /v1/users/{user_id}/oauth_access_tokens/{provider} OK",
		"GET /v1/users/{user_id}/oauth_access_tokens/{provider} Not Found",
	} {
		if seen[want] == 0 {
			t.Errorf("no exchange %q was checked; saw %v", want, seen)
		}
	}
}

// rawStatus sends a request by hand with the secret key, marked so that only
// the emulator's answer is checked, and returns the status.
func rawStatus(t *testing.T, ctx context.Context, emu *clerktest.Server, method, path, body string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, emu.BackendAPIURL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+emu.SecretKey())
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(rawHeader, "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

package clerktest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clerk/clerk-sdk-go/v2"
	"github.com/clerk/clerk-sdk-go/v2/user"

	"github.com/mcpgate/mcpgate/clerk/clerktest/openapicheck"
)

const epOAuthTokens = "GET /v1/users/{user_id}/oauth_access_tokens/{provider}"

// backendCall sends a Backend API request with the secret key (or none,
// when key is empty).
func backendCall(t *testing.T, s *Server, key, method, path, body string) response {
	t.Helper()
	h := http.Header{}
	if key != "" {
		h.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		h.Set("Content-Type", "application/json")
	}
	return do(t, method, s.BackendAPIURL()+path, h, body)
}

// tokenItems decodes the spec's array answer.
func tokenItems(t *testing.T, r response) []map[string]any {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var items []map[string]any
	if err := json.Unmarshal(r.body, &items); err != nil {
		t.Fatalf("answer is not an array: %v\n%s", err, r.body)
	}
	return items
}

func TestOAuthTokens_Get(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := newTestServer(t, WithClock(clock.Now))
	key := s.SecretKey()
	path := "/users/" + DefaultUserID + "/oauth_access_tokens/oauth_github"

	if items := tokenItems(t, backendCall(t, s, key, http.MethodGet, path, "")); len(items) != 0 {
		t.Fatalf("before any connection: %v", items)
	}
	if r := backendCall(t, s, key, http.MethodGet, "/users/user_nobody/oauth_access_tokens/oauth_github", ""); r.status != http.StatusNotFound ||
		!strings.Contains(string(r.body), "resource_not_found") {
		t.Fatalf("unknown user: %d %s", r.status, r.body)
	}

	exp := clock.Now().Add(time.Hour)
	if err := s.SetOAuthToken(DefaultUserID, "oauth_github", OAuthToken{Token: "gho_first", Scopes: []string{"repo", "read:org"}, ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	items := tokenItems(t, backendCall(t, s, key, http.MethodGet, path, ""))
	if len(items) != 1 {
		t.Fatalf("items = %v", items)
	}
	it := items[0]
	if it["object"] != "oauth_access_token" || it["token"] != "gho_first" || it["provider"] != "oauth_github" ||
		it["expires_at"] != float64(exp.Unix()) || !strings.HasPrefix(it["external_account_id"].(string), "eac_") ||
		it["provider_user_id"] == "" || it["label"] != nil || len(it["scopes"].([]any)) != 2 {
		t.Fatalf("item = %v", it)
	}
	eac := it["external_account_id"]

	// A new token keeps the account; no expiry is null.
	if err := s.SetOAuthToken(DefaultUserID, "oauth_github", OAuthToken{Token: "gho_second"}); err != nil {
		t.Fatal(err)
	}
	it = tokenItems(t, backendCall(t, s, key, http.MethodGet, path, ""))[0]
	if it["token"] != "gho_second" || it["external_account_id"] != eac || it["expires_at"] != nil {
		t.Fatalf("after SetOAuthToken again: %v", it)
	}
	if items := tokenItems(t, backendCall(t, s, key, http.MethodGet, "/users/"+DefaultUserID+"/oauth_access_tokens/oauth_google", "")); len(items) != 0 {
		t.Fatalf("another provider: %v", items)
	}

	// Two accounts: oldest first, a window with limit and offset, and the
	// envelope clerk-sdk-go asks for with paginated=true.
	if err := s.AddOAuthToken(DefaultUserID, "oauth_github", OAuthToken{Token: "gho_work", Label: "work"}); err != nil {
		t.Fatal(err)
	}
	items = tokenItems(t, backendCall(t, s, key, http.MethodGet, path, ""))
	if len(items) != 2 || items[0]["token"] != "gho_second" || items[1]["token"] != "gho_work" || items[1]["label"] != "work" {
		t.Fatalf("two accounts: %v", items)
	}
	if items := tokenItems(t, backendCall(t, s, key, http.MethodGet, path+"?limit=1&offset=1", "")); len(items) != 1 || items[0]["token"] != "gho_work" {
		t.Fatalf("window: %v", items)
	}
	page := backendCall(t, s, key, http.MethodGet, path+"?paginated=true&limit=1", "").json(t)
	if page["total_count"] != float64(2) || len(page["data"].([]any)) != 1 {
		t.Fatalf("paginated: %v", page)
	}
	if r := backendCall(t, s, key, http.MethodGet, path+"?limit=0", ""); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("limit=0: %d", r.status)
	}
	if r := backendCall(t, s, "", http.MethodGet, path, ""); r.status != http.StatusUnauthorized {
		t.Fatalf("without the secret key: %d", r.status)
	}
	if n := s.Calls(epOAuthTokens); n != 10 {
		t.Errorf("Calls(%q) = %d, want 10", epOAuthTokens, n)
	}
	if n := s.Calls("GET /v1/users/" + DefaultUserID + "/oauth_access_tokens/oauth_github"); n != 8 {
		t.Errorf("concrete path calls = %d, want 8", n)
	}

	// Disconnecting, and deleting the user, empty the answer.
	if err := s.RemoveOAuthToken(DefaultUserID, "oauth_github"); err != nil {
		t.Fatal(err)
	}
	if items := tokenItems(t, backendCall(t, s, key, http.MethodGet, path, "")); len(items) != 0 {
		t.Fatalf("after RemoveOAuthToken: %v", items)
	}
	u, err := s.CreateUser(UserParams{ID: "user_gone"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetOAuthToken(u.ID, "oauth_github", OAuthToken{Token: "gho_gone"}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(UserParams{ID: "user_gone"}); err != nil {
		t.Fatal(err)
	}
	if items := tokenItems(t, backendCall(t, s, key, http.MethodGet, "/users/user_gone/oauth_access_tokens/oauth_github", "")); len(items) != 0 {
		t.Fatalf("a deleted user's token came back: %v", items)
	}
}

func TestOAuthTokens_GoAPIRefusals(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	for name, c := range map[string]struct {
		user, provider string
		token          OAuthToken
	}{
		"unknown user":   {"user_nobody", "oauth_github", OAuthToken{Token: "x"}},
		"empty token":    {DefaultUserID, "oauth_github", OAuthToken{}},
		"no oauth_":      {DefaultUserID, "github", OAuthToken{Token: "x"}},
		"path in it":     {DefaultUserID, "oauth_github/../x", OAuthToken{Token: "x"}},
		"upper case key": {DefaultUserID, "oauth_GitHub", OAuthToken{Token: "x"}},
	} {
		if err := s.SetOAuthToken(c.user, c.provider, c.token); err == nil {
			t.Errorf("%s: SetOAuthToken succeeded", name)
		}
	}
	if err := s.RemoveOAuthToken("user_nobody", "oauth_github"); err == nil {
		t.Error("RemoveOAuthToken of an unknown user succeeded")
	}
	if err := s.RemoveOAuthToken(DefaultUserID, "oauth_github"); err != nil {
		t.Errorf("RemoveOAuthToken without a connection: %v", err)
	}
}

// TestOAuthTokens_EmulatorRoute sets and removes tokens through the
// emulator-only route, as the demo and out-of-process tests do.
func TestOAuthTokens_EmulatorRoute(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := newTestServer(t, WithClock(clock.Now))
	key := s.SecretKey()
	set := "/emulator/users/" + DefaultUserID + "/oauth_access_tokens/oauth_github"

	r := backendCall(t, s, key, http.MethodPost, set, `{"token":"gho_route","scopes":["repo"],"expires_in_seconds":3600}`)
	if r.status != http.StatusOK {
		t.Fatalf("set: %d %s", r.status, r.body)
	}
	if got := r.json(t); got["token"] != "gho_route" || got["expires_at"] != float64(clock.Now().Add(time.Hour).Unix()) {
		t.Fatalf("set answered %v", got)
	}
	items := tokenItems(t, backendCall(t, s, key, http.MethodGet, "/users/"+DefaultUserID+"/oauth_access_tokens/oauth_github", ""))
	if len(items) != 1 || items[0]["token"] != "gho_route" || !slices.Equal(items[0]["scopes"].([]any), []any{"repo"}) {
		t.Fatalf("GET after set: %v", items)
	}
	r = backendCall(t, s, key, http.MethodPost, set, `{"token":"gho_forever"}`)
	if r.status != http.StatusOK || r.json(t)["expires_at"] != nil {
		t.Fatalf("set without expiry: %d %s", r.status, r.body)
	}

	for name, c := range map[string]struct {
		key, path, body string
		status          int
	}{
		"no secret key":   {"", set, `{"token":"x"}`, http.StatusUnauthorized},
		"wrong key":       {"sk_test_wrong", set, `{"token":"x"}`, http.StatusUnauthorized},
		"unknown user":    {key, "/emulator/users/user_nobody/oauth_access_tokens/oauth_github", `{"token":"x"}`, http.StatusNotFound},
		"bad provider":    {key, "/emulator/users/" + DefaultUserID + "/oauth_access_tokens/github", `{"token":"x"}`, http.StatusUnprocessableEntity},
		"no token":        {key, set, `{"scopes":["repo"]}`, http.StatusUnprocessableEntity},
		"unknown field":   {key, set, `{"token":"x","refresh_token":"y"}`, http.StatusUnprocessableEntity},
		"wrong type":      {key, set, `{"token":"x","expires_in_seconds":"soon"}`, http.StatusUnprocessableEntity},
		"not json object": {key, set, `["x"]`, http.StatusUnprocessableEntity},
	} {
		if r := backendCall(t, s, c.key, http.MethodPost, c.path, c.body); r.status != c.status {
			t.Errorf("%s: %d %s, want %d", name, r.status, r.body, c.status)
		}
	}

	if r := backendCall(t, s, key, http.MethodDelete, set, ""); r.status != http.StatusOK {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if items := tokenItems(t, backendCall(t, s, key, http.MethodGet, "/users/"+DefaultUserID+"/oauth_access_tokens/oauth_github", "")); len(items) != 0 {
		t.Fatalf("GET after delete: %v", items)
	}
	if !IsEmulatorOnly("/v1"+set) || IsEmulatorOnly("/v1/users/"+DefaultUserID+"/oauth_access_tokens/oauth_github") {
		t.Error("IsEmulatorOnly tells the routes apart wrongly")
	}
}

// TestOAuthTokens_Fault checks that the GET route is faulted and counted by
// its pattern, like the spec's other routes.
func TestOAuthTokens_Fault(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	s.SetFault(epOAuthTokens, Fault{Status: http.StatusTooManyRequests, RetryAfter: 3 * time.Second})
	r := backendCall(t, s, s.SecretKey(), http.MethodGet, "/users/"+DefaultUserID+"/oauth_access_tokens/oauth_github", "")
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "3" {
		t.Fatalf("faulted: %d %v", r.status, r.header)
	}
	if s.Calls(epOAuthTokens) != 1 {
		t.Fatalf("calls = %d", s.Calls(epOAuthTokens))
	}
}

// TestOAuthTokensFidelityToClerkSpec checks the GET route's answers (a
// token with and without expiry, several accounts, none, an unknown user,
// a bad limit) against Clerk's spec. The paginated=true envelope is not in
// the spec, which describes only the array; the emulator-only routes are not
// Clerk's: both are left out explicitly.
func TestOAuthTokensFidelityToClerkSpec(t *testing.T) {
	t.Parallel()
	checker := openapicheck.Load(t)
	s, exchanges := recordExchanges(t)
	key := s.SecretKey()
	path := "/users/" + DefaultUserID + "/oauth_access_tokens/oauth_github"

	backendCall(t, s, key, http.MethodGet, path, "")
	backendCall(t, s, key, http.MethodPost, "/emulator"+path, `{"token":"gho_a","scopes":["repo"],"expires_in_seconds":60}`)
	backendCall(t, s, key, http.MethodGet, path, "")
	if err := s.AddOAuthToken(DefaultUserID, "oauth_github", OAuthToken{Token: "gho_b", Label: "second"}); err != nil {
		t.Fatal(err)
	}
	backendCall(t, s, key, http.MethodGet, path+"?limit=5&offset=0", "")
	backendCall(t, s, key, http.MethodGet, path+"?paginated=false", "")
	backendCall(t, s, key, http.MethodGet, path+"?paginated=true", "")
	backendCall(t, s, key, http.MethodGet, "/users/user_nobody/oauth_access_tokens/oauth_github", "")
	backendCall(t, s, key, http.MethodGet, path+"?limit=501", "")

	statuses := map[int]int{}
	for _, e := range exchanges() {
		if IsEmulatorOnly(e.Request.URL.Path) || isTrue(e.Request.URL.Query().Get("paginated")) {
			continue
		}
		statuses[e.Status]++
		if e.Status != http.StatusUnprocessableEntity { // limit=501 breaks the request schema on purpose
			if err := checker.ValidateRequest(e.Request, e.RequestBody); err != nil {
				t.Errorf("%s: request: %v", e.Request.URL.RequestURI(), err)
			}
		}
		if err := checker.ValidateResponse(e.Request, e.Status, e.Header, e.ResponseBody); err != nil {
			t.Errorf("%s: %v\n%s", e.Request.URL.RequestURI(), err, e.ResponseBody)
		}
	}
	if statuses[http.StatusOK] != 4 || statuses[http.StatusNotFound] != 1 || statuses[http.StatusUnprocessableEntity] != 1 {
		t.Errorf("checked answers by status: %v", statuses)
	}
}

// TestOAuthTokensWithClerkSDK checks that clerk-sdk-go's typed call, which
// sends paginated=true, reads the emulator's envelope. The SDK's
// OAuthAccessToken has no expires_at field, so it cannot see the expiry.
func TestOAuthTokensWithClerkSDK(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	url, key := s.BackendAPIURL(), s.SecretKey()
	users := user.NewClient(&clerk.ClientConfig{BackendConfig: clerk.BackendConfig{URL: &url, Key: &key, HTTPClient: &http.Client{}}})
	ctx := context.Background()
	list, err := users.ListOAuthAccessTokens(ctx, &user.ListOAuthAccessTokensParams{ID: DefaultUserID, Provider: "oauth_github"})
	if err != nil || list.TotalCount != 0 || len(list.OAuthAccessTokens) != 0 {
		t.Fatalf("before connecting: %+v, %v", list, err)
	}
	if err := s.SetOAuthToken(DefaultUserID, "oauth_github", OAuthToken{Token: "gho_sdk", Scopes: []string{"repo"}}); err != nil {
		t.Fatal(err)
	}
	list, err = users.ListOAuthAccessTokens(ctx, &user.ListOAuthAccessTokensParams{ID: DefaultUserID, Provider: "oauth_github"})
	if err != nil || list.TotalCount != 1 || len(list.OAuthAccessTokens) != 1 {
		t.Fatalf("after connecting: %+v, %v", list, err)
	}
	if got := list.OAuthAccessTokens[0]; got.Token != "gho_sdk" || got.Provider != "oauth_github" || !slices.Equal(got.Scopes, []string{"repo"}) ||
		!strings.HasPrefix(got.ExternalAccountID, "eac_") || got.Object != "oauth_access_token" {
		t.Fatalf("token = %+v", got)
	}
	_, err = users.ListOAuthAccessTokens(ctx, &user.ListOAuthAccessTokensParams{ID: "user_nobody", Provider: "oauth_github"})
	var clerkErr *clerk.APIErrorResponse
	if !errors.As(err, &clerkErr) || clerkErr.HTTPStatusCode != http.StatusNotFound {
		t.Fatalf("unknown user: %v", err)
	}
}

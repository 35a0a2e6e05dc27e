package clerktest

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
)

// emulatorRoutePrefix starts the Backend API paths that only the emulator
// serves. Clerk has no such routes, so spec checks must leave them out.
const emulatorRoutePrefix = "/v1/emulator/"

// IsEmulatorOnly reports whether a Backend API request path is one of the
// emulator's own routes (under <Backend API base>/emulator/), which Clerk's
// spec does not describe: fidelity checks skip them.
func IsEmulatorOnly(path string) bool { return strings.HasPrefix(path, emulatorRoutePrefix) }

// emulatorProviderPattern is what the emulator-only routes accept as a
// provider: Clerk's provider IDs, "oauth_" and a lowercase key (oauth_github,
// oauth_google, oauth_custom_acme).
var emulatorProviderPattern = regexp.MustCompile(`^oauth_[a-z0-9_]{1,64}$`)

// OAuthToken is a user's access token at an OAuth provider, as Clerk holds
// it after a social sign-in: what GET
// /v1/users/{user_id}/oauth_access_tokens/{provider} returns.
type OAuthToken struct {
	// Token is the access token at the provider; it must not be empty.
	Token string
	// Scopes are the scopes the provider granted.
	Scopes []string
	// ExpiresAt is when the token expires; zero for no expiry (expires_at
	// null). A time in the past makes an expired token, which the emulator
	// returns as it is: it models no refresh tokens, so it cannot refresh
	// one as Clerk does.
	ExpiresAt time.Time
	// ProviderUserID is the user's ID at the provider; empty generates one.
	ProviderUserID string
	// Label is the account's label; empty renders as null.
	Label string
}

// oauthKey names one user's connection to one provider.
type oauthKey struct{ userID, provider string }

// oauthAccount is one connected account (an external account) and its token.
type oauthAccount struct {
	externalID string // "eac_..."
	token      OAuthToken
}

// oauthTokenResponse is one item of the spec's OAuthAccessToken (an array;
// additionalProperties: false). expires_at is unix seconds or null.
type oauthTokenResponse struct {
	Object            string         `json:"object"`
	ExternalAccountID string         `json:"external_account_id"`
	ProviderUserID    string         `json:"provider_user_id"`
	Token             string         `json:"token"`
	ExpiresAt         *int64         `json:"expires_at"`
	Provider          string         `json:"provider"`
	PublicMetadata    map[string]any `json:"public_metadata"`
	Label             *string        `json:"label"`
	Scopes            []string       `json:"scopes"`
}

// oauthTokenPage is the answer to ?paginated=true, which the spec declares
// as a parameter without describing its answer; clerk-sdk-go's
// user.Client.ListOAuthAccessTokens sends it and reads {data, total_count},
// Clerk's list envelope.
type oauthTokenPage struct {
	Data       []oauthTokenResponse `json:"data"`
	TotalCount int64                `json:"total_count"`
}

// oauthTokenRoutes are the spec's GET route and the emulator-only routes
// that stand in for a social sign-in.
func (s *Server) oauthTokenRoutes() routes {
	return routes{
		"GET /v1/users/{user_id}/oauth_access_tokens/{provider}":             s.handleGetOAuthTokens,
		"POST /v1/emulator/users/{user_id}/oauth_access_tokens/{provider}":   s.handleSetOAuthToken,
		"DELETE /v1/emulator/users/{user_id}/oauth_access_tokens/{provider}": s.handleRemoveOAuthToken,
	}
}

func oauthTokenJSON(provider string, a *oauthAccount) oauthTokenResponse {
	out := oauthTokenResponse{
		Object: "oauth_access_token", ExternalAccountID: a.externalID, ProviderUserID: a.token.ProviderUserID,
		Token: a.token.Token, Provider: provider, PublicMetadata: map[string]any{},
		Scopes: append([]string{}, a.token.Scopes...),
	}
	if !a.token.ExpiresAt.IsZero() {
		exp := a.token.ExpiresAt.Unix()
		out.ExpiresAt = &exp
	}
	if a.token.Label != "" {
		label := a.token.Label
		out.Label = &label
	}
	return out
}

// handleGetOAuthTokens is GET /v1/users/{user_id}/oauth_access_tokens/{provider}:
// the user's accounts at the provider, oldest first, in a window of
// limit from offset: an array, as the spec says, or with paginated=true
// the {data, total_count} envelope clerk-sdk-go expects. A user without
// the connection gets an empty answer; an unknown user 404.
func (s *Server) handleGetOAuthTokens(w http.ResponseWriter, r *http.Request) {
	limit, offset, err := listWindow(r)
	if err != nil {
		err.write(w)
		return
	}
	userID, provider := r.PathValue("user_id"), r.PathValue("provider")
	paginated := isTrue(r.URL.Query().Get("paginated"))
	s.answer(w, func() (any, *apiError) {
		if _, ok := s.people.users[userID]; !ok {
			return nil, errNotFound("No user was found with id " + userID)
		}
		accounts := s.people.oauth[oauthKey{userID, provider}]
		items := []oauthTokenResponse{}
		for _, a := range accounts[min(offset, len(accounts)):min(offset+limit, len(accounts))] {
			items = append(items, oauthTokenJSON(provider, a))
		}
		if paginated {
			return oauthTokenPage{Data: items, TotalCount: int64(len(accounts))}, nil
		}
		return items, nil
	})
}

// handleSetOAuthToken is the emulator-only
// POST /v1/emulator/users/{user_id}/oauth_access_tokens/{provider}, body
// {"token", "scopes", "expires_in_seconds"} (the last optional: no expiry;
// zero or negative: already expired). It answers with the account as the
// GET route shows it.
func (s *Server) handleSetOAuthToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Token            string   `json:"token"`
		Scopes           []string `json:"scopes"`
		ExpiresInSeconds *int64   `json:"expires_in_seconds"`
	}
	if err := decodeBody(r, []string{"token", "scopes", "expires_in_seconds"}, &req); err != nil {
		err.write(w)
		return
	}
	t := OAuthToken{Token: req.Token, Scopes: req.Scopes}
	if req.ExpiresInSeconds != nil {
		t.ExpiresAt = s.now().Add(time.Duration(*req.ExpiresInSeconds) * time.Second)
	}
	userID, provider := r.PathValue("user_id"), r.PathValue("provider")
	s.answer(w, func() (any, *apiError) {
		a, err := s.setOAuthTokenLocked(userID, provider, t)
		if err != nil {
			return nil, err
		}
		return oauthTokenJSON(provider, a), nil
	})
}

// handleRemoveOAuthToken is the emulator-only
// DELETE /v1/emulator/users/{user_id}/oauth_access_tokens/{provider}: the
// user disconnects every account at the provider.
func (s *Server) handleRemoveOAuthToken(w http.ResponseWriter, r *http.Request) {
	userID, provider := r.PathValue("user_id"), r.PathValue("provider")
	s.answer(w, func() (any, *apiError) {
		if err := s.removeOAuthTokenLocked(userID, provider); err != nil {
			return nil, err
		}
		return deletedObject{Object: "oauth_access_token", Deleted: true}, nil
	})
}

// checkOAuthTokenLocked refuses an unknown user, a provider that is not
// Clerk's shape, and an empty token. s.peopleMu must be held.
func (s *Server) checkOAuthTokenLocked(userID, provider string, t *OAuthToken) *apiError {
	if _, ok := s.people.users[userID]; !ok {
		return errNotFound("No user was found with id " + userID)
	}
	if !emulatorProviderPattern.MatchString(provider) {
		return errParam("provider", "form_param_value_invalid", "is invalid", "provider must be oauth_ followed by lowercase letters, digits or underscores.")
	}
	if t != nil && t.Token == "" {
		return errParam("token", "form_param_missing", "is missing", "token must be included.")
	}
	return nil
}

// setOAuthTokenLocked makes t the token of the user's first account at the
// provider (creating it, keeping its IDs, dropping any others), as a new
// sign-in or a refresh would. s.peopleMu must be held.
func (s *Server) setOAuthTokenLocked(userID, provider string, t OAuthToken) (*oauthAccount, *apiError) {
	if err := s.checkOAuthTokenLocked(userID, provider, &t); err != nil {
		return nil, err
	}
	key := oauthKey{userID, provider}
	a := &oauthAccount{externalID: newID("eac_")}
	if old := s.people.oauth[key]; len(old) > 0 {
		a.externalID = old[0].externalID
		if t.ProviderUserID == "" {
			t.ProviderUserID = old[0].token.ProviderUserID
		}
	}
	a.token = cloneOAuthToken(t)
	s.people.setOAuthAccounts(key, []*oauthAccount{a})
	return a, nil
}

// removeOAuthTokenLocked drops every account of the user at the provider.
// s.peopleMu must be held.
func (s *Server) removeOAuthTokenLocked(userID, provider string) *apiError {
	if err := s.checkOAuthTokenLocked(userID, provider, nil); err != nil {
		return err
	}
	delete(s.people.oauth, oauthKey{userID, provider})
	return nil
}

// setOAuthAccounts stores a connection's accounts, making the map on first
// use; IDs at the provider left empty are generated.
func (d *directory) setOAuthAccounts(key oauthKey, accounts []*oauthAccount) {
	if d.oauth == nil {
		d.oauth = map[oauthKey][]*oauthAccount{}
	}
	for _, a := range accounts {
		if a.token.ProviderUserID == "" {
			a.token.ProviderUserID = randomBase62(8)
		}
	}
	d.oauth[key] = accounts
}

// deleteOAuthAccounts drops every connection of a deleted user.
func (d *directory) deleteOAuthAccounts(userID string) {
	for key := range d.oauth {
		if key.userID == userID {
			delete(d.oauth, key)
		}
	}
}

func cloneOAuthToken(t OAuthToken) OAuthToken {
	t.Scopes = slices.Clone(t.Scopes)
	return t
}

// SetOAuthToken gives the user a token at provider (such as "oauth_github"),
// as a social sign-in through that provider would, without a Backend API
// call (nothing is counted or observed). A user already connected keeps the
// account (its external_account_id) with the new token; other accounts at
// the provider are dropped. It fails for an unknown user, a provider not
// of the form oauth_<key>, or an empty token.
func (s *Server) SetOAuthToken(userID, provider string, t OAuthToken) error {
	s.peopleMu.Lock()
	defer s.peopleMu.Unlock()
	if _, err := s.setOAuthTokenLocked(userID, provider, t); err != nil {
		return err
	}
	return nil
}

// AddOAuthToken connects one more account of the user at provider (a second
// GitHub account, say), listed after those already there.
func (s *Server) AddOAuthToken(userID, provider string, t OAuthToken) error {
	s.peopleMu.Lock()
	defer s.peopleMu.Unlock()
	if err := s.checkOAuthTokenLocked(userID, provider, &t); err != nil {
		return err
	}
	key := oauthKey{userID, provider}
	accounts := append(slices.Clone(s.people.oauth[key]), &oauthAccount{externalID: newID("eac_"), token: cloneOAuthToken(t)})
	s.people.setOAuthAccounts(key, accounts)
	return nil
}

// RemoveOAuthToken disconnects the user from provider: GET then answers an
// empty list. Removing a connection the user does not have is no error.
func (s *Server) RemoveOAuthToken(userID, provider string) error {
	s.peopleMu.Lock()
	defer s.peopleMu.Unlock()
	if err := s.removeOAuthTokenLocked(userID, provider); err != nil {
		return err
	}
	return nil
}

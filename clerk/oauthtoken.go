package clerk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	sdk "github.com/clerk/clerk-sdk-go/v2"
)

// How long the Directory trusts what Clerk said about a user's token at a
// provider (an unknown user: the Directory TTL). Clerk refreshes a token it
// holds, on the lookup, once it has expired; these rules keep us from
// handing out one about to expire while costing about one lookup per token
// lifetime.
const (
	// oauthTokenRefetchMargin is how long before its expiry a cached token
	// is looked up again, so that a token Clerk refreshed early replaces it
	// while the old one still has time left.
	oauthTokenRefetchMargin = 30 * time.Second
	// oauthTokenMinLife is the least time a token must have left to be
	// handed out: the upstream call it goes with must finish before it
	// expires. Clerk answering with less is waited out (see tokenAnswerAt).
	oauthTokenMinLife = 5 * time.Second
	// oauthTokenExpiredGrace is how long after a token's expiry Clerk is
	// still expected to refresh it; one that comes back expired for longer
	// cannot be refreshed, and the user must connect again.
	oauthTokenExpiredGrace = time.Minute
	// oauthNotConnectedTTL is how long "not connected" is reused: short, so
	// a user who has just connected the provider does not wait long.
	oauthNotConnectedTTL = 10 * time.Second
	// maxOAuthTokenTTL bounds how long a token without an expiry is reused
	// (the Directory TTL when shorter), so a disconnection in Clerk counts
	// within it.
	maxOAuthTokenTTL = 5 * time.Minute
	// maxProviderKeyLength bounds what follows "oauth_" in a provider ID.
	maxProviderKeyLength = 64
)

// ValidOAuthProvider reports whether p can be a Clerk OAuth provider ID:
// "oauth_" and a lowercase key of letters, digits and underscores (oauth_github,
// oauth_google, oauth_custom_acme). Anything else is refused before it
// reaches a request path, where it could name another resource.
func ValidOAuthProvider(p string) bool {
	key, ok := bytes.CutPrefix([]byte(p), []byte("oauth_"))
	if !ok || len(key) == 0 || len(key) > maxProviderKeyLength {
		return false
	}
	for _, c := range key {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// oauthTokenKey names one user's connection to one provider in the cache.
type oauthTokenKey struct{ userID, provider string }

// tokenAnswer is one cached answer about a connection: a token, an error
// that is an answer (ErrNotConnected, ErrUserNotFound), or, with waiting,
// "Clerk holds a token about to expire; ask again at until".
type tokenAnswer struct {
	tok     OAuthToken
	err     error
	waiting bool
	until   time.Time
}

func (a tokenAnswer) expiry() time.Time { return a.until }

// result hands an answer out at now; Scopes is copied so no caller can
// change the cached token.
func (a tokenAnswer) result(now time.Time) (OAuthToken, error) {
	switch {
	case a.waiting:
		return OAuthToken{}, &UnavailableError{
			RetryAfter: max(a.until.Sub(now), time.Second),
			Err:        errors.New("clerk holds an oauth token about to expire and has not refreshed it yet"),
		}
	case a.err != nil:
		return OAuthToken{}, a.err
	}
	t := a.tok
	t.Scopes = slices.Clone(t.Scopes)
	return t, nil
}

// OAuthToken returns the user's access token at provider (such as
// "oauth_github"), from GET /v1/users/{user_id}/oauth_access_tokens/{provider},
// cached per user and provider by the rules above; concurrent misses share
// one call. Of several accounts at the provider, the first Clerk lists with
// a token is used. Errors: ErrNotConnected (no token, or one Clerk could not
// refresh); ErrUserNotFound; *UnavailableError when Clerk could not be asked,
// refused our key, rate limits us, or holds a token about to expire
// (RetryAfter says when to come back); another error when provider fails
// ValidOAuthProvider. No error quotes a token. It is OAuthTokenOf a subject
// known by its user ID alone, for a Directory over the Backend API.
func (d *Directory) OAuthToken(ctx context.Context, userID, provider string) (OAuthToken, error) {
	return d.OAuthTokenOf(ctx, Subject{UserID: userID}, provider)
}

// OAuthTokenOf is OAuthToken for the subject, asking the Source when the
// Directory has one; its *InvalidTokenError (the Source refused the
// subject's access token) is returned as it is, and not cached.
func (d *Directory) OAuthTokenOf(ctx context.Context, s Subject, provider string) (OAuthToken, error) {
	userID := s.UserID
	if !ValidOAuthProvider(provider) {
		return OAuthToken{}, fmt.Errorf("provider %q is not a clerk oauth provider id", truncate(provider))
	}
	if !isUserID(userID) {
		return OAuthToken{}, fmt.Errorf("user id %q is not a clerk user id: %w", truncate(userID), ErrUserNotFound)
	}
	now := d.opts.Now()
	if u, ok := d.users.get(userID, now); ok && errors.Is(u.err, ErrUserNotFound) {
		return OAuthToken{}, u.err
	}
	key := oauthTokenKey{userID, provider}
	if a, ok := d.tokens.get(key, now); ok {
		return a.result(now)
	}
	if err := d.limit.active(); err != nil {
		return OAuthToken{}, err
	}
	ch := d.tokenFlights.DoChan(userID+"\x00"+provider, func() (any, error) {
		return d.lookupOAuthToken(ctx, s, key)
	})
	a, err := waitFlight[tokenAnswer](ctx, ch)
	if err != nil {
		return OAuthToken{}, err
	}
	return a.result(d.opts.Now())
}

// lookupOAuthToken asks Clerk or the Source, on a context detached from the
// caller's, and caches the answer. It runs as the only flight for key.
func (d *Directory) lookupOAuthToken(ctx context.Context, s Subject, key oauthTokenKey) (tokenAnswer, error) {
	// NOTE: a caller may have missed the cache just before the previous
	// flight for this key filled it; the answer is there now.
	if a, ok := d.tokens.get(key, d.opts.Now()); ok {
		return a, nil
	}
	if err := d.limit.active(); err != nil {
		return tokenAnswer{}, err
	}
	fctx, cancel := detached(ctx)
	defer cancel()
	if d.opts.Source != nil {
		return d.sourceOAuthToken(fctx, s, key)
	}
	items, err := d.fetchOAuthTokens(fctx, key)
	now := d.opts.Now()
	var a tokenAnswer
	switch {
	case errors.Is(err, ErrUserNotFound):
		// NOTE: kept for this provider only, unlike User's 404: whether Clerk
		// also answers 404 for a provider the instance has not enabled is
		// unconfirmed, and that must not make the user unknown to access rules.
		a = tokenAnswer{err: err, until: now.Add(d.opts.TTL)}
	case err != nil:
		return tokenAnswer{}, d.limit.unavailable(err)
	default:
		a = d.tokenAnswerAt(key, items, now)
	}
	d.tokens.put(key, a, now)
	return a, nil
}

// sourceOAuthToken asks the Source and caches its answer by the same rules
// as the Backend API's: the Source's "not connected" and "no such user" are
// answers, a token is trusted by its expiry (tokenAnswerFor).
func (d *Directory) sourceOAuthToken(ctx context.Context, s Subject, key oauthTokenKey) (tokenAnswer, error) {
	tok, err := d.opts.Source.OAuthToken(ctx, s, key.provider)
	now := d.opts.Now()
	var a tokenAnswer
	var ie *InvalidTokenError
	switch {
	case errors.As(err, &ie):
		return tokenAnswer{}, err
	case errors.Is(err, ErrNotConnected):
		a = tokenAnswer{err: err, until: now.Add(oauthNotConnectedTTL)}
	case errors.Is(err, ErrUserNotFound):
		a = tokenAnswer{err: err, until: now.Add(d.opts.TTL)}
	case err != nil:
		return tokenAnswer{}, d.limit.unavailable(err)
	case tok.Token == "":
		a = notConnectedAnswer(key, "no token", now)
	default:
		tok.Scopes = slices.Clone(tok.Scopes)
		a = d.tokenAnswerFor(key, tok, now)
	}
	d.tokens.put(key, a, now)
	return a, nil
}

// notConnectedAnswer is "not connected" for why, reused oauthNotConnectedTTL.
func notConnectedAnswer(key oauthTokenKey, why string, now time.Time) tokenAnswer {
	return tokenAnswer{
		err:   fmt.Errorf("user %s, provider %s: %s: %w", key.userID, key.provider, why, ErrNotConnected),
		until: now.Add(oauthNotConnectedTTL),
	}
}

// tokenAnswerAt judges Clerk's list at now: the first entry for the provider
// with a token, and how long to trust it.
func (d *Directory) tokenAnswerAt(key oauthTokenKey, items []oauthTokenItem, now time.Time) tokenAnswer {
	i := slices.IndexFunc(items, func(it oauthTokenItem) bool {
		return it.Token != "" && (it.Provider == "" || it.Provider == key.provider)
	})
	if i < 0 {
		return notConnectedAnswer(key, "no token", now)
	}
	it := items[i]
	return d.tokenAnswerFor(key, OAuthToken{Token: it.Token, ExpiresAt: expirationTime(it.ExpiresAt), Scopes: slices.Clone(it.Scopes)}, now)
}

// tokenAnswerFor judges a token at now: how long to trust it, or whether to
// wait for Clerk to refresh it.
func (d *Directory) tokenAnswerFor(key oauthTokenKey, tok OAuthToken, now time.Time) tokenAnswer {
	if tok.ExpiresAt.IsZero() {
		return tokenAnswer{tok: tok, until: now.Add(min(d.opts.TTL, maxOAuthTokenTTL))}
	}
	switch left := tok.ExpiresAt.Sub(now); {
	case left > oauthTokenRefetchMargin:
		return tokenAnswer{tok: tok, until: tok.ExpiresAt.Add(-oauthTokenRefetchMargin)}
	case left > oauthTokenMinLife:
		// Clerk still holds the token we are giving back early; use it
		// while it has oauthTokenMinLife left.
		return tokenAnswer{tok: tok, until: tok.ExpiresAt.Add(-oauthTokenMinLife)}
	case left > -oauthTokenExpiredGrace:
		// Clerk refreshes a token once it has expired: ask again then (a
		// second later, for clock skew), once for all callers.
		return tokenAnswer{waiting: true, until: now.Add(max(left, 0) + time.Second)}
	default:
		return notConnectedAnswer(key, "the token expired and clerk did not refresh it", now)
	}
}

// fetchOAuthTokens calls GET /v1/users/{user_id}/oauth_access_tokens/{provider}
// as the spec describes it (an array). clerk-sdk-go's typed call,
// user.Client.ListOAuthAccessTokens, cannot serve here: its OAuthAccessToken
// (v2.4.2) has no expires_at, which the cache needs, and it asks for the
// paginated envelope the spec does not describe. Both path segments were
// checked (isUserID, ValidOAuthProvider), so they cannot change the path.
func (d *Directory) fetchOAuthTokens(ctx context.Context, key oauthTokenKey) ([]oauthTokenItem, error) {
	const op = "get oauth access token"
	secret, err := currentSecretKey(ctx, d.opts.SecretKey)
	if err != nil {
		return nil, err
	}
	req := sdk.NewAPIRequest(http.MethodGet, "/users/"+key.userID+"/oauth_access_tokens/"+key.provider)
	var list oauthTokenList
	if err := d.backend.call(ctx, secret, op, req, &list); err != nil {
		var be *BackendError
		if errors.As(err, &be) && be.StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("%s of %s: %w", op, key.userID, ErrUserNotFound)
		}
		return nil, err
	}
	return list, nil
}

// oauthTokenItem is what we read of one entry of the spec's OAuthAccessToken
// array. expires_at is unix seconds or null (read as expirationTime reads
// Clerk's times, milliseconds tolerated).
type oauthTokenItem struct {
	Token     string   `json:"token"`
	Provider  string   `json:"provider"`
	ExpiresAt *float64 `json:"expires_at"`
	Scopes    []string `json:"scopes"`
}

// oauthTokenList is the answer: the spec's array, or Clerk's list envelope
// ({"data": [...]}) should the answer come in that shape.
type oauthTokenList []oauthTokenItem

// Read satisfies clerk-sdk-go's ResponseReader; nothing of the raw response
// is needed.
func (*oauthTokenList) Read(*sdk.APIResponse) {}

func (l *oauthTokenList) UnmarshalJSON(b []byte) error {
	if b = bytes.TrimSpace(b); len(b) > 0 && b[0] == '{' {
		var page struct {
			Data []oauthTokenItem `json:"data"`
		}
		if err := json.Unmarshal(b, &page); err != nil {
			return errors.New("oauth access tokens: answer is not a list")
		}
		*l = page.Data
		return nil
	}
	var items []oauthTokenItem
	if err := json.Unmarshal(b, &items); err != nil {
		// Not json's message: it could quote part of the answer.
		return errors.New("oauth access tokens: answer is not a list")
	}
	*l = items
	return nil
}

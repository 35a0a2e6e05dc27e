package mcpclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/auth"
)

// maxAuthorizeHops bounds the redirects followed inside the authorization
// server (a sign-in hop, say) before the one back to the client.
const maxAuthorizeHops = 10

// fetcher performs authorization requests the way a browser with a signed-in,
// consenting user would, and picks the code out of the final redirect.
type fetcher struct {
	client      *http.Client // follows no redirects
	redirect    *url.URL
	onAuthorize func(Authorization)
	loginHint   string // added to each authorization request when set
}

// fetch is the SDK's AuthorizationCodeFetcher.
func (f *fetcher) fetch(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
	var a Authorization
	if u, err := url.Parse(args.URL); err == nil {
		q := u.Query()
		a = Authorization{ClientID: q.Get("client_id"), Scopes: strings.Fields(q.Get("scope")), Resource: q.Get("resource")}
	}
	authURL := args.URL
	if f.loginHint != "" {
		u, err := url.Parse(authURL)
		if err != nil {
			return nil, fmt.Errorf("authorization url: %w", err)
		}
		q := u.Query()
		q.Set("login_hint", f.loginHint)
		u.RawQuery = q.Encode()
		authURL = u.String()
	}
	res, err := f.authorize(ctx, authURL)
	if f.onAuthorize != nil {
		a.Err = err
		f.onAuthorize(a)
	}
	return res, err
}

// authorize follows the authorization request to the redirect back to the
// client and returns what it carries. Errors never include the redirect URL,
// which holds the code.
func (f *fetcher) authorize(ctx context.Context, authURL string) (*auth.AuthorizationResult, error) {
	next := authURL
	for range maxAuthorizeHops {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, next, nil)
		if err != nil {
			return nil, fmt.Errorf("authorization request: %w", err)
		}
		resp, err := f.client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("authorization request: %w", err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		if resp.StatusCode < 300 || resp.StatusCode > 399 {
			return nil, describeFailure(resp.StatusCode, body)
		}
		loc, err := resp.Location()
		if err != nil {
			return nil, fmt.Errorf("authorization request: redirect (%d) without a usable Location: %w", resp.StatusCode, err)
		}
		if f.isRedirectURI(loc) {
			return authorizationResult(loc.Query())
		}
		next = loc.String()
	}
	return nil, fmt.Errorf("authorization request: more than %d redirects without reaching the redirect URI", maxAuthorizeHops)
}

// isRedirectURI reports whether u is the client's redirect URI, query aside.
func (f *fetcher) isRedirectURI(u *url.URL) bool {
	return strings.EqualFold(u.Scheme, f.redirect.Scheme) && strings.EqualFold(u.Host, f.redirect.Host) &&
		u.EscapedPath() == f.redirect.EscapedPath()
}

// authorizationResult reads the authorization response (RFC 6749 4.1.2): a
// code, or an error with a description.
func authorizationResult(q url.Values) (*auth.AuthorizationResult, error) {
	if code := q.Get("error"); code != "" {
		return nil, fmt.Errorf("authorization refused: %s: %s", code, q.Get("error_description"))
	}
	if q.Get("code") == "" {
		return nil, fmt.Errorf("authorization response has neither code nor error")
	}
	return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
}

// describeFailure explains an answer that is not a redirect: an OAuth error
// the server could not send back through the redirect (an unknown client, a
// bad redirect_uri), or a page meant for a person.
func describeFailure(status int, body []byte) error {
	var oerr struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &oerr) == nil && oerr.Error != "" {
		return fmt.Errorf("authorization request: status %d: %s: %s", status, oerr.Error, oerr.Description)
	}
	if status == http.StatusOK {
		return ErrInteractionRequired
	}
	return fmt.Errorf("authorization request: unexpected status %d", status)
}

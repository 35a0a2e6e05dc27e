package clerktest

import (
	"fmt"
	"html"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// authCodeTTL is how long an authorization code can be exchanged (the spec:
// "must be exchanged within" 10 minutes).
const authCodeTTL = 10 * time.Minute

// isCodeChallenge reports whether s is an S256 code challenge: the
// unpadded base64url of 32 bytes.
func isCodeChallenge(s string) bool {
	return len(s) == 43 && strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == ""
}

// isCodeVerifier reports whether s is a PKCE code verifier (RFC 7636 4.1):
// 43 to 128 unreserved characters.
func isCodeVerifier(s string) bool {
	return len(s) >= 43 && len(s) <= 128 && strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~") == ""
}

// authCode is an issued authorization code and what it grants.
type authCode struct {
	subject       string // the user who signed in
	clientID      string
	redirectURI   string
	redirectGiven bool // redirect_uri was in the request, so the token request must repeat it
	challenge     string
	nonce         string
	sid           string
	scopes        []string
	resources     []string
	authTime      time.Time
	expires       time.Time
	used          bool
	family        string
}

// authorizeRequest carries what the authorization endpoint needs to answer
// with a redirect.
type authorizeRequest struct {
	redirectURI string
	state       string
	formPost    bool
	post        bool // the request itself was a POST: redirect with 303
}

// handleAuthorize is the authorization endpoint. Problems with the client or
// the redirect URI are answered directly (the redirect cannot be trusted);
// everything else redirects back with error and state (RFC 6749 4.1.2.1).
// The user named by login_hint (a user ID, or a verified or reserved email
// address), else the default user, signs in and consents at once unless
// WithAutoConsent(false).
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "the request parameters could not be parsed")
		return
	}
	q := r.Form
	for _, p := range []string{"client_id", "redirect_uri"} {
		if len(q[p]) > 1 {
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", p+" must not be repeated")
			return
		}
	}
	clientID := q.Get("client_id")
	if clientID == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "client_id is required")
		return
	}
	c, oerr := s.authorizeClient(r.Context(), clientID)
	if oerr != nil {
		oerr.write(w)
		return
	}
	ar := authorizeRequest{redirectURI: q.Get("redirect_uri"), state: q.Get("state"), post: r.Method == http.MethodPost}
	redirectGiven := ar.redirectURI != ""
	switch {
	case !redirectGiven && len(c.redirectURIs) == 1:
		ar.redirectURI = c.redirectURIs[0]
	case !redirectGiven:
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "redirect_uri is required: the client has several")
		return
	case !slices.Contains(c.redirectURIs, ar.redirectURI):
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "redirect_uri does not match a redirect URI registered for the client")
		return
	}

	// From here on, errors go back to the client through the redirect.
	switch q.Get("response_mode") {
	case "", "query":
	case "form_post":
		ar.formPost = true
	default:
		s.redirect(w, r, ar, url.Values{"error": {"invalid_request"}, "error_description": {"response_mode must be query or form_post"}})
		return
	}
	fail := func(code, desc string) {
		s.redirect(w, r, ar, url.Values{"error": {code}, "error_description": {desc}})
	}
	for p, vs := range q {
		if len(vs) > 1 && p != "resource" {
			fail("invalid_request", p+" must not be repeated")
			return
		}
	}
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	switch {
	case q.Get("response_type") == "":
		fail("invalid_request", "response_type is required")
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "response_type must be code")
	case ar.state != "" && len(ar.state) < 8:
		fail("invalid_request", "state must be at least 8 characters")
	case method != "" && method != "S256":
		fail("invalid_request", "code_challenge_method must be S256")
	case challenge != "" && method == "":
		fail("invalid_request", "code_challenge_method is required (only S256 is supported)")
	case method != "" && challenge == "":
		fail("invalid_request", "code_challenge is required with code_challenge_method")
	case challenge != "" && !isCodeChallenge(challenge):
		fail("invalid_request", "code_challenge must be the base64url SHA-256 of the code verifier")
	case challenge == "" && c.public():
		fail("invalid_request", "PKCE (code_challenge with S256) is required for public clients")
	case challenge == "" && ar.state == "":
		fail("invalid_request", "state is required when PKCE is not used")
	default:
		s.authorize(w, r, ar, c, redirectGiven)
	}
}

// authorize checks scope, resource and prompt, asks the user, and issues the code.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, ar authorizeRequest, c *client, redirectGiven bool) {
	q := r.Form
	fail := func(code, desc string) {
		s.redirect(w, r, ar, url.Values{"error": {code}, "error_description": {desc}})
	}
	settings := s.Settings()
	known := s.knownScopes(settings)
	scopes := strings.Fields(q.Get("scope"))
	if len(scopes) == 0 {
		scopes = c.defaultScopes(settings)
	}
	if unknown := unknownScopes(scopes, known); len(unknown) > 0 {
		fail("invalid_scope", "unknown scope: "+strings.Join(unknown, " "))
		return
	}
	if allowed := c.allowedScopes(s.scopeRule); allowed != nil {
		if outside := unknownScopes(scopes, allowed); len(outside) > 0 {
			fail("invalid_scope", "scope not allowed for this client: "+strings.Join(outside, " "))
			return
		}
	}
	resources := q["resource"]
	for _, res := range resources {
		if u, err := url.Parse(res); err != nil || !u.IsAbs() || u.Fragment != "" || strings.Contains(res, "#") {
			fail("invalid_target", "resource must be an absolute URI without a fragment")
			return
		}
	}
	prompts := strings.Fields(q.Get("prompt"))
	if unknown := unknownScopes(prompts, []string{"none", "login", "consent"}); len(unknown) > 0 {
		fail("invalid_request", "prompt must be none, login or consent")
		return
	}
	// Who signs in: at Clerk, login_hint only fills in the sign-in form, and
	// someone who cannot sign in as that identity never comes back; the
	// emulator says so at once, as login_required when the client asked for
	// no interaction (OpenID Connect Core 3.1.2.6), else access_denied.
	subject, why := s.signInAs(q.Get("login_hint"))
	if subject == "" {
		if slices.Contains(prompts, "none") {
			fail("login_required", why)
		} else {
			fail("access_denied", why)
		}
		return
	}
	if !s.autoConsent {
		if slices.Contains(prompts, "none") {
			fail("consent_required", "the user has not consented to this client")
		} else {
			fail("access_denied", "the user denied the request")
		}
		return
	}
	code := newSecret()
	now := s.now()
	s.mu.Lock()
	s.codes[code] = &authCode{
		subject: subject, clientID: c.id, redirectURI: ar.redirectURI, redirectGiven: redirectGiven,
		challenge: q.Get("code_challenge"), nonce: q.Get("nonce"), sid: s.sessionID,
		scopes: scopes, resources: slices.Clone(resources),
		authTime: now, expires: now.Add(authCodeTTL), family: newSecret(),
	}
	s.mu.Unlock()
	s.redirect(w, r, ar, url.Values{"code": {code}})
}

// redirect sends the authorization response to the client's redirect URI,
// in the query (302, or 303 after a POST) or as an auto-submitting form.
func (s *Server) redirect(w http.ResponseWriter, r *http.Request, ar authorizeRequest, params url.Values) {
	if ar.state != "" {
		params.Set("state", ar.state)
	}
	w.Header().Set("Cache-Control", "no-store")
	if ar.formPost {
		var inputs strings.Builder
		for _, k := range slices.Sorted(maps.Keys(params)) {
			fmt.Fprintf(&inputs, `<input type="hidden" name="%s" value="%s">`, html.EscapeString(k), html.EscapeString(params.Get(k)))
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		fmt.Fprintf(w, `<!DOCTYPE html><html><head><title>Redirecting</title></head><body onload="document.forms[0].submit()"><form method="post" action="%s">%s<noscript><button type="submit">Continue</button></noscript></form></body></html>`,
			html.EscapeString(ar.redirectURI), inputs.String())
		return
	}
	u, err := url.Parse(ar.redirectURI)
	if err != nil { // registered URIs were checked; this cannot happen
		writeOAuthError(w, http.StatusInternalServerError, "server_error", "the redirect URI could not be parsed")
		return
	}
	query := u.Query()
	for k, vs := range params {
		query[k] = vs
	}
	u.RawQuery = query.Encode()
	status := http.StatusFound
	if ar.post {
		status = http.StatusSeeOther
	}
	http.Redirect(w, r, u.String(), status)
}

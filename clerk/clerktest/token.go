package clerktest

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Status codes of token endpoint errors follow the Frontend API spec, which
// differs from RFC 6749 (400 for everything but invalid_client): its 400
// response lists invalid_request, invalid_grant (expired code, redirect_uri
// mismatch) and unsupported_token_type; its 401 response lists
// invalid_client, invalid_grant (unknown or used code, bad code_verifier,
// bad refresh token) and unsupported_grant_type.

// oauthErr is an error answer of the token, revocation and introspection endpoints.
type oauthErr struct {
	status         int
	code           string
	desc           string
	basicChallenge bool // the client tried HTTP Basic: answer with a Basic challenge (RFC 6749 5.2)
}

func (e *oauthErr) write(w http.ResponseWriter) {
	if e.basicChallenge {
		w.Header().Set("WWW-Authenticate", `Basic realm="oauth"`)
	}
	writeOAuthError(w, e.status, e.code, e.desc)
}

func badRequest(code, desc string) *oauthErr {
	return &oauthErr{status: http.StatusBadRequest, code: code, desc: desc}
}

func unauthorized(code, desc string) *oauthErr {
	return &oauthErr{status: http.StatusUnauthorized, code: code, desc: desc}
}

// parseTokenForm reads an application/x-www-form-urlencoded body. Only the
// body counts (RFC 6749 3.2), and no parameter but resource may repeat.
func parseTokenForm(r *http.Request) (url.Values, *oauthErr) {
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != "application/x-www-form-urlencoded" {
		return nil, badRequest("invalid_request", "the body must be application/x-www-form-urlencoded")
	}
	body, err := readBody(r)
	if err != nil {
		return nil, badRequest("invalid_request", "the body could not be read")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, badRequest("invalid_request", "the body is not a valid form")
	}
	for p, vs := range form {
		if len(vs) > 1 && p != "resource" {
			return nil, badRequest("invalid_request", p+" must not be repeated")
		}
	}
	return form, nil
}

// authenticateClient identifies the client: HTTP Basic (client_secret_basic),
// client_id and client_secret in the body (client_secret_post; the spec
// treats the two alike), or client_id alone for a public client. Using two
// methods at once is refused (RFC 6749 2.3).
func (s *Server) authenticateClient(r *http.Request, form url.Values) (*client, *oauthErr) {
	if user, pass, ok := r.BasicAuth(); ok {
		id, err1 := url.QueryUnescape(user)
		secret, err2 := url.QueryUnescape(pass)
		fail := &oauthErr{status: http.StatusUnauthorized, code: "invalid_client", desc: "client authentication failed", basicChallenge: true}
		switch {
		case err1 != nil || err2 != nil:
			return nil, fail
		case form.Has("client_secret"):
			return nil, badRequest("invalid_request", "use one client authentication method, not HTTP Basic and client_secret together")
		case form.Has("client_id") && form.Get("client_id") != id:
			return nil, fail
		}
		c := s.lookupClient(id)
		// Public clients have no secret; libraries such as golang.org/x/oauth2
		// still send their client_id through Basic with an empty password.
		if c == nil || (c.public() && secret != "") || (!c.public() && !secretMatches(c, secret)) {
			return nil, fail
		}
		return c, nil
	}
	id := form.Get("client_id")
	if id == "" {
		return nil, unauthorized("invalid_client", "client authentication is required")
	}
	c := s.lookupClient(id)
	switch {
	case c == nil:
		return nil, unauthorized("invalid_client", "client authentication failed")
	case c.public():
		return c, nil
	case !secretMatches(c, form.Get("client_secret")):
		return nil, unauthorized("invalid_client", "client authentication failed")
	}
	return c, nil
}

// readTokenRequest reads a revocation or introspection request: its form,
// the client it authenticates, then the token it names, which is required.
func (s *Server) readTokenRequest(r *http.Request) (*client, string, *oauthErr) {
	form, oerr := parseTokenForm(r)
	if oerr != nil {
		return nil, "", oerr
	}
	c, oerr := s.authenticateClient(r, form)
	if oerr != nil {
		return nil, "", oerr
	}
	token, oerr := requiredParam(form, "token")
	if oerr != nil {
		return nil, "", oerr
	}
	return c, token, nil
}

func secretMatches(c *client, secret string) bool {
	return secret != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(c.secret)) == 1
}

// tokenResponse is the spec's OAuth.Token.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
}

// handleToken is the token endpoint: authorization_code (with PKCE) and
// refresh_token grants. Every successful response carries a new refresh
// token, as Clerk's do; a used refresh token stops working (rotation).
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	form, oerr := parseTokenForm(r)
	if oerr != nil {
		oerr.write(w)
		return
	}
	grantType := form.Get("grant_type")
	if grantType == "" {
		badRequest("invalid_request", "grant_type is required").write(w)
		return
	}
	c, oerr := s.authenticateClient(r, form)
	if oerr != nil {
		oerr.write(w)
		return
	}
	var resp tokenResponse
	switch grantType {
	case "authorization_code":
		resp, oerr = s.exchangeCode(form, c)
	case "refresh_token":
		resp, oerr = s.exchangeRefreshToken(form, c)
	default:
		oerr = unauthorized("unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
	}
	if oerr != nil {
		oerr.write(w)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, resp)
}

// requiredParam returns the form parameter name, or the invalid_request
// error OAuth gives for a missing one.
func requiredParam(form url.Values, name string) (string, *oauthErr) {
	v := form.Get(name)
	if v == "" {
		return "", badRequest("invalid_request", name+" is required")
	}
	return v, nil
}

// exchangeCode redeems an authorization code. A code works once: any
// attempt consumes it, and presenting it again revokes what it issued.
func (s *Server) exchangeCode(form url.Values, c *client) (tokenResponse, *oauthErr) {
	code, oerr := requiredParam(form, "code")
	if oerr != nil {
		return tokenResponse{}, oerr
	}
	s.mu.Lock()
	ac, ok := s.codes[code]
	switch {
	case !ok:
		s.mu.Unlock()
		return tokenResponse{}, unauthorized("invalid_grant", "the authorization code is invalid")
	case ac.used:
		s.revokeFamilyLocked(ac.family)
		s.mu.Unlock()
		return tokenResponse{}, unauthorized("invalid_grant", "the authorization code has already been used")
	case ac.clientID != c.id:
		s.mu.Unlock()
		return tokenResponse{}, unauthorized("invalid_grant", "the authorization code was issued to another client")
	case !s.now().Before(ac.expires):
		delete(s.codes, code)
		s.mu.Unlock()
		return tokenResponse{}, badRequest("invalid_grant", "the authorization code has expired")
	}
	ac.used = true
	grant := *ac
	s.mu.Unlock()

	redirectURI := form.Get("redirect_uri")
	if (grant.redirectGiven || redirectURI != "") && redirectURI != grant.redirectURI {
		return tokenResponse{}, badRequest("invalid_grant", "redirect_uri does not match the authorization request")
	}
	verifier := form.Get("code_verifier")
	switch {
	case grant.challenge != "" && verifier == "":
		return tokenResponse{}, badRequest("invalid_request", "code_verifier is required")
	case grant.challenge != "" && (!isCodeVerifier(verifier) || s256(verifier) != grant.challenge):
		return tokenResponse{}, unauthorized("invalid_grant", "code_verifier does not match the code_challenge")
	case grant.challenge == "" && verifier != "":
		return tokenResponse{}, unauthorized("invalid_grant", "code_verifier was sent but the authorization request had no code_challenge")
	}
	audience, oerr := narrowResources(form["resource"], grant.resources)
	if oerr != nil {
		return tokenResponse{}, oerr
	}
	return s.issueTokens(c, refreshRecord{
		clientID: c.id, subject: grant.subject, sid: grant.sid, scopes: grant.scopes,
		resources: grant.resources, family: grant.family, authTime: grant.authTime,
	}, grant.scopes, audience, grant.nonce)
}

// exchangeRefreshToken redeems a refresh token for new tokens, optionally
// with fewer scopes or resources than the original grant.
func (s *Server) exchangeRefreshToken(form url.Values, c *client) (tokenResponse, *oauthErr) {
	token, oerr := requiredParam(form, "refresh_token")
	if oerr != nil {
		return tokenResponse{}, oerr
	}
	invalid := unauthorized("invalid_grant", "the refresh token is invalid, revoked or already used")
	old, ok := s.refreshRecord(token, c.id)
	if !ok {
		return tokenResponse{}, invalid
	}
	scopes := old.scopes
	if form.Has("scope") {
		scopes = strings.Fields(form.Get("scope"))
		if unknown := unknownScopes(scopes, old.scopes); len(unknown) > 0 {
			return tokenResponse{}, badRequest("invalid_scope", "scope exceeds the original grant: "+strings.Join(unknown, " "))
		}
	}
	audience, oerr := narrowResources(form["resource"], old.resources)
	if oerr != nil {
		return tokenResponse{}, oerr
	}
	// A refresh token works once: of two concurrent exchanges, one wins.
	if !s.consumeRefreshToken(token) {
		return tokenResponse{}, invalid
	}
	return s.issueTokens(c, old, scopes, audience, "")
}

// refreshRecord returns a copy of token's record, when it was issued to
// clientID.
func (s *Server) refreshRecord(token, clientID string) (refreshRecord, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.refreshTokens[token]
	if !ok || rec.clientID != clientID {
		return refreshRecord{}, false
	}
	return *rec, true
}

// consumeRefreshToken removes token; false when it is gone already.
func (s *Server) consumeRefreshToken(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.refreshTokens[token]; !ok {
		return false
	}
	delete(s.refreshTokens, token)
	return true
}

// narrowResources returns the audience for a token request: the requested
// resources, which must all have been authorized, or else all authorized ones.
func narrowResources(requested, authorized []string) ([]string, *oauthErr) {
	for _, res := range requested {
		if !slices.Contains(authorized, res) {
			return nil, badRequest("invalid_target", "resource was not part of the authorization: "+res)
		}
	}
	if len(requested) > 0 {
		return requested, nil
	}
	return authorized, nil
}

// issueTokens creates the access token, the next refresh token and, for
// openid grants, an ID token (nonce only on the first, per OpenID Connect).
func (s *Server) issueTokens(c *client, next refreshRecord, scopes, audience []string, nonce string) (tokenResponse, *oauthErr) {
	serverError := &oauthErr{status: http.StatusInternalServerError, code: "server_error", desc: "the token could not be signed"}
	access, err := s.issueAccessToken(grant{
		clientID: c.id, subject: next.subject, sid: next.sid, scopes: scopes, audience: audience,
		ttl: s.accessTTL, jwt: s.Settings().OAuthJWTAccessTokens, family: next.family,
	})
	if err != nil {
		return tokenResponse{}, serverError
	}
	resp := tokenResponse{
		AccessToken:  access,
		TokenType:    "Bearer",
		ExpiresIn:    int64(s.accessTTL.Seconds()),
		RefreshToken: s.issueRefreshToken(next),
		Scope:        strings.Join(scopes, " "),
	}
	if slices.Contains(scopes, "openid") {
		idToken, err := s.issueIDToken(c.id, next.subject, next.sid, nonce, scopes, next.authTime)
		if err != nil {
			return tokenResponse{}, serverError
		}
		resp.IDToken = idToken
	}
	return resp, nil
}

// s256 is the PKCE S256 transform: base64url(SHA-256(verifier)).
func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// handleRevoke is RFC 7009 revocation for an authenticated client. Opaque
// access tokens and refresh tokens of that client are revoked; unknown
// tokens, and tokens of other clients, are answered 200 and left alone. JWT
// access tokens cannot be revoked: 400 unsupported_token_type, per the spec.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	c, token, oerr := s.readTokenRequest(r)
	if oerr != nil {
		oerr.write(w)
		return
	}
	if rec, isJWT, found := s.lookupAccessToken(token); found && isJWT && rec.clientID == c.id {
		badRequest("unsupported_token_type", "JWT access tokens cannot be revoked; they expire").write(w)
		return
	}
	s.mu.Lock()
	if rec, ok := s.opaque[token]; ok && rec.clientID == c.id {
		s.revokeLocked(rec, "Revoked by client")
	}
	if rec, ok := s.refreshTokens[token]; ok && rec.clientID == c.id {
		delete(s.refreshTokens, token)
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

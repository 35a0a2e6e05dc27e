package clerktest

import (
	"net/http"
	"strings"
)

// frontendHandler serves the Frontend API: discovery, keys, and the OAuth
// authorization server. Its endpoints take no secret key.
func (s *Server) frontendHandler() http.Handler {
	return s.serve("frontend", routes{
		"GET /.well-known/oauth-authorization-server": s.handleASMetadata,
		"GET /.well-known/openid-configuration":       s.handleOpenIDConfiguration,
		"GET /.well-known/jwks.json":                  s.handleJWKS,
		"POST /oauth/register":                        s.handleRegister,
		"GET /oauth/authorize":                        s.handleAuthorize,
		"POST /oauth/authorize":                       s.handleAuthorize,
		"POST /oauth/token":                           s.handleToken,
		"POST /oauth/token/revoke":                    s.handleRevoke,
		"GET /oauth/userinfo":                         s.handleUserInfo,
		"POST /oauth/userinfo":                        s.handleUserInfo,
		"POST /oauth/token_info":                      s.handleTokenInfo,
	}, nil, false)
}

// asMetadata is the spec's WellKnown.OAuth2AuthorizationServerMetadata
// (RFC 8414). The schema allows no other fields, so there is no
// userinfo_endpoint here; the OpenID configuration carries it.
type asMetadata struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	RegistrationEndpoint              string   `json:"registration_endpoint,omitempty"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	ClientIDMetadataDocumentSupported bool     `json:"client_id_metadata_document_supported,omitempty"`
}

// openIDConfiguration is the spec's WellKnown.OpenIDConfiguration. It has
// no registration_endpoint: the schema does not allow one.
type openIDConfiguration struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	UserInfoEndpoint                  string   `json:"userinfo_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	ScopesSupported                   []string `json:"scopes_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	BackchannelLogoutSupported        bool     `json:"backchannel_logout_supported"`
	FrontchannelLogoutSupported       bool     `json:"frontchannel_logout_supported"`
}

// capabilities are what both discovery documents advertise.
type capabilities struct {
	responseTypes, grantTypes, authMethods, claims []string
}

func supported() capabilities {
	return capabilities{
		responseTypes: []string{"code"},
		grantTypes:    []string{"authorization_code", "refresh_token"},
		// The spec treats client_secret_basic and client_secret_post alike
		// at the token endpoint, so both are advertised.
		authMethods: []string{authBasic, authPost, authNone},
		claims: []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "azp", "sid",
			"email", "email_verified", "name", "given_name", "family_name", "preferred_username", "picture"},
	}
}

func (s *Server) handleASMetadata(w http.ResponseWriter, _ *http.Request) {
	settings, caps := s.Settings(), supported()
	m := asMetadata{
		Issuer:                            s.frontendURL,
		AuthorizationEndpoint:             s.frontendURL + "/oauth/authorize",
		TokenEndpoint:                     s.frontendURL + "/oauth/token",
		RevocationEndpoint:                s.frontendURL + "/oauth/token/revoke",
		JWKSURI:                           s.frontendURL + "/.well-known/jwks.json",
		ResponseTypesSupported:            caps.responseTypes,
		GrantTypesSupported:               caps.grantTypes,
		TokenEndpointAuthMethodsSupported: caps.authMethods,
		ScopesSupported:                   s.knownScopes(settings),
		SubjectTypesSupported:             []string{"public"},
		IDTokenSigningAlgValuesSupported:  []string{"RS256"},
		ClaimsSupported:                   caps.claims,
		CodeChallengeMethodsSupported:     []string{"S256"},
		ClientIDMetadataDocumentSupported: settings.ClientIDMetadataDocumentsAdvertised,
	}
	if settings.DynamicOAuthClientRegistration {
		m.RegistrationEndpoint = s.frontendURL + "/oauth/register"
	}
	writeJSON(w, http.StatusOK, m)
}

func (s *Server) handleOpenIDConfiguration(w http.ResponseWriter, _ *http.Request) {
	caps := supported()
	writeJSON(w, http.StatusOK, openIDConfiguration{
		Issuer:                            s.frontendURL,
		AuthorizationEndpoint:             s.frontendURL + "/oauth/authorize",
		TokenEndpoint:                     s.frontendURL + "/oauth/token",
		RevocationEndpoint:                s.frontendURL + "/oauth/token/revoke",
		IntrospectionEndpoint:             s.frontendURL + "/oauth/token_info",
		UserInfoEndpoint:                  s.frontendURL + "/oauth/userinfo",
		JWKSURI:                           s.frontendURL + "/.well-known/jwks.json",
		ScopesSupported:                   s.knownScopes(s.Settings()),
		ResponseTypesSupported:            caps.responseTypes,
		ResponseModesSupported:            []string{"query", "form_post"},
		GrantTypesSupported:               caps.grantTypes,
		SubjectTypesSupported:             []string{"public"},
		IDTokenSigningAlgValuesSupported:  []string{"RS256"},
		TokenEndpointAuthMethodsSupported: caps.authMethods,
		ClaimsSupported:                   caps.claims,
		CodeChallengeMethodsSupported:     []string{"S256"},
	})
}

func (s *Server) handleJWKS(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.jwks())
}

// userInfo is the spec's OAuth.UserInfo; the emulator knows only the user's
// ID and primary email address, so profile fields are absent.
type userInfo struct {
	Object        string `json:"object"`
	InstanceID    string `json:"instance_id"`
	UserID        string `json:"user_id"`
	Sub           string `json:"sub"`
	Email         string `json:"email,omitempty"`
	EmailVerified *bool  `json:"email_verified,omitempty"`
}

// handleUserInfo answers for a valid access token in the Authorization
// header; otherwise 401 with Clerk's error body and an RFC 6750 challenge.
func (s *Server) handleUserInfo(w http.ResponseWriter, r *http.Request) {
	token, ok := bearerToken(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+s.frontendURL+`"`)
		writeClerkError(w, http.StatusUnauthorized, clerkError{
			Message: "Unauthorized request", LongMessage: "No access token was provided in the Authorization header", Code: "authentication_invalid",
		})
		return
	}
	rec, _, found := s.lookupAccessToken(token)
	if !found || !rec.active(s.now()) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+s.frontendURL+`", error="invalid_token", error_description="The access token is invalid, expired or revoked"`)
		writeClerkError(w, http.StatusUnauthorized, clerkError{
			Message: "Unauthorized request", LongMessage: "The access token is invalid, expired or revoked", Code: "authentication_invalid",
		})
		return
	}
	info := userInfo{Object: "oauth_user_info", InstanceID: s.instanceID, UserID: rec.subject, Sub: rec.subject}
	if email, verified, ok := s.emailClaim(rec.subject); ok && containsScope(rec.scopes, "email") {
		info.Email, info.EmailVerified = email, &verified
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, info)
}

// tokenInfo is the spec's OAuth.TokenInfo (RFC 7662 introspection).
type tokenInfo struct {
	Active   bool   `json:"active"`
	ClientID string `json:"client_id,omitempty"`
	Iat      int64  `json:"iat,omitempty"`
	Scope    string `json:"scope,omitempty"`
	Sub      string `json:"sub,omitempty"`
}

// handleTokenInfo introspects an access or refresh token for an
// authenticated client. Tokens of other clients are reported inactive.
func (s *Server) handleTokenInfo(w http.ResponseWriter, r *http.Request) {
	c, token, oerr := s.readTokenRequest(r)
	if oerr != nil {
		oerr.write(w)
		return
	}
	now := s.now()
	w.Header().Set("Cache-Control", "no-store")
	if rec, _, found := s.lookupAccessToken(token); found && rec.active(now) && rec.clientID == c.id {
		writeJSON(w, http.StatusOK, tokenInfo{Active: true, ClientID: rec.clientID, Iat: rec.created.Unix(), Scope: strings.Join(rec.scopes, " "), Sub: rec.subject})
		return
	}
	s.mu.Lock()
	rt, found := s.refreshTokens[token]
	var info tokenInfo
	if found && rt.clientID == c.id {
		info = tokenInfo{Active: true, ClientID: rt.clientID, Iat: rt.created.Unix(), Scope: strings.Join(rt.scopes, " "), Sub: rt.subject}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, info)
}

// bearerToken returns the token of an "Authorization: Bearer" header; the
// scheme is case-insensitive (RFC 6750).
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

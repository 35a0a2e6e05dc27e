package clerktest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Token endpoint authentication methods (RFC 7591).
const (
	authBasic = "client_secret_basic"
	authPost  = "client_secret_post"
	authNone  = "none"
)

// client is an OAuth application of the instance.
type client struct {
	id           string
	secret       string // empty for public clients
	name         string
	clientURI    string
	logoURI      string
	redirectURIs []string
	scopes       []string // nil: any scope the instance knows
	authMethod   string
	issuedAt     time.Time
	dynamic      bool         // registered through /oauth/register, so the ClientScopeRule applies
	metadata     *metadataDoc // non-nil for a client ID metadata document client
}

func (c *client) public() bool { return c.authMethod == authNone }

// Client is an OAuth application, for AddClient: a pre-registered client,
// for tests that run with dynamic registration off.
type Client struct {
	ID           string   // "" assigns a "client_..." ID
	Secret       string   // ignored for public clients; "" assigns one otherwise
	Name         string   // "" uses the ID
	RedirectURIs []string // at least one; absolute, http only on loopback
	Scopes       []string // nil: any scope the instance knows
	Public       bool     // no secret; PKCE required
}

// AddClient registers an OAuth application, as an admin would in the Clerk
// Dashboard, and returns it with its ID and secret filled in.
func (s *Server) AddClient(c Client) (Client, error) {
	if len(c.RedirectURIs) == 0 {
		return Client{}, errors.New("clerktest: a client needs at least one redirect URI")
	}
	for _, u := range c.RedirectURIs {
		if err := checkRedirectURI(u); err != nil {
			return Client{}, fmt.Errorf("clerktest: redirect URI %q: %w", u, err)
		}
	}
	if c.ID == "" {
		c.ID = newID("client_")
	}
	if isURLClientID(c.ID) {
		return Client{}, errors.New("clerktest: a URL client ID names a metadata document client: use AllowClientMetadataDocument")
	}
	if c.Name == "" {
		c.Name = c.ID
	}
	cl := &client{
		id: c.ID, name: c.Name, redirectURIs: slices.Clone(c.RedirectURIs),
		scopes: slices.Clone(c.Scopes), authMethod: authBasic, issuedAt: s.now(),
	}
	if c.Public {
		c.Secret, cl.authMethod = "", authNone
	} else {
		if c.Secret == "" {
			c.Secret = newSecret()
		}
		cl.secret = c.Secret
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, exists := s.clients[c.ID]; exists {
		return Client{}, fmt.Errorf("clerktest: client %q already exists", c.ID)
	}
	s.clients[c.ID] = cl
	return c, nil
}

// lookupClient returns the client with id, or nil. A metadata document
// client must have been recorded at the authorization endpoint and still be
// admitted by the settings; nothing is fetched here.
func (s *Server) lookupClient(id string) *client {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clients[id]
	if c != nil && c.metadata != nil && !s.admittedLocked(c) {
		return nil
	}
	return c
}

// checkRedirectURI accepts absolute URIs without a fragment: https, http on
// a loopback host (RFC 8252 native apps, local development), or a
// private-use scheme such as myapp://callback. Schemes that run code or
// read files are refused.
func checkRedirectURI(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return errors.New("is not a valid URI")
	case !u.IsAbs():
		return errors.New("must be an absolute URI")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return errors.New("must not contain a fragment")
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		if u.Host == "" {
			return errors.New("must name a host")
		}
	case "http":
		if !isLoopback(u.Hostname()) {
			return errors.New("may use http only on a loopback host (localhost, 127.0.0.0/8, [::1])")
		}
	case "javascript", "data", "file", "vbscript", "about", "blob":
		return fmt.Errorf("must not use the %s scheme", u.Scheme)
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// registrationRequest is OAuth.DynamicClientRegistrationRequest plus the
// RFC 7591 grant_types and response_types that MCP clients send. Other
// metadata is ignored, as RFC 7591 section 2 asks of servers.
type registrationRequest struct {
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod *string  `json:"token_endpoint_auth_method"`
	ClientName              *string  `json:"client_name"`
	ClientURI               *string  `json:"client_uri"`
	LogoURI                 *string  `json:"logo_uri"`
	Scope                   *string  `json:"scope"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
}

// registrationResponse is OAuth.DynamicClientRegistrationResponse.
type registrationResponse struct {
	ClientID                string   `json:"client_id"`
	ClientSecret            string   `json:"client_secret,omitempty"`
	ClientIDIssuedAt        int64    `json:"client_id_issued_at"`
	ClientSecretExpiresAt   int64    `json:"client_secret_expires_at"`
	ClientName              string   `json:"client_name"`
	ClientURI               string   `json:"client_uri,omitempty"`
	LogoURI                 string   `json:"logo_uri,omitempty"`
	RedirectURIs            []string `json:"redirect_uris"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	Scope                   string   `json:"scope"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
}

// handleRegister is RFC 7591 dynamic client registration: 201 with the
// client, 400 invalid_redirect_uri or invalid_client_metadata for bad
// metadata, 422 while the instance has dynamic registration off.
func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	settings := s.Settings()
	if !settings.DynamicOAuthClientRegistration {
		writeClerkError(w, http.StatusUnprocessableEntity, clerkError{
			Message:     "dynamic client registration is disabled",
			LongMessage: "Dynamic OAuth client registration is not enabled for this instance.",
			Code:        "dynamic_client_registration_disabled",
		})
		return
	}
	body, err := readBody(r)
	if err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_client_metadata", "the request body could not be read")
		return
	}
	var req registrationRequest
	if err := json.Unmarshal(body, &req); err != nil {
		code := "invalid_client_metadata"
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field == "redirect_uris" {
			code = "invalid_redirect_uri"
		}
		writeOAuthError(w, http.StatusBadRequest, code, "the body must be a JSON object of client metadata: "+err.Error())
		return
	}
	c, code, desc := s.clientFromRegistration(req, settings)
	if code != "" {
		writeOAuthError(w, http.StatusBadRequest, code, desc)
		return
	}
	s.mu.Lock()
	s.clients[c.id] = c
	s.mu.Unlock()

	scopes := c.scopes
	if scopes == nil {
		scopes = settings.defaultScopes()
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, registrationResponse{
		ClientID:                c.id,
		ClientSecret:            c.secret,
		ClientIDIssuedAt:        c.issuedAt.Unix(),
		ClientName:              c.name,
		ClientURI:               c.clientURI,
		LogoURI:                 c.logoURI,
		RedirectURIs:            c.redirectURIs,
		GrantTypes:              []string{"authorization_code", "refresh_token"},
		ResponseTypes:           []string{"code"},
		Scope:                   strings.Join(scopes, " "),
		TokenEndpointAuthMethod: c.authMethod,
	})
}

// clientFromRegistration validates registration metadata field by field
// against the spec's limits; on failure it returns the RFC 7591 error code
// and a description.
func (s *Server) clientFromRegistration(req registrationRequest, settings OAuthApplicationSettings) (c *client, code, desc string) {
	const badMeta = "invalid_client_metadata"
	if len(req.RedirectURIs) == 0 {
		return nil, "invalid_redirect_uri", "redirect_uris must contain at least one redirect URI"
	}
	for _, u := range req.RedirectURIs {
		if err := checkRedirectURI(u); err != nil {
			return nil, "invalid_redirect_uri", fmt.Sprintf("redirect URI %q %v", u, err)
		}
	}
	c = &client{id: newID("client_"), redirectURIs: slices.Clone(req.RedirectURIs), authMethod: authBasic, issuedAt: s.now(), dynamic: true}
	if m := req.TokenEndpointAuthMethod; m != nil {
		if !slices.Contains([]string{authBasic, authPost, authNone}, *m) {
			return nil, badMeta, "token_endpoint_auth_method must be client_secret_basic, client_secret_post or none"
		}
		c.authMethod = *m
	}
	if !c.public() {
		c.secret = newSecret()
	}
	for _, f := range []struct {
		name  string
		value *string
		max   int
		uri   bool
		dst   *string
	}{
		{"client_name", req.ClientName, 256, false, &c.name},
		{"client_uri", req.ClientURI, 1024, true, &c.clientURI},
		{"logo_uri", req.LogoURI, 1024, true, &c.logoURI},
	} {
		if f.value == nil {
			continue
		}
		if len(*f.value) > f.max {
			return nil, badMeta, fmt.Sprintf("%s must be at most %d characters", f.name, f.max)
		}
		if u, err := url.Parse(*f.value); f.uri && (err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "") {
			return nil, badMeta, f.name + " must be an absolute http(s) URL"
		}
		*f.dst = *f.value
	}
	if c.name == "" {
		c.name = c.id
	}
	if req.Scope != nil {
		if len(*req.Scope) > 1024 {
			return nil, badMeta, "scope must be at most 1024 characters"
		}
		scopes := strings.Fields(*req.Scope)
		if unknown := unknownScopes(scopes, s.knownScopes(settings)); len(unknown) > 0 {
			return nil, badMeta, "unknown scope " + strings.Join(unknown, ", ")
		}
		if len(scopes) > 0 {
			c.scopes = scopes
		}
	}
	for _, g := range req.GrantTypes {
		if !slices.Contains([]string{"authorization_code", "refresh_token"}, g) {
			return nil, badMeta, "grant type " + g + " is not supported"
		}
	}
	for _, rt := range req.ResponseTypes {
		if rt != "code" {
			return nil, badMeta, "response type " + rt + " is not supported"
		}
	}
	return c, "", ""
}

// unknownScopes returns the scopes that are not in known.
func unknownScopes(scopes, known []string) []string {
	var out []string
	for _, sc := range scopes {
		if !slices.Contains(known, sc) {
			out = append(out, sc)
		}
	}
	return out
}

// containsScope reports whether scopes holds scope.
func containsScope(scopes []string, scope string) bool { return slices.Contains(scopes, scope) }

// defaultScopes are what the client gets when it asks for none: the scopes
// it registered with, else the instance's defaults.
func (c *client) defaultScopes(settings OAuthApplicationSettings) []string {
	if c.scopes != nil {
		return slices.Clone(c.scopes)
	}
	return settings.defaultScopes()
}

// allowedScopes are the scopes the client is held to, nil when it may
// request any scope the instance knows: a client with no registered scope,
// a metadata document client, or a dynamically registered one under
// ScopesOfInstance.
func (c *client) allowedScopes(rule ClientScopeRule) []string {
	if c.scopes == nil || (c.dynamic && rule == ScopesOfInstance) {
		return nil
	}
	return c.scopes
}

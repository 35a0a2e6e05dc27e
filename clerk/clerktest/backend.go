package clerktest

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
)

// backendHandler serves the Backend API under /v1. Every request must carry
// the secret key; the observer sees every exchange.
func (s *Server) backendHandler() http.Handler {
	rt := routes{
		"GET /v1/jwks": s.handleJWKS,
		"POST /v1/oauth_applications/access_tokens/verify": s.handleVerify,
		"GET /v1/instance/oauth_application_settings":      s.handleGetSettings,
		"PATCH /v1/instance/oauth_application_settings":    s.handlePatchSettings,
	}
	maps.Copy(rt, s.peopleRoutes())
	maps.Copy(rt, s.oauthTokenRoutes())
	return s.serve("backend", rt, s.requireSecretKey, true)
}

// requireSecretKey answers 401 with Clerk's authentication_invalid error
// unless the request carries "Authorization: Bearer <secret key>".
func (s *Server) requireSecretKey(w http.ResponseWriter, r *http.Request) bool {
	token, ok := bearerToken(r)
	if ok && subtle.ConstantTimeCompare([]byte(token), []byte(s.secretKey)) == 1 {
		return true
	}
	writeClerkError(w, http.StatusUnauthorized, clerkError{
		Message:     "Invalid authentication",
		LongMessage: "Unable to authenticate the request, you need to supply an active API key",
		Code:        "authentication_invalid",
	})
	return false
}

// verifyResponse is the first branch of the verify operation's 200 schema:
// every field is required, and revocation_reason and expiration may be null.
// Times are unix seconds, as the spec's examples (1716883200) are.
type verifyResponse struct {
	Object           string   `json:"object"`
	ID               string   `json:"id"`
	ClientID         string   `json:"client_id"`
	Subject          string   `json:"subject"`
	Scopes           []string `json:"scopes"`
	Revoked          bool     `json:"revoked"`
	RevocationReason *string  `json:"revocation_reason"`
	Expired          bool     `json:"expired"`
	Expiration       *int64   `json:"expiration"`
	CreatedAt        int64    `json:"created_at"`
	UpdatedAt        int64    `json:"updated_at"`
}

// inactiveResponse is the second branch of the 200 schema, for an expired
// JWT access token.
type inactiveResponse struct {
	Active bool `json:"active"`
}

// handleVerify looks an access token up. Opaque tokens the instance issued
// are reported with their state, revoked and expired ones included (a
// caller must check both flags). A JWT access token signed by the instance
// is reported like an opaque one while valid and as {"active": false} once
// expired. Anything else is 404; a body without a token is 400.
func (s *Server) handleVerify(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		writeClerkError(w, http.StatusBadRequest, clerkError{Message: "Bad Request", LongMessage: "The request body could not be read", Code: "bad_request"})
		return
	}
	var req struct {
		AccessToken *string `json:"access_token"`
		Secret      *string `json:"secret"` // deprecated name of access_token
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeClerkError(w, http.StatusBadRequest, clerkError{Message: "Bad Request", LongMessage: "The request body must be a JSON object with an access_token string", Code: "bad_request"})
		return
	}
	token := ""
	switch {
	case req.AccessToken != nil:
		token = *req.AccessToken
	case req.Secret != nil:
		token = *req.Secret
	}
	if token == "" {
		writeClerkError(w, http.StatusBadRequest, clerkError{
			Message: "Bad Request", LongMessage: "access_token must be included", Code: "bad_request",
			Meta: map[string]any{"param_name": "access_token"},
		})
		return
	}
	rec, isJWT, found := s.lookupAccessToken(token)
	if !found {
		writeClerkError(w, http.StatusNotFound, clerkError{
			Message: "not found", LongMessage: "No OAuth access token was found for the given value", Code: "resource_not_found",
		})
		return
	}
	now := s.now()
	expired := !now.Before(rec.expires)
	if isJWT && expired {
		writeJSON(w, http.StatusOK, inactiveResponse{Active: false})
		return
	}
	resp := verifyResponse{
		Object:    "clerk_idp_oauth_access_token",
		ID:        rec.id,
		ClientID:  rec.clientID,
		Subject:   rec.subject,
		Scopes:    append([]string{}, rec.scopes...),
		Revoked:   rec.revoked,
		Expired:   expired,
		CreatedAt: rec.created.Unix(),
		UpdatedAt: rec.created.Unix(),
	}
	exp := rec.expires.Unix()
	resp.Expiration = &exp
	if rec.revoked {
		reason := rec.revocationReason
		resp.RevocationReason = &reason
		resp.UpdatedAt = rec.revokedAt.Unix()
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handleGetSettings(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, newSettingsResponse(s.Settings()))
}

// handlePatchSettings applies any subset of the settings. The request
// schema has additionalProperties: false, so an unknown field is a 422, as
// is a value of the wrong type; null leaves a field alone, except
// default_scopes, where null restores Clerk's defaults. Nothing changes
// unless the whole body is valid.
func (s *Server) handlePatchSettings(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	var fields map[string]json.RawMessage
	if err == nil {
		err = json.Unmarshal(body, &fields)
	}
	if err != nil || fields == nil {
		writeClerkError(w, http.StatusUnprocessableEntity, clerkError{
			Message: "Request body invalid", LongMessage: "The request body must be a JSON object", Code: "request_body_invalid",
		})
		return
	}
	bools := map[string]func(*OAuthApplicationSettings) *bool{
		"dynamic_oauth_client_registration": func(o *OAuthApplicationSettings) *bool { return &o.DynamicOAuthClientRegistration },
		"oauth_jwt_access_tokens":           func(o *OAuthApplicationSettings) *bool { return &o.OAuthJWTAccessTokens },
		"client_id_metadata_documents_advertised": func(o *OAuthApplicationSettings) *bool {
			return &o.ClientIDMetadataDocumentsAdvertised
		},
		"client_id_metadata_documents_only_allow_pre_registered_clients": func(o *OAuthApplicationSettings) *bool {
			return &o.ClientIDMetadataDocumentsOnlyAllowPreRegisteredClients
		},
		"client_id_metadata_documents_block_implicitly_allowed_clients": func(o *OAuthApplicationSettings) *bool {
			return &o.ClientIDMetadataDocumentsBlockImplicitlyAllowedClients
		},
	}
	var changes []func(*OAuthApplicationSettings)
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		raw := fields[name]
		isNull := bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
		if field, ok := bools[name]; ok {
			var v bool
			switch {
			case isNull:
			case json.Unmarshal(raw, &v) != nil:
				writeParamError(w, name, "form_param_format_invalid", "is invalid", name+" must be a boolean.")
				return
			default:
				changes = append(changes, func(o *OAuthApplicationSettings) { *field(o) = v })
			}
			continue
		}
		if name != "default_scopes" {
			writeParamError(w, name, "form_param_unknown", "is unknown", name+" is not a valid parameter for this request.")
			return
		}
		var scopes []string
		switch {
		case isNull:
			changes = append(changes, func(o *OAuthApplicationSettings) { o.DefaultScopes = nil })
		case json.Unmarshal(raw, &scopes) != nil:
			writeParamError(w, name, "form_param_format_invalid", "is invalid", "default_scopes must be an array of strings.")
			return
		case firstDuplicate(scopes) != "":
			writeParamError(w, name, "form_param_value_invalid", "is invalid", fmt.Sprintf("default_scopes must not repeat a scope (%s).", firstDuplicate(scopes)))
			return
		default:
			scopes = append([]string{}, scopes...) // [] stays an empty list, not the defaults
			changes = append(changes, func(o *OAuthApplicationSettings) { o.DefaultScopes = scopes })
		}
	}

	s.mu.Lock()
	for _, change := range changes {
		change(&s.settings)
	}
	next := s.settings.clone()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, newSettingsResponse(next))
}

// writeParamError is Clerk's 422 for one bad body parameter.
func writeParamError(w http.ResponseWriter, param, code, message, longMessage string) {
	writeClerkError(w, http.StatusUnprocessableEntity, clerkError{
		Message: message, LongMessage: longMessage, Code: code,
		Meta: map[string]any{"param_name": param},
	})
}

func firstDuplicate(items []string) string {
	seen := map[string]bool{}
	for _, it := range items {
		if seen[it] {
			return it
		}
		seen[it] = true
	}
	return ""
}

package clerktest

import (
	"slices"
)

// OAuthApplicationSettings are the instance's OAuth application settings, as
// the Backend API's OAuthApplicationSettings schema names them.
type OAuthApplicationSettings struct {
	DynamicOAuthClientRegistration bool `json:"dynamic_oauth_client_registration"`
	// DefaultScopes are granted when a client asks for none. Nil means
	// Clerk's defaults (DefaultScopes), which is also what a PATCH with
	// "default_scopes": null restores.
	DefaultScopes                                          []string `json:"default_scopes"`
	OAuthJWTAccessTokens                                   bool     `json:"oauth_jwt_access_tokens"`
	ClientIDMetadataDocumentsAdvertised                    bool     `json:"client_id_metadata_documents_advertised"`
	ClientIDMetadataDocumentsOnlyAllowPreRegisteredClients bool     `json:"client_id_metadata_documents_only_allow_pre_registered_clients"`
	ClientIDMetadataDocumentsBlockImplicitlyAllowedClients bool     `json:"client_id_metadata_documents_block_implicitly_allowed_clients"`
}

// clone copies the settings so that callers never share the scope slice
// with the server.
func (o OAuthApplicationSettings) clone() OAuthApplicationSettings {
	o.DefaultScopes = slices.Clone(o.DefaultScopes)
	return o
}

// defaultScopes returns the scopes granted when none are requested.
func (o OAuthApplicationSettings) defaultScopes() []string {
	if o.DefaultScopes == nil {
		return DefaultScopes()
	}
	return slices.Clone(o.DefaultScopes)
}

// DefaultScopes are Clerk's own default scopes: what the authorization
// endpoint grants when no scope is requested ("Defaults to `profile email`"
// in the Frontend API spec).
func DefaultScopes() []string { return []string{"profile", "email"} }

// BuiltinScopes are the scopes every Clerk instance supports.
func BuiltinScopes() []string {
	return []string{"openid", "profile", "email", "offline_access", "public_metadata", "private_metadata", "user:org:read"}
}

// settingsResponse is the Backend API body for the settings: the object type
// and every field, default_scopes filled in rather than null.
type settingsResponse struct {
	Object string `json:"object"`
	OAuthApplicationSettings
}

func newSettingsResponse(s OAuthApplicationSettings) settingsResponse {
	s = s.clone()
	s.DefaultScopes = s.defaultScopes()
	return settingsResponse{Object: "oauth_application_settings", OAuthApplicationSettings: s}
}

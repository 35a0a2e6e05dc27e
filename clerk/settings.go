package clerk

import (
	"context"
	"fmt"
	"net/http"

	sdk "github.com/clerk/clerk-sdk-go/v2"
)

// settingsPath is the Backend API path of the instance's OAuth settings;
// clerk-sdk-go v2.4.2 has no client for it.
const settingsPath = "/instance/oauth_application_settings"

// OAuthApplicationSettings are the instance's OAuth application settings,
// with the JSON names of the Backend API's OAuthApplicationSettings schema.
type OAuthApplicationSettings struct {
	Object                                                 string   `json:"object"`
	DynamicOAuthClientRegistration                         bool     `json:"dynamic_oauth_client_registration"`
	DefaultScopes                                          []string `json:"default_scopes"`
	OAuthJWTAccessTokens                                   bool     `json:"oauth_jwt_access_tokens"`
	ClientIDMetadataDocumentsAdvertised                    bool     `json:"client_id_metadata_documents_advertised"`
	ClientIDMetadataDocumentsOnlyAllowPreRegisteredClients bool     `json:"client_id_metadata_documents_only_allow_pre_registered_clients"`
	ClientIDMetadataDocumentsBlockImplicitlyAllowedClients bool     `json:"client_id_metadata_documents_block_implicitly_allowed_clients"`
}

// OAuthApplicationSettingsPatch is a PATCH body: only non-nil fields are
// sent, so settings nobody declared are left as they are (the endpoint also
// refuses unknown fields). Resetting default_scopes to Clerk's defaults
// (JSON null) is not expressible; mcpgate does not manage them.
type OAuthApplicationSettingsPatch struct {
	DynamicOAuthClientRegistration                         *bool     `json:"dynamic_oauth_client_registration,omitempty"`
	DefaultScopes                                          *[]string `json:"default_scopes,omitempty"`
	OAuthJWTAccessTokens                                   *bool     `json:"oauth_jwt_access_tokens,omitempty"`
	ClientIDMetadataDocumentsAdvertised                    *bool     `json:"client_id_metadata_documents_advertised,omitempty"`
	ClientIDMetadataDocumentsOnlyAllowPreRegisteredClients *bool     `json:"client_id_metadata_documents_only_allow_pre_registered_clients,omitempty"`
	ClientIDMetadataDocumentsBlockImplicitlyAllowedClients *bool     `json:"client_id_metadata_documents_block_implicitly_allowed_clients,omitempty"`
}

// IsEmpty reports whether p sets nothing.
func (p OAuthApplicationSettingsPatch) IsEmpty() bool {
	return p == OAuthApplicationSettingsPatch{}
}

// SettingsClient reads and updates one Clerk instance's OAuth application
// settings. Its secret key is fixed: the controller builds a client from the
// Secret it has just read. It is safe for concurrent use.
type SettingsClient struct {
	backend backend
	key     string
}

// NewSettingsClient returns a client for the Backend API at backendAPIURL
// (e.g. https://api.clerk.com/v1). A nil httpClient uses one with timeouts.
// Errors from its methods work with RetryAfter, IsUnauthorized and
// StatusCode.
func NewSettingsClient(backendAPIURL, secretKey string, httpClient *http.Client) *SettingsClient {
	return &SettingsClient{backend: newBackend(backendAPIURL, httpClient), key: secretKey}
}

// Get returns the current settings (GET /v1/instance/oauth_application_settings).
func (c *SettingsClient) Get(ctx context.Context) (*OAuthApplicationSettings, error) {
	return c.do(ctx, "get oauth application settings", sdk.NewAPIRequest(http.MethodGet, settingsPath))
}

// Patch changes the fields p sets and returns the settings Clerk now has
// (PATCH /v1/instance/oauth_application_settings). Clerk answers 422 to a
// body it refuses.
func (c *SettingsClient) Patch(ctx context.Context, p OAuthApplicationSettingsPatch) (*OAuthApplicationSettings, error) {
	req := sdk.NewAPIRequest(http.MethodPatch, settingsPath)
	req.SetParams(&settingsPatchParams{OAuthApplicationSettingsPatch: p})
	return c.do(ctx, "patch oauth application settings", req)
}

func (c *SettingsClient) do(ctx context.Context, op string, req *sdk.APIRequest) (*OAuthApplicationSettings, error) {
	var resp settingsResponse
	if err := c.backend.call(ctx, c.key, op, req, &resp); err != nil {
		return nil, err
	}
	if resp.Object != "oauth_application_settings" {
		return nil, fmt.Errorf("%s: unexpected response object %q", op, resp.Object)
	}
	s := resp.OAuthApplicationSettings
	return &s, nil
}

// settingsPatchParams makes a patch an SDK request body.
type settingsPatchParams struct {
	sdk.APIParams
	OAuthApplicationSettingsPatch
}

// settingsResponse makes the settings an SDK response reader.
type settingsResponse struct {
	sdk.APIResource
	OAuthApplicationSettings
}

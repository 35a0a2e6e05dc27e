package clerk

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/clerk/clerk-sdk-go/v2"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
)

const epSettings = "/v1/instance/oauth_application_settings"

// recorder keeps the Backend API exchanges the emulator reports.
type recorder struct {
	mu        sync.Mutex
	exchanges []clerktest.Exchange
}

func (r *recorder) observe(e clerktest.Exchange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.exchanges = append(r.exchanges, e)
}

// bodies returns the request bodies of method requests to epSettings.
func (r *recorder) bodies(method string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.exchanges {
		if e.Request.Method == method && e.Request.URL.Path == epSettings {
			out = append(out, string(e.RequestBody))
		}
	}
	return out
}

func TestSettingsClient_Get(t *testing.T) {
	t.Parallel()
	srv := clerktest.NewServer(clerktest.WithJWTAccessTokens(false))
	t.Cleanup(srv.Close)
	want := clerktest.OAuthApplicationSettings{
		DynamicOAuthClientRegistration:                         true,
		DefaultScopes:                                          []string{"profile", "email"},
		ClientIDMetadataDocumentsAdvertised:                    true,
		ClientIDMetadataDocumentsBlockImplicitlyAllowedClients: true,
	}
	srv.SetSettings(want)
	got, err := NewSettingsClient(srv.BackendAPIURL(), srv.SecretKey(), nil).Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got.Object != "oauth_application_settings" || !got.DynamicOAuthClientRegistration || got.OAuthJWTAccessTokens ||
		!slices.Equal(got.DefaultScopes, want.DefaultScopes) || !got.ClientIDMetadataDocumentsAdvertised ||
		got.ClientIDMetadataDocumentsOnlyAllowPreRegisteredClients || !got.ClientIDMetadataDocumentsBlockImplicitlyAllowedClients {
		t.Errorf("Get = %+v, want %+v", got, want)
	}
}

// TestSettingsClient_Patch checks that only the fields a patch sets go on
// the wire, and that the answer is Clerk's new settings.
func TestSettingsClient_Patch(t *testing.T) {
	t.Parallel()
	off, on := false, true
	scopes := []string{"email"}
	tests := map[string]struct {
		patch    OAuthApplicationSettingsPatch          // what to send
		wantBody string                                 // the exact request body
		check    func(s *OAuthApplicationSettings) bool // the answer
	}{
		"one field": {
			patch:    OAuthApplicationSettingsPatch{DynamicOAuthClientRegistration: &off},
			wantBody: `{"dynamic_oauth_client_registration":false}`,
			check: func(s *OAuthApplicationSettings) bool {
				return !s.DynamicOAuthClientRegistration && s.OAuthJWTAccessTokens
			},
		},
		"false is sent, not omitted": {
			patch:    OAuthApplicationSettingsPatch{OAuthJWTAccessTokens: &off, ClientIDMetadataDocumentsAdvertised: &on},
			wantBody: `{"oauth_jwt_access_tokens":false,"client_id_metadata_documents_advertised":true}`,
			check: func(s *OAuthApplicationSettings) bool {
				return !s.OAuthJWTAccessTokens && s.ClientIDMetadataDocumentsAdvertised && s.DynamicOAuthClientRegistration
			},
		},
		"default scopes": {
			patch:    OAuthApplicationSettingsPatch{DefaultScopes: &scopes},
			wantBody: `{"default_scopes":["email"]}`,
			check:    func(s *OAuthApplicationSettings) bool { return slices.Equal(s.DefaultScopes, scopes) },
		},
		"every field": {
			patch: OAuthApplicationSettingsPatch{
				DynamicOAuthClientRegistration: &on, DefaultScopes: &scopes, OAuthJWTAccessTokens: &on,
				ClientIDMetadataDocumentsAdvertised: &on, ClientIDMetadataDocumentsOnlyAllowPreRegisteredClients: &on,
				ClientIDMetadataDocumentsBlockImplicitlyAllowedClients: &on,
			},
			wantBody: `{"dynamic_oauth_client_registration":true,"default_scopes":["email"],"oauth_jwt_access_tokens":true,` +
				`"client_id_metadata_documents_advertised":true,"client_id_metadata_documents_only_allow_pre_registered_clients":true,` +
				`"client_id_metadata_documents_block_implicitly_allowed_clients":true}`,
			check: func(s *OAuthApplicationSettings) bool {
				return s.ClientIDMetadataDocumentsOnlyAllowPreRegisteredClients && s.ClientIDMetadataDocumentsBlockImplicitlyAllowedClients
			},
		},
		"empty patch": {
			wantBody: `{}`,
			check:    func(s *OAuthApplicationSettings) bool { return s.DynamicOAuthClientRegistration },
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rec := &recorder{}
			srv := clerktest.NewServer(clerktest.WithObserver(rec.observe))
			t.Cleanup(srv.Close)
			got, err := NewSettingsClient(srv.BackendAPIURL(), srv.SecretKey(), nil).Patch(context.Background(), tc.patch)
			if err != nil {
				t.Fatal(err)
			}
			bodies := rec.bodies(http.MethodPatch)
			if len(bodies) != 1 || bodies[0] != tc.wantBody {
				t.Fatalf("PATCH bodies = %q, want [%q]", bodies, tc.wantBody)
			}
			if !tc.check(got) {
				t.Errorf("answer %+v", got)
			}
			after, err := NewSettingsClient(srv.BackendAPIURL(), srv.SecretKey(), nil).Get(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, after) {
				t.Errorf("PATCH answered %+v, a later GET %+v", got, after)
			}
		})
	}
}

// TestSettingsClient_errors checks that failures come back classified for
// the controller, and say nothing of the key.
func TestSettingsClient_errors(t *testing.T) {
	t.Parallel()
	dup := []string{"email", "email"}
	tests := map[string]struct {
		fault        clerktest.Fault                // injected into both settings endpoints
		badKey       bool                           // use a wrong secret key
		patch        *OAuthApplicationSettingsPatch // Patch this instead of Get
		wantStatus   int                            // StatusCode(err)
		wantRetry    time.Duration                  // RetryAfter(err) when rateLimited
		rateLimited  bool                           // RetryAfter(err) ok
		unauthorized bool                           // IsUnauthorized(err)
		wantCode     string                         // a Clerk error code in the message
	}{
		"bad secret key":       {badKey: true, wantStatus: 401, unauthorized: true, wantCode: "authentication_invalid"},
		"429 with retry-after": {fault: clerktest.Fault{Status: 429, RetryAfter: 12 * time.Second}, wantStatus: 429, rateLimited: true, wantRetry: 12 * time.Second, wantCode: "too_many_requests"},
		"429 without":          {fault: clerktest.Fault{Status: 429}, wantStatus: 429, rateLimited: true},
		"422 invalid patch":    {patch: &OAuthApplicationSettingsPatch{DefaultScopes: &dup}, wantStatus: 422, wantCode: "form_param_value_invalid"},
		"500":                  {fault: clerktest.Fault{Status: 500}, wantStatus: 500, wantCode: "internal_clerk_error"},
		"outage":               {fault: clerktest.Fault{Outage: true}, wantStatus: 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := clerktest.NewServer()
			t.Cleanup(srv.Close)
			srv.SetFault("GET "+epSettings, tc.fault)
			srv.SetFault("PATCH "+epSettings, tc.fault)
			key := srv.SecretKey()
			if tc.badKey {
				key = "sk_test_wrong_key"
			}
			c := NewSettingsClient(srv.BackendAPIURL(), key, nil)
			var err error
			if tc.patch != nil {
				_, err = c.Patch(context.Background(), *tc.patch)
			} else {
				_, err = c.Get(context.Background())
			}
			if err == nil {
				t.Fatal("want an error")
			}
			if got := StatusCode(err); got != tc.wantStatus {
				t.Errorf("StatusCode = %d, want %d (%v)", got, tc.wantStatus, err)
			}
			if d, ok := RetryAfter(err); ok != tc.rateLimited || d != tc.wantRetry {
				t.Errorf("RetryAfter = %s, %t; want %s, %t", d, ok, tc.wantRetry, tc.rateLimited)
			}
			if IsUnauthorized(err) != tc.unauthorized {
				t.Errorf("IsUnauthorized = %t, want %t", IsUnauthorized(err), tc.unauthorized)
			}
			if !strings.Contains(err.Error(), tc.wantCode) || strings.Contains(err.Error(), key) {
				t.Errorf("message %q: want code %q and no key", err, tc.wantCode)
			}
			var ae *sdk.APIErrorResponse
			if tc.wantStatus != 0 && !errors.As(err, &ae) {
				t.Errorf("the SDK's *clerk.APIErrorResponse is not reachable through errors.As")
			}
		})
	}
}

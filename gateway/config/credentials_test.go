package config

import (
	"strings"
	"testing"
)

// TestCredentialsValidate checks the credentials block: header names the
// proxy can set without breaking the exchange or impersonating the
// gateway, each set from one source, files and URLs of the right kind.
func TestCredentialsValidate(t *testing.T) {
	t.Parallel()
	key := func(name string) CredentialHeader {
		return CredentialHeader{Name: name, File: "/etc/mcpgate/credentials/" + name}
	}
	user := func(mod func(*UserOAuthToken)) *UserOAuthToken {
		u := &UserOAuthToken{Provider: "oauth_github", Header: "Authorization", Prefix: "Bearer ", ConnectURL: "https://accounts.example.com/user"}
		if mod != nil {
			mod(u)
		}
		return u
	}
	tests := map[string]struct {
		creds Credentials
		// wantErr is in the error; empty: valid.
		wantErr string
	}{
		"headers and user token":  {creds: Credentials{Headers: []CredentialHeader{key("X-Api-Key"), key("X-Tenant")}, UserOAuthToken: user(nil)}},
		"user token, defaults":    {creds: Credentials{UserOAuthToken: &UserOAuthToken{Provider: "oauth_custom_acme"}}},
		"no connect URL":          {creds: Credentials{UserOAuthToken: user(func(u *UserOAuthToken) { u.ConnectURL = "" })}},
		"http loopback connect":   {creds: Credentials{UserOAuthToken: user(func(u *UserOAuthToken) { u.ConnectURL = "http://127.0.0.1:3000/connect" })}},
		"empty name":              {creds: Credentials{Headers: []CredentialHeader{key("")}}, wantErr: "headers[0].name: a header name is required"},
		"name with a space":       {creds: Credentials{Headers: []CredentialHeader{key("X Api")}}, wantErr: `"X Api" is not a valid header name`},
		"name with a colon":       {creds: Credentials{Headers: []CredentialHeader{key("X-Api:")}}, wantErr: "not a valid header name"},
		"host":                    {creds: Credentials{Headers: []CredentialHeader{key("host")}}, wantErr: `header "host" is reserved`},
		"content-length":          {creds: Credentials{Headers: []CredentialHeader{key("Content-Length")}}, wantErr: "reserved"},
		"transfer-encoding":       {creds: Credentials{Headers: []CredentialHeader{key("Transfer_Encoding")}}, wantErr: "reserved"},
		"connection":              {creds: Credentials{Headers: []CredentialHeader{key("CONNECTION")}}, wantErr: "reserved"},
		"proxy-authorization":     {creds: Credentials{Headers: []CredentialHeader{key("Proxy-Authorization")}}, wantErr: "reserved"},
		"cookie":                  {creds: Credentials{Headers: []CredentialHeader{key("Cookie")}}, wantErr: "reserved"},
		"identity header":         {creds: Credentials{Headers: []CredentialHeader{key("X-Mcpgate-User-Id")}}, wantErr: "reserved"},
		"identity header, CGI":    {creds: Credentials{Headers: []CredentialHeader{key("x_mcpgate_organizations")}}, wantErr: "reserved"},
		"MCP transport header":    {creds: Credentials{Headers: []CredentialHeader{key("Mcp-Session-Id")}}, wantErr: "mcp-* headers belong to"},
		"a later identity header": {creds: Credentials{Headers: []CredentialHeader{key("X-Mcpgate-Tenant")}}, wantErr: "reserved"},
		"proxy header":            {creds: Credentials{Headers: []CredentialHeader{key("Proxy-Token")}}, wantErr: "reserved"},
		"forwarded header":        {creds: Credentials{Headers: []CredentialHeader{key("X_Forwarded_Port")}}, wantErr: "reserved"},
		"user token in Host":      {creds: Credentials{UserOAuthToken: user(func(u *UserOAuthToken) { u.Header = "Host" })}, wantErr: "userOAuthToken.header"},
		"relative file":           {creds: Credentials{Headers: []CredentialHeader{{Name: "X-Api-Key", File: "secret/key"}}}, wantErr: `headers[0].file "secret/key" must be an absolute path`},
		"prefix with a newline":   {creds: Credentials{Headers: []CredentialHeader{{Name: "X-Api-Key", File: "/k", Prefix: "Key\r\nX-Evil: 1 "}}}, wantErr: "headers[0].prefix"},
		"duplicate":               {creds: Credentials{Headers: []CredentialHeader{key("X-Api-Key"), key("x-api-key")}}, wantErr: `headers[1].name: header "x-api-key" is also set by upstream.credentials.headers[0].name`},
		"duplicate, CGI":          {creds: Credentials{Headers: []CredentialHeader{key("X-Api-Key"), key("X_API_KEY")}}, wantErr: "also set by"},
		"duplicate with user token": {
			creds:   Credentials{Headers: []CredentialHeader{key("authorization")}, UserOAuthToken: user(func(u *UserOAuthToken) { u.Header = "" })},
			wantErr: `userOAuthToken.header: header "Authorization" is also set by upstream.credentials.headers[0].name`,
		},
		"no provider":         {creds: Credentials{UserOAuthToken: user(func(u *UserOAuthToken) { u.Provider = "" })}, wantErr: "userOAuthToken.provider"},
		"provider not oauth_": {creds: Credentials{UserOAuthToken: user(func(u *UserOAuthToken) { u.Provider = "github" })}, wantErr: "userOAuthToken.provider"},
		"provider with slash": {creds: Credentials{UserOAuthToken: user(func(u *UserOAuthToken) { u.Provider = "oauth_github/../x" })}, wantErr: "userOAuthToken.provider"},
		"relative connect":    {creds: Credentials{UserOAuthToken: user(func(u *UserOAuthToken) { u.ConnectURL = "/user" })}, wantErr: "userOAuthToken.connectURL"},
		"http connect":        {creds: Credentials{UserOAuthToken: user(func(u *UserOAuthToken) { u.ConnectURL = "http://accounts.example.com/user" })}, wantErr: "must be https"},
		"connect with user":   {creds: Credentials{UserOAuthToken: user(func(u *UserOAuthToken) { u.ConnectURL = "https://a:b@accounts.example.com/" })}, wantErr: "without user info"},
		"javascript connect":  {creds: Credentials{UserOAuthToken: user(func(u *UserOAuthToken) { u.ConnectURL = "javascript:alert(1)" })}, wantErr: "userOAuthToken.connectURL"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			c.Upstream.Credentials = &tc.creds
			err := c.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestUserOAuthTokenHeaderName checks the gateway's default for an empty
// header, and that an empty prefix stays empty.
func TestUserOAuthTokenHeaderName(t *testing.T) {
	t.Parallel()
	if got := (&UserOAuthToken{}).HeaderName(); got != "Authorization" {
		t.Errorf("HeaderName() = %q, want Authorization", got)
	}
	if got := (&UserOAuthToken{Header: "X-Github-Token"}).HeaderName(); got != "X-Github-Token" {
		t.Errorf("HeaderName() = %q, want X-Github-Token", got)
	}
}

package gateway

import "testing"

func TestClerkEndpoint(t *testing.T) {
	t.Parallel()
	tests := map[string]string{ // path: endpoint label
		"/v1/oauth_applications/access_tokens/verify":          clerkEndpointVerify,
		"/oauth/token_info":                                    clerkEndpointVerify,
		"/.well-known/jwks.json":                               clerkEndpointJWKS,
		"/v1/jwks":                                             clerkEndpointJWKS,
		"/.well-known/oauth-authorization-server":              clerkEndpointMetadata,
		"/.well-known/openid-configuration":                    clerkEndpointMetadata,
		"/v1/users/user_2abc":                                  clerkEndpointUser,
		"/v1/users/user_2abc/":                                 clerkEndpointUser,
		"/base/v1/users/user_2abc/organization_memberships":    clerkEndpointMemberships,
		"/v1/users/user_2abc/oauth_access_tokens/oauth_github": clerkEndpointOAuthToken,
		"/v1/users/user_2abc/oauth_access_tokens":              clerkEndpointOther,
		"/v1/users/user_2abc/organization_memberships/extra":   clerkEndpointOther,
		"/v1/users/": clerkEndpointOther,
		"/v1/instance/oauth_application_settings": clerkEndpointOther,
		"": clerkEndpointOther,
		"/v1/users/user_2abc/oauth_access_tokens/github/jwks.json": clerkEndpointOther,
	}
	for path, want := range tests {
		if got := clerkEndpoint(path); got != want {
			t.Errorf("clerkEndpoint(%q) = %q, want %q", path, got, want)
		}
	}
}

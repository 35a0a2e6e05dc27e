package config

import "testing"

func TestResourceMetadataPath(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"/mcp", "/.well-known/oauth-protected-resource/mcp"},
		{"/team/tools", "/.well-known/oauth-protected-resource/team/tools"},
		// RFC 9728 section 3.1: a lone terminating slash is dropped.
		{"/", "/.well-known/oauth-protected-resource"},
		{"", "/.well-known/oauth-protected-resource"},
	} {
		if got := ResourceMetadataPath(tc.path); got != tc.want {
			t.Errorf("ResourceMetadataPath(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}

func TestGatewayName(t *testing.T) {
	if got := GatewayName("tools"); got != "tools-gateway" {
		t.Errorf("GatewayName(tools) = %q", got)
	}
}

package config

import (
	"strings"
	"testing"
)

func validConfig() Config {
	return Config{
		Server:       ServerRef{Namespace: "team-a", Name: "tools"},
		Listen:       Listen{Traffic: ":8080", Health: ":8081"},
		Path:         "/mcp",
		ResourceName: "team-a/tools",
		Upstream:     Upstream{URL: "http://upstream.team-a.svc:8080/mcp"},
		Scopes:       []string{"profile"},
		ToolScopes:   []ToolScope{{Tool: "delete_repo", Scopes: []string{"repo:admin"}}},
		Clerk:        Clerk{Issuer: "https://clerk.example.com", APIURL: "https://api.clerk.com/v1", SecretKeyFile: "/etc/mcpgate/clerk/secret-key"},
	}
}

func TestMarshalParseRoundTrip(t *testing.T) {
	t.Parallel()
	data, err := Marshal(validConfig())
	if err != nil {
		t.Fatal(err)
	}
	again, err := Marshal(validConfig())
	if err != nil || string(again) != string(data) {
		t.Fatal("Marshal is not deterministic")
	}
	got, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got.APIVersion != APIVersion || got.Kind != Kind || got.Upstream.URL != validConfig().Upstream.URL {
		t.Errorf("round trip lost data: %+v", got)
	}
}

func TestParseRefuses(t *testing.T) {
	t.Parallel()
	valid, err := Marshal(validConfig())
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		data    string
		wantErr string
	}{
		"not JSON":        {data: "apiVersion: x", wantErr: "decode gateway config"},
		"newer version":   {data: strings.Replace(string(valid), APIVersion, "gateway.mcpgate.dev/v2", 1), wantErr: `unsupported gateway config "gateway.mcpgate.dev/v2"`},
		"no version":      {data: `{"kind":"GatewayConfig"}`, wantErr: "unsupported gateway config"},
		"unknown field":   {data: strings.Replace(string(valid), `"path"`, `"futureField": true, "path"`, 1), wantErr: `unknown field "futureField"`},
		"relative issuer": {data: strings.Replace(string(valid), "https://clerk.example.com", "clerk.example.com", 1), wantErr: "clerk.issuer"},
		"no upstream":     {data: strings.Replace(string(valid), "http://upstream.team-a.svc:8080/mcp", "", 1), wantErr: "upstream.url"},
		"no secret file":  {data: strings.Replace(string(valid), "/etc/mcpgate/clerk/secret-key", "", 1), wantErr: "clerk.secretKeyFile"},
		"bad path":        {data: strings.Replace(string(valid), `"path": "/mcp"`, `"path": "mcp"`, 1), wantErr: `path "mcp"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Parse error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

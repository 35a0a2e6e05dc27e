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

// TestBroker checks the broker block: a gateway with a broker holds no
// secret key, and every field is checked.
func TestBroker(t *testing.T) {
	t.Parallel()
	withBroker := func(b Broker, key string) Config {
		c := validConfig()
		c.Clerk.SecretKeyFile = key
		c.Broker = &b
		return c
	}
	good := Broker{URL: "https://mcpgate-broker.mcpgate-system.svc:8443", CAFile: "/etc/mcpgate/config/" + BrokerCAKey, TokenFile: "/var/run/secrets/mcpgate/broker/token"}
	noKey := validConfig()
	noKey.Clerk.SecretKeyFile = ""
	for name, tc := range map[string]struct {
		cfg     Config
		wantErr string // "" means valid
	}{
		"broker":                 {cfg: withBroker(good, "")},
		"neither key nor broker": {cfg: noKey},
		"key and broker":         {cfg: withBroker(good, "/etc/mcpgate/clerk/secret-key"), wantErr: "mutually exclusive"},
		"plain http":             {cfg: withBroker(Broker{URL: "http://broker:8443", CAFile: good.CAFile, TokenFile: good.TokenFile}, ""), wantErr: "broker.url"},
		"url with credentials":   {cfg: withBroker(Broker{URL: "https://u:p@broker:8443", CAFile: good.CAFile, TokenFile: good.TokenFile}, ""), wantErr: "broker.url"},
		"relative ca file":       {cfg: withBroker(Broker{URL: good.URL, CAFile: "ca.crt", TokenFile: good.TokenFile}, ""), wantErr: "broker.caFile"},
		"no token file":          {cfg: withBroker(Broker{URL: good.URL, CAFile: good.CAFile}, ""), wantErr: "broker.tokenFile"},
	} {
		err := tc.cfg.Validate()
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v, want valid", name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: %v, want an error containing %q", name, err, tc.wantErr)
		}
	}
}

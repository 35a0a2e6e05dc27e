package localstack

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestSubprocessHelpers starts the Clerk emulator and the sample server the
// way ClerkOptions.Mode and SampleOptions.Mode Subprocess do (the e2e tests
// use the in-process ones) and checks that they serve what was asked for
// and stop cleanly.
func TestSubprocessHelpers(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	bins, err := Build(ctx, BuildOptions{ClerkEmulator: true, SampleServer: true})
	if err != nil {
		t.Fatal(err)
	}
	logDir := t.TempDir()

	em, err := startClerk(ctx, ClerkOptions{Mode: Subprocess, Scopes: []string{"repo:admin"}, TokenFormat: Opaque}, bins.ClerkEmulator, logDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := em.stop(); err != nil {
			t.Errorf("stop the emulator: %v", err)
		}
	})
	if em.server != nil || em.instance.Issuer != em.instance.FrontendAPIURL || em.instance.SecretKey == "" {
		t.Fatalf("emulator = %+v", em.instance)
	}
	var as struct {
		Issuer          string   `json:"issuer"`
		ScopesSupported []string `json:"scopes_supported"`
	}
	if err := fetchJSON(ctx, em.instance.FrontendAPIURL+"/.well-known/oauth-authorization-server", "", &as); err != nil {
		t.Fatal(err)
	}
	if as.Issuer != em.instance.Issuer || !slices.Contains(as.ScopesSupported, "repo:admin") {
		t.Errorf("authorization server metadata = %+v", as)
	}
	var settings struct {
		JWT bool `json:"oauth_jwt_access_tokens"`
	}
	if err := fetchJSON(ctx, em.instance.BackendAPIURL+"/instance/oauth_application_settings", em.instance.SecretKey, &settings); err != nil {
		t.Fatal(err)
	}
	if settings.JWT {
		t.Error("the emulator issues JWTs; asked for opaque tokens")
	}

	sample, err := startSample(ctx, Subprocess, bins.SampleServer, logDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sample.stop(); err != nil {
			t.Errorf("stop the sample server: %v", err)
		}
	})
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "localstack-test", Version: "v0"}, nil).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: sample.url, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatalf("connect to the sample server: %v", err)
	}
	defer func() { _ = cs.Close() }()
	if _, err := cs.ListTools(ctx, nil); err != nil {
		t.Errorf("tools/list: %v", err)
	}
}

// fetchJSON GETs url, with a bearer token unless it is empty, into v.
func fetchJSON(ctx context.Context, url, token string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	return json.NewDecoder(resp.Body).Decode(v)
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/testenv"
)

// checkEndpoints checks the one JSON line the command prints on start.
func checkEndpoints(t *testing.T, e endpoints) endpoints {
	t.Helper()
	if e.FrontendAPIURL == "" || e.Issuer != e.FrontendAPIURL || !strings.HasSuffix(e.BackendAPIURL, "/v1") ||
		!strings.HasPrefix(e.PublishableKey, "pk_test_") || !strings.HasPrefix(e.SecretKey, "sk_test_") {
		t.Fatalf("endpoints = %+v", e)
	}
	return e
}

// runInProcess runs the command in-process with args and reads its line.
func runInProcess(t *testing.T, args ...string) (*testenv.InProcess, endpoints) {
	t.Helper()
	cmd := testenv.RunInProcess(t, "clerk-emulator", run, args...)
	var e endpoints
	cmd.JSONLine(t, &e)
	return cmd, checkEndpoints(t, e)
}

// stop stops an in-process command as a signal would: it must exit 0.
func stop(t *testing.T, cmd *testenv.InProcess) {
	t.Helper()
	if c := cmd.Stop(t); c != 0 {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", c, cmd.Stderr.String())
	}
}

// getJSON fetches url, with a bearer token when key is set, and decodes the object.
func getJSON(t *testing.T, url, key string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", url, resp.StatusCode)
	}
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRun runs the command in-process with flags and stops it by cancelling
// its context, as a signal would.
func TestRun(t *testing.T) {
	t.Parallel()
	cmd, e := runInProcess(t, "--jwt-access-tokens=false", "--dynamic-client-registration=false", "--user-id", "user_cli", "--scopes", "tools:read,tools:write")

	meta := getJSON(t, e.Issuer+"/.well-known/oauth-authorization-server", "")
	if meta["issuer"] != e.Issuer {
		t.Errorf("issuer = %v, want %s", meta["issuer"], e.Issuer)
	}
	if _, ok := meta["registration_endpoint"]; ok {
		t.Error("registration_endpoint advertised with --dynamic-client-registration=false")
	}
	if !strings.Contains(jsonText(meta["scopes_supported"]), `"tools:write"`) {
		t.Errorf("scopes_supported = %v, want the custom scopes", meta["scopes_supported"])
	}
	settings := getJSON(t, e.BackendAPIURL+"/instance/oauth_application_settings", e.SecretKey)
	if settings["oauth_jwt_access_tokens"] != false || settings["dynamic_oauth_client_registration"] != false {
		t.Errorf("settings = %v", settings)
	}

	// The people the usage text shows how to make: the --user-id user
	// exists, and the Backend API adds a user, an organization and a member.
	if u := getJSON(t, e.BackendAPIURL+"/users/user_cli", e.SecretKey); u["id"] != "user_cli" {
		t.Errorf("the --user-id user = %v", u)
	}
	ada := postJSON(t, e.BackendAPIURL+"/users", e.SecretKey, `{"email_address":["ada@corp.example"]}`)
	org := postJSON(t, e.BackendAPIURL+"/organizations", e.SecretKey, `{"name":"Acme","slug":"acme","created_by":"`+ada["id"].(string)+`"}`)
	postJSON(t, e.BackendAPIURL+"/organizations/"+org["id"].(string)+"/memberships", e.SecretKey, `{"user_id":"user_cli","role":"org:member"}`)
	list := getJSON(t, e.BackendAPIURL+"/users/user_cli/organization_memberships", e.SecretKey)
	if list["total_count"] != 1.0 || !strings.Contains(jsonText(list["data"]), `"slug":"acme"`) {
		t.Errorf("memberships = %v", list)
	}

	stop(t, cmd)
	if strings.Contains(cmd.Stderr.String(), e.SecretKey) {
		t.Error("the secret key was logged")
	}
	if !strings.Contains(cmd.Stderr.String(), "path=/.well-known/oauth-authorization-server") {
		t.Errorf("stderr lacks the request log:\n%s", cmd.Stderr.String())
	}
}

// TestRun_badArguments checks the usage errors.
func TestRun_badArguments(t *testing.T) {
	t.Parallel()
	testenv.CheckRefused(t, run, map[string][]string{
		"unknown flag":        {"--nope"},
		"positional arg":      {"extra"},
		"bad duration":        {"--access-token-ttl", "soon"},
		"unlistenable addr":   {"--listen", "256.0.0.1:0"},
		"bad backend address": {"--backend-listen", "not-an-address"},
		"unknown scope rule":  {"--client-scopes", "any"},
		"missing CA file":     {"--client-metadata-ca-file", "/nonexistent/ca.pem"},
	})
}

// TestBinary builds the command, starts it, reads its line, checks the
// metadata endpoint, and stops it with SIGTERM: it must exit 0.
func TestBinary(t *testing.T) {
	t.Parallel()
	cmd := testenv.StartCommand(t, "./hack/clerk-emulator", "--listen", "127.0.0.1:0", "--user-email", "someone@example.com")
	var e endpoints
	cmd.JSONLine(t, &e)
	checkEndpoints(t, e)
	if meta := getJSON(t, e.FrontendAPIURL+"/.well-known/oauth-authorization-server", ""); meta["issuer"] != e.Issuer {
		t.Fatalf("issuer = %v, want %s", meta["issuer"], e.Issuer)
	}

	if !cmd.Stop(time.Minute) {
		t.Fatal("the command did not exit within a minute of SIGTERM")
	}
	if err := cmd.ExitErr(); err != nil {
		t.Fatalf("exit after SIGTERM: %v; stderr:\n%s", err, cmd.Logs.String())
	}
	if strings.Contains(cmd.Logs.String(), e.SecretKey) {
		t.Error("the secret key was logged")
	}
}

// postJSON posts body with the secret key and decodes the 200 answer.
func postJSON(t *testing.T, url, key, body string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: status %d, %v: %v", url, resp.StatusCode, err, m)
	}
	return m
}

// TestUsage checks that -h shows how to create people and sign in as them.
func TestUsage(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	if c := run(context.Background(), []string{"-h"}, &stdout, &stderr); c != 0 {
		t.Fatalf("exit code %d for -h", c)
	}
	for _, want := range []string{"/users", "/organizations", "/memberships", "organization_memberships", "login_hint", "-listen",
		"-client-scopes", "-client-metadata-documents", "-loopback-client-metadata"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, stderr.String())
		}
	}
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestRun_clientFlags checks the client flags through the command: with
// --client-scopes=instance a client registered for email is granted a wider
// scope, and with --client-metadata-documents and
// --loopback-client-metadata a client whose client_id is the URL of a
// document on this machine is granted a code.
func TestRun_clientFlags(t *testing.T) {
	t.Parallel()
	const redirectURI = "http://127.0.0.1:7777/callback"
	// The document is served over https by a server with its own CA, which
	// --client-metadata-ca-file makes the emulator trust.
	var docURL string
	doc := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"client_id": docURL, "client_name": "flags test", "redirect_uris": []string{redirectURI}, "token_endpoint_auth_method": "none"})
	}))
	defer doc.Close()
	docURL = doc.URL + "/client.json"
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: doc.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd, e := runInProcess(t, "--scopes", "tools:write", "--client-scopes=instance", "--client-metadata-documents", "--loopback-client-metadata",
		"--client-metadata-ca-file", caFile)
	if meta := getJSON(t, e.Issuer+"/.well-known/oauth-authorization-server", ""); meta["client_id_metadata_document_supported"] != true {
		t.Errorf("AS metadata = %v, want client_id_metadata_document_supported", meta)
	}

	resp, err := http.Post(e.Issuer+"/oauth/register", "application/json",
		strings.NewReader(`{"redirect_uris":["`+redirectURI+`"],"token_endpoint_auth_method":"none","scope":"email"}`))
	if err != nil {
		t.Fatal(err)
	}
	var reg map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&reg); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("register: status %d, %v: %v", resp.StatusCode, err, reg)
	}
	resp.Body.Close()

	for name, clientID := range map[string]string{"registered client, wider scope": reg["client_id"].(string), "metadata document client": docURL} {
		q := url.Values{
			"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirectURI}, "scope": {"email tools:write"},
			"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}, "state": {"state-123456"},
		}
		noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noRedirect.Get(e.Issuer + "/oauth/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || loc == nil || loc.Query().Get("code") == "" {
			t.Errorf("%s: status %d, Location %q; want a code", name, resp.StatusCode, resp.Header.Get("Location"))
		}
	}

	stop(t, cmd)
}

package clerktest

import (
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestWithTLS: both APIs serve https with the given certificate, and the
// URLs the emulator hands out, the issuer among them, say so.
func TestWithTLS(t *testing.T) {
	// httptest's TLS server has a certificate for 127.0.0.1 and a client
	// that trusts it; the emulator borrows both.
	certSource := httptest.NewTLSServer(http.NotFoundHandler())
	client := certSource.Client()
	cfg := &tls.Config{Certificates: certSource.TLS.Certificates, MinVersion: tls.VersionTLS12}
	certSource.Close()

	s := newTestServer(t, WithTLS(cfg))
	if !strings.HasPrefix(s.FrontendAPIURL(), "https://") || !strings.HasPrefix(s.BackendAPIURL(), "https://") {
		t.Fatalf("URLs with TLS: frontend %q, backend %q; want https", s.FrontendAPIURL(), s.BackendAPIURL())
	}

	resp, err := client.Get(s.FrontendAPIURL() + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatalf("authorization server metadata over TLS: %v", err)
	}
	defer resp.Body.Close()
	var md struct {
		Issuer        string `json:"issuer"`
		TokenEndpoint string `json:"token_endpoint"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		t.Fatalf("decode metadata: %v", err)
	}
	if md.Issuer != s.FrontendAPIURL() || !strings.HasPrefix(md.TokenEndpoint, s.FrontendAPIURL()+"/") {
		t.Errorf("metadata issuer %q, token_endpoint %q; want both under %q", md.Issuer, md.TokenEndpoint, s.FrontendAPIURL())
	}

	req, _ := http.NewRequest(http.MethodGet, s.BackendAPIURL()+"/users/"+DefaultUserID, nil)
	req.Header.Set("Authorization", "Bearer "+s.SecretKey())
	be, err := client.Do(req)
	if err != nil {
		t.Fatalf("backend api over TLS: %v", err)
	}
	be.Body.Close()
	if be.StatusCode != http.StatusOK {
		t.Errorf("GET /users/%s over TLS: status %d, want 200", DefaultUserID, be.StatusCode)
	}

	// A plain-http request to the TLS port is refused, not served.
	plain, err := http.Get(strings.Replace(s.FrontendAPIURL(), "https://", "http://", 1) + "/.well-known/oauth-authorization-server")
	if err == nil {
		plain.Body.Close()
		if plain.StatusCode == http.StatusOK {
			t.Errorf("plain http to the TLS listener was served")
		}
	}
}

func TestAdvertisedHost(t *testing.T) {
	for _, tc := range []struct {
		addr             string
		scheme, hostname string
		want             string
	}{
		{"10.0.0.1:443", "https", "", "10.0.0.1:443"},
		{"10.0.0.1:443", "https", "clerk.example.test", "clerk.example.test"},
		{"10.0.0.1:8443", "https", "clerk.example.test", "clerk.example.test:8443"},
		{"10.0.0.1:80", "http", "clerk.example.test", "clerk.example.test"},
		{"10.0.0.1:443", "http", "clerk.example.test", "clerk.example.test:443"},
		{"0.0.0.0:9000", "http", "", "127.0.0.1:9000"},
	} {
		addr, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := advertisedHost(addr, tc.scheme, tc.hostname); got != tc.want {
			t.Errorf("advertisedHost(%s, %s, %q) = %q, want %q", tc.addr, tc.scheme, tc.hostname, got, tc.want)
		}
	}
}

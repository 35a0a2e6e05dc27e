package clerktest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

const verifyEndpoint = "POST /v1/oauth_applications/access_tokens/verify"

// TestServer_faults covers each kind of fault on one endpoint, and that the
// other endpoints are left alone.
func TestServer_faults(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		endpoint       string // where the fault is set
		fault          Fault
		wantStatus     int           // on GET /v1/jwks; 0 means a connection error
		wantRetryAfter string        // Retry-After header
		wantMinElapsed time.Duration // latency
		otherAffected  bool          // GET /v1/instance/oauth_application_settings fails too
	}{
		"500":                {endpoint: "GET /v1/jwks", fault: Fault{Status: 500}, wantStatus: 500},
		"503":                {endpoint: "GET /v1/jwks", fault: Fault{Status: 503}, wantStatus: 503},
		"429 with retry":     {endpoint: "GET /v1/jwks", fault: Fault{Status: 429, RetryAfter: 1500 * time.Millisecond}, wantStatus: 429, wantRetryAfter: "2"},
		"latency":            {endpoint: "GET /v1/jwks", fault: Fault{Latency: 150 * time.Millisecond}, wantStatus: 200, wantMinElapsed: 150 * time.Millisecond},
		"latency then 500":   {endpoint: "GET /v1/jwks", fault: Fault{Latency: 100 * time.Millisecond, Status: 500}, wantStatus: 500, wantMinElapsed: 100 * time.Millisecond},
		"outage":             {endpoint: "GET /v1/jwks", fault: Fault{Outage: true}},
		"wildcard":           {endpoint: AllEndpoints, fault: Fault{Status: 502}, wantStatus: 502, otherAffected: true},
		"wildcard outage":    {endpoint: AllEndpoints, fault: Fault{Outage: true}, otherAffected: true},
		"other endpoint":     {endpoint: "GET /v1/instance/oauth_application_settings", fault: Fault{Status: 500}, wantStatus: 200, otherAffected: true},
		"zero fault is none": {endpoint: "GET /v1/jwks", fault: Fault{}, wantStatus: 200},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newTestServer(t)
			s.SetFault(tc.endpoint, tc.fault)
			req, _ := http.NewRequest(http.MethodGet, s.BackendAPIURL()+"/jwks", nil)
			req.Header.Set("Authorization", "Bearer "+s.SecretKey())
			start := time.Now()
			resp, err := http.DefaultClient.Do(req)
			elapsed := time.Since(start)
			if tc.wantStatus == 0 {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("status %d, want a connection error", resp.StatusCode)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tc.wantStatus || resp.Header.Get("Retry-After") != tc.wantRetryAfter {
					t.Fatalf("status %d Retry-After %q, want %d %q", resp.StatusCode, resp.Header.Get("Retry-After"), tc.wantStatus, tc.wantRetryAfter)
				}
			}
			if elapsed < tc.wantMinElapsed {
				t.Fatalf("answered after %v, want at least %v", elapsed, tc.wantMinElapsed)
			}
			if tc.wantStatus == 0 && tc.otherAffected {
				// The wildcard outage drops every connection, so there is no
				// other response to check; the counter saw the request.
				if s.Calls("GET /v1/jwks") == 0 {
					t.Fatal("the dropped request was not counted")
				}
				return
			}
			other := backend(t, s, http.MethodGet, "/instance/oauth_application_settings", "")
			if (other.status != 200) != tc.otherAffected {
				t.Fatalf("other endpoint: status %d, affected = %v", other.status, tc.otherAffected)
			}
			if other.status >= 400 {
				checkClerkErrors(t, other, "")
			}
		})
	}
}

// TestServer_faultFailedResponseBody checks the body of an injected status.
func TestServer_faultFailedResponseBody(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	s.SetFault(verifyEndpoint, Fault{Status: 429, RetryAfter: 3 * time.Second})
	resp := backend(t, s, http.MethodPost, "/oauth_applications/access_tokens/verify", `{"access_token":"x"}`)
	if resp.status != 429 || resp.header.Get("Retry-After") != "3" {
		t.Fatalf("status %d Retry-After %q", resp.status, resp.header.Get("Retry-After"))
	}
	checkClerkErrors(t, resp, "too_many_requests")

	// The frontend honours faults too, and a specific fault beats "*".
	s.SetFault(AllEndpoints, Fault{Status: 500})
	s.SetFault("GET /.well-known/jwks.json", Fault{Status: 503})
	if got := get(t, s.FrontendAPIURL()+"/.well-known/jwks.json").status; got != 503 {
		t.Fatalf("jwks status %d, want the specific 503", got)
	}
	if got := get(t, s.FrontendAPIURL()+"/.well-known/oauth-authorization-server").status; got != 500 {
		t.Fatalf("metadata status %d, want the wildcard 500", got)
	}
	s.ClearFaults()
	if got := get(t, s.FrontendAPIURL()+"/.well-known/jwks.json").status; got != 200 {
		t.Fatalf("after ClearFaults: status %d", got)
	}
}

// TestServer_latencyHonoursCancellation checks that a client giving up ends
// an injected delay, and that Close does not wait for the delay either.
func TestServer_latencyHonoursCancellation(t *testing.T) {
	t.Parallel()
	s := NewServer()
	s.SetFault("GET /.well-known/jwks.json", Fault{Latency: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.FrontendAPIURL()+"/.well-known/jwks.json", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("status %d, want the request to time out", resp.StatusCode)
	}

	// A second delayed request is in flight while the server closes. The
	// first may never have reached the server (the client gave up first on
	// a loaded machine), so wait for the count to grow, not to reach 2.
	before := s.Calls("GET /.well-known/jwks.json")
	go func() {
		resp, err := http.Get(s.FrontendAPIURL() + "/.well-known/jwks.json")
		if err == nil {
			resp.Body.Close()
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for s.Calls("GET /.well-known/jwks.json") <= before {
		if time.Now().After(deadline) {
			t.Fatal("the second delayed request never reached the server")
		}
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	s.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %v with a delayed request in flight", d)
	}
}

// TestServer_calls checks the counters, including faulted requests.
func TestServer_calls(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	for range 3 {
		backend(t, s, http.MethodGet, "/jwks", "")
	}
	s.SetFault("GET /v1/jwks", Fault{Status: 500})
	backend(t, s, http.MethodGet, "/jwks", "")
	get(t, s.FrontendAPIURL()+"/.well-known/oauth-authorization-server")
	backend(t, s, http.MethodGet, "/nope", "")

	for endpoint, want := range map[string]int{
		"GET /v1/jwks": 4,
		"GET /.well-known/oauth-authorization-server": 1,
		"GET /v1/nope":               1,
		"GET /.well-known/jwks.json": 0,
		AllEndpoints:                 6,
	} {
		if got := s.Calls(endpoint); got != want {
			t.Errorf("Calls(%q) = %d, want %d", endpoint, got, want)
		}
	}
	s.ResetCalls()
	if got := s.Calls(AllEndpoints); got != 0 {
		t.Errorf("after ResetCalls: %d calls", got)
	}
}

// TestServer_concurrentVerify hits the verify endpoint with 1,000 concurrent
// requests while keys rotate and settings change, for the race detector.
func TestServer_concurrentVerify(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, WithJWTAccessTokens(false))
	tokens := make([]string, 10)
	for i := range tokens {
		var err error
		if tokens[i], err = s.MintAccessToken(TokenRequest{ClientID: fmt.Sprintf("client_%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	// At most 500 connections keep the test within common file descriptor
	// limits (each connection costs one on either side).
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 500, MaxConnsPerHost: 500}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			body := fmt.Sprintf(`{"access_token":%q}`, tokens[i%len(tokens)])
			req, _ := http.NewRequest(http.MethodPost, s.BackendAPIURL()+"/oauth_applications/access_tokens/verify", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+s.SecretKey())
			resp, err := client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				errs <- fmt.Errorf("status %d", resp.StatusCode)
			}
		})
	}
	wg.Go(func() {
		s.RotateKeys()
		s.SetSettings(OAuthApplicationSettings{DefaultScopes: []string{"email"}})
		_ = s.Settings()
		_, _ = s.MintAccessToken(TokenRequest{})
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := s.Calls(verifyEndpoint); got != n {
		t.Fatalf("Calls = %d, want %d", got, n)
	}
}

// TestServer_outageIsConnectionError checks what a client sees on an outage:
// an error, not a response.
func TestServer_outageIsConnectionError(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	s.SetFault(verifyEndpoint, Fault{Outage: true})
	req, _ := http.NewRequest(http.MethodPost, s.BackendAPIURL()+"/oauth_applications/access_tokens/verify", strings.NewReader(`{"access_token":"x"}`))
	req.Header.Set("Authorization", "Bearer "+s.SecretKey())
	_, err := http.DefaultClient.Do(req)
	var netErr interface{ Timeout() bool }
	if err == nil || errors.As(err, &netErr) && netErr.Timeout() {
		t.Fatalf("err = %v, want a dropped connection", err)
	}
	if s.Calls(verifyEndpoint) < 1 {
		t.Fatal("the dropped request was not counted")
	}
}

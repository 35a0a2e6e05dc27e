package clerk

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/clerk/clerk-sdk-go/v2"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
)

// getKeySet fetches a JWKS as anyone could, sending key as a bearer token
// when it is not empty, and decodes it with the SDK's types.
func getKeySet(t testing.TB, url, key string) *sdk.JSONWebKeySet {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	var set sdk.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return &set
}

// TestEmulator_jwksSameOnBothAPIs checks that the emulator's Frontend API
// serves, to anyone, the key set its Backend API serves to the secret key's
// holder, before and after a rotation: tests of the verifier against the
// Frontend API's set stand for Clerk's, where both are the instance's keys.
func TestEmulator_jwksSameOnBothAPIs(t *testing.T) {
	t.Parallel()
	srv := newEmulator(t, newFakeClock())
	for _, rotate := range []bool{false, true} {
		if rotate {
			srv.RotateKeys()
		}
		frontend := usableKeys(getKeySet(t, srv.FrontendAPIURL()+"/.well-known/jwks.json", ""))
		backend := usableKeys(getKeySet(t, srv.BackendAPIURL()+"/jwks", srv.SecretKey()))
		if len(frontend) == 0 || len(frontend) != len(backend) {
			t.Fatalf("rotated %t: %d keys from the Frontend API, %d from the Backend API", rotate, len(frontend), len(backend))
		}
		for kid, pub := range backend {
			if got, ok := frontend[kid]; !ok || !got.Equal(pub) {
				t.Errorf("rotated %t: kid %s differs or is missing on the Frontend API", rotate, kid)
			}
		}
		if _, ok := frontend[srv.KeyID()]; !ok {
			t.Errorf("rotated %t: the signing key %s is not served", rotate, srv.KeyID())
		}
	}
}

// TestVerifier_noSecretKey checks a verifier made without a secret key: it
// verifies JWTs with the Frontend API's keys and makes no Backend API call;
// it refuses an opaque token as unavailable (ErrNoSecretKey), without
// asking anyone, and a malformed one as invalid.
func TestVerifier_noSecretKey(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		backendURL bool // configure the Backend API URL all the same
	}{
		"no backend api url":   {},
		"with backend api url": {backendURL: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			clock := newFakeClock()
			srv := newEmulator(t, clock)
			v := newEmulatorVerifier(t, srv, clock, func(o *VerifierOptions) {
				o.SecretKey = nil
				if !tc.backendURL {
					o.BackendAPIURL = ""
				}
			})
			if err := v.Ready(ctx); err != nil {
				t.Fatalf("Ready: %v", err)
			}
			for _, scopes := range [][]string{{"profile"}, {"profile", "email"}} {
				tok := mint(t, srv, clerktest.TokenRequest{Format: clerktest.FormatJWT, Scopes: scopes})
				if id, err := v.Verify(ctx, tok); err != nil || id.Format != FormatJWT {
					t.Fatalf("JWT: %+v, %v", id, err)
				}
			}
			// NOTE: minting does not call the emulator's APIs; only the
			// verifier's requests are counted.
			opaque := mint(t, srv, clerktest.TokenRequest{Format: clerktest.FormatOpaque})
			_, err := v.Verify(ctx, opaque)
			ue := wantUnavailable(t, err)
			if !errors.Is(err, ErrNoSecretKey) || ue.RetryAfter != retryMisconfigured {
				t.Errorf("opaque token: %v, want ErrNoSecretKey with RetryAfter %s", err, retryMisconfigured)
			}
			if strings.Contains(err.Error(), opaque) {
				t.Errorf("error %q contains the token", err)
			}
			_, err = v.Verify(ctx, "oat_not/a/token")
			wantInvalid(t, err, "malformed token")

			if n := srv.Calls(epJWKS); n != 1 {
				t.Errorf("%d Frontend API key set fetches, want 1", n)
			}
			if all := srv.Calls(clerktest.AllEndpoints); all != srv.Calls(epJWKS) {
				t.Errorf("%d calls to Clerk besides the key set, want none", all-srv.Calls(epJWKS))
			}
		})
	}
}

// TestVerifier_jwksSource checks that JWTs depend on the Frontend API alone:
// with it down, a cold verifier is unavailable and not ready; with the
// Backend API down or refusing the secret key, JWTs verify and the verifier
// is ready, while opaque tokens are unavailable.
func TestVerifier_jwksSource(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		frontendDown bool   // the Frontend API's key set drops every request
		backendDown  bool   // the Backend API URL points at a closed port
		secretKey    string // the secret key the verifier has; empty: the emulator's
		wantJWT      bool   // a JWT verifies, and Ready is nil
		wantOpaque   bool   // an opaque token verifies
	}{
		"both up":                 {wantJWT: true, wantOpaque: true},
		"frontend api down":       {frontendDown: true, wantOpaque: true},
		"backend api down":        {backendDown: true, wantJWT: true},
		"secret key rejected":     {secretKey: "sk_test_wrong", wantJWT: true},
		"both down":               {frontendDown: true, backendDown: true},
		"frontend down, bad key":  {frontendDown: true, secretKey: "sk_test_wrong"},
		"backend down, jwts only": {backendDown: true, secretKey: "-", wantJWT: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			clock := newFakeClock()
			srv := newEmulator(t, clock)
			v := newEmulatorVerifier(t, srv, clock, func(o *VerifierOptions) {
				switch tc.secretKey {
				case "":
				case "-":
					o.SecretKey = nil
				default:
					o.SecretKey = staticKey(tc.secretKey)
				}
				if tc.backendDown {
					o.BackendAPIURL = "http://127.0.0.1:1/v1"
				}
			})
			if tc.frontendDown {
				srv.SetFault(epJWKS, clerktest.Fault{Outage: true})
			}
			jwt := mint(t, srv, clerktest.TokenRequest{Format: clerktest.FormatJWT})
			opaque := mint(t, srv, clerktest.TokenRequest{Format: clerktest.FormatOpaque})

			_, err := v.Verify(ctx, jwt)
			if tc.wantJWT {
				if err != nil {
					t.Errorf("JWT: %v", err)
				}
				if err := v.Ready(ctx); err != nil {
					t.Errorf("Ready: %v", err)
				}
			} else {
				wantUnavailable(t, err)
				wantUnavailable(t, v.Ready(ctx))
			}
			_, err = v.Verify(ctx, opaque)
			if tc.wantOpaque {
				if err != nil {
					t.Errorf("opaque token: %v", err)
				}
			} else {
				wantUnavailable(t, err)
			}
			if n := srv.Calls(epBackendJWKS); n != 0 {
				t.Errorf("the Backend API's key set was fetched %d times", n)
			}
		})
	}
}

// TestVerifier_rateLimitsApart checks that a 429 from one API backs off
// calls to it alone: after the Frontend API's, no key set fetch until its
// Retry-After has passed, however many unknown-kid refreshes fall due, while
// opaque lookups go on; after the Backend API's, no opaque lookup, while the
// key set is fetched.
func TestVerifier_rateLimitsApart(t *testing.T) {
	t.Parallel()
	const retryAfter = 20 * time.Second
	tests := map[string]struct {
		endpoint string // the endpoint answering 429
		limited  string // the format that API verifies
		other    string // the format the other API verifies
	}{
		"frontend api 429": {endpoint: epJWKS, limited: clerktest.FormatJWT, other: clerktest.FormatOpaque},
		"backend api 429":  {endpoint: epVerify, limited: clerktest.FormatOpaque, other: clerktest.FormatJWT},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			clock := newFakeClock()
			srv := newEmulator(t, clock)
			v := newEmulatorVerifier(t, srv, clock)
			limited := mint(t, srv, clerktest.TokenRequest{Format: tc.limited})
			verifyOther := func(step string) {
				t.Helper()
				if _, err := v.Verify(ctx, mint(t, srv, clerktest.TokenRequest{Format: tc.other})); err != nil {
					t.Fatalf("%s: the other API's token: %v", step, err)
				}
			}

			srv.SetFault(tc.endpoint, clerktest.Fault{Status: http.StatusTooManyRequests, RetryAfter: retryAfter})
			_, err := v.Verify(ctx, limited)
			if ue := wantUnavailable(t, err); ue.RetryAfter != retryAfter {
				t.Errorf("RetryAfter = %s, want %s", ue.RetryAfter, retryAfter)
			}
			verifyOther("during the limit")
			srv.ClearFaults()
			calls := srv.Calls(tc.endpoint)

			// Past the key set's usual retry delay, still within Retry-After.
			clock.Step(jwksRetryAfterFailure)
			_, err = v.Verify(ctx, limited)
			if ue := wantUnavailable(t, err); ue.RetryAfter != retryAfter-jwksRetryAfterFailure {
				t.Errorf("during the back-off: RetryAfter = %s, want %s", ue.RetryAfter, retryAfter-jwksRetryAfterFailure)
			}
			if n := srv.Calls(tc.endpoint); n != calls {
				t.Errorf("%d calls to %s during the back-off, want none", n-calls, tc.endpoint)
			}
			verifyOther("during the back-off")

			clock.Step(retryAfter - jwksRetryAfterFailure)
			if _, err := v.Verify(ctx, limited); err != nil {
				t.Fatalf("after the back-off: %v", err)
			}
		})
	}
}

// TestVerifier_jwksFailures checks that every way the Frontend API can fail
// to serve the key set gives an *UnavailableError with a Retry-After, that
// none is taken for a refused secret key (none is sent), and that the next
// fetch after it, once due, succeeds.
func TestVerifier_jwksFailures(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		fault          clerktest.Fault // injected into the Frontend API's key set
		wantRetryAfter time.Duration   // expected UnavailableError.RetryAfter; 0: any
		wantStatus     int             // the status the error reports; 0: no answer
	}{
		"502":              {fault: clerktest.Fault{Status: 502}, wantStatus: 502, wantRetryAfter: retryTransient},
		"500":              {fault: clerktest.Fault{Status: 500}, wantStatus: 500, wantRetryAfter: retryTransient},
		"503 retry-after":  {fault: clerktest.Fault{Status: 503, RetryAfter: 4 * time.Second}, wantStatus: 503, wantRetryAfter: 4 * time.Second},
		"outage":           {fault: clerktest.Fault{Outage: true}, wantRetryAfter: retryTransient},
		"timeout":          {fault: clerktest.Fault{Latency: 2 * time.Second}},
		"429 retry-after":  {fault: clerktest.Fault{Status: 429, RetryAfter: 7 * time.Second}, wantStatus: 429, wantRetryAfter: 7 * time.Second},
		"429 no header":    {fault: clerktest.Fault{Status: 429}, wantStatus: 429, wantRetryAfter: retryRateLimited},
		"401 from a proxy": {fault: clerktest.Fault{Status: 401}, wantStatus: 401, wantRetryAfter: retryTransient},
		"404":              {fault: clerktest.Fault{Status: 404}, wantStatus: 404, wantRetryAfter: retryTransient},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock()
			srv := newEmulator(t, clock)
			v := newEmulatorVerifier(t, srv, clock, func(o *VerifierOptions) {
				o.HTTPClient = &http.Client{Timeout: 300 * time.Millisecond}
			})
			tok := mint(t, srv, clerktest.TokenRequest{Format: clerktest.FormatJWT})
			srv.SetFault(epJWKS, tc.fault)

			_, err := v.Verify(context.Background(), tok)
			ue := wantUnavailable(t, err)
			if tc.wantRetryAfter != 0 && ue.RetryAfter != tc.wantRetryAfter {
				t.Errorf("RetryAfter = %s, want %s", ue.RetryAfter, tc.wantRetryAfter)
			}
			status := 0
			if fe := (*frontendError)(nil); errors.As(err, &fe) {
				status = fe.StatusCode
			}
			if status != tc.wantStatus {
				t.Errorf("status = %d, want %d (%v)", status, tc.wantStatus, err)
			}
			if IsUnauthorized(err) {
				t.Errorf("IsUnauthorized(%v): no secret key was sent to be refused", err)
			}
			if strings.Contains(err.Error(), tok) {
				t.Errorf("error %q contains the token", err)
			}

			srv.ClearFaults()
			clock.Step(max(ue.RetryAfter, jwksRetryAfterFailure))
			if _, err := v.Verify(context.Background(), tok); err != nil {
				t.Fatalf("after recovery: %v", err)
			}
		})
	}
}

// TestVerifier_frontendKeys checks the key set request and the answers the
// emulator cannot give: the request is a plain GET of
// <issuer>/.well-known/jwks.json (under the issuer's path, as behind a
// proxy) with no credential, though the verifier has a secret key; a
// redirect is not followed; an oversized, undecodable or unusable set makes
// the verifier unavailable, never trusting.
func TestVerifier_frontendKeys(t *testing.T) {
	t.Parallel()
	key := newRSAKey(t)
	jwk := func(kid string) map[string]any {
		return map[string]any{
			"kid": kid, "kty": "RSA", "alg": "RS256", "use": "sig",
			"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
		}
	}
	set := func(keys ...map[string]any) string {
		b, err := json.Marshal(map[string]any{"keys": keys})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tests := map[string]struct {
		issuerPath string // the issuer's path under the test server
		status     int    // the answer's status; 0: 200
		location   string // Location of a redirect, under the test server
		body       string // the answer's body
		want       string // for a token signed by key under testKID: "valid", an invalid token reason, or "unavailable"
	}{
		"key set":               {body: set(jwk(testKID)), want: "valid"},
		"issuer with a path":    {issuerPath: "/__clerk", body: set(jwk(testKID)), want: "valid"},
		"other kid only":        {body: set(jwk("ins_other")), want: "unknown signing key"},
		"encryption key only":   {body: set(func() map[string]any { k := jwk(testKID); k["use"] = "enc"; return k }()), want: "unavailable"},
		"empty set":             {body: `{"keys":[]}`, want: "unavailable"},
		"not json":              {body: "<html>gateway error</html>", want: "unavailable"},
		"over the size limit":   {body: `{"keys":[],"pad":"` + strings.Repeat("x", maxResponseBytes) + `"}`, want: "unavailable"},
		"redirect to a key set": {status: http.StatusFound, location: "/elsewhere/jwks.json", want: "unavailable"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var reqs []*http.Request
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				reqs = append(reqs, r.Clone(context.Background()))
				mu.Unlock()
				if r.URL.Path == "/elsewhere/jwks.json" {
					_, _ = w.Write([]byte(set(jwk(testKID))))
					return
				}
				if tc.location != "" {
					w.Header().Set("Location", tc.location)
				}
				w.WriteHeader(max(tc.status, http.StatusOK))
				_, _ = w.Write([]byte(tc.body))
			}))
			t.Cleanup(srv.Close)
			issuer := srv.URL + tc.issuerPath
			clock := newFakeClock()
			// With a secret key, which must stay with the Backend API.
			v, err := NewVerifier(VerifierOptions{
				Issuer: issuer, BackendAPIURL: "http://127.0.0.1:1/v1", SecretKey: staticKey("sk_test_secret"),
				Audiences: []string{testResource}, Now: clock.Now,
			})
			if err != nil {
				t.Fatal(err)
			}
			tok := mintJWT(t, key, accessHeader(testKID), accessClaims(issuer, clock.Now()))
			_, err = v.Verify(context.Background(), tok)
			switch tc.want {
			case "valid":
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
			case "unavailable":
				wantUnavailable(t, err)
			default:
				wantInvalid(t, err, tc.want)
			}

			mu.Lock()
			defer mu.Unlock()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1 (a redirect is not followed)", len(reqs))
			}
			r := reqs[0]
			if r.Method != http.MethodGet || r.URL.Path != tc.issuerPath+"/.well-known/jwks.json" || r.URL.RawQuery != "" {
				t.Errorf("request %s %s, want GET %s/.well-known/jwks.json", r.Method, r.URL, tc.issuerPath)
			}
			for name, values := range r.Header {
				if name == "Authorization" || name == "Cookie" || strings.Contains(strings.Join(values, " "), "sk_test_secret") {
					t.Errorf("the key set request carries %s", name)
				}
			}
		})
	}
}

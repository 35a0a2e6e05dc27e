package clerk

import (
	"context"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
)

// Emulator endpoints, as clerktest names them.
const (
	epVerify = "POST /v1/oauth_applications/access_tokens/verify"
	// epJWKS is the Frontend API's key set, which the verifier uses;
	// epBackendJWKS the Backend API's, which it no longer calls.
	epJWKS        = "GET /.well-known/jwks.json"
	epBackendJWKS = "GET /v1/jwks"
)

// newEmulator starts a Clerk emulator on clock, closed with the test.
func newEmulator(t testing.TB, clock *clocktesting.FakeClock, opts ...clerktest.Option) *clerktest.Server {
	t.Helper()
	srv := clerktest.NewServer(append([]clerktest.Option{clerktest.WithClock(clock.Now)}, opts...)...)
	t.Cleanup(srv.Close)
	return srv
}

// newEmulatorVerifier returns a verifier for srv's instance on clock; edit
// adjusts the options first.
func newEmulatorVerifier(t testing.TB, srv *clerktest.Server, clock *clocktesting.FakeClock, edit ...func(*VerifierOptions)) *Verifier {
	t.Helper()
	opts := VerifierOptions{
		Issuer:        srv.FrontendAPIURL(),
		BackendAPIURL: srv.BackendAPIURL(),
		SecretKey:     staticKey(srv.SecretKey()),
		Audiences:     []string{testResource},
		Now:           clock.Now,
	}
	for _, e := range edit {
		e(&opts)
	}
	v, err := NewVerifier(opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// mint mints an access token or fails the test.
func mint(t testing.TB, srv *clerktest.Server, req clerktest.TokenRequest) string {
	t.Helper()
	tok, err := srv.MintAccessToken(req)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// emulatorPublicKey fetches the emulator's current signing key from the
// public JWKS, as an attacker could.
func emulatorPublicKey(t testing.TB, srv *clerktest.Server) *rsa.PublicKey {
	t.Helper()
	set := getKeySet(t, srv.FrontendAPIURL()+"/.well-known/jwks.json", "")
	for _, k := range set.Keys {
		if k.KeyID == srv.KeyID() {
			return k.Key.(*rsa.PublicKey)
		}
	}
	t.Fatalf("kid %s not in the JWKS", srv.KeyID())
	return nil
}

// TestVerifier_emulatorTokens verifies tokens minted by the emulator and
// forgeries made with what an attacker has: a token, the public JWKS, their
// own keys.
func TestVerifier_emulatorTokens(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	srv := newEmulator(t, clock)
	v := newEmulatorVerifier(t, srv, clock)
	kid := srv.KeyID()
	attacker := newRSAKey(t)
	pub := emulatorPublicKey(t, srv)
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	var jkuHits atomic.Int64
	jku := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { jkuHits.Add(1) }))
	t.Cleanup(jku.Close)

	jwt := mint(t, srv, clerktest.TokenRequest{Format: clerktest.FormatJWT, Scopes: []string{"profile", "email"}, ClientID: "client_a"})
	parts := strings.Split(jwt, ".")
	var realClaims map[string]any
	if err := json.Unmarshal(mustB64(t, parts[1]), &realClaims); err != nil {
		t.Fatal(err)
	}
	forge := func(key *rsa.PrivateKey, header map[string]any, claims map[string]any) string {
		return mintJWT(t, key, header, claims)
	}
	hs256 := func(secret []byte) string {
		h64 := b64json(t, map[string]any{"alg": "HS256", "kid": kid, "typ": "at+jwt"})
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(h64 + "." + parts[1]))
		return h64 + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	}
	session, err := srv.MintSessionToken("")
	if err != nil {
		t.Fatal(err)
	}
	revoked := mint(t, srv, clerktest.TokenRequest{Format: clerktest.FormatOpaque})
	if err := srv.RevokeAccessToken(revoked); err != nil {
		t.Fatal(err)
	}

	tests := map[string]struct {
		token  string      // the token
		reason string      // expected InvalidTokenError reason; empty: valid
		format TokenFormat // expected format when valid
		client string      // expected client id when valid
		scopes []string    // expected scopes when valid
	}{
		"jwt access token":       {token: jwt, format: FormatJWT, client: "client_a", scopes: []string{"profile", "email"}},
		"jwt with our audience":  {token: mint(t, srv, clerktest.TokenRequest{Format: clerktest.FormatJWT, Audience: []string{testResource}}), format: FormatJWT},
		"opaque access token":    {token: mint(t, srv, clerktest.TokenRequest{Format: clerktest.FormatOpaque, Scopes: []string{"email"}, ClientID: "client_b"}), format: FormatOpaque, client: "client_b", scopes: []string{"email"}},
		"jwt for another aud":    {token: mint(t, srv, clerktest.TokenRequest{Format: clerktest.FormatJWT, Audience: []string{"https://other.example.com/mcp"}}), reason: "wrong audience"},
		"jwt expired":            {token: mint(t, srv, clerktest.TokenRequest{Format: clerktest.FormatJWT, TTL: -time.Minute}), reason: "token expired"},
		"session token":          {token: session, reason: "not an access token"},
		"opaque revoked":         {token: revoked, reason: "token revoked"},
		"opaque expired":         {token: mint(t, srv, clerktest.TokenRequest{Format: clerktest.FormatOpaque, TTL: -time.Minute}), reason: "token expired"},
		"opaque unknown":         {token: "oat_0123456789abcdef0123456789abcdef", reason: "unknown token"},
		"opaque malformed":       {token: "oat_not/a/token", reason: "malformed token"},
		"opaque prefix only":     {token: "oat_", reason: "malformed token"},
		"alg none":               {token: b64json(t, map[string]any{"alg": "none", "kid": kid, "typ": "at+jwt"}) + "." + parts[1] + ".", reason: "unsupported algorithm"},
		"HS256 with public PEM":  {token: hs256(pubPEM), reason: "unsupported algorithm"},
		"HS256 with public DER":  {token: hs256(pubDER), reason: "unsupported algorithm"},
		"ES256 header":           {token: b64json(t, map[string]any{"alg": "ES256", "kid": kid, "typ": "at+jwt"}) + "." + parts[1] + "." + parts[2], reason: "unsupported algorithm"},
		"own key, emulator kid":  {token: forge(attacker, accessHeader(kid), realClaims), reason: "bad signature"},
		"own key, jku elsewhere": {token: forge(attacker, with(accessHeader(kid), map[string]any{"jku": jku.URL, "x5u": jku.URL}), realClaims), reason: "bad signature"},
		"payload modified":       {token: parts[0] + "." + b64json(t, with(realClaims, map[string]any{"scope": "profile email admin"})) + "." + parts[2], reason: "bad signature"},
		"session claims forged":  {token: parts[0] + "." + b64json(t, with(realClaims, map[string]any{"client_id": nil})) + "." + parts[2], reason: "bad signature"},
		"20 KB token":            {token: parts[0] + "." + strings.Repeat("A", 20<<10) + "." + parts[2], reason: "token too long"},
		"not base64":             {token: parts[0] + ".%%%." + parts[2], reason: "malformed token"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			id, err := v.Verify(context.Background(), tc.token)
			if tc.reason != "" {
				wantInvalid(t, err, tc.reason)
				if strings.Contains(err.Error(), tc.token) {
					t.Errorf("error %q contains the token", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if id.UserID != clerktest.DefaultUserID || id.Format != tc.format || !strings.HasPrefix(id.TokenID, "oat_") || id.ExpiresAt.IsZero() {
				t.Errorf("identity = %+v", id)
			}
			if tc.client != "" && id.ClientID != tc.client {
				t.Errorf("client id = %q, want %q", id.ClientID, tc.client)
			}
			if tc.scopes != nil && !slices.Equal(id.Scopes, tc.scopes) {
				t.Errorf("scopes = %q, want %q", id.Scopes, tc.scopes)
			}
		})
	}
	t.Cleanup(func() {
		if n := jkuHits.Load(); n != 0 {
			t.Errorf("jku/x5u target fetched %d times", n)
		}
	})
}

// TestVerifier_issuerExact checks that iss must equal the issuer byte for
// byte: no trailing-slash, case or scheme tolerance.
func TestVerifier_issuerExact(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	srv := newEmulator(t, clock)
	tok := mint(t, srv, clerktest.TokenRequest{Format: clerktest.FormatJWT})
	pub := emulatorPublicKey(t, srv)
	iss := srv.FrontendAPIURL()
	tests := map[string]struct {
		issuer string // the verifier's configured issuer
		valid  bool   // whether the emulator's token passes
	}{
		"exact":          {iss, true},
		"trailing slash": {iss + "/", false},
		"upper case":     {strings.ToUpper(iss), false},
		"other scheme":   {strings.Replace(iss, "http://", "https://", 1), false},
		"localhost":      {strings.Replace(iss, "127.0.0.1", "localhost", 1), false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			v := newEmulatorVerifier(t, srv, clock, func(o *VerifierOptions) { o.Issuer = tc.issuer })
			// The key set comes from the issuer, which for some rows
			// serves none (https on an http port): hold the emulator's
			// key already, so that iss is what decides.
			trustKey(v, srv.KeyID(), pub, clock.Now())
			_, err := v.Verify(context.Background(), tok)
			if tc.valid {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantInvalid(t, err, "wrong issuer")
		})
	}
}

// TestVerifier_jwks checks the JWKS cache: a cold burst makes one fetch,
// the warm path none, a rotated key one refresh, and a burst of unknown kids
// at most one per JWKSRefreshInterval.
func TestVerifier_jwks(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	srv := newEmulator(t, clock)
	v := newEmulatorVerifier(t, srv, clock)
	old := mint(t, srv, clerktest.TokenRequest{Format: clerktest.FormatJWT})
	attacker := newRSAKey(t)
	burst := func(n int, token func(i int) string) []error {
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { _, errs[i] = v.Verify(context.Background(), token(i)) })
		}
		wg.Wait()
		return errs
	}

	for _, err := range burst(200, func(int) string { return old }) {
		if err != nil {
			t.Fatalf("cold burst: %v", err)
		}
	}
	if n := srv.Calls(epJWKS); n != 1 {
		t.Fatalf("cold burst of 200 made %d JWKS fetches, want 1", n)
	}
	srv.ResetCalls()
	for range 100 {
		if _, err := v.Verify(context.Background(), old); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.Calls(clerktest.AllEndpoints); n != 0 {
		t.Fatalf("warm JWT path made %d calls to Clerk, want 0", n)
	}

	// Rotation: the new kid is unknown. Right after a fetch, the refresh
	// interval holds it back; once the interval has passed, one refresh.
	srv.RotateKeys()
	fresh := mint(t, srv, clerktest.TokenRequest{Format: clerktest.FormatJWT})
	_, err := v.Verify(context.Background(), fresh)
	wantInvalid(t, err, "unknown signing key")
	if n := srv.Calls(epJWKS); n != 0 {
		t.Fatalf("unknown kid within the refresh interval fetched the JWKS %d times", n)
	}
	clock.Step(DefaultJWKSRefreshInterval)
	for _, err := range burst(100, func(int) string { return fresh }) {
		if err != nil {
			t.Fatalf("token with the new kid: %v", err)
		}
	}
	if n := srv.Calls(epJWKS); n != 1 {
		t.Fatalf("new kid made %d JWKS fetches, want 1", n)
	}
	if _, err := v.Verify(context.Background(), old); err != nil {
		t.Fatalf("token under the previous key after rotation: %v", err)
	}

	// A burst of forged kids, interval passed: at most one fetch.
	clock.Step(DefaultJWKSRefreshInterval)
	srv.ResetCalls()
	claims := accessClaims(srv.FrontendAPIURL(), clock.Now())
	for _, err := range burst(100, func(i int) string {
		return mintJWT(t, attacker, accessHeader(fmt.Sprintf("ins_forged%d", i)), claims)
	}) {
		wantInvalid(t, err, "unknown signing key")
	}
	if n := srv.Calls(epJWKS); n > 1 {
		t.Fatalf("100 unknown kids made %d JWKS fetches, want at most 1", n)
	}
}

// TestVerifier_jwksOutage checks that a JWKS outage does not stop tokens
// under known keys, that an unknown kid is then unavailable rather than
// invalid (the set may be stale), and that failed fetches are rate limited.
func TestVerifier_jwksOutage(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	srv := newEmulator(t, clock)
	v := newEmulatorVerifier(t, srv, clock)
	old := mint(t, srv, clerktest.TokenRequest{Format: clerktest.FormatJWT})
	if _, err := v.Verify(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	srv.RotateKeys()
	fresh := mint(t, srv, clerktest.TokenRequest{Format: clerktest.FormatJWT})
	srv.SetFault(epJWKS, clerktest.Fault{Outage: true})
	clock.Step(DefaultJWKSRefreshInterval)

	_, err := v.Verify(context.Background(), fresh)
	wantUnavailable(t, err)
	if _, err := v.Verify(context.Background(), old); err != nil {
		t.Fatalf("known kid during a JWKS outage: %v", err)
	}
	// NOTE: net/http retries a GET once when a reused connection dies
	// without a response, so one fetch may count as two calls here.
	fetches := srv.Calls(epJWKS)
	clock.Step(jwksRetryAfterFailure - time.Second)
	_, err = v.Verify(context.Background(), fresh)
	if ue := wantUnavailable(t, err); ue.RetryAfter != time.Second {
		t.Errorf("RetryAfter = %s, want the 1s left before the next fetch", ue.RetryAfter)
	}
	if n := srv.Calls(epJWKS); n != fetches {
		t.Fatalf("%d JWKS calls, want %d (none while a failed fetch is recent)", n, fetches)
	}
	srv.ClearFaults()
	clock.Step(time.Second)
	if _, err := v.Verify(context.Background(), fresh); err != nil {
		t.Fatalf("after the outage: %v", err)
	}
}

// TestVerifier_jwksMaxAge checks that an old key set is refreshed in the
// background while tokens keep verifying with it.
func TestVerifier_jwksMaxAge(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	srv := newEmulator(t, clock)
	v := newEmulatorVerifier(t, srv, clock, func(o *VerifierOptions) { o.JWKSMaxAge = time.Hour })
	tok := mint(t, srv, clerktest.TokenRequest{Format: clerktest.FormatJWT, TTL: 3 * time.Hour})
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	clock.Step(time.Hour + time.Second)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for srv.Calls(epJWKS) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := srv.Calls(epJWKS); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2 (initial and one background refresh)", n)
	}
}

// TestVerifier_Ready checks the readiness signal: a failed key set fetch is
// reported as unavailability and retried no sooner than a token's fetch
// would be, with which it shares its rate limit; a burst of checks makes one
// fetch; and once a set is held Ready is nil without asking Clerk, through
// an outage, and the set serves tokens.
func TestVerifier_Ready(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newFakeClock()
	srv := newEmulator(t, clock)
	v := newEmulatorVerifier(t, srv, clock)
	tok := mint(t, srv, clerktest.TokenRequest{Format: clerktest.FormatJWT})

	srv.SetFault(epJWKS, clerktest.Fault{Status: http.StatusServiceUnavailable})
	wantUnavailable(t, v.Ready(ctx))
	if n := srv.Calls(epJWKS); n != 1 {
		t.Fatalf("%d JWKS fetches for a failed check, want 1", n)
	}
	srv.ClearFaults()
	if ue := wantUnavailable(t, v.Ready(ctx)); ue.RetryAfter != jwksRetryAfterFailure {
		t.Errorf("RetryAfter = %s, want the %s left before the next fetch", ue.RetryAfter, jwksRetryAfterFailure)
	}
	_, err := v.Verify(ctx, tok)
	wantUnavailable(t, err)
	if n := srv.Calls(epJWKS); n != 1 {
		t.Fatalf("%d JWKS fetches, want none while the failed one is recent", n)
	}

	clock.Step(jwksRetryAfterFailure)
	// Latency keeps the fetch open while the whole burst arrives.
	srv.SetFault(epJWKS, clerktest.Fault{Latency: 100 * time.Millisecond})
	errs := make([]error, 50)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() { errs[i] = v.Ready(ctx) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("once the keys can be fetched: %v", err)
		}
	}
	if n := srv.Calls(epJWKS); n != 2 {
		t.Fatalf("%d JWKS fetches after a burst of checks, want 2", n)
	}

	srv.SetFault(clerktest.AllEndpoints, clerktest.Fault{Outage: true})
	clock.Step(DefaultJWKSRefreshInterval)
	if err := v.Ready(ctx); err != nil {
		t.Errorf("with a key set held, Clerk down: %v", err)
	}
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Errorf("token under the key set Ready fetched: %v", err)
	}
	if n := srv.Calls(epJWKS); n != 2 {
		t.Errorf("%d JWKS fetches, want no more once a set is held", n)
	}
}

// TestVerifier_opaqueAudience checks that WithAudience does not apply to
// opaque tokens: Clerk's verify answer reports no audience to match.
func TestVerifier_opaqueAudience(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	srv := newEmulator(t, clock)
	v := newEmulatorVerifier(t, srv, clock)
	tok := mint(t, srv, clerktest.TokenRequest{Format: clerktest.FormatOpaque})
	for _, opts := range [][]VerifyOption{nil, {WithAudience("https://other.example.com/mcp")}, {WithAudience()}} {
		if id, err := v.Verify(context.Background(), tok, opts...); err != nil || id.Format != FormatOpaque {
			t.Errorf("opaque token with %d options: %+v, %v", len(opts), id, err)
		}
	}
}

// TestVerifier_opaqueSingleflight checks that 1,000 concurrent checks of
// one fresh opaque token make one Backend API call.
func TestVerifier_opaqueSingleflight(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	srv := newEmulator(t, clock)
	v := newEmulatorVerifier(t, srv, clock)
	tok := mint(t, srv, clerktest.TokenRequest{Format: clerktest.FormatOpaque})
	// Latency keeps the call open while all callers arrive.
	srv.SetFault(epVerify, clerktest.Fault{Latency: 200 * time.Millisecond})

	const n = 1000
	var wg sync.WaitGroup
	var failed atomic.Int64
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			if _, err := v.Verify(context.Background(), tok); err != nil {
				failed.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d verifications failed", failed.Load(), n)
	}
	if c := srv.Calls(epVerify); c != 1 {
		t.Fatalf("%d concurrent verifications made %d verify calls, want 1", n, c)
	}
}

// TestVerifier_opaqueCache checks how long verdicts are reused: positive
// ones for OpaqueCacheTTL and never past the token's expiration, negative
// ones for NegativeCacheTTL.
func TestVerifier_opaqueCache(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		tokenTTL  time.Duration   // 0: an unknown token
		revoke    bool            // revoke right after the first check
		at        []time.Duration // when to check, from the start
		wantCalls []int           // cumulative verify calls after each check
		wantValid []bool          // outcome of each check
	}{
		"cached for OpaqueCacheTTL": {
			tokenTTL: time.Hour, at: []time.Duration{0, 30 * time.Second, 59 * time.Second, time.Minute, 61 * time.Second},
			wantCalls: []int{1, 1, 1, 2, 2}, wantValid: []bool{true, true, true, true, true},
		},
		"revocation seen once the verdict expires": {
			tokenTTL: time.Hour, revoke: true, at: []time.Duration{0, 59 * time.Second, time.Minute, 65 * time.Second, 71 * time.Second},
			wantCalls: []int{1, 1, 2, 2, 3}, wantValid: []bool{true, true, false, false, false},
		},
		"never past the token's expiration": {
			tokenTTL: 30 * time.Second, at: []time.Duration{0, 29 * time.Second, 30 * time.Second, 31 * time.Second},
			wantCalls: []int{1, 1, 2, 2}, wantValid: []bool{true, true, false, false},
		},
		"negative verdict cached briefly": {
			at:        []time.Duration{0, 9 * time.Second, 10 * time.Second, 15 * time.Second, 21 * time.Second},
			wantCalls: []int{1, 1, 2, 2, 3}, wantValid: []bool{false, false, false, false, false},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock()
			srv := newEmulator(t, clock)
			v := newEmulatorVerifier(t, srv, clock, func(o *VerifierOptions) {
				o.OpaqueCacheTTL, o.NegativeCacheTTL = time.Minute, 10*time.Second
			})
			tok := "oat_00000000000000000000000000000000"
			if tc.tokenTTL > 0 {
				tok = mint(t, srv, clerktest.TokenRequest{Format: clerktest.FormatOpaque, TTL: tc.tokenTTL})
			}
			start := clock.Now()
			for i, at := range tc.at {
				clock.Step(start.Add(at).Sub(clock.Now()))
				_, err := v.Verify(context.Background(), tok)
				if tc.wantValid[i] != (err == nil) {
					t.Fatalf("check at +%s: err = %v, want valid %t", at, err, tc.wantValid[i])
				}
				if err != nil {
					wantInvalid(t, err, "")
				}
				if n := srv.Calls(epVerify); n != tc.wantCalls[i] {
					t.Fatalf("check at +%s: %d verify calls, want %d", at, n, tc.wantCalls[i])
				}
				if i == 0 && tc.revoke {
					if err := srv.RevokeAccessToken(tok); err != nil {
						t.Fatal(err)
					}
				}
			}
		})
	}
}

// TestVerifier_failures checks that every way of failing to ask the Backend
// API about an opaque token gives an *UnavailableError, is not cached as a
// verdict, and never leaks the token or the key; TestVerifier_jwksFailures
// covers the key set's.
func TestVerifier_failures(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		fault          clerktest.Fault // injected into the endpoint
		badKey         bool            // use a wrong secret key instead
		wantRetryAfter time.Duration   // expected UnavailableError.RetryAfter; 0: any
		wantStatus     int             // expected StatusCode(err)
		rateLimited    bool            // RetryAfter(err) reports a 429
		unauthorized   bool            // IsUnauthorized(err)
	}{
		"opaque, 500":             {fault: clerktest.Fault{Status: 500}, wantStatus: 500, wantRetryAfter: retryTransient},
		"opaque, 503 retry-after": {fault: clerktest.Fault{Status: 503, RetryAfter: 4 * time.Second}, wantStatus: 503, wantRetryAfter: 4 * time.Second},
		"opaque, outage":          {fault: clerktest.Fault{Outage: true}, wantStatus: 0, wantRetryAfter: retryTransient},
		"opaque, timeout":         {fault: clerktest.Fault{Latency: 2 * time.Second}, wantStatus: 0},
		"opaque, 429 retry-after": {fault: clerktest.Fault{Status: 429, RetryAfter: 7 * time.Second}, wantStatus: 429, wantRetryAfter: 7 * time.Second, rateLimited: true},
		"opaque, 429 no header":   {fault: clerktest.Fault{Status: 429}, wantStatus: 429, wantRetryAfter: retryRateLimited, rateLimited: true},
		"opaque, bad secret key":  {badKey: true, wantStatus: 401, wantRetryAfter: retryMisconfigured, unauthorized: true},
		"opaque, 403":             {fault: clerktest.Fault{Status: 403}, wantStatus: 403, wantRetryAfter: retryMisconfigured, unauthorized: true},
		"opaque, unexpected 409":  {fault: clerktest.Fault{Status: 409}, wantStatus: 409},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock()
			srv := newEmulator(t, clock)
			key := srv.SecretKey()
			if tc.badKey {
				key = "sk_test_wrong"
			}
			var current atomic.Pointer[string]
			current.Store(&key)
			v := newEmulatorVerifier(t, srv, clock, func(o *VerifierOptions) {
				o.SecretKey = func(context.Context) (string, error) { return *current.Load(), nil }
				o.HTTPClient = &http.Client{Timeout: 300 * time.Millisecond}
			})
			tok := mint(t, srv, clerktest.TokenRequest{Format: clerktest.FormatOpaque})
			srv.SetFault(epVerify, tc.fault)

			_, err := v.Verify(context.Background(), tok)
			ue := wantUnavailable(t, err)
			if tc.wantRetryAfter != 0 && ue.RetryAfter != tc.wantRetryAfter {
				t.Errorf("RetryAfter = %s, want %s", ue.RetryAfter, tc.wantRetryAfter)
			}
			if got := StatusCode(err); got != tc.wantStatus {
				t.Errorf("StatusCode = %d, want %d (%v)", got, tc.wantStatus, err)
			}
			if d, ok := RetryAfter(err); ok != tc.rateLimited || (ok && d != tc.wantRetryAfter) {
				t.Errorf("RetryAfter(err) = %s, %t; want %t", d, ok, tc.rateLimited)
			}
			if IsUnauthorized(err) != tc.unauthorized {
				t.Errorf("IsUnauthorized = %t, want %t", IsUnauthorized(err), tc.unauthorized)
			}
			for _, secret := range []string{tok, srv.SecretKey(), key} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q leaks a token or key", err)
				}
			}

			// Once Clerk is back (and any back-off has passed), the same
			// token verifies: the failure was not cached as a verdict.
			srv.ClearFaults()
			good := srv.SecretKey()
			current.Store(&good)
			clock.Step(ue.RetryAfter)
			if _, err := v.Verify(context.Background(), tok); err != nil {
				t.Fatalf("after recovery: %v", err)
			}
		})
	}
}

// TestVerifier_rateLimitBackoff checks that after a 429 no verify call is
// made until Retry-After has passed, while cached verdicts keep working.
func TestVerifier_rateLimitBackoff(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	srv := newEmulator(t, clock)
	v := newEmulatorVerifier(t, srv, clock)
	cached := mint(t, srv, clerktest.TokenRequest{Format: clerktest.FormatOpaque})
	if _, err := v.Verify(context.Background(), cached); err != nil {
		t.Fatal(err)
	}
	a := mint(t, srv, clerktest.TokenRequest{Format: clerktest.FormatOpaque})
	b := mint(t, srv, clerktest.TokenRequest{Format: clerktest.FormatOpaque})
	srv.SetFault(epVerify, clerktest.Fault{Status: 429, RetryAfter: 5 * time.Second})
	_, err := v.Verify(context.Background(), a)
	if d, ok := RetryAfter(err); !ok || d != 5*time.Second {
		t.Fatalf("RetryAfter(%v) = %s, %t", err, d, ok)
	}
	srv.ClearFaults()
	clock.Step(2 * time.Second)
	_, err = v.Verify(context.Background(), b)
	if d, ok := RetryAfter(err); !ok || d != 3*time.Second {
		t.Fatalf("during back-off: RetryAfter(%v) = %s, %t; want 3s", err, d, ok)
	}
	if n := srv.Calls(epVerify); n != 2 {
		t.Fatalf("%d verify calls, want 2 (none during the back-off)", n)
	}
	if _, err := v.Verify(context.Background(), cached); err != nil {
		t.Fatalf("cached token during back-off: %v", err)
	}
	clock.Step(3 * time.Second)
	if _, err := v.Verify(context.Background(), b); err != nil {
		t.Fatalf("after back-off: %v", err)
	}
}

// TestVerifier_callerGivesUp checks that a caller whose context ends gets an
// *UnavailableError at once, while the shared call completes and its verdict
// serves the next caller.
func TestVerifier_callerGivesUp(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	srv := newEmulator(t, clock)
	v := newEmulatorVerifier(t, srv, clock)
	tok := mint(t, srv, clerktest.TokenRequest{Format: clerktest.FormatOpaque})
	srv.SetFault(epVerify, clerktest.Fault{Latency: 300 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := v.Verify(ctx, tok)
	wantUnavailable(t, err)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want it to wrap context.DeadlineExceeded", err)
	}
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if n := srv.Calls(epVerify); n != 1 {
		t.Errorf("%d verify calls, want 1", n)
	}
}

// TestVerifier_secretKeyFromFile checks that a key fixed in the mounted file
// is picked up by a running verifier.
func TestVerifier_secretKeyFromFile(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	srv := newEmulator(t, clock)
	path := filepath.Join(t.TempDir(), "secret-key")
	if err := os.WriteFile(path, []byte("sk_test_stale\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	v := newEmulatorVerifier(t, srv, clock, func(o *VerifierOptions) { o.SecretKey = SecretKeyFromFile(path) })
	tok := mint(t, srv, clerktest.TokenRequest{Format: clerktest.FormatOpaque})
	_, err := v.Verify(context.Background(), tok)
	wantUnavailable(t, err)
	if !IsUnauthorized(err) {
		t.Fatalf("stale key: IsUnauthorized(%v) = false", err)
	}
	if err := os.WriteFile(path, []byte(srv.SecretKey()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("after the file was rewritten: %v", err)
	}
}

// TestNewVerifier checks option validation.
func TestNewVerifier(t *testing.T) {
	t.Parallel()
	ok := VerifierOptions{Issuer: testIssuer, BackendAPIURL: "https://api.clerk.com/v1", SecretKey: staticKey("sk")}
	jwtOnly := func(o *VerifierOptions) { o.SecretKey = nil }
	tests := map[string]struct {
		edit    func(*VerifierOptions) // change from a valid set
		wantErr string                 // substring; empty: valid
	}{
		"valid":               {edit: func(*VerifierOptions) {}},
		"no issuer":           {edit: func(o *VerifierOptions) { o.Issuer = "" }, wantErr: "issuer"},
		"relative issuer":     {edit: func(o *VerifierOptions) { o.Issuer = "clerk.example.com" }, wantErr: "issuer"},
		"no backend url":      {edit: func(o *VerifierOptions) { o.BackendAPIURL = "" }, wantErr: "backend api url"},
		"ftp backend url":     {edit: func(o *VerifierOptions) { o.BackendAPIURL = "ftp://x/v1" }, wantErr: "backend api url"},
		"no secret key func":  {edit: jwtOnly},
		"no key, no backend":  {edit: func(o *VerifierOptions) { jwtOnly(o); o.BackendAPIURL = "" }},
		"no key, ftp backend": {edit: func(o *VerifierOptions) { jwtOnly(o); o.BackendAPIURL = "ftp://x/v1" }, wantErr: "backend api url"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			o := ok
			tc.edit(&o)
			_, err := NewVerifier(o)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func mustB64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

package clerk

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// newFakeClock is a settable clock at a fixed moment, for deterministic expiry.
func newFakeClock() *clocktesting.FakeClock {
	return clocktesting.NewFakeClock(time.Date(2026, 5, 12, 10, 0, 0, 0, time.UTC))
}

// staticKey is a SecretKey source for tests.
func staticKey(key string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) { return key, nil }
}

// newRSAKey makes a 2048-bit key; tests share a few to stay fast.
func newRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// b64json encodes v as a base64url JSON segment.
func b64json(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// signRS256 signs header.payload (already encoded segments) with key.
func signRS256(t testing.TB, key *rsa.PrivateKey, h64, p64 string) string {
	t.Helper()
	digest := sha256.Sum256([]byte(h64 + "." + p64))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return h64 + "." + p64 + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// mintJWT signs header and claims with key.
func mintJWT(t testing.TB, key *rsa.PrivateKey, header, claims map[string]any) string {
	t.Helper()
	return signRS256(t, key, b64json(t, header), b64json(t, claims))
}

// accessHeader is the header Clerk puts on a JWT access token.
func accessHeader(kid string) map[string]any {
	return map[string]any{"alg": "RS256", "kid": kid, "typ": "at+jwt"}
}

// accessClaims are the claims of a Clerk JWT access token issued at now.
func accessClaims(iss string, now time.Time) map[string]any {
	return map[string]any{
		"iss":       iss,
		"sub":       "user_2mcpgateTestUser00000000000",
		"client_id": "client_test",
		"scope":     "profile email",
		"jti":       "oat_0123456789abcdef0123456789abcdef",
		"azp":       "client_test",
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"exp":       now.Add(time.Hour).Unix(),
	}
}

// with returns a copy of m with changes applied; a nil value deletes.
func with(m map[string]any, changes map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for k, v := range changes {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// trustKey puts pub in v's key set as if fetched at now, so no fetch happens
// for JWKSRefreshInterval.
func trustKey(v *Verifier, kid string, pub *rsa.PublicKey, now time.Time) {
	v.keys.mu.Lock()
	defer v.keys.mu.Unlock()
	if v.keys.keys == nil {
		v.keys.keys = map[string]*rsa.PublicKey{}
	}
	v.keys.keys[kid] = pub
	v.keys.fetchedAt, v.keys.triedAt, v.keys.lastErr = now, now, nil
}

// wantInvalid fails unless err is an *InvalidTokenError whose reason
// contains reason.
func wantInvalid(t testing.TB, err error, reason string) {
	t.Helper()
	var ie *InvalidTokenError
	if !errors.As(err, &ie) {
		t.Fatalf("got error %v (%T), want an invalid token error %q", err, err, reason)
	}
	if !strings.Contains(ie.Reason, reason) {
		t.Fatalf("got reason %q, want %q", ie.Reason, reason)
	}
}

// wantUnavailable fails unless err is an *UnavailableError with a positive
// RetryAfter, and returns it.
func wantUnavailable(t testing.TB, err error) *UnavailableError {
	t.Helper()
	var ue *UnavailableError
	if !errors.As(err, &ue) {
		t.Fatalf("got error %v (%T), want an unavailable error", err, err)
	}
	if ue.RetryAfter <= 0 {
		t.Fatalf("RetryAfter = %s, want > 0", ue.RetryAfter)
	}
	var ie *InvalidTokenError
	if errors.As(err, &ie) {
		t.Fatalf("unavailable error also matches InvalidTokenError: %v", err)
	}
	return ue
}

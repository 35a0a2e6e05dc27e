package clerk

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
)

// FuzzVerify feeds arbitrary strings to Verify with a warm key set and no
// reachable Backend API. It must never panic, never report unavailability
// for a JWT (no fetch is due), and accept only tokens whose signed part is
// one the trusted key really signed.
func FuzzVerify(f *testing.F) {
	clock := newFakeClock()
	key := newRSAKey(f)
	v, err := NewVerifier(VerifierOptions{
		Issuer:        testIssuer,
		BackendAPIURL: "http://127.0.0.1:1/v1",
		SecretKey:     staticKey("sk_test_unused"),
		Audiences:     []string{testResource},
		HTTPClient:    &http.Client{Transport: &countingTransport{}},
		Now:           clock.Now,
	})
	if err != nil {
		f.Fatal(err)
	}
	trustKey(v, testKID, &key.PublicKey, clock.Now())
	claims := accessClaims(testIssuer, clock.Now())
	signed := map[string]bool{}
	for _, tok := range []string{
		mintJWT(f, key, accessHeader(testKID), claims),
		mintJWT(f, key, accessHeader(testKID), with(claims, map[string]any{"aud": []string{testResource}})),
		mintJWT(f, key, with(accessHeader(testKID), map[string]any{"typ": "JWT"}), with(claims, map[string]any{"client_id": nil})),
	} {
		signed[tok[:strings.LastIndexByte(tok, '.')]] = true
		f.Add(tok)
	}
	f.Add("e30.e30.")
	f.Add("oat_")
	f.Fuzz(func(t *testing.T, token string) {
		if strings.HasPrefix(token, opaquePrefix) {
			return // opaque tokens go to the network
		}
		id, err := v.Verify(context.Background(), token)
		if err != nil {
			var ie *InvalidTokenError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v is not an InvalidTokenError", err)
			}
			return
		}
		if !signed[token[:strings.LastIndexByte(token, '.')]] {
			t.Fatalf("accepted a token the key never signed: %+v", id)
		}
	})
}

package clerk

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

const (
	testIssuer   = "https://clerk.example.com"
	testResource = "https://tools.example.com/mcp"
	testKID      = "ins_trusted"
)

// countingTransport counts requests and answers none of them.
type countingTransport struct{ n atomic.Int64 }

func (c *countingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	c.n.Add(1)
	return nil, http.ErrHandlerTimeout
}

// TestVerifier_verifyJWT checks every header and claim rule on tokens signed
// by a key the verifier trusts (so that each rule, not the signature, is
// what refuses them), and forgeries the key set must refuse. None of this
// may reach the network.
func TestVerifier_verifyJWT(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	now := clock.Now()
	trusted, attacker := newRSAKey(t), newRSAKey(t)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// jku/x5u targets: a server the verifier must never contact.
	var attackerHits atomic.Int64
	attackerSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attackerHits.Add(1)
	}))
	t.Cleanup(attackerSrv.Close)

	rt := &countingTransport{}
	v, err := NewVerifier(VerifierOptions{
		Issuer:        testIssuer,
		BackendAPIURL: "http://127.0.0.1:1/v1",
		SecretKey:     staticKey("sk_test_unused"),
		Audiences:     []string{testResource},
		HTTPClient:    &http.Client{Transport: rt},
		Now:           clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	trustKey(v, testKID, &trusted.PublicKey, now)

	hdr := accessHeader(testKID)
	claims := accessClaims(testIssuer, now)
	good := mintJWT(t, trusted, hdr, claims)
	goodParts := strings.Split(good, ".")
	pubDER, err := x509.MarshalPKIXPublicKey(&trusted.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})

	sign := func(h, c map[string]any) func(t *testing.T) string {
		return func(t *testing.T) string { return mintJWT(t, trusted, h, c) }
	}
	raw := func(s string) func(t *testing.T) string { return func(*testing.T) string { return s } }
	hmacWith := func(secret []byte) func(t *testing.T) string {
		return func(t *testing.T) string {
			h64 := b64json(t, with(hdr, map[string]any{"alg": "HS256"}))
			p64 := b64json(t, claims)
			mac := hmac.New(sha256.New, secret)
			mac.Write([]byte(h64 + "." + p64))
			return h64 + "." + p64 + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
		}
	}

	tests := map[string]struct {
		token  func(t *testing.T) string // builds the token
		reason string                    // expected InvalidTokenError reason; empty: valid
		scopes []string                  // expected scopes when valid
	}{
		// Accepted.
		"clerk access token":             {token: raw(good), scopes: []string{"profile", "email"}},
		"typ application/at+jwt":         {token: sign(with(hdr, map[string]any{"typ": "application/at+jwt"}), claims), scopes: []string{"profile", "email"}},
		"typ in upper case":              {token: sign(with(hdr, map[string]any{"typ": "AT+JWT"}), claims), scopes: []string{"profile", "email"}},
		"scp array":                      {token: sign(hdr, with(claims, map[string]any{"scope": nil, "scp": []string{"a", "b"}})), scopes: []string{"a", "b"}},
		"no scope at all":                {token: sign(hdr, with(claims, map[string]any{"scope": nil}))},
		"aud string naming us":           {token: sign(hdr, with(claims, map[string]any{"aud": testResource})), scopes: []string{"profile", "email"}},
		"aud array naming us":            {token: sign(hdr, with(claims, map[string]any{"aud": []string{"x", testResource}})), scopes: []string{"profile", "email"}},
		"expired within leeway":          {token: sign(hdr, with(claims, map[string]any{"exp": now.Add(-5 * time.Second).Unix()})), scopes: []string{"profile", "email"}},
		"nbf within leeway":              {token: sign(hdr, with(claims, map[string]any{"nbf": now.Add(5 * time.Second).Unix()})), scopes: []string{"profile", "email"}},
		"fractional dates":               {token: sign(hdr, with(claims, map[string]any{"exp": float64(now.Unix()) + 60.5})), scopes: []string{"profile", "email"}},
		"jku and x5u ignored, key ours":  {token: sign(with(hdr, map[string]any{"jku": attackerSrv.URL, "x5u": attackerSrv.URL}), claims), scopes: []string{"profile", "email"}},
		"no nbf and no iat":              {token: sign(hdr, with(claims, map[string]any{"nbf": nil, "iat": nil})), scopes: []string{"profile", "email"}},
		"extra unknown claims tolerated": {token: sign(hdr, with(claims, map[string]any{"sid": "sess_1", "v": 2})), scopes: []string{"profile", "email"}},

		// Algorithms and keys.
		"alg none, no signature": {token: func(t *testing.T) string {
			return b64json(t, with(hdr, map[string]any{"alg": "none"})) + "." + goodParts[1] + "."
		}, reason: "unsupported algorithm"},
		"alg none, original signature": {token: func(t *testing.T) string {
			return b64json(t, with(hdr, map[string]any{"alg": "none"})) + "." + goodParts[1] + "." + goodParts[2]
		}, reason: "unsupported algorithm"},
		"HS256 keyed with public PEM": {token: hmacWith(pubPEM), reason: "unsupported algorithm"},
		"HS256 keyed with public DER": {token: hmacWith(pubDER), reason: "unsupported algorithm"},
		"ES256 header": {token: func(t *testing.T) string {
			return signES256(t, ecKey, with(hdr, map[string]any{"alg": "ES256"}), claims)
		}, reason: "unsupported algorithm"},
		"RS384 not allowed":            {token: sign(with(hdr, map[string]any{"alg": "RS384"}), claims), reason: "unsupported algorithm"},
		"PS256 not allowed":            {token: sign(with(hdr, map[string]any{"alg": "PS256"}), claims), reason: "unsupported algorithm"},
		"alg in lower case":            {token: sign(with(hdr, map[string]any{"alg": "rs256"}), claims), reason: "unsupported algorithm"},
		"alg missing":                  {token: sign(with(hdr, map[string]any{"alg": nil}), claims), reason: "unsupported algorithm"},
		"own key with the trusted kid": {token: func(t *testing.T) string { return mintJWT(t, attacker, hdr, claims) }, reason: "bad signature"},
		"own key, jku to own JWKS": {token: func(t *testing.T) string {
			return mintJWT(t, attacker, with(hdr, map[string]any{"jku": attackerSrv.URL + "/jwks"}), claims)
		}, reason: "bad signature"},
		"own key, x5u elsewhere": {token: func(t *testing.T) string {
			return mintJWT(t, attacker, with(hdr, map[string]any{"x5u": attackerSrv.URL + "/cert"}), claims)
		}, reason: "bad signature"},
		"own key embedded as jwk": {token: func(t *testing.T) string {
			return mintJWT(t, attacker, with(hdr, map[string]any{"jwk": jwkOf(attacker)}), claims)
		}, reason: "bad signature"},
		"own key, new kid": {token: func(t *testing.T) string {
			return mintJWT(t, attacker, with(hdr, map[string]any{"kid": "ins_attacker"}), claims)
		}, reason: "unknown signing key"},
		"kid missing": {token: sign(with(hdr, map[string]any{"kid": nil}), claims), reason: "missing key id"},
		"payload changed, signature not": {token: func(t *testing.T) string {
			return goodParts[0] + "." + b64json(t, with(claims, map[string]any{"sub": "user_admin"})) + "." + goodParts[2]
		}, reason: "bad signature"},
		"signature truncated": {token: raw(good[:len(good)-2]), reason: "bad signature"}, // 255 whole bytes
		"signature empty":     {token: raw(goodParts[0] + "." + goodParts[1] + "."), reason: "malformed signature"},

		// Header rules.
		"typ JWT (session token)": {token: sign(with(hdr, map[string]any{"typ": "JWT"}), claims), reason: "not an access token"},
		"typ missing":             {token: sign(with(hdr, map[string]any{"typ": nil}), claims), reason: "not an access token"},
		"typ at+jwt with suffix":  {token: sign(with(hdr, map[string]any{"typ": "at+jwt; x"}), claims), reason: "not an access token"},
		"crit exp":                {token: sign(with(hdr, map[string]any{"crit": []string{"exp"}}), claims), reason: "unsupported critical header"},
		"crit b64":                {token: sign(with(hdr, map[string]any{"crit": []string{"b64"}, "b64": false}), claims), reason: "unsupported critical header"},
		"crit empty list":         {token: sign(with(hdr, map[string]any{"crit": []string{}}), claims), reason: "unsupported critical header"},
		"header not JSON": {token: func(t *testing.T) string {
			return signRS256(t, trusted, base64.RawURLEncoding.EncodeToString([]byte("not json")), goodParts[1])
		}, reason: "malformed header"},
		"header JSON array":       {token: func(t *testing.T) string { return signRS256(t, trusted, b64json(t, []string{"RS256"}), goodParts[1]) }, reason: "malformed header"},
		"header alg not a string": {token: sign(with(hdr, map[string]any{"alg": 256}), claims), reason: "malformed header"},
		"payload not JSON, signed": {token: func(t *testing.T) string {
			return signRS256(t, trusted, goodParts[0], base64.RawURLEncoding.EncodeToString([]byte("{oops")))
		}, reason: "malformed claims"},

		// Claims.
		"wrong issuer":             {token: sign(hdr, with(claims, map[string]any{"iss": "https://evil.example.com"})), reason: "wrong issuer"},
		"issuer trailing slash":    {token: sign(hdr, with(claims, map[string]any{"iss": testIssuer + "/"})), reason: "wrong issuer"},
		"issuer in upper case":     {token: sign(hdr, with(claims, map[string]any{"iss": strings.ToUpper(testIssuer)})), reason: "wrong issuer"},
		"issuer http":              {token: sign(hdr, with(claims, map[string]any{"iss": "http://clerk.example.com"})), reason: "wrong issuer"},
		"issuer missing":           {token: sign(hdr, with(claims, map[string]any{"iss": nil})), reason: "wrong issuer"},
		"expired":                  {token: sign(hdr, with(claims, map[string]any{"exp": now.Add(-time.Hour).Unix()})), reason: "token expired"},
		"expired past leeway":      {token: sign(hdr, with(claims, map[string]any{"exp": now.Add(-11 * time.Second).Unix()})), reason: "token expired"},
		"exp missing":              {token: sign(hdr, with(claims, map[string]any{"exp": nil})), reason: "missing expiration"},
		"exp a string":             {token: sign(hdr, with(claims, map[string]any{"exp": "tomorrow"})), reason: "malformed claims"},
		"exp absurdly large":       {token: sign(hdr, with(claims, map[string]any{"exp": 1e20})), reason: "malformed claims"},
		"nbf in the future":        {token: sign(hdr, with(claims, map[string]any{"nbf": now.Add(time.Minute).Unix()})), reason: "token not yet valid"},
		"iat in the future":        {token: sign(hdr, with(claims, map[string]any{"iat": now.Add(time.Minute).Unix(), "nbf": nil})), reason: "issued in the future"},
		"aud for another one":      {token: sign(hdr, with(claims, map[string]any{"aud": "https://other.example.com/mcp"})), reason: "wrong audience"},
		"aud array, not us":        {token: sign(hdr, with(claims, map[string]any{"aud": []string{"https://other.example.com/mcp"}})), reason: "wrong audience"},
		"aud prefix of us":         {token: sign(hdr, with(claims, map[string]any{"aud": "https://tools.example.com"})), reason: "wrong audience"},
		"aud empty array":          {token: sign(hdr, with(claims, map[string]any{"aud": []string{}})), reason: "wrong audience"},
		"aud a number":             {token: sign(hdr, with(claims, map[string]any{"aud": 7})), reason: "malformed claims"},
		"client_id missing":        {token: sign(hdr, with(claims, map[string]any{"client_id": nil})), reason: "missing client_id"},
		"client_id empty":          {token: sign(hdr, with(claims, map[string]any{"client_id": ""})), reason: "missing client_id"},
		"sub missing":              {token: sign(hdr, with(claims, map[string]any{"sub": nil})), reason: "missing subject"},
		"scope not a string":       {token: sign(hdr, with(claims, map[string]any{"scope": []string{"a"}})), reason: "malformed claims"},
		"session claims, at+jwt":   {token: sign(hdr, with(claims, map[string]any{"client_id": nil, "sid": "sess_1", "v": 2})), reason: "missing client_id"},
		"session token look-alike": {token: sign(with(hdr, map[string]any{"typ": "JWT"}), with(claims, map[string]any{"client_id": nil, "sid": "sess_1"})), reason: "not an access token"},

		// Shape, before any parsing.
		"empty":               {token: raw(""), reason: "empty token"},
		"20 KB token":         {token: raw(goodParts[0] + "." + strings.Repeat("A", 20<<10) + "." + goodParts[2]), reason: "token too long"},
		"non-base64 header":   {token: raw("e30!." + goodParts[1] + "." + goodParts[2]), reason: "malformed token"},
		"std base64 alphabet": {token: raw(goodParts[0] + "+/." + goodParts[1] + "." + goodParts[2]), reason: "malformed token"},
		"newline inside":      {token: raw(goodParts[0] + "\n." + goodParts[1] + "." + goodParts[2]), reason: "malformed token"},
		"padded segments":     {token: raw(goodParts[0] + "==." + goodParts[1] + "." + goodParts[2]), reason: "malformed token"},
		"two segments":        {token: raw(goodParts[0] + "." + goodParts[1]), reason: "unrecognized token format"},
		"four segments":       {token: raw(good + ".x"), reason: "unrecognized token format"},
		"bearer prefix kept":  {token: raw("Bearer " + good), reason: "malformed token"},
		"random words":        {token: raw("hello"), reason: "unrecognized token format"},
		"JWS JSON form":       {token: raw(`{"payload":"` + goodParts[1] + `","signatures":[]}`), reason: "unrecognized token format"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			id, err := v.Verify(context.Background(), tc.token(t))
			if tc.reason != "" {
				wantInvalid(t, err, tc.reason)
				if id.UserID != "" || id.ClientID != "" {
					t.Errorf("identity %+v returned with an error", id)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if id.UserID != "user_2mcpgateTestUser00000000000" || id.ClientID != "client_test" || id.Format != FormatJWT ||
				id.TokenID != "oat_0123456789abcdef0123456789abcdef" || id.ExpiresAt.IsZero() {
				t.Errorf("identity = %+v", id)
			}
			if !slices.Equal(id.Scopes, tc.scopes) {
				t.Errorf("scopes = %q, want %q", id.Scopes, tc.scopes)
			}
		})
	}
	t.Cleanup(func() {
		if n := rt.n.Load(); n != 0 {
			t.Errorf("verifying JWTs with a warm key set made %d Backend API calls, want 0", n)
		}
		if n := attackerHits.Load(); n != 0 {
			t.Errorf("jku/x5u targets were fetched %d times, want 0", n)
		}
	})
}

// TestVerifier_noAudiences checks that a token with aud is refused when the
// verifier was told of no audience, and one without aud accepted.
func TestVerifier_noAudiences(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	key := newRSAKey(t)
	v, err := NewVerifier(VerifierOptions{Issuer: testIssuer, BackendAPIURL: "http://127.0.0.1:1/v1", SecretKey: staticKey("sk"), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	trustKey(v, testKID, &key.PublicKey, clock.Now())
	claims := accessClaims(testIssuer, clock.Now())
	if _, err := v.Verify(context.Background(), mintJWT(t, key, accessHeader(testKID), claims)); err != nil {
		t.Errorf("token without aud: %v", err)
	}
	_, err = v.Verify(context.Background(), mintJWT(t, key, accessHeader(testKID), with(claims, map[string]any{"aud": testResource})))
	wantInvalid(t, err, "wrong audience")
}

// TestVerifier_withAudience checks the audiences a call accepts: those of
// VerifierOptions without WithAudience, exactly those named with it, and
// that a JWT's cached signature carries no audience from an earlier call.
func TestVerifier_withAudience(t *testing.T) {
	t.Parallel()
	const other = "http://gw.example.com/mcp"
	clock := newFakeClock()
	key := newRSAKey(t)
	v, err := NewVerifier(VerifierOptions{Issuer: testIssuer, BackendAPIURL: "http://127.0.0.1:1/v1", SecretKey: staticKey("sk"),
		Audiences: []string{testResource}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	trustKey(v, testKID, &key.PublicKey, clock.Now())
	tests := map[string]struct {
		aud    any            // the aud claim; nil: absent
		opts   []VerifyOption // the call's options
		wantOK bool           // whether the token verifies
	}{
		"no aud, default":                 {wantOK: true},
		"no aud, per call":                {opts: []VerifyOption{WithAudience(other)}, wantOK: true},
		"no aud, none accepted":           {opts: []VerifyOption{WithAudience()}, wantOK: true},
		"default aud, default":            {aud: testResource, wantOK: true},
		"default aud, per call elsewhere": {aud: testResource, opts: []VerifyOption{WithAudience(other)}},
		"per-call aud, default":           {aud: other},
		"per-call aud, per call":          {aud: other, opts: []VerifyOption{WithAudience(other)}, wantOK: true},
		"per-call aud in a list":          {aud: []string{"https://x.example.com", other}, opts: []VerifyOption{WithAudience(testResource, other)}, wantOK: true},
		"any aud, none accepted":          {aud: testResource, opts: []VerifyOption{WithAudience()}},
		"last option wins":                {aud: other, opts: []VerifyOption{WithAudience(other), WithAudience(testResource)}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			claims := with(accessClaims(testIssuer, clock.Now()), map[string]any{"aud": tc.aud, "jti": "oat_" + name})
			tok := mintJWT(t, key, accessHeader(testKID), claims)
			// Twice: the second answer comes from the signature cache.
			for range 2 {
				_, err := v.Verify(context.Background(), tok, tc.opts...)
				if tc.wantOK && err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if !tc.wantOK {
					wantInvalid(t, err, "wrong audience")
				}
			}
		})
	}
	t.Run("cached under one audience, refused under another", func(t *testing.T) {
		t.Parallel()
		tok := mintJWT(t, key, accessHeader(testKID), with(accessClaims(testIssuer, clock.Now()), map[string]any{"aud": other, "jti": "oat_cached"}))
		if _, err := v.Verify(context.Background(), tok, WithAudience(other)); err != nil {
			t.Fatal(err)
		}
		_, err := v.Verify(context.Background(), tok)
		wantInvalid(t, err, "wrong audience")
	})
}

// TestFormatOf checks the shapes Verify tells apart.
func TestFormatOf(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		token string      // the token
		want  TokenFormat // its format
	}{
		"jwt":                {token: "e30.e30.c2ln", want: FormatJWT},
		"jwt, empty parts":   {token: "..", want: FormatJWT},
		"opaque":             {token: "oat_0123456789abcdef0123456789abcdef", want: FormatOpaque},
		"opaque prefix only": {token: "oat_", want: FormatOpaque},
		"opaque with dots":   {token: "oat_a.b.c", want: FormatOpaque},
		"empty":              {token: "", want: FormatOther},
		"one dot":            {token: "e30.e30", want: FormatOther},
		"three dots":         {token: "a.b.c.d", want: FormatOther},
		"upper-case prefix":  {token: "OAT_0123", want: FormatOther},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := FormatOf(tc.token); got != tc.want {
				t.Errorf("FormatOf(%q) = %q, want %q", tc.token, got, tc.want)
			}
		})
	}
}

// TestVerifier_identityIsACopy checks that a caller changing the returned
// scopes cannot change what the next caller sees.
func TestVerifier_identityIsACopy(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	key := newRSAKey(t)
	v, err := NewVerifier(VerifierOptions{Issuer: testIssuer, BackendAPIURL: "http://127.0.0.1:1/v1", SecretKey: staticKey("sk"), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	trustKey(v, testKID, &key.PublicKey, clock.Now())
	tok := mintJWT(t, key, accessHeader(testKID), with(accessClaims(testIssuer, clock.Now()), map[string]any{"scope": nil, "scp": []string{"a"}}))
	id, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	id.Scopes[0] = "admin"
	if id, _ := v.Verify(context.Background(), tok); id.Scopes[0] != "a" {
		t.Errorf("scopes changed to %q", id.Scopes)
	}
}

// signES256 signs with ECDSA P-256 (r||s), as an ES256 JWS.
func signES256(t *testing.T, key *ecdsa.PrivateKey, header, claims map[string]any) string {
	t.Helper()
	h64, p64 := b64json(t, header), b64json(t, claims)
	digest := sha256.Sum256([]byte(h64 + "." + p64))
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return h64 + "." + p64 + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// jwkOf is the public JWK of key, for an embedded "jwk" header.
func jwkOf(key interface{ Public() crypto.PublicKey }) map[string]any {
	pub := key.Public().(*rsa.PublicKey)
	return map[string]any{
		"kty": "RSA",
		"n":   base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e":   base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}
}

// TestVerifier_jwtCache: a JWT whose signature checked out is not verified
// again while cached, yet it still expires, stops working once its key is
// rotated out, and nothing but the exact token hits the cache.
func TestVerifier_jwtCache(t *testing.T) {
	t.Parallel()
	key, other := newRSAKey(t), newRSAKey(t)
	setup := func(t *testing.T, opts VerifierOptions) (*Verifier, *clocktesting.FakeClock, string) {
		clock := newFakeClock()
		opts.Issuer, opts.BackendAPIURL, opts.SecretKey, opts.Now = testIssuer, "http://127.0.0.1:1/v1", staticKey("sk"), clock.Now
		v, err := NewVerifier(opts)
		if err != nil {
			t.Fatal(err)
		}
		trustKey(v, testKID, &key.PublicKey, clock.Now())
		tok := mintJWT(t, key, accessHeader(testKID), accessClaims(testIssuer, clock.Now()))
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
		return v, clock, tok
	}

	t.Run("reused until it expires", func(t *testing.T) {
		t.Parallel()
		v, clock, tok := setup(t, VerifierOptions{JWTCacheTTL: 2 * time.Hour})
		if n := v.signed.len(); n != 1 {
			t.Fatalf("cache holds %d entries after one verification", n)
		}
		clock.Step(59 * time.Minute)
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatalf("cached token before its expiry: %v", err)
		}
		clock.Step(time.Minute + DefaultLeeway)
		_, err := v.Verify(context.Background(), tok)
		wantInvalid(t, err, "expired")
	})
	t.Run("rotated key stops vouching", func(t *testing.T) {
		t.Parallel()
		v, clock, tok := setup(t, VerifierOptions{})
		trustKey(v, testKID, &other.PublicKey, clock.Now())
		_, err := v.Verify(context.Background(), tok)
		wantInvalid(t, err, "bad signature")
	})
	t.Run("only the exact token hits", func(t *testing.T) {
		t.Parallel()
		v, _, tok := setup(t, VerifierOptions{})
		// A character in the middle of the signature: every bit of it counts.
		i := len(tok) - 20
		swapped := byte('A')
		if tok[i] == 'A' {
			swapped = 'B'
		}
		_, err := v.Verify(context.Background(), tok[:i]+string(swapped)+tok[i+1:])
		wantInvalid(t, err, "bad signature")
	})
	t.Run("a non-canonical spelling of the signature", func(t *testing.T) {
		t.Parallel()
		v, _, tok := setup(t, VerifierOptions{})
		// The last character of a 256-byte signature carries 4 unused bits;
		// setting them spells the same bytes differently.
		last := strings.IndexByte(base64URLAlphabet, tok[len(tok)-1])
		other := base64URLAlphabet[last|0x0f]
		if other == tok[len(tok)-1] {
			other = base64URLAlphabet[last&^0x0f|0x01]
		}
		_, err := v.Verify(context.Background(), tok[:len(tok)-1]+string(other))
		wantInvalid(t, err, "malformed signature")
	})
	t.Run("off", func(t *testing.T) {
		t.Parallel()
		v, _, _ := setup(t, VerifierOptions{JWTCacheTTL: -1})
		if n := v.signed.len(); n != 0 {
			t.Errorf("cache holds %d entries with JWTCacheTTL < 0", n)
		}
	})
	t.Run("bounded", func(t *testing.T) {
		t.Parallel()
		v, clock, _ := setup(t, VerifierOptions{MaxCacheEntries: 4})
		for i := range 10 {
			tok := mintJWT(t, key, accessHeader(testKID), with(accessClaims(testIssuer, clock.Now()), map[string]any{"jti": fmt.Sprintf("oat_%032d", i)}))
			if _, err := v.Verify(context.Background(), tok); err != nil {
				t.Fatal(err)
			}
		}
		if n := v.signed.len(); n > 4 {
			t.Errorf("cache holds %d entries, more than MaxCacheEntries 4", n)
		}
	})
}

const base64URLAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

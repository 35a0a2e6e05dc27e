package clerk

import (
	"context"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
)

// BenchmarkVerifyJWTWarm is the gateway's hot path for JWT access tokens,
// with the key set cached: "cached" is a token seen before (a SHA-256, a
// map lookup and the claim rules), "uncached" a token checked in full (one
// RSA-2048 signature check and the claim rules), as every token is once;
// "audience" is a cached token bound to a resource (aud), verified with
// the accepted audience passed per call, as the gateway does.
func BenchmarkVerifyJWTWarm(b *testing.B) {
	tests := map[string]struct {
		ttl time.Duration // JWTCacheTTL
		aud string        // passed with WithAudience; empty: none
	}{
		"cached":          {},
		"cached/audience": {aud: testResource},
		"uncached":        {ttl: -1},
	}
	for name, tc := range tests {
		b.Run(name, func(b *testing.B) {
			clock := newFakeClock()
			srv := newEmulator(b, clock)
			v := newEmulatorVerifier(b, srv, clock, func(o *VerifierOptions) { o.JWTCacheTTL = tc.ttl })
			req := clerktest.TokenRequest{Format: clerktest.FormatJWT, Scopes: []string{"profile", "email"}}
			if tc.aud != "" {
				req.Audience = []string{tc.aud}
			}
			tok := mint(b, srv, req)
			benchVerify(b, v, tok, tc.aud)
			if n := srv.Calls(epJWKS); n != 1 {
				b.Fatalf("%d JWKS fetches, want 1", n)
			}
		})
	}
}

// BenchmarkVerifyOpaqueCached is the hot path for opaque tokens whose
// verdict is cached: a SHA-256 of the token and a map lookup.
func BenchmarkVerifyOpaqueCached(b *testing.B) {
	clock := newFakeClock()
	srv := newEmulator(b, clock)
	v := newEmulatorVerifier(b, srv, clock)
	tok := mint(b, srv, clerktest.TokenRequest{Format: clerktest.FormatOpaque, Scopes: []string{"profile", "email"}})
	benchVerify(b, v, tok, "")
	if n := srv.Calls(epVerify); n != 1 {
		b.Fatalf("%d verify calls, want 1", n)
	}
}

// benchVerify warms v with tok, then measures Verify serially and in
// parallel (the gateway verifies on many goroutines at once), passing aud
// with WithAudience on each call unless it is empty.
func benchVerify(b *testing.B, v *Verifier, tok, aud string) {
	ctx := context.Background()
	verify := func() error {
		var err error
		if aud != "" {
			_, err = v.Verify(ctx, tok, WithAudience(aud))
		} else {
			_, err = v.Verify(ctx, tok)
		}
		return err
	}
	if err := verify(); err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := verify(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := verify(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

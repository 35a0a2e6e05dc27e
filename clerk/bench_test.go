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
// RSA-2048 signature check and the claim rules), as every token is once.
func BenchmarkVerifyJWTWarm(b *testing.B) {
	for name, ttl := range map[string]time.Duration{"cached": 0, "uncached": -1} {
		b.Run(name, func(b *testing.B) {
			clock := newFakeClock()
			srv := newEmulator(b, clock)
			v := newEmulatorVerifier(b, srv, clock, func(o *VerifierOptions) { o.JWTCacheTTL = ttl })
			tok := mint(b, srv, clerktest.TokenRequest{Format: clerktest.FormatJWT, Scopes: []string{"profile", "email"}})
			benchVerify(b, v, tok)
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
	benchVerify(b, v, tok)
	if n := srv.Calls(epVerify); n != 1 {
		b.Fatalf("%d verify calls, want 1", n)
	}
}

// benchVerify warms v with tok, then measures Verify serially and in
// parallel (the gateway verifies on many goroutines at once).
func benchVerify(b *testing.B, v *Verifier, tok string) {
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := v.Verify(ctx, tok); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

package clerktest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"math/big"
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// randomBase62 returns n characters drawn uniformly from [0-9A-Za-z], the
// alphabet of Clerk's object IDs after their prefix.
func randomBase62(n int) string {
	out := make([]byte, n)
	max := big.NewInt(int64(len(base62)))
	for i := range out {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic("clerktest: crypto/rand failed: " + err.Error())
		}
		out[i] = base62[v.Int64()]
	}
	return string(out)
}

// newID returns a Clerk-style object ID: prefix ("user_", "client_", "sess_",
// "ins_") followed by 27 base62 characters.
func newID(prefix string) string { return prefix + randomBase62(27) }

// newOATID returns "oat_" and 32 lowercase hex digits: the shape of opaque
// access tokens, their IDs, and the jti of JWT access tokens.
func newOATID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error (Go 1.24+).
	return "oat_" + hex.EncodeToString(b)
}

// newSecret returns 32 random bytes, base64url-encoded: for authorization
// codes, refresh tokens and client secrets, which have no documented shape.
func newSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// newTraceID returns a value for clerk_trace_id and the Clerk-Trace-Id header.
func newTraceID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

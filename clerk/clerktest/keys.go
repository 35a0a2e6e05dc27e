package clerktest

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
)

// rsaKeyBits matches the size of Clerk's instance keys.
const rsaKeyBits = 2048

// signingKey is one instance key pair; kid names it in JWT headers and the JWKS.
type signingKey struct {
	kid  string
	priv *rsa.PrivateKey
}

func newSigningKey() (*signingKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, rsaKeyBits)
	if err != nil {
		return nil, fmt.Errorf("generate rsa key: %w", err)
	}
	return &signingKey{kid: newID("ins_"), priv: priv}, nil
}

// jwk is an RSA public key as the spec's JWKS.rsa.PublicKey schema shapes it.
type jwk struct {
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Kty string `json:"kty"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// jwks is the JWKS schema: an object with only "keys".
type jwks struct {
	Keys []jwk `json:"keys"`
}

func (k *signingKey) publicJWK() jwk {
	return jwk{
		Kid: k.kid,
		Alg: "RS256",
		Use: "sig",
		Kty: "RSA",
		N:   base64.RawURLEncoding.EncodeToString(k.priv.N.Bytes()),
		E:   base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.priv.E)).Bytes()),
	}
}

// jwtHeader is the JOSE header of every JWT the emulator signs.
type jwtHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// signJWT signs claims with RS256 under key, with typ as the header type
// ("at+jwt" for access tokens, "JWT" for session and ID tokens).
func signJWT(key *signingKey, typ string, claims any) (string, error) {
	header, err := json.Marshal(jwtHeader{Alg: "RS256", Kid: key.kid, Typ: typ})
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signingInput := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(payload)
	digest := sha256.Sum256([]byte(signingInput))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key.priv, crypto.SHA256, digest[:])
	if err != nil {
		return "", fmt.Errorf("sign jwt: %w", err)
	}
	return signingInput + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// parseJWT checks that token is an RS256 JWT signed by one of keys and
// returns its header and claims; ok is false for anything else. It checks no
// claim: callers decide what counts as valid for their endpoint.
func parseJWT(token string, keys []*signingKey) (header jwtHeader, claims map[string]any, ok bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return header, nil, false
	}
	rawHeader, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || json.Unmarshal(rawHeader, &header) != nil || header.Alg != "RS256" {
		return header, nil, false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return header, nil, false
	}
	var key *signingKey
	for _, k := range keys {
		if k.kid == header.Kid {
			key = k
		}
	}
	if key == nil {
		return header, nil, false
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(&key.priv.PublicKey, crypto.SHA256, digest[:], sig) != nil {
		return header, nil, false
	}
	rawClaims, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return header, nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(rawClaims))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return header, nil, false
	}
	return header, claims, true
}

// claimString returns a string claim, or "".
func claimString(claims map[string]any, name string) string {
	s, _ := claims[name].(string)
	return s
}

// claimInt returns a numeric claim (seconds since the epoch), or 0.
func claimInt(claims map[string]any, name string) int64 {
	n, ok := claims[name].(json.Number)
	if !ok {
		return 0
	}
	i, err := n.Int64()
	if err != nil {
		f, ferr := n.Float64()
		if ferr != nil {
			return 0
		}
		return int64(f)
	}
	return i
}

// claimStrings returns a claim that may be a string or an array of strings
// (aud), as a slice.
func claimStrings(claims map[string]any, name string) []string {
	switch v := claims[name].(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

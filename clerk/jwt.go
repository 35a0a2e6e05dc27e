package clerk

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"time"
)

// algRS256 is the only JWS algorithm accepted. Clerk signs access tokens
// with its RSA instance key (its metadata lists RS256 alone); allowing
// anything else would only widen what a forger can try.
const algRS256 = "RS256"

// jwtHeader holds the header fields we act on. Key-locating headers (jku,
// x5u, jwk, x5c) are deliberately absent: keys come only from the JWKS.
type jwtHeader struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Typ  string          `json:"typ"`
	Crit json.RawMessage `json:"crit"`
}

// jwtClaims are the claims of a Clerk OAuth access token that we check.
type jwtClaims struct {
	Iss      string          `json:"iss"`
	Sub      string          `json:"sub"`
	Aud      json.RawMessage `json:"aud"`
	Exp      *numericDate    `json:"exp"`
	Nbf      *numericDate    `json:"nbf"`
	Iat      *numericDate    `json:"iat"`
	Jti      string          `json:"jti"`
	ClientID string          `json:"client_id"`
	Scope    *string         `json:"scope"`
	Scp      []string        `json:"scp"`
}

// verifyJWT verifies a compact JWS access token against the instance JWKS.
// Signature verification uses crypto/rsa directly rather than go-jose's
// parser, which also accepts the JSON serialization, strips whitespace and
// has no algorithm allow-list in v3: one strict parser, one algorithm.
func (v *Verifier) verifyJWT(ctx context.Context, token string, audiences []string) (Identity, error) {
	if !isBase64URLOrDot(token) {
		return Identity{}, invalid("malformed token")
	}
	key := sha256.Sum256([]byte(token))
	if s, ok := v.signed.get(key, v.opts.Now()); ok {
		// Only while the key set still serves the key (looking it up also
		// keeps the key set fresh, as for any token): a key Clerk rotated
		// out stops vouching for cached tokens once the set is refreshed.
		if pub, err := v.keys.key(ctx, s.kid); err == nil && pub == s.pub {
			return v.checkClaims(&s.claims, audiences)
		}
	}
	h64, rest, _ := strings.Cut(token, ".")
	p64, s64, _ := strings.Cut(rest, ".")

	var hdr jwtHeader
	if err := decodeSegment(h64, &hdr); err != nil {
		return Identity{}, invalid("malformed header")
	}
	switch {
	case hdr.Crit != nil:
		return Identity{}, invalid("unsupported critical header")
	case hdr.Alg != algRS256:
		return Identity{}, invalid("unsupported algorithm")
	case !strings.EqualFold(hdr.Typ, "at+jwt") && !strings.EqualFold(hdr.Typ, "application/at+jwt"):
		return Identity{}, invalid("not an access token")
	case hdr.Kid == "":
		return Identity{}, invalid("missing key id")
	}
	// Strict: only the canonical spelling of a signature decodes, so one
	// signed token has exactly one valid text (and one cache entry).
	sig, err := base64.RawURLEncoding.Strict().DecodeString(s64)
	if err != nil || len(sig) == 0 {
		return Identity{}, invalid("malformed signature")
	}

	pub, err := v.keys.key(ctx, hdr.Kid)
	if err != nil {
		return Identity{}, err
	}
	digest := sha256.Sum256([]byte(token[:len(h64)+1+len(p64)]))
	if rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) != nil {
		return Identity{}, invalid("bad signature")
	}

	var c jwtClaims
	if err := decodeSegment(p64, &c); err != nil {
		return Identity{}, invalid("malformed claims")
	}
	id, err := v.checkClaims(&c, audiences)
	if err == nil && v.opts.JWTCacheTTL > 0 {
		now := v.opts.Now()
		v.signed.put(key, signedJWT{kid: hdr.Kid, pub: pub, claims: c,
			until: minTime(now.Add(v.opts.JWTCacheTTL), c.Exp.time().Add(v.opts.Leeway))}, now)
	}
	return id, err
}

// signedJWT is a JWT whose signature checked out with pub: what the cache
// keeps so that the same token is not verified again. Its claims are
// checked again on every use.
type signedJWT struct {
	kid    string
	pub    *rsa.PublicKey
	claims jwtClaims
	until  time.Time
}

func (s signedJWT) expiry() time.Time { return s.until }

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// checkClaims applies the access token rules to signed claims, accepting
// the audiences given.
func (v *Verifier) checkClaims(c *jwtClaims, audiences []string) (Identity, error) {
	now, leeway := v.opts.Now(), v.opts.Leeway
	switch {
	case c.Iss != v.opts.Issuer:
		return Identity{}, invalid("wrong issuer")
	case c.Exp == nil:
		return Identity{}, invalid("missing expiration")
	case !now.Before(c.Exp.time().Add(leeway)):
		return Identity{}, invalid("token expired")
	case c.Nbf != nil && now.Add(leeway).Before(c.Nbf.time()):
		return Identity{}, invalid("token not yet valid")
	case c.Iat != nil && now.Add(leeway).Before(c.Iat.time()):
		return Identity{}, invalid("token issued in the future")
	case c.ClientID == "":
		// Session tokens share the signing key; client_id is what an
		// access token has and they do not.
		return Identity{}, invalid("missing client_id")
	case c.Sub == "":
		return Identity{}, invalid("missing subject")
	}
	if ok, err := audienceAccepted(c.Aud, audiences); err != nil {
		return Identity{}, invalid("malformed claims")
	} else if !ok {
		return Identity{}, invalid("wrong audience")
	}
	// A copy: the claims may be cached, and callers own what they get.
	scopes := slices.Clone(c.Scp)
	if c.Scope != nil {
		scopes = strings.Fields(*c.Scope)
	}
	return Identity{
		UserID:    c.Sub,
		ClientID:  c.ClientID,
		Scopes:    slices.Clone(scopes),
		ExpiresAt: c.Exp.time(),
		TokenID:   c.Jti,
		Format:    FormatJWT,
	}, nil
}

// audienceAccepted reports whether aud (absent, a string or an array of
// strings) is absent or names one of accepted (RFC 7519 4.1.3, RFC 8707).
func audienceAccepted(aud json.RawMessage, accepted []string) (bool, error) {
	if len(aud) == 0 || bytes.Equal(aud, []byte("null")) {
		return true, nil
	}
	var list []string
	if aud[0] == '"' {
		var one string
		if err := json.Unmarshal(aud, &one); err != nil {
			return false, err
		}
		list = []string{one}
	} else if err := json.Unmarshal(aud, &list); err != nil {
		return false, err
	}
	for _, a := range list {
		if slices.Contains(accepted, a) {
			return true, nil
		}
	}
	return false, nil
}

// numericDate is a JWT NumericDate: seconds since the epoch, possibly
// fractional.
type numericDate float64

// maxNumericDate (year 36812) keeps conversions to time.Time exact; later
// dates are refused as malformed rather than wrapped around.
const maxNumericDate = 1 << 40

func (d *numericDate) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	if f < 0 || f > maxNumericDate {
		return errors.New("numeric date out of range")
	}
	*d = numericDate(f)
	return nil
}

func (d numericDate) time() time.Time {
	sec, frac := math.Modf(float64(d))
	return time.Unix(int64(sec), int64(frac*1e9))
}

// decodeSegment decodes one base64url JWT segment holding a JSON object.
func decodeSegment(seg string, v any) error {
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

// isBase64URLOrDot reports whether s holds only base64url characters and
// dots. Go's base64 decoder skips CR and LF; we do not.
func isBase64URLOrDot(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

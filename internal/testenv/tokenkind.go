package testenv

import (
	"encoding/base64"
	"encoding/json"
	"strings"
)

// Kinds of bearer token TokenKind tells apart.
const (
	TokenNone   = "none"
	TokenJWT    = "jwt"    // a JWT access token (typ at+jwt)
	TokenOpaque = "opaque" // a Clerk opaque OAuth access token (oat_)
	TokenOther  = "other"
)

// TokenKind classifies an Authorization header without keeping the token,
// so a test can check which format a client sent.
func TokenKind(authorization string) string {
	token, ok := strings.CutPrefix(authorization, "Bearer ")
	switch {
	case !ok || token == "":
		return TokenNone
	case strings.HasPrefix(token, "oat_"):
		return TokenOpaque
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return TokenOther
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return TokenOther
	}
	var header struct {
		Typ string `json:"typ"`
	}
	if json.Unmarshal(raw, &header) != nil || (header.Typ != "at+jwt" && header.Typ != "application/at+jwt") {
		return TokenOther
	}
	return TokenJWT
}

package clerktest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// sessionTokenTTL is how long Clerk session tokens live.
const sessionTokenTTL = time.Minute

// Access token formats, for TokenRequest.Format.
const (
	FormatJWT    = "jwt"
	FormatOpaque = "opaque"
)

// TokenRequest describes an access token for MintAccessToken.
type TokenRequest struct {
	Subject  string        // user ID; "" means the configured user
	ClientID string        // "" means a fixed client ID of this server
	Scopes   []string      // granted scopes, used as given
	TTL      time.Duration // 0 means the server's access token TTL; negative mints an already expired token
	Format   string        // FormatJWT, FormatOpaque, or "" for the instance setting
	Audience []string      // the aud claim (RFC 8707 resources); none by default, as at Clerk
}

// accessRecord is what the emulator knows of one access token. Opaque
// tokens live only here; a JWT's record is rebuilt from its claims.
type accessRecord struct {
	id               string // "oat_..." (the jti of a JWT)
	clientID         string
	subject          string
	sid              string
	scopes           []string
	audience         []string
	created          time.Time
	expires          time.Time
	revoked          bool
	revokedAt        time.Time
	revocationReason string
	family           string // the authorization grant it descends from, for revoking on code reuse
}

// active reports whether the token is usable at now.
func (a accessRecord) active(now time.Time) bool {
	return !a.revoked && now.Before(a.expires)
}

// refreshRecord is one refresh token. Refresh tokens rotate: each use
// deletes the record and issues a new one.
type refreshRecord struct {
	clientID  string
	subject   string
	sid       string
	scopes    []string
	resources []string
	created   time.Time
	authTime  time.Time // when the user signed in, for ID tokens
	family    string
}

// grant is what an access token is issued for.
type grant struct {
	clientID string
	subject  string
	sid      string
	scopes   []string
	audience []string
	ttl      time.Duration
	jwt      bool
	family   string
}

// accessClaims are the claims of a JWT access token, as Clerk issues them.
type accessClaims struct {
	Iss      string `json:"iss"`
	Sub      string `json:"sub"`
	Aud      any    `json:"aud,omitempty"` // only when a resource was requested
	ClientID string `json:"client_id"`
	Scope    string `json:"scope,omitempty"`
	Jti      string `json:"jti"`
	Iat      int64  `json:"iat"`
	Nbf      int64  `json:"nbf"`
	Exp      int64  `json:"exp"`
	Azp      string `json:"azp"`
	Sid      string `json:"sid,omitempty"`
}

// sessionClaims are the claims of a Clerk session token: no client_id, no scope.
type sessionClaims struct {
	Iss string `json:"iss"`
	Sub string `json:"sub"`
	Sid string `json:"sid"`
	Iat int64  `json:"iat"`
	Nbf int64  `json:"nbf"`
	Exp int64  `json:"exp"`
	Azp string `json:"azp"`
}

// idClaims are the claims of an OpenID Connect ID token.
type idClaims struct {
	Iss           string `json:"iss"`
	Sub           string `json:"sub"`
	Aud           string `json:"aud"`
	Azp           string `json:"azp"`
	Iat           int64  `json:"iat"`
	Exp           int64  `json:"exp"`
	AuthTime      int64  `json:"auth_time"`
	Nonce         string `json:"nonce,omitempty"`
	Sid           string `json:"sid,omitempty"`
	Email         string `json:"email,omitempty"`
	EmailVerified *bool  `json:"email_verified,omitempty"`
}

// audienceClaim renders RFC 8707 resources as aud: a string for one, an
// array for several, absent for none.
func audienceClaim(aud []string) any {
	switch len(aud) {
	case 0:
		return nil
	case 1:
		return aud[0]
	default:
		return slices.Clone(aud)
	}
}

// issueAccessToken creates an access token in the format g asks for.
func (s *Server) issueAccessToken(g grant) (string, error) {
	now := s.now()
	if !g.jwt {
		token := newOATID()
		rec := &accessRecord{
			id: newOATID(), clientID: g.clientID, subject: g.subject, sid: g.sid,
			scopes: slices.Clone(g.scopes), audience: slices.Clone(g.audience),
			created: now, expires: now.Add(g.ttl), family: g.family,
		}
		s.mu.Lock()
		s.opaque[token] = rec
		s.mu.Unlock()
		return token, nil
	}
	key, _ := s.signingKeys()
	return signJWT(key, "at+jwt", accessClaims{
		Iss:      s.frontendURL,
		Sub:      g.subject,
		Aud:      audienceClaim(g.audience),
		ClientID: g.clientID,
		Scope:    strings.Join(g.scopes, " "),
		Jti:      newOATID(),
		Iat:      now.Unix(),
		Nbf:      now.Unix(),
		Exp:      now.Add(g.ttl).Unix(),
		Azp:      g.clientID,
		Sid:      g.sid,
	})
}

// issueIDToken creates the OpenID Connect ID token for an openid grant. The
// email claims are the subject's primary address as it is now.
func (s *Server) issueIDToken(clientID, subject, sid, nonce string, scopes []string, authTime time.Time) (string, error) {
	now := s.now()
	claims := idClaims{
		Iss: s.frontendURL, Sub: subject, Aud: clientID, Azp: clientID,
		Iat: now.Unix(), Exp: now.Add(s.accessTTL).Unix(), AuthTime: authTime.Unix(),
		Nonce: nonce, Sid: sid,
	}
	if email, verified, ok := s.emailClaim(subject); ok && slices.Contains(scopes, "email") {
		claims.Email, claims.EmailVerified = email, &verified
	}
	key, _ := s.signingKeys()
	return signJWT(key, "JWT", claims)
}

// MintAccessToken issues an access token exactly as /oauth/token would for
// req, without an OAuth flow. Opaque tokens are known to the verify endpoint
// and userinfo from then on.
func (s *Server) MintAccessToken(req TokenRequest) (string, error) {
	g := grant{
		clientID: req.ClientID, subject: req.Subject, sid: newID("sess_"),
		scopes: req.Scopes, audience: req.Audience, ttl: req.TTL,
		jwt: s.Settings().OAuthJWTAccessTokens,
	}
	switch req.Format {
	case "":
	case FormatJWT:
		g.jwt = true
	case FormatOpaque:
		g.jwt = false
	default:
		return "", fmt.Errorf("clerktest: token format %q is not %q, %q or empty", req.Format, FormatJWT, FormatOpaque)
	}
	if g.subject == "" {
		g.subject = s.user.ID
	}
	if g.clientID == "" {
		g.clientID = s.mintClientID
	}
	if g.ttl == 0 {
		g.ttl = s.accessTTL
	}
	return s.issueAccessToken(g)
}

// MintSessionToken issues a Clerk session token for subject ("" means the
// configured user): signed with the same key as access tokens, header typ
// "JWT", and no client_id. A gateway must refuse it as an access token.
func (s *Server) MintSessionToken(subject string) (string, error) {
	if subject == "" {
		subject = s.user.ID
	}
	now := s.now()
	key, _ := s.signingKeys()
	return signJWT(key, "JWT", sessionClaims{
		Iss: s.frontendURL, Sub: subject, Sid: newID("sess_"),
		Iat: now.Unix(), Nbf: now.Unix(), Exp: now.Add(sessionTokenTTL).Unix(),
		Azp: s.frontendURL,
	})
}

// RevokeAccessToken revokes an access token this server issued. An opaque
// token is then reported revoked by the verify endpoint and refused by
// userinfo. A JWT is only recorded (see AccessTokenRevoked): Clerk cannot
// revoke JWT access tokens, and they stay valid until they expire.
func (s *Server) RevokeAccessToken(token string) error {
	s.mu.Lock()
	if rec, ok := s.opaque[token]; ok {
		s.revokeLocked(rec, "Revoked by clerktest")
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	rec, isJWT, ok := s.lookupAccessToken(token)
	if !ok || !isJWT {
		return errors.New("clerktest: revoke: not an access token issued by this server")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jwtRevoked[rec.id] = "Revoked by clerktest"
	return nil
}

// AccessTokenRevoked reports whether token was revoked, through
// RevokeAccessToken or the revocation endpoint (opaque tokens), or recorded
// as revoked by RevokeAccessToken (JWTs).
func (s *Server) AccessTokenRevoked(token string) bool {
	s.mu.Lock()
	if rec, ok := s.opaque[token]; ok {
		defer s.mu.Unlock()
		return rec.revoked
	}
	s.mu.Unlock()
	rec, isJWT, ok := s.lookupAccessToken(token)
	if !ok || !isJWT {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, revoked := s.jwtRevoked[rec.id]
	return revoked
}

// revokeLocked marks an opaque token revoked; s.mu must be held.
func (s *Server) revokeLocked(rec *accessRecord, reason string) {
	if rec.revoked {
		return
	}
	rec.revoked, rec.revokedAt, rec.revocationReason = true, s.now(), reason
}

// lookupAccessToken finds an access token: an opaque one in the store, or
// a JWT access token (typ at+jwt, our issuer, a client_id) signed with a key
// the JWKS serves. Session tokens and foreign JWTs are not found. The record
// is a copy; activity (expiry, revocation) is for the caller to judge.
func (s *Server) lookupAccessToken(token string) (rec accessRecord, isJWT, found bool) {
	s.mu.Lock()
	if r, ok := s.opaque[token]; ok {
		rec = *r
		s.mu.Unlock()
		return rec, false, true
	}
	s.mu.Unlock()
	_, keys := s.signingKeys()
	header, claims, ok := parseJWT(token, keys)
	if !ok || header.Typ != "at+jwt" || claimString(claims, "iss") != s.frontendURL || claimString(claims, "client_id") == "" {
		return rec, false, false
	}
	rec = accessRecord{
		id:       claimString(claims, "jti"),
		clientID: claimString(claims, "client_id"),
		subject:  claimString(claims, "sub"),
		sid:      claimString(claims, "sid"),
		scopes:   strings.Fields(claimString(claims, "scope")),
		audience: claimStrings(claims, "aud"),
		created:  time.Unix(claimInt(claims, "iat"), 0),
		expires:  time.Unix(claimInt(claims, "exp"), 0),
	}
	if nbf := claimInt(claims, "nbf"); nbf != 0 && s.now().Before(time.Unix(nbf, 0)) {
		// Not yet valid: treat as expired for every purpose here.
		rec.expires = rec.created
	}
	return rec, true, true
}

// issueRefreshToken stores a new refresh token for the grant described by rec.
func (s *Server) issueRefreshToken(rec refreshRecord) string {
	token := newSecret()
	rec.created = s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshTokens[token] = &rec
	return token
}

// revokeFamilyLocked revokes every token descending from one authorization
// code, as RFC 6749 section 4.1.2 asks when a code is used twice; s.mu must be held.
func (s *Server) revokeFamilyLocked(family string) {
	for _, rec := range s.opaque {
		if rec.family == family {
			s.revokeLocked(rec, "Authorization code reused")
		}
	}
	for token, rec := range s.refreshTokens {
		if rec.family == family {
			delete(s.refreshTokens, token)
		}
	}
}

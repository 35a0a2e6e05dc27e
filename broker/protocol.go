package broker

import (
	"time"

	"github.com/mcpgate/mcpgate/clerk"
)

// Paths of the broker's endpoints. Every one takes a JSON POST; the version
// is in the path so that a later, incompatible protocol can be served beside
// this one while gateways roll.
const (
	PathVerify      = "/v1/verify"
	PathUser        = "/v1/user"
	PathMemberships = "/v1/memberships"
	PathOAuthToken  = "/v1/oauth_token"
)

// Audience is the audience a gateway's projected ServiceAccount token must be
// issued for. A token for any other audience (the API server's own, another
// service's) is refused, so a token the gateway holds for something else
// cannot be replayed here, and a broker token is useless elsewhere.
const Audience = "mcpgate-broker"

// maxRequestBytes bounds a request body: an access token (at most
// clerk.MaxTokenLength), a few audiences and a provider ID.
const maxRequestBytes = 16 << 10

// Request is the body of every endpoint. No endpoint takes a user ID: the
// subject is always that of AccessToken, which the broker verifies itself for
// the caller's Clerk instance.
type Request struct {
	// AccessToken is the bearer token an MCP client presented to the
	// gateway (a JWT or an opaque "oat_" token).
	AccessToken string `json:"access_token"`
	// Audiences are the resource URLs a JWT's aud may name (the gateway's
	// clerk.WithAudience). Ignored when the broker pins the audiences of the
	// caller's instance (Instance.Audiences).
	Audiences []string `json:"audiences,omitempty"`
	// Provider is the OAuth provider (such as "oauth_github") whose token is
	// asked for; only for PathOAuthToken.
	Provider string `json:"provider,omitempty"`
}

// IdentityResponse answers PathVerify: clerk.Identity on the wire.
type IdentityResponse struct {
	UserID    string            `json:"user_id"`
	ClientID  string            `json:"client_id"`
	Scopes    []string          `json:"scopes"`
	ExpiresAt time.Time         `json:"expires_at,omitzero"`
	TokenID   string            `json:"token_id,omitempty"`
	Format    clerk.TokenFormat `json:"format"`
}

// UserResponse answers PathUser.
type UserResponse struct {
	ID             string   `json:"id"`
	PrimaryEmail   string   `json:"primary_email,omitempty"`
	VerifiedEmails []string `json:"verified_emails"`
}

// MembershipsResponse answers PathMemberships. UserID is the subject the
// broker verified the access token for, whom the memberships are about.
type MembershipsResponse struct {
	UserID      string           `json:"user_id"`
	Memberships []MembershipJSON `json:"memberships"`
}

// MembershipJSON is one clerk.Membership on the wire.
type MembershipJSON struct {
	OrganizationID   string   `json:"organization_id"`
	OrganizationSlug string   `json:"organization_slug,omitempty"`
	Role             string   `json:"role"`
	Permissions      []string `json:"permissions"`
}

// OAuthTokenResponse answers PathOAuthToken. Token is a credential; UserID
// is the subject the broker verified the access token for, whose it is.
type OAuthTokenResponse struct {
	UserID    string    `json:"user_id"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	Scopes    []string  `json:"scopes"`
}

// ErrorResponse is the body of every answer other than 200.
type ErrorResponse struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody says what went wrong in terms a client can restore to the clerk
// package's error values. Message and Reason are fixed phrases: they never
// quote a token, a key or Clerk's own messages.
type ErrorBody struct {
	// Code is one of the Code* constants.
	Code string `json:"code"`
	// Message is for people reading logs.
	Message string `json:"message"`
	// Reason is clerk.InvalidTokenError.Reason, for CodeInvalidToken.
	Reason string `json:"reason,omitempty"`
	// RetryAfterSeconds repeats the Retry-After header, for CodeUnavailable.
	RetryAfterSeconds int64 `json:"retry_after_seconds,omitempty"`
}

// Error codes, and the status each is answered with.
const (
	// CodeUnauthenticated (401): the caller's ServiceAccount token is
	// missing, not valid, expired, or not for Audience.
	CodeUnauthenticated = "unauthenticated"
	// CodeForbidden (403): the caller is authenticated but may use no Clerk
	// instance through the broker.
	CodeForbidden = "forbidden"
	// CodeBadRequest (400): the request is malformed (not JSON, unknown
	// fields, a provider that cannot be a Clerk provider ID).
	CodeBadRequest = "bad_request"
	// CodeInvalidToken (422): the access token in the request is not valid
	// for the caller's instance; Reason says why (clerk.InvalidTokenError).
	CodeInvalidToken = "invalid_token"
	// CodeUserNotFound (404): clerk.ErrUserNotFound, an answer.
	CodeUserNotFound = "user_not_found"
	// CodeNotConnected (404): clerk.ErrNotConnected, an answer.
	CodeNotConnected = "not_connected"
	// CodeTooManyMemberships (422): clerk.ErrTooManyMemberships, an answer.
	CodeTooManyMemberships = "too_many_memberships"
	// CodeUnavailable (503, Retry-After): Clerk could not be asked, rate
	// limits the instance, or the broker cannot check the caller right now.
	CodeUnavailable = "unavailable"
	// CodeInternal (500): anything else; the client fails closed.
	CodeInternal = "internal"
)

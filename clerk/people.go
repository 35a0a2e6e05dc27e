package clerk

import (
	"context"
	"errors"
	"strconv"
	"time"
)

// User is what access rules may need to know about a Clerk user, from
// GET /v1/users/{user_id}.
type User struct {
	// ID is the Clerk user ID ("user_...").
	ID string
	// PrimaryEmail is the user's primary email address when it is
	// verified, else empty.
	PrimaryEmail string
	// VerifiedEmails are every email address of the user whose
	// verification status is "verified", as Clerk spells them.
	VerifiedEmails []string
}

// Membership is one of a user's organization memberships, from
// GET /v1/users/{user_id}/organization_memberships.
type Membership struct {
	// OrganizationID is the organization's ID ("org_...").
	OrganizationID string
	// OrganizationSlug is the organization's slug; empty when it has none.
	OrganizationSlug string
	// Role is the member's role key, such as "org:admin".
	Role string
	// Permissions are the permission keys the role grants, such as
	// "org:sys_memberships:manage".
	Permissions []string
}

// ErrUserNotFound means Clerk does not know the user (deleted, or another
// instance's). It is an answer, cached like any other, not an outage.
var ErrUserNotFound = errors.New("clerk user not found")

// OAuthToken is a user's access token at an OAuth provider (a social
// connection such as GitHub), from
// GET /v1/users/{user_id}/oauth_access_tokens/{provider}.
type OAuthToken struct {
	// Token is the access token at the provider. It is a credential: never
	// log it or put it in an error.
	Token string
	// ExpiresAt is when the provider said it expires; zero when Clerk gave
	// no expiry.
	ExpiresAt time.Time
	// Scopes are the scopes the provider granted.
	Scopes []string
}

// ErrNotConnected means the user has no token for the provider: they never
// connected it, or the connection holds no token. An answer, cached briefly,
// not an outage.
var ErrNotConnected = errors.New("clerk user has not connected the provider")

// Subject is whom a Directory lookup is about: the user ID the caller
// verified, and the access token it verified it from, with the resource
// URLs that token's aud may name (WithAudience). A Directory over the
// Backend API needs only UserID; one over a PeopleSource (the key broker,
// which answers only about the subject of a token it verifies itself) needs
// the token too. AccessToken is a credential: String and GoString leave it
// out, and it is never logged or put in an error.
type Subject struct {
	UserID      string
	AccessToken string
	Audiences   []string
}

// String names the subject by user ID only.
func (s Subject) String() string { return s.UserID }

// GoString keeps %#v from printing the access token.
func (s Subject) GoString() string { return "clerk.Subject{UserID: " + strconv.Quote(s.UserID) + "}" }

// PeopleSource answers what a Directory does not hold in its cache, in place
// of the Backend API: the key broker, which holds the secret key so that the
// gateway does not. Its errors are the Directory's own (ErrUserNotFound,
// ErrNotConnected, ErrTooManyMemberships, *UnavailableError), plus
// *InvalidTokenError when it refuses the subject's access token; that is
// about the token, not the user, and is never cached.
type PeopleSource interface {
	User(ctx context.Context, s Subject) (User, error)
	Memberships(ctx context.Context, s Subject) ([]Membership, error)
	OAuthToken(ctx context.Context, s Subject, provider string) (OAuthToken, error)
}

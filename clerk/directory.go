package clerk

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	sdk "github.com/clerk/clerk-sdk-go/v2"
	"github.com/clerk/clerk-sdk-go/v2/user"
	"golang.org/x/sync/singleflight"
)

const (
	// DefaultDirectoryTTL is how long an answer about a user is trusted: a
	// membership removed or a user deleted in Clerk stops counting within
	// it, and one user's requests cost at most two lookups per TTL.
	DefaultDirectoryTTL = time.Minute
	// membershipsPageSize is the limit of one membership listing page. The
	// spec allows 500; at 1-2 KiB per membership (its organization
	// included), 100 keeps a page far below maxResponseBytes.
	membershipsPageSize = 100
	// maxMembershipPages bounds one listing (1,000 memberships), so a
	// total_count that keeps growing cannot keep us calling.
	maxMembershipPages = 10
	// maxUserIDLength bounds a user ID; Clerk's are 32 characters.
	maxUserIDLength = 128
	// verifiedStatus is an email address verification's status once the
	// user has proven they own it.
	verifiedStatus = "verified"
)

// ErrTooManyMemberships means the user has more organization memberships
// than the Directory lists (maxMembershipPages pages). Access rules cannot be
// judged on part of the list, so the caller must refuse; it is an answer,
// cached like ErrUserNotFound, so such a user does not cost ten calls per
// request.
var ErrTooManyMemberships = errors.New("clerk user has too many organization memberships to list")

// DirectoryOptions configures a Directory. Zero values take the defaults.
// Either BackendAPIURL and SecretKey are set, or Source is.
type DirectoryOptions struct {
	// BackendAPIURL is the Backend API base, e.g. https://api.clerk.com/v1.
	BackendAPIURL string
	// SecretKey returns the secret key; it is called before each Backend API
	// call (each page included), so a rotated key is picked up.
	SecretKey func(ctx context.Context) (string, error)
	// Source, when set, answers the cache's misses in place of the Backend
	// API (the key broker): the Directory then holds no key. Caching, the
	// collapsing of concurrent lookups and the TTLs are the same either way.
	Source PeopleSource
	// HTTPClient makes Backend API calls; nil uses NewHTTPClient().
	HTTPClient *http.Client
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
	// TTL is how long an answer, "not found" included, is reused;
	// DefaultDirectoryTTL when zero. Failures to ask Clerk are never reused.
	// Negative: no answer is reused at all (OAuth tokens included), and
	// only concurrent lookups of a user share a call; for the key broker,
	// whose callers cache for their own TTLs.
	TTL time.Duration
	// MaxEntries bounds each of the three caches (users, memberships,
	// OAuth tokens); DefaultMaxCacheEntries when zero.
	MaxEntries int
}

// Directory answers what Clerk knows about a user that the gateway may need:
// the user's verified email addresses and organization memberships, for
// access rules, and the user's OAuth tokens at other providers, for upstream
// credentials (OAuthToken), from the Backend API or a PeopleSource (the key
// broker). Answers are cached per user
// for TTL (tokens by their expiry); concurrent lookups of a user share one
// call per endpoint; an answer it cannot get is an *UnavailableError, never a
// guess or an expired answer. It is safe for concurrent use; create one per
// gateway and keep it.
type Directory struct {
	opts        DirectoryOptions
	backend     backend
	limit       *backoff
	users       *verdictCache[string, answer[User]]
	memberships *verdictCache[string, answer[[]Membership]]
	// tokens holds OAuth tokens at providers: credentials, in memory only,
	// never logged.
	tokens *verdictCache[oauthTokenKey, tokenAnswer]
	// userFlights and membershipFlights collapse concurrent lookups, keyed
	// by user ID; tokenFlights by user ID and provider.
	userFlights       singleflight.Group
	membershipFlights singleflight.Group
	tokenFlights      singleflight.Group
}

// answer is one cached answer about a user: a value, or an error that is an
// answer too (ErrUserNotFound, ErrTooManyMemberships).
type answer[T any] struct {
	val   T
	err   error
	until time.Time
}

func (a answer[T]) expiry() time.Time { return a.until }

// NewDirectory checks opts, fills in defaults and returns a Directory. It
// makes no network call.
func NewDirectory(opts DirectoryOptions) (*Directory, error) {
	switch {
	case opts.Source != nil && opts.SecretKey != nil:
		return nil, errors.New("a secret key and a people source are mutually exclusive")
	case opts.Source == nil:
		if err := checkAbsoluteURL(opts.BackendAPIURL); err != nil {
			return nil, fmt.Errorf("backend api url: %w", err)
		}
		if opts.SecretKey == nil {
			return nil, errors.New("secret key source is required")
		}
	}
	if opts.MaxEntries < 0 {
		return nil, fmt.Errorf("max entries %d is negative", opts.MaxEntries)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	setDefault(&opts.TTL, DefaultDirectoryTTL)
	if opts.MaxEntries == 0 {
		opts.MaxEntries = DefaultMaxCacheEntries
	}
	capacity := opts.MaxEntries
	if opts.TTL < 0 {
		capacity = noReuse
	}
	return &Directory{
		opts:        opts,
		backend:     newBackend(opts.BackendAPIURL, opts.HTTPClient),
		limit:       &backoff{now: opts.Now},
		users:       newVerdictCache[string, answer[User]](capacity),
		memberships: newVerdictCache[string, answer[[]Membership]](capacity),
		tokens:      newVerdictCache[oauthTokenKey, tokenAnswer](capacity),
	}, nil
}

// User is UserOf a subject known by its user ID alone, for a Directory over
// the Backend API.
func (d *Directory) User(ctx context.Context, userID string) (User, error) {
	return d.UserOf(ctx, Subject{UserID: userID})
}

// Memberships is MembershipsOf a subject known by its user ID alone, for a
// Directory over the Backend API.
func (d *Directory) Memberships(ctx context.Context, userID string) ([]Membership, error) {
	return d.MembershipsOf(ctx, Subject{UserID: userID})
}

// UserOf returns the user's verified email addresses and primary email
// (GET /v1/users/{user_id}, or the Source). Errors: one wrapping
// ErrUserNotFound when Clerk does not know the user (or the user ID cannot
// be a Clerk user ID), an answer; *UnavailableError when Clerk could not be
// asked, refused our key, or rate limits us (answer 503 with its
// RetryAfter); *InvalidTokenError when the Source refuses the subject's
// access token. A cancelled ctx gives an *UnavailableError wrapping
// ctx.Err().
func (d *Directory) UserOf(ctx context.Context, s Subject) (User, error) {
	a, err := lookup(ctx, d, d.users, &d.userFlights, s, d.fetchUser)
	if err != nil {
		return User{}, err
	}
	if a.err != nil {
		return User{}, a.err
	}
	u := a.val
	u.VerifiedEmails = slices.Clone(u.VerifiedEmails)
	return u, nil
}

// MembershipsOf returns all the user's organization memberships (every page
// of GET /v1/users/{user_id}/organization_memberships, or the Source); none
// is an empty result, not an error. Errors are UserOf's, plus one wrapping
// ErrTooManyMemberships. A user already known not to exist is not asked
// about again.
func (d *Directory) MembershipsOf(ctx context.Context, s Subject) ([]Membership, error) {
	if u, ok := d.users.get(s.UserID, d.opts.Now()); ok && errors.Is(u.err, ErrUserNotFound) {
		return nil, u.err
	}
	a, err := lookup(ctx, d, d.memberships, &d.membershipFlights, s, d.fetchMemberships)
	if err != nil {
		return nil, err
	}
	if a.err != nil {
		return nil, a.err
	}
	return cloneMemberships(a.val), nil
}

// lookup returns the cached answer for the subject's user or fetches one,
// once for all concurrent callers, on a context detached from theirs. The
// error is a failure to get an answer: an *UnavailableError, or the
// Source's *InvalidTokenError, which is about the token and is not cached.
func lookup[T any](ctx context.Context, d *Directory, cache *verdictCache[string, answer[T]], flights *singleflight.Group,
	s Subject, fetch func(context.Context, Subject) (T, error)) (answer[T], error) {
	userID := s.UserID
	if !isUserID(userID) {
		return answer[T]{err: fmt.Errorf("user id %q is not a clerk user id: %w", truncate(userID), ErrUserNotFound)}, nil
	}
	if a, ok := cache.get(userID, d.opts.Now()); ok {
		return a, nil
	}
	if err := d.limit.active(); err != nil {
		return answer[T]{}, err
	}
	// NOTE: with a Source, concurrent lookups of one user share the first
	// caller's access token; should the Source refuse it, they all get its
	// *InvalidTokenError (a 401 at the gateway), which is not cached.
	ch := flights.DoChan(userID, func() (any, error) {
		// NOTE: a caller may have missed the cache just before the previous
		// flight for this user filled it; the answer is there now.
		if a, ok := cache.get(userID, d.opts.Now()); ok {
			return a, nil
		}
		if err := d.limit.active(); err != nil {
			return answer[T]{}, err
		}
		fctx, cancel := detached(ctx)
		defer cancel()
		val, err := fetch(fctx, s)
		now := d.opts.Now()
		a := answer[T]{val: val, until: now.Add(d.opts.TTL)}
		var ie *InvalidTokenError
		switch {
		case errors.As(err, &ie):
			return answer[T]{}, err
		case errors.Is(err, ErrUserNotFound):
			a.err = err
			d.notFound(userID, err, a.until, now)
		case errors.Is(err, ErrTooManyMemberships):
			a.err = err
		case err != nil:
			return answer[T]{}, d.limit.unavailable(err)
		}
		cache.put(userID, a, now)
		return a, nil
	})
	return waitFlight[answer[T]](ctx, ch)
}

// notFound records in both caches that Clerk does not know userID, whichever
// endpoint said so: a deleted user has neither an account nor memberships.
func (d *Directory) notFound(userID string, err error, until, now time.Time) {
	d.users.put(userID, answer[User]{err: err, until: until}, now)
	d.memberships.put(userID, answer[[]Membership]{err: err, until: until}, now)
}

// fetchUser asks the Source, or calls GET /v1/users/{user_id} through the
// SDK's users client. An answer about another user is an error, never cached
// for this one.
func (d *Directory) fetchUser(ctx context.Context, s Subject) (User, error) {
	userID := s.UserID
	if d.opts.Source != nil {
		u, err := d.opts.Source.User(ctx, s)
		if err != nil {
			return User{}, err
		}
		if u.ID != userID {
			return User{}, fmt.Errorf("get user %s: the source answered about user %q", userID, truncate(u.ID))
		}
		return u, nil
	}
	secret, err := currentSecretKey(ctx, d.opts.SecretKey)
	if err != nil {
		return User{}, err
	}
	client := &user.Client{Backend: d.backend.sdkBackend(secret, "get user")}
	u, err := client.Get(ctx, userID)
	if err != nil {
		return User{}, notFoundError(err, userID)
	}
	if u.ID != userID {
		return User{}, fmt.Errorf("get user %s: answer is about user %q", userID, truncate(u.ID))
	}
	return userFromSDK(u), nil
}

// userFromSDK keeps what access rules may use: the email addresses whose
// verification says "verified", and the primary one only if it is among them.
func userFromSDK(u *sdk.User) User {
	out := User{ID: u.ID}
	for _, e := range u.EmailAddresses {
		if e == nil || e.EmailAddress == "" || e.Verification == nil || e.Verification.Status != verifiedStatus {
			continue
		}
		out.VerifiedEmails = append(out.VerifiedEmails, e.EmailAddress)
		if u.PrimaryEmailAddressID != nil && e.ID == *u.PrimaryEmailAddressID {
			out.PrimaryEmail = e.EmailAddress
		}
	}
	return out
}

// fetchMemberships asks the Source (whose answer names no user: it is about
// the subject of the token it verified, the token this subject's user ID
// was verified from), or lists every page of the user's memberships through
// the SDK's users client: offset moves by what each page held until
// total_count is reached, or a page comes back empty (memberships removed
// meanwhile). A user with more than maxMembershipPages pages gets
// ErrTooManyMemberships, decided from the first page's total_count when it
// already says so.
func (d *Directory) fetchMemberships(ctx context.Context, s Subject) ([]Membership, error) {
	if d.opts.Source != nil {
		return d.opts.Source.Memberships(ctx, s)
	}
	const op = "list organization memberships"
	userID := s.UserID
	var out []Membership
	seen := map[string]bool{}
	limit, offset := int64(membershipsPageSize), int64(0)
	for page := 0; ; page++ {
		secret, err := currentSecretKey(ctx, d.opts.SecretKey)
		if err != nil {
			return nil, err
		}
		client := &user.Client{Backend: d.backend.sdkBackend(secret, op)}
		list, err := client.ListOrganizationMemberships(ctx, userID, &user.ListOrganizationMembershipsParams{
			ListParams: sdk.ListParams{Limit: &limit, Offset: &offset},
		})
		if err != nil {
			return nil, notFoundError(err, userID)
		}
		if list.TotalCount > membershipsPageSize*maxMembershipPages ||
			(page+1 == maxMembershipPages && offset+int64(len(list.OrganizationMemberships)) < list.TotalCount) {
			return nil, fmt.Errorf("%s of %s: total_count %d, more than %d: %w",
				op, userID, list.TotalCount, membershipsPageSize*maxMembershipPages, ErrTooManyMemberships)
		}
		for _, m := range list.OrganizationMemberships {
			if m == nil || m.Organization == nil || m.Organization.ID == "" {
				return nil, fmt.Errorf("%s of %s: a membership has no organization", op, userID)
			}
			// A membership added or removed between two pages shifts the
			// offsets; keep an organization once.
			if seen[m.Organization.ID] {
				continue
			}
			seen[m.Organization.ID] = true
			out = append(out, Membership{
				OrganizationID:   m.Organization.ID,
				OrganizationSlug: m.Organization.Slug,
				Role:             m.Role,
				Permissions:      slices.Clone(m.Permissions),
			})
		}
		offset += int64(len(list.OrganizationMemberships))
		if len(list.OrganizationMemberships) == 0 || offset >= list.TotalCount {
			return out, nil
		}
	}
}

// notFoundError turns Clerk's 404 into ErrUserNotFound (an answer); other
// failures are returned as they are.
func notFoundError(err error, userID string) error {
	var be *BackendError
	if errors.As(err, &be) && be.StatusCode == http.StatusNotFound {
		return fmt.Errorf("%s %s: %w", be.Op, userID, ErrUserNotFound)
	}
	return err
}

// isUserID reports whether s can be a Clerk user ID. Anything else is
// refused before it reaches a request path, where a "/" or "?" would name
// another resource.
func isUserID(s string) bool {
	if s == "" || len(s) > maxUserIDLength {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// truncate keeps an untrusted value short enough for an error message.
func truncate(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// cloneMemberships copies ms deeply, so no caller can change a cached answer.
func cloneMemberships(ms []Membership) []Membership {
	if ms == nil {
		return nil
	}
	out := make([]Membership, len(ms))
	for i, m := range ms {
		m.Permissions = slices.Clone(m.Permissions)
		out[i] = m
	}
	return out
}

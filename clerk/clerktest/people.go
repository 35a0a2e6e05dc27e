package clerktest

import (
	"fmt"
	"net/http"
	"net/mail"
	"slices"
	"strings"
	"time"
)

// emailCodeTTL is how long a pending email_code verification stays open,
// the expire_at of an address whose owner never entered the code.
const emailCodeTTL = 10 * time.Minute

// UserParams describes a user for CreateUser.
type UserParams struct {
	// ID is the user's ID; empty generates one in Clerk's shape ("user_"
	// and 27 base62 characters). It must not contain "/" or spaces.
	ID string
	// Emails are verified email addresses, as the Backend API creates them;
	// the first is the primary address.
	Emails []string
	// UnverifiedEmails are addresses whose owner was sent a code and never
	// entered it (verification status "unverified"). The first is primary
	// when Emails is empty.
	UnverifiedEmails []string
}

// emailState is how far an email address got with verification. Each state
// renders as Clerk renders it, so a client that reads only one of
// "verification is null" or "status is unverified" is caught out.
type emailState int

const (
	// emailVerified: created through the Backend API, verified by an
	// administrator (verification_admin, status "verified").
	emailVerified emailState = iota
	// emailPending: a sign-up sent a code that was never entered
	// (verification_otp, strategy email_code, status "unverified").
	emailPending
	// emailUnverified: no verification ever started (verification null), as
	// POST /v1/email_addresses with verified false leaves it.
	emailUnverified
	// emailReserved: reserved for sign-in but unverified (reserved true,
	// verification null), as POST /v1/users with status "reserved" makes it.
	emailReserved
)

// emailRecord is one email address of a user.
type emailRecord struct {
	id      string // "idn_..."
	address string
	state   emailState
	created time.Time
	updated time.Time
}

// userRecord is one user of the instance.
type userRecord struct {
	id             string
	emails         []*emailRecord
	primaryEmailID string
	userProfile
	lastSignIn time.Time // zero until the user signs in at the authorization endpoint
	created    time.Time
	updated    time.Time
}

// userProfile is what a user has besides an ID, addresses and times: what
// POST /v1/users sets along with them.
type userProfile struct {
	externalID      *string
	username        *string
	firstName       *string
	lastName        *string
	publicMetadata  map[string]any
	privateMetadata map[string]any
	unsafeMetadata  map[string]any
}

// primaryEmail returns the user's primary email address, if any.
func (u *userRecord) primaryEmail() *emailRecord {
	for _, e := range u.emails {
		if e.id == u.primaryEmailID {
			return e
		}
	}
	return nil
}

// directory is the instance's people: users, organizations and memberships.
// Server.peopleMu guards it.
type directory struct {
	users       map[string]*userRecord       // by ID
	orgs        map[string]*orgRecord        // by ID
	memberships map[string]*membershipRecord // by membershipKey
	seq         int64                        // creation order, for stable listings under a still clock
	// oauth holds each user's connected accounts per provider, with their
	// tokens (oauth_tokens.go); nil until the first is set.
	oauth map[oauthKey][]*oauthAccount
}

func newDirectory() directory {
	return directory{users: map[string]*userRecord{}, orgs: map[string]*orgRecord{}, memberships: map[string]*membershipRecord{}}
}

// next returns the next creation sequence number.
func (d *directory) next() int64 {
	d.seq++
	return d.seq
}

// apiError is a Backend API error answer. The operations behind both the
// HTTP routes and the Go API return it, so the two cannot drift apart.
type apiError struct {
	status int
	body   clerkError
}

func (e *apiError) Error() string { return "clerktest: " + e.body.LongMessage }

func (e *apiError) write(w http.ResponseWriter) { writeClerkError(w, e.status, e.body) }

// errNotFound is Clerk's 404 for an unknown object.
func errNotFound(long string) *apiError {
	return &apiError{status: http.StatusNotFound, body: clerkError{Message: "not found", LongMessage: long, Code: "resource_not_found"}}
}

// errParam is Clerk's 422 for one bad parameter.
func errParam(param, code, message, long string) *apiError {
	return &apiError{status: http.StatusUnprocessableEntity, body: clerkError{
		Message: message, LongMessage: long, Code: code, Meta: map[string]any{"param_name": param},
	}}
}

// errEmailTaken is Clerk's answer when an address belongs to another user.
func errEmailTaken() *apiError {
	return errParam("email_address", "form_identifier_exists", "That email address is taken. Please try another.",
		"That email address is taken. Please try another.")
}

// validEmail reports whether s is a bare RFC 5322 address (no display name).
func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && a.Name == ""
}

// validObjectID reports whether id can name an object in a URL path.
func validObjectID(id string) bool {
	return id != "" && !strings.ContainsAny(id, "/?#% \t\r\n")
}

// newEmail is an address to add and the state to give it.
type newEmail struct {
	address string
	state   emailState
}

// newUser is what createUserLocked needs; HTTP requests fill more of it
// than the Go API does.
type newUser struct {
	id     string
	emails []newEmail
	userProfile
}

// emailOwnerLocked returns the ID of the user who has address (compared
// without regard to case), or "". s.peopleMu must be held.
func (s *Server) emailOwnerLocked(address string) string {
	for _, u := range s.people.users {
		for _, e := range u.emails {
			if strings.EqualFold(e.address, address) {
				return u.id
			}
		}
	}
	return ""
}

// checkNewEmailsLocked refuses malformed addresses and addresses that are
// taken, by another user or twice in the same request. s.peopleMu must be held.
func (s *Server) checkNewEmailsLocked(emails []newEmail) *apiError {
	for i, e := range emails {
		if !validEmail(e.address) {
			return errParam("email_address", "form_param_format_invalid", "is invalid", "email_address must be a valid email address.")
		}
		if s.emailOwnerLocked(e.address) != "" || slices.ContainsFunc(emails[:i], func(o newEmail) bool { return strings.EqualFold(o.address, e.address) }) {
			return errEmailTaken()
		}
	}
	return nil
}

// createUserLocked adds a user; the first address is primary. s.peopleMu must be held.
func (s *Server) createUserLocked(p newUser) (*userRecord, *apiError) {
	if p.id == "" {
		p.id = newID("user_")
	}
	if !validObjectID(p.id) {
		return nil, errParam("id", "form_param_format_invalid", "is invalid", fmt.Sprintf("%q cannot be a user ID.", p.id))
	}
	if _, ok := s.people.users[p.id]; ok {
		return nil, errParam("id", "form_identifier_exists", "is taken", "A user with ID "+p.id+" already exists.")
	}
	if err := s.checkNewEmailsLocked(p.emails); err != nil {
		return nil, err
	}
	now := s.now()
	u := &userRecord{id: p.id, userProfile: p.userProfile, created: now, updated: now}
	u.publicMetadata = orEmpty(u.publicMetadata)
	u.privateMetadata = orEmpty(u.privateMetadata)
	u.unsafeMetadata = orEmpty(u.unsafeMetadata)
	for _, e := range p.emails {
		u.emails = append(u.emails, &emailRecord{id: newID("idn_"), address: e.address, state: e.state, created: now, updated: now})
	}
	if len(u.emails) > 0 {
		u.primaryEmailID = u.emails[0].id
	}
	s.people.users[u.id] = u
	return u, nil
}

// addEmailLocked gives a user one more address, primary when asked or when
// it is the first. s.peopleMu must be held.
func (s *Server) addEmailLocked(userID string, e newEmail, primary bool) (*emailRecord, *apiError) {
	u, ok := s.people.users[userID]
	if !ok {
		return nil, errNotFound("No user was found with id " + userID)
	}
	if err := s.checkNewEmailsLocked([]newEmail{e}); err != nil {
		return nil, err
	}
	now := s.now()
	rec := &emailRecord{id: newID("idn_"), address: e.address, state: e.state, created: now, updated: now}
	u.emails = append(u.emails, rec)
	if primary || u.primaryEmailID == "" {
		u.primaryEmailID = rec.id
	}
	u.updated = now
	return rec, nil
}

// deleteUserLocked removes a user and every membership of theirs.
// s.peopleMu must be held.
func (s *Server) deleteUserLocked(id string) *apiError {
	if _, ok := s.people.users[id]; !ok {
		return errNotFound("No user was found with id " + id)
	}
	delete(s.people.users, id)
	s.people.deleteOAuthAccounts(id)
	for key, m := range s.people.memberships {
		if m.userID == id {
			delete(s.people.memberships, key)
		}
	}
	return nil
}

// userOf returns the User view of a record: its ID and primary address.
func userOf(u *userRecord) User {
	out := User{ID: u.id}
	if e := u.primaryEmail(); e != nil {
		out.Email = e.address
	}
	return out
}

// CreateUser adds a user, as POST /v1/users would, without a Backend API
// call (nothing is counted or observed). It fails if the ID or an address
// is taken or malformed.
func (s *Server) CreateUser(p UserParams) (User, error) {
	nu := newUser{id: p.ID}
	for _, e := range p.Emails {
		nu.emails = append(nu.emails, newEmail{address: e, state: emailVerified})
	}
	for _, e := range p.UnverifiedEmails {
		nu.emails = append(nu.emails, newEmail{address: e, state: emailPending})
	}
	s.peopleMu.Lock()
	defer s.peopleMu.Unlock()
	u, err := s.createUserLocked(nu)
	if err != nil {
		return User{}, err
	}
	return userOf(u), nil
}

// AddEmailAddress gives a user another address: verified, or pending (a
// code was sent and never entered, verification status "unverified"). It
// returns the address's ID ("idn_...").
func (s *Server) AddEmailAddress(userID, email string, verified bool) (string, error) {
	state := emailPending
	if verified {
		state = emailVerified
	}
	s.peopleMu.Lock()
	defer s.peopleMu.Unlock()
	rec, err := s.addEmailLocked(userID, newEmail{address: email, state: state}, false)
	if err != nil {
		return "", err
	}
	return rec.id, nil
}

// DeleteUser removes a user and their memberships, as DELETE
// /v1/users/{user_id} would. Tokens already issued to the user stay valid
// until they expire, so a test can see what a gateway does with the token
// of someone Clerk no longer knows.
func (s *Server) DeleteUser(id string) error {
	s.peopleMu.Lock()
	defer s.peopleMu.Unlock()
	if err := s.deleteUserLocked(id); err != nil {
		return err
	}
	return nil
}

// LookupUser returns the user with this ID, if the instance has one.
func (s *Server) LookupUser(id string) (User, bool) {
	s.peopleMu.Lock()
	defer s.peopleMu.Unlock()
	u, ok := s.people.users[id]
	if !ok {
		return User{}, false
	}
	return userOf(u), true
}

// signInAs resolves who signs in at the authorization endpoint: the user
// named by login_hint (an ID, or an email address that is verified or
// reserved, as Clerk signs in only with those), else the default user. It
// records the sign-in time. On failure it returns why, for
// error_description.
func (s *Server) signInAs(loginHint string) (string, string) {
	s.peopleMu.Lock()
	defer s.peopleMu.Unlock()
	var u *userRecord
	switch {
	case loginHint == "":
		u = s.people.users[s.user.ID]
		if u == nil {
			return "", "the default user has been deleted"
		}
	case s.people.users[loginHint] != nil:
		u = s.people.users[loginHint]
	default:
		owner := s.people.users[s.emailOwnerLocked(loginHint)]
		if owner == nil {
			return "", "login_hint names no user of this instance"
		}
		i := slices.IndexFunc(owner.emails, func(e *emailRecord) bool { return strings.EqualFold(e.address, loginHint) })
		if st := owner.emails[i].state; st != emailVerified && st != emailReserved {
			return "", "login_hint names an email address that is not verified; sign in with the user ID instead"
		}
		u = owner
	}
	u.lastSignIn = s.now()
	return u.id, ""
}

// emailClaim returns a user's primary address and whether it is verified,
// for ID tokens and userinfo; ok is false for an unknown user or one
// without an address.
func (s *Server) emailClaim(userID string) (email string, verified, ok bool) {
	s.peopleMu.Lock()
	defer s.peopleMu.Unlock()
	u := s.people.users[userID]
	if u == nil {
		return "", false, false
	}
	e := u.primaryEmail()
	if e == nil {
		return "", false, false
	}
	return e.address, e.state == emailVerified, true
}

// orEmpty returns m, or an empty map for nil, as Clerk renders metadata.
func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// nonEmpty returns s as a one-element list, or nil when it is empty.
func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

package clerktest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Default and bounds of the limit and offset query parameters (the spec's
// LimitParameter and OffsetParameter).
const (
	defaultListLimit = 10
	maxListLimit     = 500
)

// peopleRoutes are the Backend API routes for users, email addresses,
// organizations and memberships. Path parameters carry the spec's names, so
// the route names used for faults and call counts read like the spec.
func (s *Server) peopleRoutes() routes {
	return routes{
		"POST /v1/users":                                                   s.handleCreateUser,
		"GET /v1/users/{user_id}":                                          s.handleGetUser,
		"DELETE /v1/users/{user_id}":                                       s.handleDeleteUser,
		"GET /v1/users/{user_id}/organization_memberships":                 s.handleUserMemberships,
		"POST /v1/email_addresses":                                         s.handleCreateEmailAddress,
		"POST /v1/organizations":                                           s.handleCreateOrganization,
		"GET /v1/organizations/{organization_id}":                          s.handleGetOrganization,
		"DELETE /v1/organizations/{organization_id}":                       s.handleDeleteOrganization,
		"POST /v1/organizations/{organization_id}/memberships":             s.handleCreateMembership,
		"PATCH /v1/organizations/{organization_id}/memberships/{user_id}":  s.handleUpdateMembership,
		"DELETE /v1/organizations/{organization_id}/memberships/{user_id}": s.handleDeleteMembership,
	}
}

// userResponse is the spec's User (additionalProperties: false, so nothing
// else). Features the emulator lacks (phones, wallets, passkeys, MFA,
// external accounts) are empty or null, as for a user who never set them up.
type userResponse struct {
	ID                            string                 `json:"id"`
	Object                        string                 `json:"object"`
	ExternalID                    *string                `json:"external_id"`
	PrimaryEmailAddressID         *string                `json:"primary_email_address_id"`
	PrimaryPhoneNumberID          *string                `json:"primary_phone_number_id"`
	PrimaryWeb3WalletID           *string                `json:"primary_web3_wallet_id"`
	Username                      *string                `json:"username"`
	FirstName                     *string                `json:"first_name"`
	LastName                      *string                `json:"last_name"`
	HasImage                      bool                   `json:"has_image"`
	PublicMetadata                map[string]any         `json:"public_metadata"`
	PrivateMetadata               map[string]any         `json:"private_metadata"`
	UnsafeMetadata                map[string]any         `json:"unsafe_metadata"`
	EmailAddresses                []emailAddressResponse `json:"email_addresses"`
	PhoneNumbers                  []any                  `json:"phone_numbers"`
	Web3Wallets                   []any                  `json:"web3_wallets"`
	Passkeys                      []any                  `json:"passkeys"`
	PasswordEnabled               bool                   `json:"password_enabled"`
	TwoFactorEnabled              bool                   `json:"two_factor_enabled"`
	TOTPEnabled                   bool                   `json:"totp_enabled"`
	BackupCodeEnabled             bool                   `json:"backup_code_enabled"`
	MFAEnabledAt                  *int64                 `json:"mfa_enabled_at"`
	MFADisabledAt                 *int64                 `json:"mfa_disabled_at"`
	ExternalAccounts              []any                  `json:"external_accounts"`
	SAMLAccounts                  []any                  `json:"saml_accounts"`
	EnterpriseAccounts            []any                  `json:"enterprise_accounts"`
	LastSignInAt                  *int64                 `json:"last_sign_in_at"`
	Banned                        bool                   `json:"banned"`
	Locked                        bool                   `json:"locked"`
	LockoutExpiresInSeconds       *int64                 `json:"lockout_expires_in_seconds"`
	VerificationAttemptsRemaining *int64                 `json:"verification_attempts_remaining"`
	UpdatedAt                     int64                  `json:"updated_at"`
	CreatedAt                     int64                  `json:"created_at"`
	DeleteSelfEnabled             bool                   `json:"delete_self_enabled"`
	CreateOrganizationEnabled     bool                   `json:"create_organization_enabled"`
	LastActiveAt                  *int64                 `json:"last_active_at"`
	LegalAcceptedAt               *int64                 `json:"legal_accepted_at"`
}

// emailAddressResponse is the spec's EmailAddress.
type emailAddressResponse struct {
	ID                   string                `json:"id"`
	Object               string                `json:"object"`
	EmailAddress         string                `json:"email_address"`
	Reserved             bool                  `json:"reserved"`
	Verification         *verificationResponse `json:"verification"`
	LinkedTo             []any                 `json:"linked_to"`
	MatchesSSOConnection bool                  `json:"matches_sso_connection"`
	CreatedAt            int64                 `json:"created_at"`
	UpdatedAt            int64                 `json:"updated_at"`
}

// verificationResponse is the verification_admin or verification_otp branch
// of EmailAddress.verification; object is the spec's discriminator.
type verificationResponse struct {
	Object   string `json:"object"`
	Status   string `json:"status"`
	Strategy string `json:"strategy"`
	Attempts *int64 `json:"attempts"`
	ExpireAt *int64 `json:"expire_at"`
}

// organizationResponse is the spec's Organization. Times are unix
// milliseconds, as Clerk's Backend API objects have them.
type organizationResponse struct {
	Object                string         `json:"object"`
	ID                    string         `json:"id"`
	Name                  string         `json:"name"`
	Slug                  string         `json:"slug"`
	HasImage              bool           `json:"has_image"`
	MembersCount          *int           `json:"members_count,omitempty"`
	MaxAllowedMemberships int64          `json:"max_allowed_memberships"`
	AdminDeleteEnabled    bool           `json:"admin_delete_enabled"`
	PublicMetadata        map[string]any `json:"public_metadata"`
	PrivateMetadata       map[string]any `json:"private_metadata"`
	CreatedBy             string         `json:"created_by,omitempty"`
	CreatedAt             int64          `json:"created_at"`
	UpdatedAt             int64          `json:"updated_at"`
}

// membershipResponse is the spec's OrganizationMembership.
type membershipResponse struct {
	ID              string               `json:"id"`
	Object          string               `json:"object"`
	Role            string               `json:"role"`
	RoleName        string               `json:"role_name"`
	Permissions     []string             `json:"permissions"`
	PublicMetadata  map[string]any       `json:"public_metadata"`
	PrivateMetadata map[string]any       `json:"private_metadata"`
	Organization    organizationResponse `json:"organization"`
	PublicUserData  *publicUserData      `json:"public_user_data,omitempty"`
	CreatedAt       int64                `json:"created_at"`
	UpdatedAt       int64                `json:"updated_at"`
}

// publicUserData is the spec's OrganizationMembershipPublicUserData; the
// identifier is the member's primary email address.
type publicUserData struct {
	UserID          string  `json:"user_id"`
	FirstName       *string `json:"first_name"`
	LastName        *string `json:"last_name"`
	ProfileImageURL *string `json:"profile_image_url"`
	ImageURL        string  `json:"image_url"`
	HasImage        bool    `json:"has_image"`
	Identifier      *string `json:"identifier"`
	Username        *string `json:"username"`
}

// membershipList is the spec's OrganizationMemberships.
type membershipList struct {
	Data       []membershipResponse `json:"data"`
	TotalCount int64                `json:"total_count"`
}

// deletedObject is the spec's DeletedObject.
type deletedObject struct {
	Object  string `json:"object"`
	ID      string `json:"id,omitempty"`
	Slug    string `json:"slug,omitempty"`
	Deleted bool   `json:"deleted"`
}

func emailJSON(e *emailRecord) emailAddressResponse {
	out := emailAddressResponse{
		ID: e.id, Object: "email_address", EmailAddress: e.address, LinkedTo: []any{},
		CreatedAt: e.created.UnixMilli(), UpdatedAt: e.updated.UnixMilli(),
	}
	switch e.state {
	case emailVerified:
		out.Verification = &verificationResponse{Object: "verification_admin", Status: "verified", Strategy: "admin"}
	case emailPending:
		attempts, expire := int64(0), e.created.Add(emailCodeTTL).UnixMilli()
		out.Verification = &verificationResponse{Object: "verification_otp", Status: "unverified", Strategy: "email_code", Attempts: &attempts, ExpireAt: &expire}
	case emailReserved:
		out.Reserved = true
	}
	return out
}

func userJSON(u *userRecord) userResponse {
	out := userResponse{
		ID: u.id, Object: "user", ExternalID: u.externalID, Username: u.username, FirstName: u.firstName, LastName: u.lastName,
		PublicMetadata: u.publicMetadata, PrivateMetadata: u.privateMetadata, UnsafeMetadata: u.unsafeMetadata,
		EmailAddresses: []emailAddressResponse{}, PhoneNumbers: []any{}, Web3Wallets: []any{}, Passkeys: []any{},
		ExternalAccounts: []any{}, SAMLAccounts: []any{}, EnterpriseAccounts: []any{},
		CreatedAt: u.created.UnixMilli(), UpdatedAt: u.updated.UnixMilli(),
		DeleteSelfEnabled: true, CreateOrganizationEnabled: true,
	}
	for _, e := range u.emails {
		out.EmailAddresses = append(out.EmailAddresses, emailJSON(e))
	}
	if u.primaryEmailID != "" {
		id := u.primaryEmailID
		out.PrimaryEmailAddressID = &id
	}
	if !u.lastSignIn.IsZero() {
		// last_active_at has day precision, the spec says.
		at, day := u.lastSignIn.UnixMilli(), u.lastSignIn.UTC().Truncate(24*time.Hour).UnixMilli()
		out.LastSignInAt, out.LastActiveAt = &at, &day
	}
	return out
}

func orgJSON(o *orgRecord) organizationResponse {
	return organizationResponse{
		Object: "organization", ID: o.id, Name: o.name, Slug: o.slug, MaxAllowedMemberships: o.maxAllowedMemberships,
		AdminDeleteEnabled: true, PublicMetadata: o.publicMetadata, PrivateMetadata: o.privateMetadata,
		CreatedBy: o.createdBy, CreatedAt: o.created.UnixMilli(), UpdatedAt: o.updated.UnixMilli(),
	}
}

// membershipJSONLocked renders a membership with its organization, its
// role's current permissions and the member's public data. s.peopleMu must be held.
func (s *Server) membershipJSONLocked(m *membershipRecord) membershipResponse {
	out := membershipResponse{
		ID: m.id, Object: "organization_membership", Role: m.role, RoleName: roleName(m.role),
		Permissions: append([]string{}, s.roles[m.role]...), PublicMetadata: m.publicMetadata, PrivateMetadata: m.privateMetadata,
		CreatedAt: m.created.UnixMilli(), UpdatedAt: m.updated.UnixMilli(),
	}
	if o := s.people.orgs[m.orgID]; o != nil {
		out.Organization = orgJSON(o)
	}
	pud := &publicUserData{UserID: m.userID}
	if u := s.people.users[m.userID]; u != nil {
		pud.FirstName, pud.LastName, pud.Username = u.firstName, u.lastName, u.username
		if e := u.primaryEmail(); e != nil {
			addr := e.address
			pud.Identifier = &addr
		}
	}
	out.PublicUserData = pud
	return out
}

// answer runs op with s.peopleMu held and writes its result (as JSON, 200)
// or its error after releasing the lock, so that a slow client never holds
// up the directory.
func (s *Server) answer(w http.ResponseWriter, op func() (any, *apiError)) {
	s.peopleMu.Lock()
	v, err := op()
	s.peopleMu.Unlock()
	if err != nil {
		err.write(w)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// decodeBody reads a JSON object body into v. With allowed set (the
// schema has additionalProperties: false), other fields are refused as
// Clerk refuses them; null leaves a field at its zero value.
func decodeBody(r *http.Request, allowed []string, v any) *apiError {
	invalid := &apiError{status: http.StatusUnprocessableEntity, body: clerkError{
		Message: "Request body invalid", LongMessage: "The request body must be a JSON object", Code: "request_body_invalid",
	}}
	body, err := readBody(r)
	if err != nil {
		return invalid
	}
	var fields map[string]json.RawMessage
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return invalid
	}
	if allowed != nil {
		for _, name := range slices.Sorted(maps.Keys(fields)) {
			if !slices.Contains(allowed, name) {
				return errParam(name, "form_param_unknown", "is unknown", name+" is not a valid parameter for this request.")
			}
		}
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return errParam(te.Field, "form_param_format_invalid", "is invalid", te.Field+" has the wrong type.")
		}
		return invalid
	}
	return nil
}

// createUserFields are the properties of CreateUser's request body. The
// emulator stores the ones it models and accepts the others without effect.
func createUserFields() []string {
	return []string{
		"external_id", "first_name", "last_name", "locale", "email_address", "email_address_identification_status",
		"phone_number", "phone_number_identification_status", "web3_wallet", "username", "password", "password_digest",
		"password_hasher", "skip_password_checks", "skip_password_requirement", "totp_secret", "backup_codes",
		"public_metadata", "private_metadata", "unsafe_metadata", "delete_self_enabled", "legal_accepted_at",
		"skip_legal_checks", "skip_user_requirement", "create_organization_enabled", "create_organizations_limit",
		"created_at", "bypass_client_trust", "banned", "locked",
	}
}

// handleCreateUser is POST /v1/users. Addresses are created verified unless
// email_address_identification_status says "reserved" for them.
func (s *Server) handleCreateUser(w http.ResponseWriter, r *http.Request) {
	var req struct {
		EmailAddress   []string       `json:"email_address"`
		EmailStatus    []string       `json:"email_address_identification_status"`
		ExternalID     *string        `json:"external_id"`
		Username       *string        `json:"username"`
		FirstName      *string        `json:"first_name"`
		LastName       *string        `json:"last_name"`
		PublicMetadata map[string]any `json:"public_metadata"`
		PrivateMeta    map[string]any `json:"private_metadata"`
		UnsafeMeta     map[string]any `json:"unsafe_metadata"`
	}
	if err := decodeBody(r, createUserFields(), &req); err != nil {
		err.write(w)
		return
	}
	if len(req.EmailStatus) > 0 && len(req.EmailStatus) != len(req.EmailAddress) {
		errParam("email_address_identification_status", "form_param_value_invalid", "is invalid",
			"email_address_identification_status must have one item per email address.").write(w)
		return
	}
	nu := newUser{userProfile: userProfile{
		externalID: req.ExternalID, username: req.Username, firstName: req.FirstName, lastName: req.LastName,
		publicMetadata: req.PublicMetadata, privateMetadata: req.PrivateMeta, unsafeMetadata: req.UnsafeMeta,
	}}
	for i, addr := range req.EmailAddress {
		state := emailVerified
		if len(req.EmailStatus) > 0 {
			switch req.EmailStatus[i] {
			case "verified":
			case "reserved":
				state = emailReserved
			default:
				errParam("email_address_identification_status", "form_param_value_invalid", "is invalid",
					"email_address_identification_status items must be verified or reserved.").write(w)
				return
			}
		}
		nu.emails = append(nu.emails, newEmail{address: addr, state: state})
	}
	s.answer(w, func() (any, *apiError) {
		u, err := s.createUserLocked(nu)
		if err != nil {
			return nil, err
		}
		return userJSON(u), nil
	})
}

func (s *Server) handleGetUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("user_id")
	s.answer(w, func() (any, *apiError) {
		u, ok := s.people.users[id]
		if !ok {
			return nil, errNotFound("No user was found with id " + id)
		}
		return userJSON(u), nil
	})
}

func (s *Server) handleDeleteUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("user_id")
	s.answer(w, func() (any, *apiError) {
		if err := s.deleteUserLocked(id); err != nil {
			return nil, err
		}
		return deletedObject{Object: "user", ID: id, Deleted: true}, nil
	})
}

// listWindow reads limit and offset. Out-of-range values get Clerk's 422,
// although the spec documents no error answer for some list operations.
func listWindow(r *http.Request) (limit, offset int, err *apiError) {
	q := r.URL.Query()
	limit, offset = defaultListLimit, 0
	if v := q.Get("limit"); v != "" {
		n, convErr := strconv.Atoi(v)
		if convErr != nil || n < 1 || n > maxListLimit {
			return 0, 0, errParam("limit", "form_param_value_invalid", "is invalid", "limit must be an integer between 1 and "+strconv.Itoa(maxListLimit)+".")
		}
		limit = n
	}
	if v := q.Get("offset"); v != "" {
		n, convErr := strconv.Atoi(v)
		if convErr != nil || n < 0 {
			return 0, 0, errParam("offset", "form_param_value_invalid", "is invalid", "offset must be an integer greater than or equal to 0.")
		}
		offset = n
	}
	return limit, offset, nil
}

// handleUserMemberships is GET /v1/users/{user_id}/organization_memberships:
// newest first, a window of limit from offset, and the total. The spec
// documents no 404 here, and the emulator, like a query by user ID, answers
// an unknown (or deleted) user with an empty list.
func (s *Server) handleUserMemberships(w http.ResponseWriter, r *http.Request) {
	limit, offset, err := listWindow(r)
	if err != nil {
		err.write(w)
		return
	}
	id := r.PathValue("user_id")
	s.answer(w, func() (any, *apiError) {
		var mine []*membershipRecord
		for _, m := range s.people.memberships {
			if m.userID == id {
				mine = append(mine, m)
			}
		}
		slices.SortFunc(mine, func(a, b *membershipRecord) int { return cmp.Compare(b.seq, a.seq) })
		out := membershipList{Data: []membershipResponse{}, TotalCount: int64(len(mine))}
		for _, m := range mine[min(offset, len(mine)):min(offset+limit, len(mine))] {
			out.Data = append(out.Data, s.membershipJSONLocked(m))
		}
		return out, nil
	})
}

// handleCreateEmailAddress is POST /v1/email_addresses. The address is
// verified only when verified is true; otherwise it has no verification
// (null), as nothing was sent to it.
func (s *Server) handleCreateEmailAddress(w http.ResponseWriter, r *http.Request) {
	var req struct {
		UserID       string `json:"user_id"`
		EmailAddress string `json:"email_address"`
		Verified     *bool  `json:"verified"`
		Primary      *bool  `json:"primary"`
	}
	if err := decodeBody(r, nil, &req); err != nil {
		err.write(w)
		return
	}
	switch {
	case req.UserID == "":
		errParam("user_id", "form_param_missing", "missing required parameter", "user_id must be included.").write(w)
		return
	case req.EmailAddress == "":
		errParam("email_address", "form_param_missing", "missing required parameter", "email_address must be included.").write(w)
		return
	}
	state := emailUnverified
	if req.Verified != nil && *req.Verified {
		state = emailVerified
	}
	s.answer(w, func() (any, *apiError) {
		rec, err := s.addEmailLocked(req.UserID, newEmail{address: req.EmailAddress, state: state}, req.Primary != nil && *req.Primary)
		if err != nil {
			return nil, err
		}
		return emailJSON(rec), nil
	})
}

package clerktest

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
)

// Clerk's default organization roles.
const (
	// RoleAdmin is the default admin role; an organization's creator gets it.
	RoleAdmin = "org:admin"
	// RoleMember is the default member role.
	RoleMember = "org:member"
	// creatorRole is the role the created_by user of a new organization gets
	// (Clerk's default Creator role).
	creatorRole = RoleAdmin
	// maxOrgNameLength is the longest organization name Clerk accepts.
	maxOrgNameLength = 256
)

// DefaultOrganizationRoles returns Clerk's default roles and their system
// permissions: org:admin has every system permission, org:member may read
// members. (Billing permissions, which Clerk adds when Billing is enabled,
// are left out; the emulator has no Billing.)
func DefaultOrganizationRoles() map[string][]string {
	return map[string][]string{
		RoleAdmin: {
			"org:sys_profile:manage", "org:sys_profile:delete",
			"org:sys_memberships:read", "org:sys_memberships:manage",
			"org:sys_domains:read", "org:sys_domains:manage",
		},
		RoleMember: {"org:sys_memberships:read"},
	}
}

func cloneRoles(roles map[string][]string) map[string][]string {
	out := make(map[string][]string, len(roles))
	for k, v := range roles {
		out[k] = slices.Clone(v)
	}
	return out
}

// roleName is a role's display name, as Clerk's role_name shows it:
// "org:admin" is "Admin", "org:billing_manager" is "Billing manager".
func roleName(key string) string {
	name := strings.ReplaceAll(strings.TrimPrefix(key, "org:"), "_", " ")
	if name == "" {
		return key
	}
	r := []rune(name)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}

// orgRecord is one organization.
type orgRecord struct {
	id                    string
	name                  string
	slug                  string
	createdBy             string
	maxAllowedMemberships int64 // stored and shown, not enforced
	publicMetadata        map[string]any
	privateMetadata       map[string]any
	created               time.Time
	updated               time.Time
}

// membershipRecord is one user's membership of one organization.
type membershipRecord struct {
	id              string // "orgmem_..."
	orgID           string
	userID          string
	role            string
	publicMetadata  map[string]any
	privateMetadata map[string]any
	seq             int64
	created         time.Time
	updated         time.Time
}

func membershipKey(orgID, userID string) string { return orgID + " " + userID }

// validSlug reports whether s is a slug Clerk accepts: lowercase letters,
// digits and dashes.
func validSlug(s string) bool {
	return s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == ""
}

// slugFrom derives a slug from a name, as Clerk does when none is given.
func slugFrom(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// orgBySlugLocked returns the organization with slug, or nil. s.peopleMu must be held.
func (s *Server) orgBySlugLocked(slug string) *orgRecord {
	for _, o := range s.people.orgs {
		if o.slug == slug {
			return o
		}
	}
	return nil
}

// orgLocked finds an organization by ID or, when bySlug, by slug too.
// s.peopleMu must be held.
func (s *Server) orgLocked(idOrSlug string, bySlug bool) (*orgRecord, *apiError) {
	if o, ok := s.people.orgs[idOrSlug]; ok {
		return o, nil
	}
	if bySlug {
		if o := s.orgBySlugLocked(idOrSlug); o != nil {
			return o, nil
		}
	}
	return nil, errNotFound("No organization was found with id " + idOrSlug)
}

// newOrg is what createOrgLocked needs.
type newOrg struct {
	name                  string
	slug                  *string
	createdBy             string
	maxAllowedMemberships int64
	publicMetadata        map[string]any
	privateMetadata       map[string]any
}

// createOrgLocked adds an organization; its creator, if named, becomes a
// member with the creator role. s.peopleMu must be held.
func (s *Server) createOrgLocked(p newOrg) (*orgRecord, *apiError) {
	switch {
	case strings.TrimSpace(p.name) == "":
		return nil, errParam("name", "form_param_missing", "missing required parameter", "name must be included.")
	case len([]rune(p.name)) > maxOrgNameLength:
		return nil, errParam("name", "form_param_exceeds_allowed_size", "is too long", fmt.Sprintf("name must be at most %d characters long.", maxOrgNameLength))
	case p.slug != nil && !validSlug(*p.slug):
		return nil, errParam("slug", "form_param_format_invalid", "is invalid", "slug can contain only lowercase alphanumeric characters and the dash \"-\".")
	case p.slug != nil && s.orgBySlugLocked(*p.slug) != nil:
		return nil, errParam("slug", "form_identifier_exists", "That slug is taken. Please try another.", "That slug is taken. Please try another.")
	case p.createdBy != "" && s.people.users[p.createdBy] == nil:
		return nil, &apiError{status: http.StatusBadRequest, body: clerkError{
			Message: "creator not found", LongMessage: "No users found with id " + p.createdBy, Code: "organization_creator_not_found",
		}}
	case p.createdBy != "" && s.roles[creatorRole] == nil:
		return nil, errParam("created_by", "form_param_value_invalid", "is invalid",
			"The instance has no "+creatorRole+" role to give the organization's creator.")
	}
	slug := ""
	if p.slug != nil {
		slug = *p.slug
	} else {
		// Clerk makes a slug from the name and keeps it unique.
		base := slugFrom(p.name)
		if base == "" {
			base = "org"
		}
		slug = base
		for s.orgBySlugLocked(slug) != nil {
			slug = base + "-" + strings.ToLower(randomBase62(6))
		}
	}
	now := s.now()
	o := &orgRecord{
		id: newID("org_"), name: p.name, slug: slug, createdBy: p.createdBy, maxAllowedMemberships: p.maxAllowedMemberships,
		publicMetadata: orEmpty(p.publicMetadata), privateMetadata: orEmpty(p.privateMetadata), created: now, updated: now,
	}
	s.people.orgs[o.id] = o
	if p.createdBy != "" {
		s.addMembershipLocked(o, p.createdBy, creatorRole, nil, nil)
	}
	return o, nil
}

// deleteOrgLocked removes an organization and its memberships. s.peopleMu must be held.
func (s *Server) deleteOrgLocked(o *orgRecord) {
	delete(s.people.orgs, o.id)
	for key, m := range s.people.memberships {
		if m.orgID == o.id {
			delete(s.people.memberships, key)
		}
	}
}

// checkRole refuses a role the instance does not have.
func (s *Server) checkRole(role string) *apiError {
	if role == "" {
		return errParam("role", "form_param_missing", "missing required parameter", "role must be included.")
	}
	if _, ok := s.roles[role]; !ok {
		return errParam("role", "form_param_value_invalid", "is invalid", fmt.Sprintf("%s does not match the allowed values for parameter role. You can use one of the following: %s.",
			role, strings.Join(slices.Sorted(maps.Keys(s.roles)), ", ")))
	}
	return nil
}

func (s *Server) addMembershipLocked(o *orgRecord, userID, role string, public, private map[string]any) *membershipRecord {
	now := s.now()
	m := &membershipRecord{
		id: newID("orgmem_"), orgID: o.id, userID: userID, role: role,
		publicMetadata: orEmpty(public), privateMetadata: orEmpty(private),
		seq: s.people.next(), created: now, updated: now,
	}
	s.people.memberships[membershipKey(o.id, userID)] = m
	return m
}

// createMembershipLocked adds a user to an organization. s.peopleMu must be held.
func (s *Server) createMembershipLocked(o *orgRecord, userID, role string, public, private map[string]any) (*membershipRecord, *apiError) {
	if userID == "" {
		return nil, errParam("user_id", "form_param_missing", "missing required parameter", "user_id must be included.")
	}
	if err := s.checkRole(role); err != nil {
		return nil, err
	}
	if s.people.users[userID] == nil {
		return nil, errNotFound("No user was found with id " + userID)
	}
	if _, ok := s.people.memberships[membershipKey(o.id, userID)]; ok {
		return nil, &apiError{status: http.StatusBadRequest, body: clerkError{
			Message: "already a member", LongMessage: "User " + userID + " is already a member of the organization.", Code: "already_a_member_in_organization",
		}}
	}
	return s.addMembershipLocked(o, userID, role, public, private), nil
}

// membershipLocked finds a user's membership of an organization. s.peopleMu must be held.
func (s *Server) membershipLocked(o *orgRecord, userID string) (*membershipRecord, *apiError) {
	m, ok := s.people.memberships[membershipKey(o.id, userID)]
	if !ok {
		return nil, errNotFound("No organization membership was found for user " + userID + " in organization " + o.id)
	}
	return m, nil
}

// CreateOrganization adds an organization, as POST /v1/organizations would,
// without a Backend API call. slug "" derives one from the name; createdBy,
// if not "", names an existing user, who becomes an org:admin member. It
// returns the organization's ID ("org_...").
func (s *Server) CreateOrganization(name, slug, createdBy string) (string, error) {
	p := newOrg{name: name, createdBy: createdBy}
	if slug != "" {
		p.slug = &slug
	}
	s.peopleMu.Lock()
	defer s.peopleMu.Unlock()
	o, err := s.createOrgLocked(p)
	if err != nil {
		return "", err
	}
	return o.id, nil
}

// SetMembership makes a user a member of an organization (named by ID or
// slug) with role, or changes the role of an existing member. The role must
// be one of the instance's (see WithOrganizationRoles).
func (s *Server) SetMembership(orgIDOrSlug, userID, role string) error {
	s.peopleMu.Lock()
	defer s.peopleMu.Unlock()
	o, err := s.orgLocked(orgIDOrSlug, true)
	if err != nil {
		return err
	}
	if m, ok := s.people.memberships[membershipKey(o.id, userID)]; ok {
		if err := s.checkRole(role); err != nil {
			return err
		}
		m.role, m.updated = role, s.now()
		return nil
	}
	if _, err := s.createMembershipLocked(o, userID, role, nil, nil); err != nil {
		return err
	}
	return nil
}

// RemoveMembership removes a user from an organization (named by ID or slug).
func (s *Server) RemoveMembership(orgIDOrSlug, userID string) error {
	s.peopleMu.Lock()
	defer s.peopleMu.Unlock()
	o, err := s.orgLocked(orgIDOrSlug, true)
	if err != nil {
		return err
	}
	if _, err := s.membershipLocked(o, userID); err != nil {
		return err
	}
	delete(s.people.memberships, membershipKey(o.id, userID))
	return nil
}

// DeleteOrganization removes an organization (named by ID or slug) and its
// memberships.
func (s *Server) DeleteOrganization(orgIDOrSlug string) error {
	s.peopleMu.Lock()
	defer s.peopleMu.Unlock()
	o, err := s.orgLocked(orgIDOrSlug, true)
	if err != nil {
		return err
	}
	s.deleteOrgLocked(o)
	return nil
}

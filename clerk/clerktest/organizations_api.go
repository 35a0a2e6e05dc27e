package clerktest

import (
	"net/http"
	"strings"
)

// handleCreateOrganization is POST /v1/organizations.
func (s *Server) handleCreateOrganization(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name                  string         `json:"name"`
		Slug                  *string        `json:"slug"`
		CreatedBy             *string        `json:"created_by"`
		MaxAllowedMemberships *int64         `json:"max_allowed_memberships"`
		PublicMetadata        map[string]any `json:"public_metadata"`
		PrivateMetadata       map[string]any `json:"private_metadata"`
	}
	if err := decodeBody(r, nil, &req); err != nil {
		err.write(w)
		return
	}
	p := newOrg{name: req.Name, slug: req.Slug, publicMetadata: req.PublicMetadata, privateMetadata: req.PrivateMetadata}
	if req.CreatedBy != nil {
		p.createdBy = *req.CreatedBy
	}
	if req.MaxAllowedMemberships != nil {
		if *req.MaxAllowedMemberships < 0 {
			errParam("max_allowed_memberships", "form_param_value_invalid", "is invalid", "max_allowed_memberships must not be negative.").write(w)
			return
		}
		p.maxAllowedMemberships = *req.MaxAllowedMemberships
	}
	s.answer(w, func() (any, *apiError) {
		o, err := s.createOrgLocked(p)
		if err != nil {
			return nil, err
		}
		return orgJSON(o), nil
	})
}

// handleGetOrganization is GET /v1/organizations/{organization_id}, where,
// as the spec says for this operation only, the organization may be named
// by ID or slug.
func (s *Server) handleGetOrganization(w http.ResponseWriter, r *http.Request) {
	withCount := isTrue(r.URL.Query().Get("include_members_count"))
	s.answer(w, func() (any, *apiError) {
		o, err := s.orgLocked(r.PathValue("organization_id"), true)
		if err != nil {
			return nil, err
		}
		out := orgJSON(o)
		if withCount {
			n := 0
			for _, m := range s.people.memberships {
				if m.orgID == o.id {
					n++
				}
			}
			out.MembersCount = &n
		}
		return out, nil
	})
}

func (s *Server) handleDeleteOrganization(w http.ResponseWriter, r *http.Request) {
	s.answer(w, func() (any, *apiError) {
		o, err := s.orgLocked(r.PathValue("organization_id"), false)
		if err != nil {
			return nil, err
		}
		s.deleteOrgLocked(o)
		return deletedObject{Object: "organization", ID: o.id, Slug: o.slug, Deleted: true}, nil
	})
}

// handleCreateMembership is POST /v1/organizations/{organization_id}/memberships.
func (s *Server) handleCreateMembership(w http.ResponseWriter, r *http.Request) {
	var req struct {
		UserID          string         `json:"user_id"`
		Role            string         `json:"role"`
		PublicMetadata  map[string]any `json:"public_metadata"`
		PrivateMetadata map[string]any `json:"private_metadata"`
	}
	if err := decodeBody(r, nil, &req); err != nil {
		err.write(w)
		return
	}
	s.answer(w, func() (any, *apiError) {
		o, err := s.orgLocked(r.PathValue("organization_id"), false)
		if err != nil {
			return nil, err
		}
		m, err := s.createMembershipLocked(o, req.UserID, req.Role, req.PublicMetadata, req.PrivateMetadata)
		if err != nil {
			return nil, err
		}
		return s.membershipJSONLocked(m), nil
	})
}

// handleUpdateMembership is PATCH
// /v1/organizations/{organization_id}/memberships/{user_id}: a new role.
func (s *Server) handleUpdateMembership(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Role string `json:"role"`
	}
	if err := decodeBody(r, nil, &req); err != nil {
		err.write(w)
		return
	}
	s.answer(w, func() (any, *apiError) {
		o, err := s.orgLocked(r.PathValue("organization_id"), false)
		if err != nil {
			return nil, err
		}
		m, err := s.membershipLocked(o, r.PathValue("user_id"))
		if err != nil {
			return nil, err
		}
		if err := s.checkRole(req.Role); err != nil {
			return nil, err
		}
		m.role, m.updated = req.Role, s.now()
		return s.membershipJSONLocked(m), nil
	})
}

// handleDeleteMembership is DELETE
// /v1/organizations/{organization_id}/memberships/{user_id}; like Clerk, it
// answers with the membership it removed. The last admin may be removed:
// the emulator does not keep Clerk's "at least one admin" rule.
func (s *Server) handleDeleteMembership(w http.ResponseWriter, r *http.Request) {
	s.answer(w, func() (any, *apiError) {
		o, err := s.orgLocked(r.PathValue("organization_id"), false)
		if err != nil {
			return nil, err
		}
		userID := r.PathValue("user_id")
		m, err := s.membershipLocked(o, userID)
		if err != nil {
			return nil, err
		}
		out := s.membershipJSONLocked(m)
		delete(s.people.memberships, membershipKey(o.id, userID))
		return out, nil
	})
}

// isTrue reports whether a query value is "true", ignoring case.
func isTrue(v string) bool { return strings.EqualFold(v, "true") }

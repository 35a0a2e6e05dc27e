package config

import (
	"errors"
	"fmt"
)

// Access restricts callers by who they are in Clerk. Scopes bound what a
// client may do; these rules bound which person may use it.
type Access struct {
	// Allow admits a request when any rule matches; empty admits every
	// signed-in user (tool rules still apply).
	Allow []AccessRule `json:"allow,omitempty"`
	// ToolAccess adds rules for calling particular tools: a tools/call of
	// one needs a match in Allow (when set) and in the tool's rules.
	ToolAccess []ToolAccess `json:"toolAccess,omitempty"`
	// CacheTTLSeconds is how long what the gateway learned about a user
	// from Clerk is trusted.
	CacheTTLSeconds int `json:"cacheTTLSeconds"`
}

// AccessRule matches a user; exactly one of Organization, EmailDomain and
// User is set.
type AccessRule struct {
	// Organization is a Clerk organization slug or "org_" ID the user must
	// be a member of.
	Organization string `json:"organization,omitempty"`
	// Roles, with Organization, admits only members with any of these roles.
	Roles []string `json:"roles,omitempty"`
	// Permissions, with Organization, admits only members holding any of
	// these permissions.
	Permissions []string `json:"permissions,omitempty"`
	// EmailDomain admits users with a verified email address in this
	// domain (exact, case-insensitive).
	EmailDomain string `json:"emailDomain,omitempty"`
	// User admits one Clerk user ID ("user_...").
	User string `json:"user,omitempty"`
}

// ToolAccess lists who may call one tool.
type ToolAccess struct {
	Tool  string       `json:"tool"`
	Allow []AccessRule `json:"allow"`
}

// validate reports the problems of an access block.
func (a *Access) validate() []error {
	var errs []error
	if a.CacheTTLSeconds <= 0 {
		errs = append(errs, errors.New("access.cacheTTLSeconds must be positive"))
	}
	for i, r := range a.Allow {
		if err := r.validate(); err != nil {
			errs = append(errs, fmt.Errorf("access.allow[%d]: %w", i, err))
		}
	}
	seen := map[string]bool{}
	for i, ta := range a.ToolAccess {
		if ta.Tool == "" || len(ta.Allow) == 0 {
			errs = append(errs, fmt.Errorf("access.toolAccess[%d]: tool and allow are required", i))
		}
		if seen[ta.Tool] {
			errs = append(errs, fmt.Errorf("access.toolAccess[%d]: tool %q appears twice", i, ta.Tool))
		}
		seen[ta.Tool] = true
		for j, r := range ta.Allow {
			if err := r.validate(); err != nil {
				errs = append(errs, fmt.Errorf("access.toolAccess[%d].allow[%d]: %w", i, j, err))
			}
		}
	}
	return errs
}

// validate checks that r names exactly one kind of subject.
func (r AccessRule) validate() error {
	kinds := 0
	for _, v := range []string{r.Organization, r.EmailDomain, r.User} {
		if v != "" {
			kinds++
		}
	}
	switch {
	case kinds != 1:
		return errors.New("exactly one of organization, emailDomain and user must be set")
	case r.Organization == "" && (len(r.Roles) > 0 || len(r.Permissions) > 0):
		return errors.New("roles and permissions apply only to an organization rule")
	}
	return nil
}

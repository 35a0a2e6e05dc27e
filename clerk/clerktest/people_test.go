package clerktest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// isUserID reports whether s has the shape of Clerk's user IDs: "user_" and
// 27 word characters.
func isUserID(s string) bool { return regexp.MustCompile(`^user_\w{27}$`).MatchString(s) }

// membershipsPage is the part of a memberships list the tests read.
type membershipsPage struct {
	Data []struct {
		Role         string   `json:"role"`
		RoleName     string   `json:"role_name"`
		Permissions  []string `json:"permissions"`
		Organization struct {
			ID, Slug, Name string
		} `json:"organization"`
		PublicUserData struct {
			UserID     string  `json:"user_id"`
			Identifier *string `json:"identifier"`
		} `json:"public_user_data"`
	} `json:"data"`
	TotalCount int `json:"total_count"`
}

func memberships(t *testing.T, s *Server, userID, query string) membershipsPage {
	t.Helper()
	resp := backend(t, s, http.MethodGet, "/users/"+userID+"/organization_memberships"+query, "")
	if resp.status != http.StatusOK {
		t.Fatalf("memberships of %s: status %d: %s", userID, resp.status, resp.body)
	}
	var page membershipsPage
	if err := json.Unmarshal(resp.body, &page); err != nil {
		t.Fatal(err)
	}
	return page
}

// errorCode returns the code of the first error of a ClerkErrors body.
func errorCode(t *testing.T, resp response) string {
	t.Helper()
	var body clerkErrors
	if err := json.Unmarshal(resp.body, &body); err != nil || len(body.Errors) == 0 {
		t.Fatalf("status %d: not a Clerk error body: %s", resp.status, resp.body)
	}
	return body.Errors[0].Code
}

// TestServer_defaultUserExists checks that the user who signs in by default
// is a Backend API user with a verified primary address.
func TestServer_defaultUserExists(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	resp := backend(t, s, http.MethodGet, "/users/"+DefaultUserID, "")
	if resp.status != http.StatusOK {
		t.Fatalf("status %d: %s", resp.status, resp.body)
	}
	var u struct {
		ID                    string `json:"id"`
		PrimaryEmailAddressID string `json:"primary_email_address_id"`
		EmailAddresses        []struct {
			ID           string `json:"id"`
			EmailAddress string `json:"email_address"`
			Verification struct{ Status, Strategy string }
		} `json:"email_addresses"`
	}
	if err := json.Unmarshal(resp.body, &u); err != nil {
		t.Fatal(err)
	}
	if u.ID != DefaultUserID || len(u.EmailAddresses) != 1 || u.EmailAddresses[0].EmailAddress != DefaultUserEmail ||
		u.EmailAddresses[0].Verification.Status != "verified" || u.PrimaryEmailAddressID != u.EmailAddresses[0].ID {
		t.Fatalf("default user = %s", resp.body)
	}

	custom := newTestServer(t, WithUser(User{ID: "user_custom", Email: "me@corp.example"}))
	if got, ok := custom.LookupUser("user_custom"); !ok || got.Email != "me@corp.example" {
		t.Fatalf("LookupUser(WithUser's ID) = %+v, %v", got, ok)
	}
	if _, ok := custom.LookupUser(DefaultUserID); ok {
		t.Fatal("WithUser kept the default user as well")
	}
}

// TestServer_CreateUser checks the Go API's users and how their addresses
// look through the Backend API.
func TestServer_CreateUser(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	for name, tc := range map[string]struct {
		params      UserParams
		wantErr     bool
		wantPrimary string   // the primary address
		wantStatus  []string // verification status of each address, "" for none
	}{
		"verified":            {params: UserParams{Emails: []string{"a@corp.example", "a@home.example"}}, wantPrimary: "a@corp.example", wantStatus: []string{"verified", "verified"}},
		"unverified only":     {params: UserParams{UnverifiedEmails: []string{"b@corp.example"}}, wantPrimary: "b@corp.example", wantStatus: []string{"unverified"}},
		"both":                {params: UserParams{Emails: []string{"c@home.example"}, UnverifiedEmails: []string{"c@corp.example"}}, wantPrimary: "c@home.example", wantStatus: []string{"verified", "unverified"}},
		"no address":          {params: UserParams{}, wantStatus: []string{}},
		"given ID":            {params: UserParams{ID: "user_given", Emails: []string{"d@corp.example"}}, wantPrimary: "d@corp.example", wantStatus: []string{"verified"}},
		"taken ID":            {params: UserParams{ID: DefaultUserID}, wantErr: true},
		"taken address":       {params: UserParams{Emails: []string{strings.ToUpper(DefaultUserEmail)}}, wantErr: true},
		"address twice":       {params: UserParams{Emails: []string{"e@corp.example"}, UnverifiedEmails: []string{"e@corp.example"}}, wantErr: true},
		"malformed address":   {params: UserParams{Emails: []string{"not an address"}}, wantErr: true},
		"ID unfit for a path": {params: UserParams{ID: "user/x"}, wantErr: true},
	} {
		t.Run(name, func(t *testing.T) {
			u, err := s.CreateUser(tc.params)
			if (err != nil) != tc.wantErr {
				t.Fatalf("CreateUser(%+v) error = %v, want error %v", tc.params, err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if tc.params.ID == "" && !isUserID(u.ID) {
				t.Errorf("generated ID %q does not have Clerk's shape", u.ID)
			}
			if u.Email != tc.wantPrimary {
				t.Errorf("Email = %q, want %q", u.Email, tc.wantPrimary)
			}
			resp := backend(t, s, http.MethodGet, "/users/"+u.ID, "")
			var got struct {
				PrimaryEmailAddressID *string `json:"primary_email_address_id"`
				EmailAddresses        []struct {
					ID           string
					EmailAddress string `json:"email_address"`
					Verification *struct{ Status string }
				} `json:"email_addresses"`
			}
			if err := json.Unmarshal(resp.body, &got); err != nil {
				t.Fatal(err)
			}
			status := []string{}
			for _, e := range got.EmailAddresses {
				st := ""
				if e.Verification != nil {
					st = e.Verification.Status
				}
				status = append(status, st)
				if e.EmailAddress == tc.wantPrimary && (got.PrimaryEmailAddressID == nil || *got.PrimaryEmailAddressID != e.ID) {
					t.Errorf("primary_email_address_id = %v, want the ID of %s", got.PrimaryEmailAddressID, e.EmailAddress)
				}
			}
			if !slices.Equal(status, tc.wantStatus) {
				t.Errorf("verification statuses = %q, want %q", status, tc.wantStatus)
			}
			if tc.wantPrimary == "" && got.PrimaryEmailAddressID != nil {
				t.Errorf("primary_email_address_id = %q for a user without addresses", *got.PrimaryEmailAddressID)
			}
		})
	}
}

// TestServer_usersOverHTTP checks POST /v1/users and POST /v1/email_addresses,
// including reserved and unverified addresses.
func TestServer_usersOverHTTP(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	resp := backend(t, s, http.MethodPost, "/users", `{"email_address":["x@corp.example","x@home.example"],
		"email_address_identification_status":["verified","reserved"],"first_name":"Ada","skip_password_requirement":true}`)
	if resp.status != http.StatusOK {
		t.Fatalf("create: status %d: %s", resp.status, resp.body)
	}
	var u struct {
		ID             string  `json:"id"`
		FirstName      *string `json:"first_name"`
		EmailAddresses []struct {
			EmailAddress string          `json:"email_address"`
			Reserved     bool            `json:"reserved"`
			Verification json.RawMessage `json:"verification"`
		} `json:"email_addresses"`
	}
	if err := json.Unmarshal(resp.body, &u); err != nil {
		t.Fatal(err)
	}
	if !isUserID(u.ID) || u.FirstName == nil || *u.FirstName != "Ada" || len(u.EmailAddresses) != 2 ||
		u.EmailAddresses[0].Reserved || !u.EmailAddresses[1].Reserved || string(u.EmailAddresses[1].Verification) != "null" {
		t.Fatalf("created user = %s", resp.body)
	}

	for name, tc := range map[string]struct {
		method, path, body string
		wantStatus         int
		wantCode           string
	}{
		"duplicate address":     {http.MethodPost, "/users", `{"email_address":["X@corp.example"]}`, 422, "form_identifier_exists"},
		"malformed address":     {http.MethodPost, "/users", `{"email_address":["nope"]}`, 422, "form_param_format_invalid"},
		"unknown field":         {http.MethodPost, "/users", `{"email_address":["y@corp.example"],"shoe_size":42}`, 422, "form_param_unknown"},
		"wrong type":            {http.MethodPost, "/users", `{"email_address":"y@corp.example"}`, 422, "form_param_format_invalid"},
		"empty statuses":        {http.MethodPost, "/users", `{"email_address":["y@corp.example"],"email_address_identification_status":[]}`, 200, ""},
		"status count mismatch": {http.MethodPost, "/users", `{"email_address":["z@corp.example"],"email_address_identification_status":["verified","verified"]}`, 422, "form_param_value_invalid"},
		"not JSON":              {http.MethodPost, "/users", `[`, 422, "request_body_invalid"},
		"unknown user":          {http.MethodGet, "/users/user_nobody", "", 404, "resource_not_found"},
		"delete unknown user":   {http.MethodDelete, "/users/user_nobody", "", 404, "resource_not_found"},
		"address for nobody":    {http.MethodPost, "/email_addresses", `{"user_id":"user_nobody","email_address":"n@corp.example"}`, 404, "resource_not_found"},
		"address taken":         {http.MethodPost, "/email_addresses", `{"user_id":"` + u.ID + `","email_address":"` + DefaultUserEmail + `"}`, 422, "form_identifier_exists"},
		"address missing":       {http.MethodPost, "/email_addresses", `{"user_id":"` + u.ID + `"}`, 422, "form_param_missing"},
	} {
		t.Run(name, func(t *testing.T) {
			resp := backend(t, s, tc.method, tc.path, tc.body)
			if resp.status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.status, tc.wantStatus, resp.body)
			}
			if tc.wantCode != "" && errorCode(t, resp) != tc.wantCode {
				t.Fatalf("code %q, want %q", errorCode(t, resp), tc.wantCode)
			}
		})
	}

	// An unverified address added over HTTP has no verification at all; a
	// verified one becomes primary when asked.
	for _, tc := range []struct {
		body, wantVerification string
	}{
		{`{"user_id":"` + u.ID + `","email_address":"late@corp.example","verified":false}`, "null"},
		{`{"user_id":"` + u.ID + `","email_address":"new@corp.example","verified":true,"primary":true}`, `"verified"`},
	} {
		resp := backend(t, s, http.MethodPost, "/email_addresses", tc.body)
		var e struct {
			ID           string          `json:"id"`
			Object       string          `json:"object"`
			Verification json.RawMessage `json:"verification"`
		}
		if err := json.Unmarshal(resp.body, &e); err != nil || resp.status != http.StatusOK || e.Object != "email_address" || !strings.HasPrefix(e.ID, "idn_") {
			t.Fatalf("create address: status %d: %s", resp.status, resp.body)
		}
		if tc.wantVerification == "null" && string(e.Verification) != "null" || tc.wantVerification != "null" && !strings.Contains(string(e.Verification), tc.wantVerification) {
			t.Errorf("verification = %s, want %s", e.Verification, tc.wantVerification)
		}
	}
	if got, _ := s.LookupUser(u.ID); got.Email != "new@corp.example" {
		t.Errorf("primary after adding a primary address = %q", got.Email)
	}
}

// TestServer_membershipLifecycle walks a user through organizations: the
// creator's admin role, joining, a role change, removal and deletion.
func TestServer_membershipLifecycle(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	alice, err := s.CreateUser(UserParams{Emails: []string{"alice@corp.example"}})
	if err != nil {
		t.Fatal(err)
	}
	resp := backend(t, s, http.MethodPost, "/organizations", `{"name":"Acme Corp","slug":"acme","created_by":"`+DefaultUserID+`"}`)
	if resp.status != http.StatusOK {
		t.Fatalf("create organization: status %d: %s", resp.status, resp.body)
	}
	var org struct{ ID, Slug, Name, Object, CreatedBy string }
	if err := json.Unmarshal(resp.body, &org); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(org.ID, "org_") || org.Slug != "acme" || org.Name != "Acme Corp" || org.Object != "organization" {
		t.Fatalf("organization = %s", resp.body)
	}

	// The creator is an admin with every system permission.
	page := memberships(t, s, DefaultUserID, "")
	if page.TotalCount != 1 || page.Data[0].Role != RoleAdmin || page.Data[0].RoleName != "Admin" ||
		!slices.Equal(page.Data[0].Permissions, DefaultOrganizationRoles()[RoleAdmin]) ||
		page.Data[0].Organization.ID != org.ID || page.Data[0].Organization.Slug != "acme" || page.Data[0].Organization.Name != "Acme Corp" {
		t.Fatalf("creator's memberships = %+v", page)
	}

	steps := []struct {
		name               string
		method, path, body string
		wantStatus         int
		wantCode           string // for errors
		wantRoles          []string
	}{
		{"join", http.MethodPost, "/organizations/" + org.ID + "/memberships", `{"user_id":"` + alice.ID + `","role":"org:member"}`, 200, "", []string{RoleMember}},
		{"join twice", http.MethodPost, "/organizations/" + org.ID + "/memberships", `{"user_id":"` + alice.ID + `","role":"org:member"}`, 400, "already_a_member_in_organization", []string{RoleMember}},
		{"unknown role", http.MethodPost, "/organizations/" + org.ID + "/memberships", `{"user_id":"` + DefaultUserID + `","role":"org:owner"}`, 422, "form_param_value_invalid", []string{RoleMember}},
		{"unknown user", http.MethodPost, "/organizations/" + org.ID + "/memberships", `{"user_id":"user_nobody","role":"org:member"}`, 404, "resource_not_found", []string{RoleMember}},
		{"unknown organization", http.MethodPost, "/organizations/org_nothing/memberships", `{"user_id":"` + alice.ID + `","role":"org:member"}`, 404, "resource_not_found", []string{RoleMember}},
		{"slug is not an ID here", http.MethodPost, "/organizations/acme/memberships", `{"user_id":"` + alice.ID + `","role":"org:member"}`, 404, "resource_not_found", []string{RoleMember}},
		{"missing role", http.MethodPost, "/organizations/" + org.ID + "/memberships", `{"user_id":"` + alice.ID + `"}`, 422, "form_param_missing", []string{RoleMember}},
		{"promote", http.MethodPatch, "/organizations/" + org.ID + "/memberships/" + alice.ID, `{"role":"org:admin"}`, 200, "", []string{RoleAdmin}},
		{"promote to nothing", http.MethodPatch, "/organizations/" + org.ID + "/memberships/" + alice.ID, `{"role":"org:king"}`, 422, "form_param_value_invalid", []string{RoleAdmin}},
		{"patch a non-member", http.MethodPatch, "/organizations/" + org.ID + "/memberships/user_nobody", `{"role":"org:admin"}`, 404, "resource_not_found", []string{RoleAdmin}},
		{"leave", http.MethodDelete, "/organizations/" + org.ID + "/memberships/" + alice.ID, "", 200, "", []string{}},
		{"leave twice", http.MethodDelete, "/organizations/" + org.ID + "/memberships/" + alice.ID, "", 404, "resource_not_found", []string{}},
	}
	for _, st := range steps {
		resp := backend(t, s, st.method, st.path, st.body)
		if resp.status != st.wantStatus {
			t.Fatalf("%s: status %d, want %d: %s", st.name, resp.status, st.wantStatus, resp.body)
		}
		if st.wantCode != "" && errorCode(t, resp) != st.wantCode {
			t.Fatalf("%s: code %q, want %q", st.name, errorCode(t, resp), st.wantCode)
		}
		if st.wantCode == "" && resp.json(t)["object"] != "organization_membership" {
			t.Fatalf("%s: body %s", st.name, resp.body)
		}
		roles := []string{}
		for _, m := range memberships(t, s, alice.ID, "").Data {
			roles = append(roles, m.Role)
		}
		if !slices.Equal(roles, st.wantRoles) {
			t.Fatalf("after %s: roles %q, want %q", st.name, roles, st.wantRoles)
		}
	}

	// A deleted user is gone (404) and so are their memberships.
	if err := s.SetMembership("acme", alice.ID, RoleMember); err != nil {
		t.Fatal(err)
	}
	if resp := backend(t, s, http.MethodDelete, "/users/"+alice.ID, ""); resp.status != http.StatusOK ||
		resp.json(t)["deleted"] != true || resp.json(t)["object"] != "user" {
		t.Fatalf("delete user: status %d: %s", resp.status, resp.body)
	}
	if resp := backend(t, s, http.MethodGet, "/users/"+alice.ID, ""); resp.status != http.StatusNotFound || errorCode(t, resp) != "resource_not_found" {
		t.Fatalf("deleted user: status %d: %s", resp.status, resp.body)
	}
	if page := memberships(t, s, alice.ID, ""); page.TotalCount != 0 || len(page.Data) != 0 {
		t.Fatalf("deleted user's memberships = %+v", page)
	}
	if err := s.SetMembership(org.ID, alice.ID, RoleMember); err == nil {
		t.Fatal("SetMembership for a deleted user succeeded")
	}

	// The organization by slug, with its member count; then deleted.
	resp = backend(t, s, http.MethodGet, "/organizations/acme?include_members_count=true", "")
	if resp.status != http.StatusOK || resp.json(t)["id"] != org.ID || resp.json(t)["members_count"] != 1.0 {
		t.Fatalf("organization by slug: status %d: %s", resp.status, resp.body)
	}
	resp = backend(t, s, http.MethodDelete, "/organizations/"+org.ID, "")
	if resp.status != http.StatusOK || resp.json(t)["slug"] != "acme" || resp.json(t)["deleted"] != true {
		t.Fatalf("delete organization: status %d: %s", resp.status, resp.body)
	}
	if page := memberships(t, s, DefaultUserID, ""); page.TotalCount != 0 {
		t.Fatalf("memberships of a deleted organization remain: %+v", page)
	}
}

// TestServer_organizationErrors checks POST /v1/organizations' refusals and
// the slug it derives from a name.
func TestServer_organizationErrors(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	if _, err := s.CreateOrganization("Taken", "taken", ""); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		body       string
		wantStatus int
		wantCode   string
		wantSlug   string
	}{
		"slug from name":  {`{"name":"Big Co. (EU)"}`, 200, "", "big-co-eu"},
		"slug kept apart": {`{"name":"Taken"}`, 200, "", ""},
		"no name":         {`{"slug":"x"}`, 422, "form_param_missing", ""},
		"bad slug":        {`{"name":"X","slug":"Not A Slug"}`, 422, "form_param_format_invalid", ""},
		"slug taken":      {`{"name":"X","slug":"taken"}`, 422, "form_identifier_exists", ""},
		"unknown creator": {`{"name":"X","created_by":"user_nobody"}`, 400, "organization_creator_not_found", ""},
		"name too long":   {`{"name":"` + strings.Repeat("n", maxOrgNameLength+1) + `"}`, 422, "form_param_exceeds_allowed_size", ""},
	} {
		t.Run(name, func(t *testing.T) {
			resp := backend(t, s, http.MethodPost, "/organizations", tc.body)
			if resp.status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.status, tc.wantStatus, resp.body)
			}
			if tc.wantCode != "" && errorCode(t, resp) != tc.wantCode {
				t.Fatalf("code %q, want %q", errorCode(t, resp), tc.wantCode)
			}
			slug, _ := resp.json(t)["slug"].(string)
			if tc.wantStatus == 200 && (tc.wantSlug != "" && slug != tc.wantSlug || slug == "taken" || !validSlug(slug)) {
				t.Fatalf("slug = %q, want %q", slug, tc.wantSlug)
			}
		})
	}
	if resp := backend(t, s, http.MethodGet, "/organizations/nothing", ""); resp.status != http.StatusNotFound {
		t.Fatalf("unknown organization: status %d", resp.status)
	}
	if err := s.RemoveMembership("taken", DefaultUserID); err == nil {
		t.Fatal("RemoveMembership of a non-member succeeded")
	}
	if err := s.SetMembership("nothing", DefaultUserID, RoleMember); err == nil {
		t.Fatal("SetMembership in an unknown organization succeeded")
	}
}

// TestServer_membershipPagination checks limit, offset, total_count and the
// order (newest first).
func TestServer_membershipPagination(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	var slugs []string
	for i := range 12 {
		slug := fmt.Sprintf("org-%02d", i)
		if _, err := s.CreateOrganization("Org "+slug, slug, ""); err != nil {
			t.Fatal(err)
		}
		if err := s.SetMembership(slug, DefaultUserID, RoleMember); err != nil {
			t.Fatal(err)
		}
		slugs = append([]string{slug}, slugs...) // newest first
	}
	for name, tc := range map[string]struct {
		query      string
		wantStatus int
		want       []string
	}{
		"default limit 10": {"", 200, slugs[:10]},
		"limit":            {"?limit=3", 200, slugs[:3]},
		"offset":           {"?limit=5&offset=10", 200, slugs[10:]},
		"past the end":     {"?offset=50", 200, nil},
		"limit 500":        {"?limit=500", 200, slugs},
		"limit 0":          {"?limit=0", 422, nil},
		"limit 501":        {"?limit=501", 422, nil},
		"negative offset":  {"?offset=-1", 422, nil},
		"not a number":     {"?limit=ten", 422, nil},
	} {
		t.Run(name, func(t *testing.T) {
			resp := backend(t, s, http.MethodGet, "/users/"+DefaultUserID+"/organization_memberships"+tc.query, "")
			if resp.status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.status, tc.wantStatus, resp.body)
			}
			if tc.wantStatus != 200 {
				return
			}
			var page membershipsPage
			if err := json.Unmarshal(resp.body, &page); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range page.Data {
				got = append(got, m.Organization.Slug)
			}
			if page.TotalCount != 12 || !slices.Equal(got, tc.want) {
				t.Fatalf("total %d, slugs %q; want 12, %q", page.TotalCount, got, tc.want)
			}
		})
	}
	if page := memberships(t, s, "user_nobody", ""); page.TotalCount != 0 || page.Data == nil {
		t.Fatalf("unknown user's memberships = %+v, want an empty list", page)
	}
}

// TestServer_customRoles checks WithOrganizationRoles: permissions follow the
// role, and roles outside the set are refused.
func TestServer_customRoles(t *testing.T) {
	t.Parallel()
	roles := DefaultOrganizationRoles()
	roles["org:billing_manager"] = []string{"org:invoices:read", "org:invoices:pay"}
	s := newTestServer(t, WithOrganizationRoles(roles))
	roles[RoleMember] = nil // the server keeps its own copy
	if _, err := s.CreateOrganization("Acme", "acme", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMembership("acme", DefaultUserID, "org:billing_manager"); err != nil {
		t.Fatal(err)
	}
	m := memberships(t, s, DefaultUserID, "").Data[0]
	if m.Role != "org:billing_manager" || m.RoleName != "Billing manager" || !slices.Equal(m.Permissions, []string{"org:invoices:read", "org:invoices:pay"}) {
		t.Fatalf("membership = %+v", m)
	}
	if err := s.SetMembership("acme", DefaultUserID, RoleMember); err != nil {
		t.Fatal(err)
	}
	if m := memberships(t, s, DefaultUserID, "").Data[0]; !slices.Equal(m.Permissions, []string{"org:sys_memberships:read"}) {
		t.Fatalf("member permissions = %q", m.Permissions)
	}
	if err := s.SetMembership("acme", DefaultUserID, "org:owner"); err == nil {
		t.Fatal("a role outside the instance's was accepted")
	}

	only := newTestServer(t, WithOrganizationRoles(map[string][]string{"org:viewer": {"org:things:read"}}))
	if _, err := only.CreateOrganization("Acme", "acme", DefaultUserID); err == nil {
		t.Fatal("an organization with a creator was created without an org:admin role")
	}
	if _, err := only.CreateOrganization("Acme", "acme", ""); err != nil {
		t.Fatal(err)
	}
	if err := only.SetMembership("acme", DefaultUserID, RoleMember); err == nil {
		t.Fatal("org:member was accepted though the instance lacks it")
	}
}

// TestServer_peopleCallsAndFaults checks that the new routes are counted and
// faulted by pattern, for all objects, or by concrete path, for one.
func TestServer_peopleCallsAndFaults(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	bob, err := s.CreateUser(UserParams{Emails: []string{"bob@corp.example"}})
	if err != nil {
		t.Fatal(err)
	}
	backend(t, s, http.MethodGet, "/users/"+DefaultUserID, "")
	backend(t, s, http.MethodGet, "/users/"+bob.ID, "")
	backend(t, s, http.MethodGet, "/users/"+bob.ID+"/organization_memberships", "")
	for endpoint, want := range map[string]int{
		"GET /v1/users/{user_id}":                               2,
		"GET /v1/users/" + bob.ID:                               1,
		"GET /v1/users/{user_id}/organization_memberships":      1,
		"GET /v1/users/" + bob.ID + "/organization_memberships": 1,
		AllEndpoints: 3,
	} {
		if got := s.Calls(endpoint); got != want {
			t.Errorf("Calls(%q) = %d, want %d", endpoint, got, want)
		}
	}

	s.SetFault("GET /v1/users/"+bob.ID, Fault{Status: http.StatusServiceUnavailable})
	if resp := backend(t, s, http.MethodGet, "/users/"+bob.ID, ""); resp.status != http.StatusServiceUnavailable {
		t.Fatalf("faulted user: status %d", resp.status)
	}
	if resp := backend(t, s, http.MethodGet, "/users/"+DefaultUserID, ""); resp.status != http.StatusOK {
		t.Fatalf("another user: status %d", resp.status)
	}
	s.SetFault("GET /v1/users/{user_id}/organization_memberships", Fault{Status: http.StatusTooManyRequests, RetryAfter: 2 * time.Second})
	resp := backend(t, s, http.MethodGet, "/users/"+DefaultUserID+"/organization_memberships", "")
	if resp.status != http.StatusTooManyRequests || resp.header.Get("Retry-After") != "2" {
		t.Fatalf("faulted memberships: status %d, Retry-After %q", resp.status, resp.header.Get("Retry-After"))
	}
	if resp := backend(t, s, http.MethodGet, "/users/"+DefaultUserID, ""); resp.status != http.StatusOK {
		t.Fatalf("the user route shares the memberships fault: status %d", resp.status)
	}
	if got := s.Calls("GET /v1/users/{user_id}"); got != 5 {
		t.Errorf("Calls after faults = %d, want 5", got)
	}
	s.ResetCalls()
	if got := s.Calls("GET /v1/users/" + bob.ID); got != 0 {
		t.Errorf("per-path count after ResetCalls = %d", got)
	}
	// Path parameters never match an empty segment or a longer path.
	for _, path := range []string{"/users/", "/users/" + bob.ID + "/organization_memberships/x"} {
		if resp := backend(t, s, http.MethodGet, path, ""); resp.status != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", path, resp.status)
		}
	}
}

// TestServer_loginHint checks who signs in at the authorization endpoint
// and becomes the subject of JWT and opaque access tokens.
func TestServer_loginHint(t *testing.T) {
	t.Parallel()
	for _, format := range []bool{true, false} {
		s := newTestServer(t, WithJWTAccessTokens(format))
		carol, err := s.CreateUser(UserParams{Emails: []string{"carol@corp.example"}, UnverifiedEmails: []string{"carol@side.example"}})
		if err != nil {
			t.Fatal(err)
		}
		gone, err := s.CreateUser(UserParams{Emails: []string{"gone@corp.example"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteUser(gone.ID); err != nil {
			t.Fatal(err)
		}
		c := register(t, s, "")
		for name, tc := range map[string]struct {
			hint, prompt string
			wantSub      string // "" expects wantError
			wantEmail    string
			wantError    string
		}{
			"no hint":             {wantSub: DefaultUserID, wantEmail: DefaultUserEmail},
			"user ID":             {hint: carol.ID, wantSub: carol.ID, wantEmail: "carol@corp.example"},
			"email":               {hint: "carol@corp.example", wantSub: carol.ID, wantEmail: "carol@corp.example"},
			"email in other case": {hint: "Carol@Corp.Example", wantSub: carol.ID, wantEmail: "carol@corp.example"},
			"unverified email":    {hint: "carol@side.example", wantError: "access_denied"},
			"unknown":             {hint: "nobody@corp.example", wantError: "access_denied"},
			"deleted user":        {hint: gone.ID, wantError: "access_denied"},
			"unknown, no prompt":  {hint: "user_nobody", prompt: "none", wantError: "login_required"},
		} {
			t.Run(fmt.Sprintf("jwt=%v/%s", format, name), func(t *testing.T) {
				_, challenge := pkce()
				params := url.Values{
					"response_type": {"code"}, "client_id": {c.ID}, "redirect_uri": {c.RedirectURI}, "state": {"state-123456"},
					"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "scope": {"openid email"},
				}
				if tc.hint != "" {
					params.Set("login_hint", tc.hint)
				}
				if tc.prompt != "" {
					params.Set("prompt", tc.prompt)
				}
				if tc.wantError != "" {
					_, q := authorize(t, s, params)
					if q.Get("error") != tc.wantError || q.Get("error_description") == "" || q.Get("state") != "state-123456" {
						t.Fatalf("redirect %v, want error %s with a description", q, tc.wantError)
					}
					return
				}
				extra := url.Values{"scope": {"openid email"}}
				if tc.hint != "" {
					extra.Set("login_hint", tc.hint)
				}
				code, verifier := authCodeFor(t, s, c, "openid email", extra)
				tokens := exchange(t, s, c, code, verifier).json(t)
				access, _ := tokens["access_token"].(string)
				info := do(t, http.MethodGet, s.FrontendAPIURL()+"/oauth/userinfo", http.Header{"Authorization": {"Bearer " + access}}, "").json(t)
				if info["sub"] != tc.wantSub || info["email"] != tc.wantEmail || info["email_verified"] != true {
					t.Fatalf("userinfo = %v, want sub %s, email %s", info, tc.wantSub, tc.wantEmail)
				}
				_, idClaims := verifiedJWT(t, s, tokens["id_token"].(string))
				if idClaims["sub"] != tc.wantSub || idClaims["email"] != tc.wantEmail {
					t.Fatalf("ID token claims = %v", idClaims)
				}
				verify := backend(t, s, http.MethodPost, "/oauth_applications/access_tokens/verify", `{"access_token":"`+access+`"}`)
				if verify.json(t)["subject"] != tc.wantSub {
					t.Fatalf("verify = %s", verify.body)
				}
				if format {
					if _, claims := verifiedJWT(t, s, access); claims["sub"] != tc.wantSub {
						t.Fatalf("JWT sub = %v, want %s", claims["sub"], tc.wantSub)
					}
				}
				user := backend(t, s, http.MethodGet, "/users/"+tc.wantSub, "").json(t)
				if user["last_sign_in_at"] == nil {
					t.Fatalf("last_sign_in_at not set after signing in: %v", user)
				}
			})
		}
	}

	// Once the default user is deleted, nobody signs in without a hint.
	s := newTestServer(t)
	if err := s.DeleteUser(DefaultUserID); err != nil {
		t.Fatal(err)
	}
	c := register(t, s, "")
	_, challenge := pkce()
	_, q := authorize(t, s, url.Values{"response_type": {"code"}, "client_id": {c.ID}, "state": {"state-123456"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}})
	if q.Get("error") != "access_denied" {
		t.Fatalf("deleted default user: redirect %v", q)
	}
}

// TestServer_concurrentPeople mixes Backend API reads with Go API writes,
// for the race detector.
func TestServer_concurrentPeople(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	orgID, err := s.CreateOrganization("Busy", "busy", DefaultUserID)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			u, err := s.CreateUser(UserParams{Emails: []string{fmt.Sprintf("u%d@corp.example", i)}})
			if err != nil {
				t.Error(err)
				return
			}
			for _, role := range []string{RoleMember, RoleAdmin} {
				if err := s.SetMembership(orgID, u.ID, role); err != nil {
					t.Error(err)
				}
			}
			for _, path := range []string{"/users/" + u.ID, "/users/" + u.ID + "/organization_memberships", "/organizations/busy"} {
				if resp := backend(t, s, http.MethodGet, path, ""); resp.status != http.StatusOK {
					t.Errorf("GET %s: status %d", path, resp.status)
				}
			}
			if err := s.DeleteUser(u.ID); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := s.Calls("GET /v1/users/{user_id}"); got != 20 {
		t.Errorf("Calls = %d, want 20", got)
	}
}

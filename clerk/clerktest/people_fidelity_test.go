package clerktest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/clerk/clerk-sdk-go/v2"
	"github.com/clerk/clerk-sdk-go/v2/organization"
	"github.com/clerk/clerk-sdk-go/v2/organizationmembership"
	"github.com/clerk/clerk-sdk-go/v2/user"

	"github.com/mcpgate/mcpgate/clerk/clerktest/openapicheck"
)

// invalidOnPurpose marks a request the test sends malformed on purpose, so
// that only the emulator's answer to it is checked against the spec.
const invalidOnPurpose = "X-Fidelity-Invalid"

// recordExchanges starts an emulator whose Backend API exchanges are kept.
func recordExchanges(t *testing.T, opts ...Option) (*Server, func() []Exchange) {
	t.Helper()
	var mu sync.Mutex
	var seen []Exchange
	s := newTestServer(t, append(opts, WithObserver(func(e Exchange) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, e)
	}))...)
	return s, func() []Exchange {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
}

// checkExchanges validates each exchange against the spec: the request,
// unless marked invalid on purpose, and the response, unless its status is
// one the spec leaves undocumented for that endpoint (the map's value).
func checkExchanges(t *testing.T, checker *openapicheck.Checker, s *Server, exchanges []Exchange, undocumented map[string]int) {
	t.Helper()
	for _, e := range exchanges {
		name := e.Request.Method + " " + e.Request.URL.RequestURI()
		if e.Request.Header.Get(invalidOnPurpose) == "" {
			if err := checker.ValidateRequest(e.Request, e.RequestBody); err != nil {
				t.Errorf("%s: request: %v", name, err)
			}
		}
		endpoint, _ := s.peopleRoutes().match(e.Request.Clone(context.Background()))
		if undocumented[endpoint] == e.Status {
			continue
		}
		if err := checker.ValidateResponse(e.Request, e.Status, e.Header, e.ResponseBody); err != nil {
			t.Errorf("%s: %v\n%s", name, err, e.ResponseBody)
		}
	}
}

// TestPeopleFidelityToClerkSpec drives every people route of the Backend
// API to a success and to its error answers, and checks each exchange
// against Clerk's OpenAPI spec field by field.
func TestPeopleFidelityToClerkSpec(t *testing.T) {
	t.Parallel()
	checker := openapicheck.Load(t)
	s, exchanges := recordExchanges(t)
	send := func(method, path, body string, invalid bool) response {
		t.Helper()
		h := http.Header{"Authorization": {"Bearer " + s.SecretKey()}}
		if body != "" {
			h.Set("Content-Type", "application/json")
		}
		if invalid {
			h.Set(invalidOnPurpose, "1")
		}
		return do(t, method, s.BackendAPIURL()+path, h, body)
	}
	created := func(resp response, prefix string) string {
		t.Helper()
		id, _ := resp.json(t)["id"].(string)
		if resp.status != http.StatusOK || !strings.HasPrefix(id, prefix) {
			t.Fatalf("status %d: %s", resp.status, resp.body)
		}
		return id
	}

	// Users and email addresses.
	dana := created(send(http.MethodPost, "/users", `{"email_address":["dana@corp.example","dana@home.example"],
		"email_address_identification_status":["verified","reserved"],"first_name":"Dana","public_metadata":{"team":"red"}}`, false), "user_")
	pending, err := s.CreateUser(UserParams{UnverifiedEmails: []string{"erin@corp.example"}})
	if err != nil {
		t.Fatal(err)
	}
	send(http.MethodGet, "/users/"+pending.ID, "", false)
	send(http.MethodPost, "/users", `{}`, false)
	send(http.MethodPost, "/users", `{"email_address":["dana@corp.example"]}`, false)
	send(http.MethodPost, "/users", `{"email_address":["not-an-address"]}`, false)
	send(http.MethodPost, "/users", `{"shoe_size":42}`, true)
	send(http.MethodPost, "/users", `{"email_address":"dana@corp.example"}`, true)
	send(http.MethodGet, "/users/"+dana, "", false)
	send(http.MethodGet, "/users/user_nobody", "", false)
	created(send(http.MethodPost, "/email_addresses", `{"user_id":"`+dana+`","email_address":"d@new.example","verified":false}`, false), "idn_")
	created(send(http.MethodPost, "/email_addresses", `{"user_id":"`+dana+`","email_address":"d2@new.example","verified":true,"primary":true}`, false), "idn_")
	send(http.MethodPost, "/email_addresses", `{"user_id":"user_nobody","email_address":"x@new.example"}`, false)
	send(http.MethodPost, "/email_addresses", `{"user_id":"`+dana+`","email_address":"d@new.example"}`, false)
	send(http.MethodPost, "/email_addresses", `{"user_id":"`+dana+`"}`, true)

	// Organizations and memberships.
	org := created(send(http.MethodPost, "/organizations", `{"name":"Acme","slug":"acme","created_by":"`+dana+`","max_allowed_memberships":5}`, false), "org_")
	created(send(http.MethodPost, "/organizations", `{"name":"Derived Slug Inc."}`, false), "org_")
	send(http.MethodPost, "/organizations", `{"name":"Again","slug":"acme"}`, false)
	send(http.MethodPost, "/organizations", `{"name":"Bad","slug":"Bad Slug"}`, false)
	send(http.MethodPost, "/organizations", `{"name":"Orphan","created_by":"user_nobody"}`, false)
	send(http.MethodPost, "/organizations", `{"slug":"nameless"}`, true)
	send(http.MethodGet, "/organizations/"+org, "", false)
	send(http.MethodGet, "/organizations/acme?include_members_count=true", "", false)
	send(http.MethodGet, "/organizations/org_nothing", "", false)
	send(http.MethodPost, "/organizations/"+org+"/memberships", `{"user_id":"`+pending.ID+`","role":"org:member"}`, false)
	send(http.MethodPost, "/organizations/"+org+"/memberships", `{"user_id":"`+pending.ID+`","role":"org:member"}`, false)
	send(http.MethodPost, "/organizations/"+org+"/memberships", `{"user_id":"user_nobody","role":"org:member"}`, false)
	send(http.MethodPost, "/organizations/"+org+"/memberships", `{"user_id":"`+DefaultUserID+`","role":"org:owner"}`, false)
	send(http.MethodPost, "/organizations/org_nothing/memberships", `{"user_id":"`+DefaultUserID+`","role":"org:member"}`, false)
	send(http.MethodPost, "/organizations/"+org+"/memberships", `{"user_id":"`+DefaultUserID+`"}`, true)
	send(http.MethodPatch, "/organizations/"+org+"/memberships/"+pending.ID, `{"role":"org:admin"}`, false)
	send(http.MethodPatch, "/organizations/"+org+"/memberships/"+pending.ID, `{"role":"org:owner"}`, false)
	send(http.MethodPatch, "/organizations/"+org+"/memberships/user_nobody", `{"role":"org:admin"}`, false)
	send(http.MethodGet, "/users/"+dana+"/organization_memberships", "", false)
	send(http.MethodGet, "/users/"+pending.ID+"/organization_memberships?limit=1&offset=0", "", false)
	send(http.MethodGet, "/users/user_nobody/organization_memberships", "", false)
	send(http.MethodGet, "/users/"+dana+"/organization_memberships?limit=0", "", true)
	send(http.MethodDelete, "/organizations/"+org+"/memberships/"+pending.ID, "", false)
	send(http.MethodDelete, "/organizations/"+org+"/memberships/"+pending.ID, "", false)

	// Deletions last.
	send(http.MethodDelete, "/users/"+dana, "", false)
	send(http.MethodDelete, "/users/"+dana, "", false)
	send(http.MethodDelete, "/organizations/"+org, "", false)
	send(http.MethodDelete, "/organizations/"+org, "", false)

	all := exchanges()
	// The spec documents no error answer for a user's memberships beyond
	// 403; Clerk answers a limit out of range with 422 all the same.
	checkExchanges(t, checker, s, all, map[string]int{"GET /v1/users/{user_id}/organization_memberships": http.StatusUnprocessableEntity})

	// Every route answered at least once with success and, where it can
	// fail on a well-formed request, with an error.
	answers := map[string][]int{}
	for _, e := range all {
		endpoint, _ := s.peopleRoutes().match(e.Request.Clone(context.Background()))
		answers[endpoint] = append(answers[endpoint], e.Status)
	}
	for endpoint := range s.peopleRoutes() {
		statuses := answers[endpoint]
		if !slices.Contains(statuses, http.StatusOK) || !slices.ContainsFunc(statuses, func(st int) bool { return st >= 400 }) {
			t.Errorf("%s: answers %v, want a success and an error", endpoint, statuses)
		}
	}
}

// TestPeopleWithClerkSDK checks that clerk-sdk-go's typed clients, which the
// gateway and its tests use, round-trip against the emulator, and that each
// response they get conforms to the spec.
func TestPeopleWithClerkSDK(t *testing.T) {
	t.Parallel()
	s, exchanges := recordExchanges(t)
	ctx := context.Background()
	url, key := s.BackendAPIURL(), s.SecretKey()
	config := &clerk.ClientConfig{BackendConfig: clerk.BackendConfig{URL: &url, Key: &key, HTTPClient: &http.Client{}}}
	users, orgs, members := user.NewClient(config), organization.NewClient(config), organizationmembership.NewClient(config)

	created, err := users.Create(ctx, &user.CreateParams{EmailAddresses: &[]string{"fay@corp.example"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(created.EmailAddresses) != 1 || created.EmailAddresses[0].Verification == nil || created.EmailAddresses[0].Verification.Status != "verified" ||
		created.PrimaryEmailAddressID == nil || *created.PrimaryEmailAddressID != created.EmailAddresses[0].ID {
		t.Fatalf("created user = %+v", created)
	}
	got, err := users.Get(ctx, created.ID)
	if err != nil || got.ID != created.ID || got.EmailAddresses[0].EmailAddress != "fay@corp.example" {
		t.Fatalf("Get = %+v, %v", got, err)
	}

	name, slug := "Globex", "globex"
	org, err := orgs.Create(ctx, &organization.CreateParams{Name: &name, Slug: &slug, CreatedBy: clerk.String(DefaultUserID)})
	if err != nil || org.Slug != slug || !strings.HasPrefix(org.ID, "org_") || org.CreatedBy != DefaultUserID {
		t.Fatalf("organization.Create = %+v, %v", org, err)
	}
	m, err := members.Create(ctx, &organizationmembership.CreateParams{OrganizationID: org.ID, UserID: &created.ID, Role: clerk.String(RoleMember)})
	if err != nil || m.Role != RoleMember || m.Organization == nil || m.Organization.ID != org.ID || m.PublicUserData == nil || m.PublicUserData.UserID != created.ID {
		t.Fatalf("organizationmembership.Create = %+v, %v", m, err)
	}
	m, err = members.Update(ctx, &organizationmembership.UpdateParams{OrganizationID: org.ID, UserID: created.ID, Role: clerk.String(RoleAdmin)})
	if err != nil || m.Role != RoleAdmin || m.RoleName != "Admin" || !slices.Contains(m.Permissions, "org:sys_memberships:manage") {
		t.Fatalf("organizationmembership.Update = %+v, %v", m, err)
	}

	list, err := users.ListOrganizationMemberships(ctx, created.ID, &user.ListOrganizationMembershipsParams{ListParams: clerk.ListParams{Limit: clerk.Int64(5)}})
	if err != nil || list.TotalCount != 1 || len(list.OrganizationMemberships) != 1 || list.OrganizationMemberships[0].Organization.Slug != slug {
		t.Fatalf("ListOrganizationMemberships = %+v, %v", list, err)
	}
	if _, err := members.Delete(ctx, &organizationmembership.DeleteParams{OrganizationID: org.ID, UserID: created.ID}); err != nil {
		t.Fatal(err)
	}
	list, err = users.ListOrganizationMemberships(ctx, created.ID, &user.ListOrganizationMembershipsParams{})
	if err != nil || list.TotalCount != 0 {
		t.Fatalf("after Delete: %+v, %v", list, err)
	}

	deleted, err := users.Delete(ctx, created.ID)
	if err != nil || !deleted.Deleted || deleted.ID != created.ID {
		t.Fatalf("user.Delete = %+v, %v", deleted, err)
	}
	_, err = users.Get(ctx, created.ID)
	var apiErr *clerk.APIErrorResponse
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != http.StatusNotFound || len(apiErr.Errors) != 1 ||
		apiErr.Errors[0].Code != "resource_not_found" || apiErr.TraceID == "" {
		t.Fatalf("Get after Delete: %v", err)
	}
	_, err = members.Create(ctx, &organizationmembership.CreateParams{OrganizationID: org.ID, UserID: clerk.String(DefaultUserID), Role: clerk.String(RoleAdmin)})
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != http.StatusBadRequest || apiErr.Errors[0].Code != "already_a_member_in_organization" {
		t.Fatalf("duplicate membership: %v", err)
	}

	// clerk-sdk-go sends "null" as the body of a DELETE, which the spec
	// does not declare; only the emulator's answers are checked here.
	checker := openapicheck.Load(t)
	for _, e := range exchanges() {
		if err := checker.ValidateResponse(e.Request, e.Status, e.Header, e.ResponseBody); err != nil {
			t.Errorf("%s %s: %v", e.Request.Method, e.Request.URL.Path, err)
		}
		var v any
		if err := json.Unmarshal(e.ResponseBody, &v); err != nil {
			t.Errorf("%s %s: body is not JSON: %v", e.Request.Method, e.Request.URL.Path, err)
		}
	}
}

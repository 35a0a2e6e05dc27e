package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	sdk "github.com/clerk/clerk-sdk-go/v2"
	"github.com/clerk/clerk-sdk-go/v2/organizationmembership"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/internal/localstack"
	"github.com/mcpgate/mcpgate/internal/mcpclient"
	"github.com/mcpgate/mcpgate/internal/sampleserver"
	"github.com/mcpgate/mcpgate/internal/testenv"
	"github.com/mcpgate/mcpgate/test/e2e/tsclient"
)

// Names of the access test's McpServer and organization.
const (
	accessServer = "team-a-tools"
	teamSlug     = "team-a"
	// accessTTL is the McpServer's cacheTTL: how long a demotion may take
	// to reach the gateway. The smallest the API allows keeps the test short.
	accessTTL = 5 * time.Second
)

// people are the test's Clerk users, by role in organization team-a.
type people struct {
	admin, member, outsider clerktest.User
	orgID                   string // team-a's organization ID
}

// TestAccessRules restricts an McpServer to the members of a Clerk
// organization, with one tool for its admins, and tries it with real
// clients as different people: a member lists and calls the other tools and
// never sees the admin tool; an admin sees and calls it; a non-member is
// refused at initialize and the client says why; an admin demoted through
// the Backend API has lost the tool once cacheTTL has passed.
func TestAccessRules(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*testTimeout)
	defer cancel()
	bins, assets := stackParts(t, ctx)
	stack := startStack(t, ctx, bins, assets, localstack.ClerkOptions{TokenFormat: localstack.JWT})
	who := createPeople(t, stack.ClerkServer())
	gw := applyRestrictedServer(t, ctx, stack)

	if out := kubectl(t, ctx, stack, "get", "mcps", "-n", stack.Namespace()); !strings.Contains(out, "ACCESS") {
		t.Errorf("kubectl get mcps has no ACCESS column:\n%s", out)
	} else if row, ok := testenv.TableRow(out, accessServer); !ok || row["ACCESS"] != "Restricted" {
		t.Errorf("kubectl get mcps: %s row %v, want ACCESS Restricted", accessServer, row)
	}

	t.Run("member", func(t *testing.T) {
		cs := connectAs(t, ctx, gw, who.member)
		if names := toolNames(t, ctx, cs); slices.Contains(names, sampleserver.ToolDeleteRepo) || !slices.Contains(names, sampleserver.ToolEcho) {
			t.Errorf("a member lists %q: want echo and no %s", names, sampleserver.ToolDeleteRepo)
		}
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: sampleserver.ToolWhoami, Arguments: map[string]any{}})
		if err != nil || res.IsError {
			t.Fatalf("whoami as a member: %v, %+v", err, res)
		}
		// The upstream learns the memberships the gateway looked up.
		wantOrgs := who.orgID + ":" + teamSlug + ":org:member"
		if got, _ := res.StructuredContent.(map[string]any); got["userId"] != who.member.ID || got["organizations"] != wantOrgs {
			t.Errorf("whoami = %v, want user %s in organizations %q", got, who.member.ID, wantOrgs)
		}
		_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: sampleserver.ToolDeleteRepo, Arguments: map[string]any{"name": "x"}})
		if err == nil || !strings.Contains(err.Error(), "Access denied") {
			t.Errorf("delete_repo as a member: %v, want an access denial", err)
		}
	})
	t.Run("admin", func(t *testing.T) {
		cs := connectAs(t, ctx, gw, who.admin)
		if names := toolNames(t, ctx, cs); !slices.Contains(names, sampleserver.ToolDeleteRepo) {
			t.Errorf("an admin lists %q: want %s", names, sampleserver.ToolDeleteRepo)
		}
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: sampleserver.ToolDeleteRepo, Arguments: map[string]any{"name": "x"}})
		if err != nil || res.IsError {
			t.Fatalf("delete_repo as an admin: %v, %+v", err, res)
		}
	})
	t.Run("outsider", func(t *testing.T) {
		_, err := mcpclient.Connect(ctx, mcpclient.Options{URL: gw.URL, LoginHint: who.outsider.Email, ClientName: "mcpgate-e2e"})
		if err == nil || !strings.Contains(err.Error(), "Access denied") {
			t.Fatalf("connect as a non-member: %v, want the gateway's access denial", err)
		}
	})
	t.Run("typescript", func(t *testing.T) {
		for _, sdkVersion := range []string{tsclient.SDKV1, tsclient.SDKV2} {
			t.Run(sdkVersion, func(t *testing.T) {
				res, err := tsclient.Run(ctx, t, gw.URL, tsclient.Options{SDK: sdkVersion, LoginHint: who.member.Email, Tool: sampleserver.ToolEcho, Args: map[string]any{"text": "hi"}})
				if err != nil || !res.OK {
					t.Fatalf("member: %v (result %+v)", err, res)
				}
				if slices.Contains(res.Tools, sampleserver.ToolDeleteRepo) || !slices.Contains(res.Tools, sampleserver.ToolEcho) {
					t.Errorf("member lists %q: want echo and no %s", res.Tools, sampleserver.ToolDeleteRepo)
				}
				res, err = tsclient.Run(ctx, t, gw.URL, tsclient.Options{SDK: sdkVersion, LoginHint: who.outsider.Email})
				if err == nil || res.OK || res.Stage != "initialize" || res.ErrorHTTPStatus != http.StatusForbidden ||
					res.ErrorCode != -32003 || !strings.HasPrefix(res.ErrorMessage, "Access denied") {
					t.Errorf("non-member: %v, result %+v; want the client to report the gateway's 403 access denial (-32003) at initialize", err, res)
				}
			})
		}
	})
	t.Run("demotion", func(t *testing.T) {
		cs := connectAs(t, ctx, gw, who.admin)
		if names := toolNames(t, ctx, cs); !slices.Contains(names, sampleserver.ToolDeleteRepo) {
			t.Fatalf("an admin lists %q before the demotion", names)
		}
		demote(t, ctx, stack, who.orgID, who.admin.ID)
		// The gateway learned the admin's role before the demotion, so its
		// answer has expired once cacheTTL has passed since then, however
		// slow the machine: from then on the tool must be gone.
		time.Sleep(accessTTL)
		if names := toolNames(t, ctx, cs); slices.Contains(names, sampleserver.ToolDeleteRepo) {
			t.Errorf("%s after the demotion and cacheTTL: the tool list still has %s: %q", accessTTL, sampleserver.ToolDeleteRepo, names)
		}
		_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: sampleserver.ToolDeleteRepo, Arguments: map[string]any{"name": "x"}})
		if err == nil || !strings.Contains(err.Error(), "Access denied") {
			t.Errorf("delete_repo after the demotion: %v, want an access denial", err)
		}
	})
}

// createPeople makes the test's users and organization in the emulator: the
// admin creates team-a (so becomes org:admin), the member joins it as
// org:member, the outsider belongs to nothing.
func createPeople(t *testing.T, emu *clerktest.Server) people {
	t.Helper()
	var p people
	for _, u := range []struct {
		user  *clerktest.User
		email string
	}{{&p.admin, "ada@team-a.example"}, {&p.member, "max@team-a.example"}, {&p.outsider, "otto@elsewhere.example"}} {
		created, err := emu.CreateUser(clerktest.UserParams{Emails: []string{u.email}})
		if err != nil {
			t.Fatalf("create user %s: %v", u.email, err)
		}
		*u.user = created
	}
	var err error
	if p.orgID, err = emu.CreateOrganization("Team A", teamSlug, p.admin.ID); err != nil {
		t.Fatalf("create organization: %v", err)
	}
	if err := emu.SetMembership(teamSlug, p.member.ID, "org:member"); err != nil {
		t.Fatalf("add member: %v", err)
	}
	return p
}

// applyRestrictedServer applies, with kubectl, an McpServer open to team-a
// whose delete_repo tool only team-a's admins may call.
func applyRestrictedServer(t *testing.T, ctx context.Context, stack *localstack.Stack) localstack.Gateway {
	t.Helper()
	applyManifest(t, ctx, stack, sampleMcpServer(stack, accessServer, "", fmt.Sprintf(`  access:
    allow:
      - organization: %s
    toolAccess:
      - tool: %s
        allow:
          - organization: %s
            roles: ["org:admin"]
    cacheTTL: %s
`, teamSlug, sampleserver.ToolDeleteRepo, teamSlug, accessTTL)))
	wctx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	gw, err := stack.WaitGateway(wctx, stack.Namespace(), accessServer, "")
	if err != nil {
		t.Fatalf("%v", err)
	}
	kubectl(t, ctx, stack, "wait", "-n", stack.Namespace(), "--for=jsonpath={.status.access}=Restricted", "--timeout=60s", "mcpservers/"+accessServer)
	return gw
}

// connectAs connects the Go SDK client to gw signed in as u.
func connectAs(t *testing.T, ctx context.Context, gw localstack.Gateway, u clerktest.User) *mcp.ClientSession {
	t.Helper()
	transport := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(transport.CloseIdleConnections)
	cs, err := mcpclient.Connect(ctx, mcpclient.Options{
		URL: gw.URL, HTTPClient: &http.Client{Transport: transport}, ClientName: "mcpgate-e2e", LoginHint: u.Email,
	})
	if err != nil {
		t.Fatalf("connect as %s: %v", u.Email, err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// toolNames lists the tools the session sees.
func toolNames(t *testing.T, ctx context.Context, cs *mcp.ClientSession) []string {
	t.Helper()
	var names []string
	for tool, err := range cs.Tools(ctx, nil) {
		if err != nil {
			t.Fatalf("tools/list: %v", err)
		}
		names = append(names, tool.Name)
	}
	return names
}

// demote makes userID a plain member of team-a through the Backend API, as
// an administrator would, with clerk-sdk-go.
func demote(t *testing.T, ctx context.Context, stack *localstack.Stack, orgID, userID string) {
	t.Helper()
	inst := stack.Clerk()
	apiURL, key := inst.BackendAPIURL, inst.SecretKey
	client := organizationmembership.NewClient(&sdk.ClientConfig{BackendConfig: sdk.BackendConfig{URL: &apiURL, Key: &key}})
	role := "org:member"
	if _, err := client.Update(ctx, &organizationmembership.UpdateParams{OrganizationID: orgID, UserID: userID, Role: &role}); err != nil {
		t.Fatalf("demote %s: %v", userID, err)
	}
}

package e2e

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/internal/localstack"
	"github.com/mcpgate/mcpgate/internal/sampleserver"
	"github.com/mcpgate/mcpgate/test/e2e/tsclient"
)

// runTypeScriptClient runs the official TypeScript SDK client against the
// same gateway as the Go client: discovery from the 401, dynamic
// registration, PKCE, a token and a tool call. Step-up is left to the Go
// client: test/e2e/tsclient documents why the TypeScript SDK version it
// pins cannot complete one against Clerk.
func runTypeScriptClient(t *testing.T, ctx context.Context, stack *localstack.Stack, gw localstack.Gateway) {
	tests := map[string]struct {
		opts           tsclient.Options
		authorizations int    // trips to the authorization endpoint
		wantStructured string // the tool's structured result, as JSON
	}{
		"whoami": {
			opts:           tsclient.Options{Tool: sampleserver.ToolWhoami},
			authorizations: 1,
		},
		"echo": {
			opts:           tsclient.Options{Tool: sampleserver.ToolEcho, Args: map[string]any{"text": "hello from typescript"}},
			authorizations: 1,
			wantStructured: `{"text":"hello from typescript"}`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res, err := tsclient.Run(ctx, t, gw.URL, tc.opts)
			if err != nil {
				t.Fatalf("typescript client: %v (result %+v)", err, res)
			}
			if !res.OK || res.Resource != gw.URL || res.AuthorizationServer != stack.Clerk().Issuer ||
				res.Authorizations != tc.authorizations || res.RegisteredClientID == "" {
				t.Errorf("result = %+v, want OK, resource %s, authorization server %s, %d authorizations",
					res, gw.URL, stack.Clerk().Issuer, tc.authorizations)
			}
			for _, want := range []string{sampleserver.ToolEcho, sampleserver.ToolWhoami, sampleserver.ToolDeleteRepo} {
				if !slices.Contains(res.Tools, want) {
					t.Errorf("tools = %q, missing %s", res.Tools, want)
				}
			}
			structured := res.StructuredContent()
			if tc.wantStructured != "" {
				if string(structured) != tc.wantStructured {
					t.Errorf("structured result = %s, want %s", structured, tc.wantStructured)
				}
				return
			}
			var who sampleserver.Identity
			if err := json.Unmarshal(structured, &who); err != nil || who.UserID != clerktest.DefaultUserID || who.Authorization {
				t.Errorf("whoami = %s (%v), want user %s and no Authorization header upstream", structured, err, clerktest.DefaultUserID)
			}
		})
	}
}

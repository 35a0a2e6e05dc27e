package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/internal/localstack"
	"github.com/mcpgate/mcpgate/internal/mcpclient"
	"github.com/mcpgate/mcpgate/internal/sampleserver"
)

// Names of the credentials test's McpServer, Secret and provider.
const (
	credsServer = "github-tools"
	vendorKey   = "vendor-mcp"
	provider    = "oauth_github"
	connectURL  = "https://accounts.example.com/user"
)

// TestUpstreamCredentials puts the sample server behind an McpServer that
// sets a service key from a Secret and the caller's own GitHub token from
// Clerk, and tries it with the real Go SDK client: user A's calls carry the
// service key and A's token only; user B, who never connected GitHub, gets
// MCP's URL elicitation error pointing at the connect page, which the client
// surfaces; rotating the Secret changes what the upstream sees without a
// gateway restart.
func TestUpstreamCredentials(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*testTimeout)
	defer cancel()
	bins, assets := stackParts(t, ctx)
	stack := startStack(t, ctx, bins, assets, localstack.ClerkOptions{TokenFormat: localstack.JWT})
	emu := stack.ClerkServer()
	userA, err := emu.CreateUser(clerktest.UserParams{Emails: []string{"ada@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	userB, err := emu.CreateUser(clerktest.UserParams{Emails: []string{"bob@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	const tokenA = "gho_e2eTokenOfUserA0000000000000000000"
	if err := emu.SetOAuthToken(userA.ID, provider, clerktest.OAuthToken{Token: tokenA, Scopes: []string{"repo"}, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: vendorKey, Namespace: stack.Namespace()},
		StringData: map[string]string{"api-key": "key-one"},
	}
	if err := stack.Client().Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	applyManifest(t, ctx, stack, sampleMcpServer(stack, credsServer, fmt.Sprintf(`    credentials:
      headers:
        - name: %s
          secretKeyRef: {name: %s, key: api-key}
      userOAuthToken:
        provider: %s
        connectURL: %s
`, sampleserver.APIKeyHeader, vendorKey, provider, connectURL), ""))
	wctx, wcancel := context.WithTimeout(ctx, waitTimeout)
	defer wcancel()
	gw, err := stack.WaitGateway(wctx, stack.Namespace(), credsServer, "")
	if err != nil {
		t.Fatalf("%v", err)
	}

	whoami := func(t *testing.T, cs *mcp.ClientSession) sampleserver.Identity {
		t.Helper()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: sampleserver.ToolWhoami, Arguments: map[string]any{}})
		if err != nil || res.IsError {
			t.Fatalf("whoami: %v, %+v", err, res)
		}
		raw, _ := json.Marshal(res.StructuredContent)
		var who sampleserver.Identity
		if err := json.Unmarshal(raw, &who); err != nil {
			t.Fatal(err)
		}
		return who
	}

	csA := connectAs(t, ctx, gw, userA)
	t.Run("user with the connection", func(t *testing.T) {
		who := whoami(t, csA)
		if who.UserID != userA.ID || who.AuthorizationSHA256 != sha("Bearer "+tokenA) || who.APIKeySHA256 != sha("key-one") {
			t.Errorf("the upstream saw %+v; want user %s with A's GitHub token and the service key", who, userA.ID)
		}
	})
	t.Run("user without the connection", func(t *testing.T) {
		_, err := mcpclient.Connect(ctx, mcpclient.Options{URL: gw.URL, LoginHint: userB.Email, ClientName: "mcpgate-e2e"})
		var rpcErr *jsonrpc.Error
		if !errors.As(err, &rpcErr) || rpcErr.Code != mcp.CodeURLElicitationRequired {
			t.Fatalf("connect as a user without GitHub: %v, want a JSON-RPC error %d", err, mcp.CodeURLElicitationRequired)
		}
		var data struct {
			Elicitations []struct {
				Mode, URL string
			} `json:"elicitations"`
		}
		if err := json.Unmarshal(rpcErr.Data, &data); err != nil || len(data.Elicitations) != 1 ||
			data.Elicitations[0].Mode != "url" || data.Elicitations[0].URL != connectURL {
			t.Errorf("error data %s, want one url elicitation to %s", rpcErr.Data, connectURL)
		}
	})
	t.Run("rotated service key", func(t *testing.T) {
		before, _ := stack.Gateway(stack.Namespace(), credsServer)
		kubectl(t, ctx, stack, "patch", "secret", "-n", stack.Namespace(), vendorKey, "--type=merge", "-p", `{"stringData":{"api-key":"key-two"}}`)
		eventually(t, ctx, "the rotated service key at the upstream", func() (bool, error) {
			return whoami(t, csA).APIKeySHA256 == sha("key-two"), nil
		})
		after, _ := stack.Gateway(stack.Namespace(), credsServer)
		if after.PID != before.PID || after.Starts != before.Starts {
			t.Errorf("rotating the Secret restarted the gateway: %+v, before %+v", after, before)
		}
	})
}

// sha is the hex SHA-256 the sample server reports for a header value.
func sha(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:])
}

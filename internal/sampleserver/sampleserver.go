// Package sampleserver is a small MCP server, built on the official Go SDK,
// to put behind the gateway in tests, the demo and local development.
//
// Its tools exercise what the gateway must get right: echo (plain request and
// response), whoami (the identity headers the gateway injected, and whether a
// token leaked through), progress (notifications streamed over SSE before the
// result, which a buffering proxy would hold back) and delete_repo (a harmless
// stand-in for a dangerous tool that a tool scope protects, for step-up
// authorization).
//
// The server trusts the identity headers it is given: that is only safe
// behind the gateway, which strips any copies a client sends.
package sampleserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/gateway/identity"
	"github.com/mcpgate/mcpgate/internal/version"
)

// Tool names, for tests and for the gateway's tool scopes.
const (
	ToolEcho       = "echo"
	ToolWhoami     = "whoami"
	ToolProgress   = "progress"
	ToolDeleteRepo = "delete_repo"
)

// Limits on the progress tool, so that a caller cannot tie the server up.
const (
	MaxProgressSteps = 100
	MaxProgressDelay = 10 * time.Second
)

// Options configures the sample server. The zero value is a stateful server
// (Mcp-Session-Id, a standalone GET stream) that logs nothing.
type Options struct {
	// Logger receives the SDK's transport logs. Nil logs nothing.
	Logger *slog.Logger

	// Stateless serves every request on its own, without Mcp-Session-Id, as
	// the 2026-07-28 protocol does; GET and DELETE are then 405. Clients on
	// older protocol versions need a stateful server.
	Stateless bool

	// JSONResponse answers a POST with one application/json body instead of
	// an SSE stream; progress notifications are then not delivered.
	JSONResponse bool

	// DisableLocalhostProtection turns off the SDK's DNS-rebinding check,
	// which refuses a request that reached a loopback listener with a
	// non-loopback Host header. A proxy that forwards the public Host to an
	// upstream on 127.0.0.1 needs this.
	DisableLocalhostProtection bool

	// AfterProgress, if set, is called after each progress notification is
	// sent, in place of sleeping for the requested delay. Tests use it to
	// wait until the client has seen the notification, which shows that the
	// stream is not being buffered on the way.
	AfterProgress func(ctx context.Context, step int) error
}

// NewHandler returns the server as a streamable HTTP handler, to be mounted
// at the MCP endpoint's path.
func NewHandler(opts Options) http.Handler {
	srv := NewServer(opts)
	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{
		Stateless:                  opts.Stateless,
		JSONResponse:               opts.JSONResponse,
		Logger:                     opts.Logger,
		DisableLocalhostProtection: opts.DisableLocalhostProtection,
	})
}

// NewServer returns the MCP server with its tools, for callers that want
// another transport than streamable HTTP (such as in-memory).
func NewServer(opts Options) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "mcpgate-sample", Title: "mcpgate sample server", Version: version.Get().Version},
		&mcp.ServerOptions{Logger: opts.Logger})
	t := tools{afterProgress: opts.AfterProgress}
	mcp.AddTool(srv, readOnlyTool(ToolEcho, "Returns its text argument unchanged."), t.echo)
	mcp.AddTool(srv, readOnlyTool(ToolWhoami, "Reports the identity the gateway passed on: user id, OAuth client id and scopes."), t.whoami)
	mcp.AddTool(srv, readOnlyTool(ToolProgress, "Counts to steps, sending a progress notification per step (when the call carries a progress token), then returns."), t.progress)
	mcp.AddTool(srv, &mcp.Tool{
		Name:        ToolDeleteRepo,
		Description: "Pretends to delete a repository. It changes nothing; it stands in for a dangerous tool that needs an extra scope.",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: new(true)},
	}, t.deleteRepo)
	return srv
}

// readOnlyTool describes a tool that changes nothing.
func readOnlyTool(name, description string) *mcp.Tool {
	return &mcp.Tool{Name: name, Description: description, Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}
}

// tools holds what the tool handlers share.
type tools struct {
	afterProgress func(ctx context.Context, step int) error
}

// EchoInput is the argument of the echo tool.
type EchoInput struct {
	Text string `json:"text" jsonschema:"the text to return"`
}

// EchoOutput is the structured result of the echo tool.
type EchoOutput struct {
	Text string `json:"text"`
}

func (tools) echo(_ context.Context, _ *mcp.CallToolRequest, in EchoInput) (*mcp.CallToolResult, EchoOutput, error) {
	return textResult(in.Text), EchoOutput(in), nil
}

// Identity is the structured result of the whoami tool: the identity
// headers of the HTTP request that carried the call.
type Identity struct {
	UserID   string   `json:"userId"`
	ClientID string   `json:"clientId"`
	Scopes   []string `json:"scopes"`
	// Authorization reports whether the request carried an Authorization
	// header. Behind the gateway it must be false: the gateway never passes
	// the client's token on.
	Authorization bool `json:"authorization"`
	// Email and Organizations are what the gateway learned about the user
	// from Clerk for its access rules, when it had to look them up.
	Email         string `json:"email,omitempty"`
	Organizations string `json:"organizations,omitempty"`
	// AuthorizationSHA256 and APIKeySHA256 are the hex SHA-256 of the
	// Authorization and X-Api-Key headers the server received, empty when
	// absent: a test compares them with the upstream credentials the
	// gateway should set, without the server echoing a credential.
	AuthorizationSHA256 string `json:"authorizationSha256,omitempty"`
	APIKeySHA256        string `json:"apiKeySha256,omitempty"`
}

// APIKeyHeader is the header whose digest whoami reports as apiKeySha256.
const APIKeyHeader = "X-Api-Key"

// digest is the hex SHA-256 of v, or empty for an empty v.
func digest(v string) string {
	if v == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:])
}

func (tools) whoami(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, Identity, error) {
	var h http.Header
	if req.Extra != nil {
		h = req.Extra.Header
	}
	id := Identity{
		UserID:        h.Get(identity.UserHeader),
		ClientID:      h.Get(identity.ClientHeader),
		Scopes:        strings.Fields(h.Get(identity.ScopesHeader)),
		Authorization: h.Get("Authorization") != "",
		Email:         h.Get(identity.EmailHeader),
		Organizations: h.Get(identity.OrganizationsHeader),

		AuthorizationSHA256: digest(h.Get("Authorization")),
		APIKeySHA256:        digest(h.Get(APIKeyHeader)),
	}
	if id.Scopes == nil {
		id.Scopes = []string{} // the output schema wants an array, not null
	}
	text := fmt.Sprintf("user %q, client %q, scopes %q, authorization header present: %t",
		id.UserID, id.ClientID, strings.Join(id.Scopes, " "), id.Authorization)
	return textResult(text), id, nil
}

// ProgressInput is the argument of the progress tool.
type ProgressInput struct {
	Steps   int `json:"steps" jsonschema:"how many steps to count, 1 to 100"`
	DelayMS int `json:"delayMs,omitempty" jsonschema:"milliseconds to wait after each step, at most 10000"`
}

// ProgressOutput is the structured result of the progress tool.
type ProgressOutput struct {
	Steps int `json:"steps"`
	// Notified is how many progress notifications were sent: Steps, or 0
	// when the call carried no progress token.
	Notified int `json:"notified"`
}

func (t tools) progress(ctx context.Context, req *mcp.CallToolRequest, in ProgressInput) (*mcp.CallToolResult, ProgressOutput, error) {
	delay := time.Duration(in.DelayMS) * time.Millisecond
	switch {
	case in.Steps < 1 || in.Steps > MaxProgressSteps:
		return nil, ProgressOutput{}, fmt.Errorf("steps must be between 1 and %d", MaxProgressSteps)
	case delay < 0 || delay > MaxProgressDelay:
		return nil, ProgressOutput{}, fmt.Errorf("delayMs must be between 0 and %d", MaxProgressDelay.Milliseconds())
	}
	// NOTE: notifications must be sent with the call's ctx: that is what
	// makes the SDK put them on this call's SSE response stream rather than
	// on the session's standalone GET stream.
	token := req.Params.GetProgressToken()
	out := ProgressOutput{Steps: in.Steps}
	for step := 1; step <= in.Steps; step++ {
		if token != nil {
			err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
				ProgressToken: token,
				Progress:      float64(step),
				Total:         float64(in.Steps),
				Message:       fmt.Sprintf("step %d of %d", step, in.Steps),
			})
			if err != nil {
				return nil, ProgressOutput{}, fmt.Errorf("send progress notification %d: %w", step, err)
			}
			out.Notified++
		}
		if err := t.pause(ctx, step, delay, token != nil); err != nil {
			return nil, ProgressOutput{}, err
		}
	}
	return textResult(fmt.Sprintf("counted %d steps", in.Steps)), out, nil
}

// pause waits after a step: for the test hook if a notification was sent
// and there is one, else for delay.
func (t tools) pause(ctx context.Context, step int, delay time.Duration, notified bool) error {
	if notified && t.afterProgress != nil {
		return t.afterProgress(ctx, step)
	}
	if delay == 0 {
		return nil
	}
	timer := time.NewTimer(delay)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-timer.C:
		return nil
	}
}

// DeleteRepoInput is the argument of the delete_repo tool.
type DeleteRepoInput struct {
	Name string `json:"name" jsonschema:"the repository to (pretend to) delete"`
}

// DeleteRepoOutput is the structured result of the delete_repo tool.
type DeleteRepoOutput struct {
	Deleted string `json:"deleted"`
}

func (tools) deleteRepo(_ context.Context, _ *mcp.CallToolRequest, in DeleteRepoInput) (*mcp.CallToolResult, DeleteRepoOutput, error) {
	if in.Name == "" {
		return nil, DeleteRepoOutput{}, errors.New("name is required")
	}
	return textResult("deleted " + in.Name), DeleteRepoOutput{Deleted: in.Name}, nil
}

// textResult is a result whose unstructured content is text; the SDK adds
// the structured output next to it.
func textResult(text string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}
}

package sampleserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/gateway/identity"
	"github.com/mcpgate/mcpgate/internal/sampleserver"
)

// modes are the two ways the server can run, by name, with their
// Options.Stateless; every test runs in both, since the gateway must carry
// either.
func modes() map[string]bool { return map[string]bool{"stateful": false, "stateless": true} }

// headerTransport adds fixed headers to every request, as the gateway adds
// the identity headers.
type headerTransport struct {
	header http.Header
	base   http.RoundTripper
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, vs := range h.header {
		r.Header[k] = vs
	}
	return h.base.RoundTrip(r)
}

// connect serves the sample server on httptest and connects an SDK client to
// it over streamable HTTP, sending header with every request.
func connect(t *testing.T, opts sampleserver.Options, header http.Header, copts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	srv := httptest.NewServer(sampleserver.NewHandler(opts))
	t.Cleanup(srv.Close)
	client := mcp.NewClient(&mcp.Implementation{Name: "sampleserver-test", Version: "v0"}, copts)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   srv.URL,
		HTTPClient: &http.Client{Transport: headerTransport{header: header, base: http.DefaultTransport}},
		MaxRetries: -1,
	}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// call calls a tool and fails the test on a protocol error.
func call(t *testing.T, cs *mcp.ClientSession, name string, args any) *mcp.CallToolResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("call %s: %v", name, err)
	}
	return res
}

// structured decodes a result's structured content into T.
func structured[T any](t *testing.T, res *mcp.CallToolResult) T {
	t.Helper()
	var out T
	b, err := json.Marshal(res.StructuredContent)
	if err == nil {
		err = json.Unmarshal(b, &out)
	}
	if err != nil {
		t.Fatalf("decode structured content %s: %v", b, err)
	}
	return out
}

// text returns a result's first text content.
func text(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	if len(res.Content) == 0 {
		t.Fatal("result has no content")
	}
	tc, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		t.Fatalf("content[0] is %T, want text", res.Content[0])
	}
	return tc.Text
}

func TestTools(t *testing.T) {
	t.Parallel()
	for mode, stateless := range modes() {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			cs := connect(t, sampleserver.Options{Stateless: stateless}, nil, nil)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			list, err := cs.ListTools(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, tool := range list.Tools {
				names = append(names, tool.Name)
			}
			slices.Sort(names)
			want := []string{sampleserver.ToolDeleteRepo, sampleserver.ToolEcho, sampleserver.ToolProgress, sampleserver.ToolWhoami}
			if !slices.Equal(names, want) {
				t.Errorf("tools = %v, want %v", names, want)
			}

			res := call(t, cs, sampleserver.ToolEcho, map[string]any{"text": "hello, gateway"})
			if res.IsError || text(t, res) != "hello, gateway" || structured[sampleserver.EchoOutput](t, res).Text != "hello, gateway" {
				t.Errorf("echo = %+v", res)
			}

			res = call(t, cs, sampleserver.ToolDeleteRepo, map[string]any{"name": "acme/widgets"})
			if res.IsError || text(t, res) != "deleted acme/widgets" {
				t.Errorf("delete_repo = %+v", res)
			}
			if res := call(t, cs, sampleserver.ToolDeleteRepo, map[string]any{"name": ""}); !res.IsError {
				t.Errorf("delete_repo without a name succeeded: %+v", res)
			}
		})
	}
}

func TestWhoami(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		header http.Header           // sent with every request
		want   sampleserver.Identity // whoami's structured result
	}{
		"identity headers": {
			header: http.Header{
				identity.UserHeader:   {"user_123"},
				identity.ClientHeader: {"client_abc"},
				identity.ScopesHeader: {"profile  repo:admin"},
			},
			want: sampleserver.Identity{UserID: "user_123", ClientID: "client_abc", Scopes: []string{"profile", "repo:admin"}},
		},
		"no headers": {
			want: sampleserver.Identity{Scopes: []string{}},
		},
		"a token leaked through": {
			header: http.Header{"Authorization": {"Bearer not-a-real-token"}},
			want:   sampleserver.Identity{Scopes: []string{}, Authorization: true},
		},
	}
	for name, tc := range tests {
		for mode, stateless := range modes() {
			t.Run(name+"/"+mode, func(t *testing.T) {
				t.Parallel()
				cs := connect(t, sampleserver.Options{Stateless: stateless}, tc.header, nil)
				res := call(t, cs, sampleserver.ToolWhoami, map[string]any{})
				got := structured[sampleserver.Identity](t, res)
				if res.IsError || got.UserID != tc.want.UserID || got.ClientID != tc.want.ClientID ||
					!slices.Equal(got.Scopes, tc.want.Scopes) || got.Authorization != tc.want.Authorization {
					t.Errorf("whoami = %+v, want %+v", got, tc.want)
				}
				if strings.Contains(text(t, res), "not-a-real-token") {
					t.Error("whoami echoed the token")
				}
			})
		}
	}
}

// TestProgress checks that every progress notification reaches the client
// before the result: the tool does not take its next step until the client
// has seen the previous notification, so a buffered stream would time out.
func TestProgress(t *testing.T) {
	t.Parallel()
	const steps = 3
	for mode, stateless := range modes() {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			seen := make(chan *mcp.ProgressNotificationParams, steps)
			opts := sampleserver.Options{
				Stateless: stateless,
				AfterProgress: func(ctx context.Context, step int) error {
					select {
					case p := <-seen:
						if int(p.Progress) != step {
							return errors.New("progress notifications out of order")
						}
						return nil
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(5 * time.Second):
						return errors.New("the client did not see the progress notification")
					}
				},
			}
			cs := connect(t, opts, nil, &mcp.ClientOptions{
				ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
					seen <- req.Params
				},
			})
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			params := &mcp.CallToolParams{Name: sampleserver.ToolProgress, Arguments: map[string]any{"steps": steps}}
			params.SetProgressToken("p-1")
			res, err := cs.CallTool(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			if out := structured[sampleserver.ProgressOutput](t, res); res.IsError || out.Steps != steps || out.Notified != steps {
				t.Fatalf("progress = %+v (%s)", out, text(t, res))
			}

			// Without a progress token there is nothing to notify (and the
			// hook is not waited on, so the call returns at once).
			res = call(t, cs, sampleserver.ToolProgress, map[string]any{"steps": 2})
			if out := structured[sampleserver.ProgressOutput](t, res); res.IsError || out.Notified != 0 {
				t.Fatalf("progress without a token = %+v", out)
			}
		})
	}
}

func TestProgress_limits(t *testing.T) {
	t.Parallel()
	cs := connect(t, sampleserver.Options{}, nil, nil)
	tests := map[string]map[string]any{
		"no steps":       {"steps": 0},
		"too many steps": {"steps": sampleserver.MaxProgressSteps + 1},
		"negative delay": {"steps": 1, "delayMs": -1},
		"too long delay": {"steps": 1, "delayMs": sampleserver.MaxProgressDelay.Milliseconds() + 1},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if res := call(t, cs, sampleserver.ToolProgress, args); !res.IsError {
				t.Errorf("progress %v succeeded", args)
			}
		})
	}
	// A short real delay, as the demo uses, still returns.
	if res := call(t, cs, sampleserver.ToolProgress, map[string]any{"steps": 2, "delayMs": 5}); res.IsError {
		t.Errorf("progress with a delay failed: %s", text(t, res))
	}
}

package tsclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// MCPRemoteVersion is the mcp-remote release the Node project pins.
const MCPRemoteVersion = "0.15.1"

// mcpRemoteAuthTimeoutSeconds is how long mcp-remote waits for its OAuth
// callback.
const mcpRemoteAuthTimeoutSeconds = 20

// MCPRemoteOptions configure MCPRemoteCommand.
type MCPRemoteOptions struct {
	// CallbackPort is the loopback port of mcp-remote's OAuth callback
	// server; its redirect URI is http://127.0.0.1:<port>/oauth/callback
	// (MCPRemoteRedirectURL). Required: a metadata document must name it.
	CallbackPort int
	// ConfigDir is where mcp-remote keeps its registrations and tokens
	// (MCP_REMOTE_CONFIG_DIR), and where the browser wrapper is written:
	// a fresh directory per run, such as t.TempDir(). Required.
	ConfigDir string
	// ClientMetadataURL makes mcp-remote a client ID metadata document
	// client (--client-metadata-url), as Options.ClientMetadataURL does for
	// the SDK client.
	ClientMetadataURL string
}

// MCPRemoteRedirectURL is the redirect URI mcp-remote uses with a callback
// port.
func MCPRemoteRedirectURL(port int) string {
	return "http://127.0.0.1:" + strconv.Itoa(port) + "/oauth/callback"
}

// MCPRemoteCommand returns the command that runs mcp-remote as a stdio MCP
// server for mcpURL: speak MCP to its stdin and stdout (the Go SDK's
// mcp.CommandTransport does). When the server asks for authorization,
// mcp-remote "opens a browser": with no desktop in its environment, the
// `open` package runs xdg-open, which runs $BROWSER, here a wrapper around
// browser.mjs that follows the authorization URL to mcp-remote's callback
// as a signed-in, consenting user would at the Clerk emulator. So the flow
// completes without a person, but only against an authorization server that
// redirects straight back with a code.
func MCPRemoteCommand(ctx context.Context, mcpURL string, opts MCPRemoteOptions) (*exec.Cmd, error) {
	if opts.CallbackPort <= 0 || opts.ConfigDir == "" {
		return nil, errors.New("tsclient: MCPRemoteCommand needs CallbackPort and ConfigDir")
	}
	inst, err := install(ctx)
	if err != nil {
		return nil, err
	}
	// xdg-open splits $BROWSER on ":" and runs each entry with the URL as its
	// one argument, so it must name one executable: a wrapper script.
	wrapper := filepath.Join(opts.ConfigDir, "browser.sh")
	if strings.ContainsAny(wrapper, ": '") || strings.ContainsAny(inst.node+inst.browser, "'") {
		return nil, fmt.Errorf("tsclient: cannot use %q for the browser wrapper", wrapper)
	}
	opened := filepath.Join(opts.ConfigDir, browserLogFile)
	script := fmt.Sprintf("#!/bin/sh\nMCPGATE_BROWSER_LOG='%s' exec '%s' '%s' \"$1\"\n", opened, inst.node, inst.browser)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		return nil, fmt.Errorf("tsclient: %w", err)
	}
	args := []string{
		filepath.Join(inst.dir, "node_modules", "mcp-remote", "dist", "proxy.js"),
		mcpURL, strconv.Itoa(opts.CallbackPort),
		"--host", "127.0.0.1",
		"--transport", "http-only",
		// A refused authorization never reaches the callback; without a
		// bound mcp-remote would wait for it as long as a person might.
		"--auth-timeout", strconv.Itoa(mcpRemoteAuthTimeoutSeconds),
	}
	if opts.ClientMetadataURL != "" {
		args = append(args, "--client-metadata-url", opts.ClientMetadataURL)
	}
	cmd := exec.CommandContext(ctx, inst.node, args...)
	cmd.Dir = inst.dir
	cmd.Env = append(headlessEnv(os.Environ()), "BROWSER="+wrapper, "MCP_REMOTE_CONFIG_DIR="+opts.ConfigDir)
	return cmd, nil
}

// browserLogFile, in the ConfigDir, gets a line each time mcp-remote opens
// the browser: the scope asked for, as a JSON string.
const browserLogFile = "browser-log"

// MCPRemoteAuthorizations returns the scope of each authorization request
// that mcp-remote, run with configDir, sent the (stand-in) browser to, in
// order. mcp-remote may open the browser more than once for the same scopes
// when requests race for authorization.
func MCPRemoteAuthorizations(configDir string) []string {
	b, err := os.ReadFile(filepath.Join(configDir, browserLogFile))
	if err != nil {
		return nil
	}
	var scopes []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var scope string
		if json.Unmarshal([]byte(line), &scope) == nil {
			scopes = append(scopes, scope)
		}
	}
	return scopes
}

// headlessEnv drops what would make xdg-open look for a desktop (and a
// real browser) instead of running $BROWSER.
func headlessEnv(env []string) []string {
	drop := []string{"DISPLAY", "WAYLAND_DISPLAY", "XDG_CURRENT_DESKTOP", "DESKTOP_SESSION", "KDE_FULL_SESSION",
		"GNOME_DESKTOP_SESSION_ID", "BROWSER", "MCP_REMOTE_CONFIG_DIR"}
	out := env[:0:0]
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(drop, name) {
			out = append(out, kv)
		}
	}
	return out
}

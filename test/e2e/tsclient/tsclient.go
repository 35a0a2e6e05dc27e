// Package tsclient runs the official TypeScript MCP SDK as an OAuth client
// against an MCP endpoint, for end-to-end tests: test/e2e/ts/client.mjs
// registers dynamically, authorizes headlessly with PKCE, lists the tools
// and calls one. It drives either SDK line (Options.SDK): 1.x,
// @modelcontextprotocol/sdk (SDKV1, the default), or 2.x, the split
// @modelcontextprotocol/client (SDKV2). One Node project pins both.
//
// The Node project is installed once into a cache outside the repository,
// keyed by the SHA-256 of its package-lock.json:
//
//	${MCPGATE_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/mcpgate}/npm/<sha256>/
//
// The first use runs `npm ci` there (a few seconds, from the npm registry or
// npm's own cache); later uses, in this process or any other, find it done.
// It needs node (>= 20) and npm on PATH.
package tsclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/test/e2e/ts"
)

// The SDK releases the Node project pins, for Options.SDK. The client
// checks that the installed package is exactly the one asked for.
const (
	// SDKV1 is @modelcontextprotocol/sdk, the 1.x line.
	SDKV1 = "1.32.2"
	// SDKV2 is @modelcontextprotocol/client, the 2.x line.
	SDKV2 = "2.4.0"
)

// SDKs lists both lines, for tests that run on each.
var SDKs = []string{SDKV1, SDKV2}

const (
	// DefaultTool is the tool Run calls when Options.Tool is empty.
	DefaultTool = "whoami"
	// DefaultTimeout bounds one run of the client when Options.Timeout is zero.
	DefaultTimeout = 60 * time.Second
	// MinNodeMajor is the oldest Node.js major version the client supports
	// (the SDK's dependencies need 20).
	MinNodeMajor = 20

	// installedMarker is written into an install once npm ci has succeeded.
	installedMarker = ".mcpgate-installed"
	// installTimeout bounds npm ci when the caller's context has no deadline.
	installTimeout = 5 * time.Minute
	// staleTempAge is how old an abandoned install directory (of a killed
	// process) must be before another install removes it.
	staleTempAge = time.Hour
)

// Options say which SDK runs and what the client does after connecting.
type Options struct {
	// SDK is the SDK release to run: SDKV1 (the default) or SDKV2.
	SDK string
	// Tool is the tool to call (default DefaultTool).
	Tool string
	// Args are the tool's arguments (default none).
	Args map[string]any
	// ListOnly stops after tools/list: Result.Tools is what the server
	// listed, and no tool is called.
	ListOnly bool
	// LoginHint, when set, goes into the authorization URL as OpenID
	// Connect's login_hint (a user ID or an email address): the Clerk
	// emulator signs in that user instead of its default one.
	LoginHint string
	// Scope goes into the client's registration metadata. The SDK falls
	// back to it only when neither the server's WWW-Authenticate challenge
	// nor its protected resource metadata names scopes.
	Scope string
	// ClientMetadataURL makes the client a client ID metadata document
	// (CIMD) client: the SDK uses this URL as its client_id, registering
	// nothing, when the authorization server advertises
	// client_id_metadata_document_supported, and registers dynamically
	// otherwise (Result.RegisteredClientID tells which). Both SDK lines take
	// only an https URL with a path; the document must list RedirectURL.
	ClientMetadataURL string
	// Timeout bounds the whole run (default DefaultTimeout).
	Timeout time.Duration
}

// RedirectURL is the redirect URI the client registers, or must find in its
// client ID metadata document. Nothing listens there: the client reads the
// authorization response from the redirect itself.
const RedirectURL = "http://127.0.0.1:1/callback"

// Result is what the client reported.
type Result struct {
	OK bool `json:"ok"`
	// SDK is the package that ran, as name@version.
	SDK   string   `json:"sdk"`
	Tools []string `json:"tools"`
	// Result is the tool's CallToolResult as the server sent it: content,
	// structuredContent and isError.
	Result json.RawMessage `json:"result"`
	// Authorizations counts the client's trips to the authorization
	// endpoint (1 for the first connection, +1 per step-up).
	Authorizations int `json:"authorizations"`
	// RegisteredClientID is the client id the client used: the one dynamic
	// registration returned, or Options.ClientMetadataURL when the
	// authorization server took the metadata document instead.
	RegisteredClientID string `json:"registeredClientId"`
	// Resource is the protected resource metadata's resource, and
	// AuthorizationServer the authorization server the SDK chose; both are
	// empty when the SDK did not use the protected resource metadata.
	Resource            string `json:"resource"`
	AuthorizationServer string `json:"authorizationServer"`
	// Error says why the run failed (OK false): the SDK's error message
	// with its cause chain. On an HTTP error both SDK lines put the
	// response body in it ("Error POSTing to endpoint: <body>").
	Error string `json:"error"`
	// Stage is the step that failed: "start" (bad options, SDK not
	// installed), "initialize" (authorization included), "tools/list" or
	// "tools/call".
	Stage string `json:"stage"`
	// ErrorClass is the class of the SDK's error: StreamableHTTPError or
	// McpError (1.x), SdkHttpError or ProtocolError (2.x), "Error" for
	// one of the client's own (a refused authorization request, say).
	ErrorClass string `json:"errorClass"`
	// ErrorHTTPStatus is the HTTP status the SDK attached to its error, 0
	// when none.
	ErrorHTTPStatus int `json:"errorHttpStatus"`
	// ErrorCode and ErrorMessage are the server's JSON-RPC error, 0 and ""
	// when there was none: from the SDK's protocol error (a JSON-RPC error
	// in a 200 response), or parsed from the response body the SDK kept in
	// its HTTP error (1.x keeps it only in the message text, 2.x in
	// SdkHttpError.data.text).
	ErrorCode    int    `json:"errorCode"`
	ErrorMessage string `json:"errorMessage"`
}

// StructuredContent returns the tool result's structuredContent, or nil.
func (r Result) StructuredContent() json.RawMessage {
	var res struct {
		StructuredContent json.RawMessage `json:"structuredContent"`
	}
	if json.Unmarshal(r.Result, &res) != nil {
		return nil
	}
	return res.StructuredContent
}

// runSlots bounds how many clients run at once in this process. Starting
// Node and loading an SDK is CPU work: dozens of parallel tests starting
// clients together on a small machine would each take long enough to risk
// their timeout.
var runSlots = make(chan struct{}, 2*runtime.NumCPU())

// Run runs the client against mcpURL and returns its report. The error is
// non-nil when the client could not be installed or run, printed no report,
// or reported a failure (then the Result carries the client's Error and
// whatever else it reported, for the test to inspect). The client's stderr
// goes to t.Log.
func Run(ctx context.Context, t testing.TB, mcpURL string, opts Options) (Result, error) {
	t.Helper()
	inst, err := install(ctx)
	if err != nil {
		return Result{}, err
	}
	if opts.SDK == "" {
		opts.SDK = SDKV1
	}
	if opts.Tool == "" {
		opts.Tool = DefaultTool
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	args := []byte("{}")
	if opts.Args != nil {
		if args, err = json.Marshal(opts.Args); err != nil {
			return Result{}, fmt.Errorf("tsclient: encode tool arguments: %w", err)
		}
	}

	// Wait for a slot before the clock of opts.Timeout starts.
	select {
	case runSlots <- struct{}{}:
		defer func() { <-runSlots }()
	case <-ctx.Done():
		return Result{}, fmt.Errorf("tsclient: waiting for a free slot to run the client: %w", ctx.Err())
	}

	// The client enforces opts.Timeout itself and then still reports how far
	// it got; the context only catches a client that hangs beyond that.
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout+10*time.Second)
	defer cancel()
	cmdArgs := []string{inst.script, "--url", mcpURL, "--sdk", opts.SDK, "--tool", opts.Tool, "--args", string(args),
		"--timeout", strconv.FormatFloat(opts.Timeout.Seconds(), 'f', -1, 64)}
	if opts.ListOnly {
		cmdArgs = append(cmdArgs, "--list-only")
	}
	if opts.Scope != "" {
		cmdArgs = append(cmdArgs, "--scope", opts.Scope)
	}
	if opts.LoginHint != "" {
		cmdArgs = append(cmdArgs, "--login-hint", opts.LoginHint)
	}
	if opts.ClientMetadataURL != "" {
		cmdArgs = append(cmdArgs, "--client-metadata-url", opts.ClientMetadataURL)
	}
	cmd := exec.CommandContext(ctx, inst.node, cmdArgs...)
	cmd.Dir = inst.dir
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	runErr := cmd.Run()
	t.Logf("tsclient: node client.mjs --sdk %s --tool %s: %s in %s", opts.SDK, opts.Tool, exitStatus(runErr), time.Since(start).Round(time.Millisecond))
	if s := strings.TrimSpace(stderr.String()); s != "" {
		t.Logf("tsclient: client stderr:\n%s", s)
	}

	res, parseErr := parseReport(stdout.Bytes())
	switch {
	case ctx.Err() != nil:
		return res, fmt.Errorf("tsclient: the client did not finish (limit %s): %w", opts.Timeout+10*time.Second, ctx.Err())
	case parseErr != nil:
		return res, fmt.Errorf("tsclient: client (%s) printed no report: %w; stdout: %q", exitStatus(runErr), parseErr, truncate(stdout.String(), 2000))
	case !res.OK:
		return res, fmt.Errorf("tsclient: client failed: %s", res.Error)
	case runErr != nil:
		return res, fmt.Errorf("tsclient: client reported success but %s", exitStatus(runErr))
	}
	return res, nil
}

// parseReport reads the last non-empty line of the client's stdout.
func parseReport(stdout []byte) (Result, error) {
	lines := strings.Split(strings.TrimSpace(string(stdout)), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if last == "" {
		return Result{}, errors.New("empty output")
	}
	var res Result
	if err := json.Unmarshal([]byte(last), &res); err != nil {
		return Result{}, fmt.Errorf("decode report: %w", err)
	}
	return res, nil
}

func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Install installs the client into the cache (if it is not there yet) and
// returns the directory, which holds client.mjs and its node_modules: run it
// as `node <dir>/client.mjs --url ...`. Meant for Makefiles and hack
// scripts; tests use Run.
func Install(ctx context.Context) (string, error) {
	inst, err := install(ctx)
	if err != nil {
		return "", err
	}
	if err := writeFileAtomic(filepath.Join(inst.dir, "client.mjs"), inst.clientSource); err != nil {
		return "", fmt.Errorf("tsclient: %w", err)
	}
	return inst.dir, nil
}

// installation is a ready install of the Node project.
type installation struct {
	node         string // path of the node binary
	dir          string // the cache directory with node_modules
	script       string // the client, named by its content's hash
	browser      string // browser.mjs, named by its content's hash
	clientSource []byte
}

// installMu makes the goroutines of one process share one install.
var (
	installMu   sync.Mutex
	installDone *installation
)

func install(ctx context.Context) (*installation, error) {
	installMu.Lock()
	defer installMu.Unlock()
	if installDone != nil {
		return installDone, nil
	}
	node, npm, err := findNode(ctx)
	if err != nil {
		return nil, err
	}
	root, err := cacheRoot()
	if err != nil {
		return nil, err
	}
	files, err := projectFiles()
	if err != nil {
		return nil, err
	}
	dir, err := installInto(ctx, filepath.Join(root, "npm"), files, npm)
	if err != nil {
		return nil, err
	}
	// Several checkouts with the same lockfile but different versions of the
	// client may share this directory: each runs its own copy, named by its
	// content, never a file another checkout is rewriting.
	client := files["client.mjs"]
	script, err := writeScript(dir, "client", client)
	if err != nil {
		return nil, err
	}
	browser, err := writeScript(dir, "browser", files["browser.mjs"])
	if err != nil {
		return nil, err
	}
	installDone = &installation{node: node, dir: dir, script: script, browser: browser, clientSource: client}
	return installDone, nil
}

// writeScript writes a script into the install as <name>-<hash>.mjs.
func writeScript(dir, name string, content []byte) (string, error) {
	sum := sha256.Sum256(content)
	path := filepath.Join(dir, name+"-"+hex.EncodeToString(sum[:8])+".mjs")
	if err := writeFileAtomic(path, content); err != nil {
		return "", fmt.Errorf("tsclient: %w", err)
	}
	return path, nil
}

// findNode checks that node (new enough) and npm are on PATH.
func findNode(ctx context.Context) (node, npm string, err error) {
	const hint = "the TypeScript client tests need Node.js >= %d and npm on PATH (Debian: apt-get install nodejs npm)"
	node, err = exec.LookPath("node")
	if err != nil {
		return "", "", fmt.Errorf("tsclient: node not found: "+hint, MinNodeMajor)
	}
	npm, err = exec.LookPath("npm")
	if err != nil {
		return "", "", fmt.Errorf("tsclient: npm not found: "+hint, MinNodeMajor)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, "--version").Output()
	if err != nil {
		return "", "", fmt.Errorf("tsclient: %s --version: %w", node, err)
	}
	version := strings.TrimSpace(string(out))
	m := regexp.MustCompile(`^v(\d+)\.`).FindStringSubmatch(version)
	if m == nil {
		return "", "", fmt.Errorf("tsclient: cannot read the version of %s from %q", node, version)
	}
	if major, _ := strconv.Atoi(m[1]); major < MinNodeMajor {
		return "", "", fmt.Errorf("tsclient: %s is Node.js %s: "+hint, node, version, MinNodeMajor)
	}
	return node, npm, nil
}

// cacheRoot is the project's cache, found as hack/setup-envtest.sh finds it.
func cacheRoot() (string, error) {
	if d := os.Getenv("MCPGATE_CACHE_DIR"); d != "" {
		return filepath.Abs(d)
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "mcpgate"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("tsclient: no cache directory (set MCPGATE_CACHE_DIR): %w", err)
	}
	return filepath.Join(home, ".cache", "mcpgate"), nil
}

// projectFiles reads the embedded Node project.
func projectFiles() (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, name := range []string{"package.json", "package-lock.json", "client.mjs", "browser.mjs"} {
		b, err := fs.ReadFile(ts.Project, name)
		if err != nil {
			return nil, fmt.Errorf("tsclient: embedded project: %w", err)
		}
		files[name] = b
	}
	return files, nil
}

// installInto makes parent/<sha256 of package-lock.json> a complete install
// and returns it. Processes may race here: each that finds no install runs
// npm ci in a private temporary directory and renames it into place. A
// rename onto an existing directory fails, so the first one wins and the
// others discard their copy; a directory at the final path is therefore
// always complete.
func installInto(ctx context.Context, parent string, files map[string][]byte, npm string) (string, error) {
	sum := sha256.Sum256(files["package-lock.json"])
	key := hex.EncodeToString(sum[:])
	dir := filepath.Join(parent, key)
	if installed(dir) {
		return dir, nil
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("tsclient: %w", err)
	}
	removeStaleTemps(parent)

	tmp, err := os.MkdirTemp(parent, ".tmp-"+key[:12]+"-")
	if err != nil {
		return "", fmt.Errorf("tsclient: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	for _, name := range []string{"package.json", "package-lock.json"} {
		if err := os.WriteFile(filepath.Join(tmp, name), files[name], 0o644); err != nil {
			return "", fmt.Errorf("tsclient: %w", err)
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, installTimeout)
		defer cancel()
	}
	// --ignore-scripts: none of the locked packages has an install script,
	// and a test harness has no business running one.
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error")
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
	cmd.WaitDelay = 5 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("tsclient: npm ci in %s: %w\n%s", tmp, err, truncate(string(out), 4000))
	}
	if err := os.WriteFile(filepath.Join(tmp, installedMarker), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("tsclient: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if installed(dir) { // another process won the race
			return dir, nil
		}
		if _, statErr := os.Stat(dir); statErr == nil {
			// Something incomplete sits at the final path, which this code
			// never leaves behind (someone edited the cache?): move it
			// aside, then take its place.
			aside := dir + ".broken-" + strconv.FormatInt(time.Now().UnixNano(), 36)
			if os.Rename(dir, aside) == nil {
				_ = os.RemoveAll(aside)
			}
			if err = os.Rename(tmp, dir); err == nil || installed(dir) {
				return dir, nil
			}
		}
		return "", fmt.Errorf("tsclient: install into %s: %w", dir, err)
	}
	return dir, nil
}

func installed(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, installedMarker))
	return err == nil
}

// removeStaleTemps deletes temporary installs that processes killed
// mid-install left behind. Recent ones may still be in use.
func removeStaleTemps(parent string) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || (!strings.HasPrefix(e.Name(), ".tmp-") && !strings.Contains(e.Name(), ".broken-")) {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleTempAge {
			_ = os.RemoveAll(filepath.Join(parent, e.Name()))
		}
	}
}

// writeFileAtomic writes data to path unless it already holds exactly that,
// through a temporary file and a rename, so a reader never sees half a file.
func writeFileAtomic(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

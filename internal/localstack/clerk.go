package localstack

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
)

// ClerkInstance is where the emulated Clerk instance answers, in the shape
// of the line hack/clerk-emulator prints.
type ClerkInstance struct {
	// FrontendAPIURL is the Frontend API, the OAuth authorization server.
	FrontendAPIURL string `json:"frontendAPIURL"`
	// BackendAPIURL is the Backend API with its version, the manager's --clerk-api-url.
	BackendAPIURL string `json:"backendAPIURL"`
	// PublishableKey encodes the Frontend API host; McpServers cannot use it
	// here, since a key implies https and no port (see Issuer).
	PublishableKey string `json:"publishableKey"`
	// SecretKey authenticates Backend API calls; it is stored in the Secret.
	SecretKey string `json:"secretKey"`
	// Issuer is the token issuer, spec.clerk.issuer of local McpServers.
	Issuer string `json:"issuer"`
}

// clerkEmulator is a running emulator, in this process or a child.
type clerkEmulator struct {
	instance ClerkInstance
	server   *clerktest.Server // InProcess only
	log      *os.File          // InProcess only: the emulator's log
	proc     *process          // Subprocess only
}

// startClerk starts the emulator on loopback ports chosen by the kernel.
func startClerk(ctx context.Context, o ClerkOptions, bin, logDir string) (*clerkEmulator, error) {
	logPath := filepath.Join(logDir, "clerk-emulator.log")
	if o.Mode == Subprocess {
		args := []string{
			"--listen", "127.0.0.1:0", "--backend-listen", "127.0.0.1:0",
			"--jwt-access-tokens=" + strconv.FormatBool(o.TokenFormat == JWT),
		}
		if len(o.Scopes) > 0 {
			args = append(args, "--scopes", strings.Join(o.Scopes, ","))
		}
		var inst ClerkInstance
		proc, err := startAnnouncing(ctx, processSpec{name: "clerk-emulator", path: bin, args: args, logPath: logPath}, &inst)
		if err != nil {
			return nil, err
		}
		return &clerkEmulator{instance: inst, proc: proc}, nil
	}

	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open clerk emulator log: %w", err)
	}
	opts := []clerktest.Option{
		clerktest.WithJWTAccessTokens(o.TokenFormat == JWT),
		clerktest.WithLogger(slog.New(slog.NewTextHandler(logFile, nil))),
	}
	if len(o.Scopes) > 0 {
		opts = append(opts, clerktest.WithScopes(o.Scopes...))
	}
	s, err := clerktest.Start("127.0.0.1:0", "127.0.0.1:0", append(opts, o.ExtraOptions...)...)
	if err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start the clerk emulator: %w", err)
	}
	return &clerkEmulator{
		instance: ClerkInstance{
			FrontendAPIURL: s.FrontendAPIURL(),
			BackendAPIURL:  s.BackendAPIURL(),
			PublishableKey: s.PublishableKey(),
			SecretKey:      s.SecretKey(),
			Issuer:         s.FrontendAPIURL(),
		},
		server: s,
		log:    logFile,
	}, nil
}

// stop stops the emulator.
func (c *clerkEmulator) stop() error {
	if c.proc != nil {
		return c.proc.stop(10 * time.Second)
	}
	c.server.Close()
	// NOTE: the log is closed last: the emulator logs until it has stopped.
	return c.log.Close()
}

// startAnnouncing starts a command from hack/ that prints one JSON line
// once it serves, decodes that line into v, and returns the running process.
func startAnnouncing(ctx context.Context, spec processSpec, v any) (*process, error) {
	first := make(chan string, 1)
	spec.firstLine = first
	proc, err := startProcess(spec)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*process, error) {
		_ = proc.stop(5 * time.Second)
		return nil, fmt.Errorf("%s: %w (log: %s)", spec.name, err, spec.logPath)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	select {
	case line, ok := <-first:
		if !ok {
			return fail(fmt.Errorf("exited before announcing its address"))
		}
		if err := json.Unmarshal([]byte(line), v); err != nil {
			return fail(fmt.Errorf("decode its announcement %q: %w", strings.TrimSpace(line), err))
		}
		return proc, nil
	case <-ctx.Done():
		return fail(fmt.Errorf("no announcement: %w", context.Cause(ctx)))
	}
}

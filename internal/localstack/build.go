package localstack

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// modulePath is the module whose checkout the stack runs from.
const modulePath = "github.com/mcpgate/mcpgate"

// Binaries are the programs of this repository that the stack runs.
type Binaries struct {
	// Mcpgate is cmd/mcpgate: the manager, and every gateway.
	Mcpgate string
	// ClerkEmulator is hack/clerk-emulator, needed for ClerkOptions.Mode Subprocess.
	ClerkEmulator string
	// SampleServer is hack/sample-mcp-server, needed for SampleOptions.Mode Subprocess.
	SampleServer string
}

// BuildOptions configure Build.
type BuildOptions struct {
	// RepoRoot and CacheDir are as in Options (empty: found the same way).
	RepoRoot, CacheDir string
	// ClerkEmulator and SampleServer build those commands too.
	ClerkEmulator, SampleServer bool
}

// Build compiles mcpgate (and the hack/ commands asked for) into
// <cache>/bin with `go build`. The binaries live outside the repository,
// next to the envtest binaries, so a checkout stays clean. go build leaves
// an up-to-date binary alone, so a warm build costs a fraction of a second
// while a changed source is always picked up.
func Build(ctx context.Context, opts BuildOptions) (Binaries, error) {
	root, err := repoRoot(opts.RepoRoot)
	if err != nil {
		return Binaries{}, err
	}
	binDir := filepath.Join(cacheDir(opts.CacheDir), "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return Binaries{}, fmt.Errorf("create %s: %w", binDir, err)
	}
	out := Binaries{Mcpgate: filepath.Join(binDir, "mcpgate")}
	pkgs := []string{"./cmd/mcpgate"}
	if opts.ClerkEmulator {
		pkgs = append(pkgs, "./hack/clerk-emulator")
		out.ClerkEmulator = filepath.Join(binDir, "clerk-emulator")
	}
	if opts.SampleServer {
		pkgs = append(pkgs, "./hack/sample-mcp-server")
		out.SampleServer = filepath.Join(binDir, "sample-mcp-server")
	}

	// NOTE: two builds into one directory (a demo and a test run, say) could
	// interleave their writes of one file; a lock file serializes them.
	unlock, err := lockFile(ctx, filepath.Join(binDir, ".build.lock"))
	if err != nil {
		return Binaries{}, err
	}
	defer unlock()
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-o", binDir + string(filepath.Separator)}, pkgs...)...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return Binaries{}, fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, stderr.String())
	}
	return out, nil
}

// missing reports whether any binary the options need is not set.
func (b Binaries) missing(o Options) bool {
	return b.Mcpgate == "" ||
		(o.Clerk.Mode == Subprocess && b.ClerkEmulator == "") ||
		(o.Sample.Mode == Subprocess && b.SampleServer == "")
}

// cacheDir resolves the cache directory the way hack/setup-envtest.sh does.
func cacheDir(dir string) string {
	if dir != "" {
		return dir
	}
	if d := os.Getenv("MCPGATE_CACHE_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "mcpgate")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".cache", "mcpgate")
	}
	return filepath.Join(os.TempDir(), "mcpgate-cache")
}

// repoRoot returns dir, or when it is empty the closest directory at or
// above the working directory whose go.mod declares this module.
func repoRoot(dir string) (string, error) {
	if dir != "" {
		return filepath.Abs(dir)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find the repository: %w", err)
	}
	for d := wd; ; {
		if isModuleRoot(filepath.Join(d, "go.mod")) {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("find the repository: no go.mod of %s at or above %s", modulePath, wd)
		}
		d = parent
	}
}

// isModuleRoot reports whether the go.mod at path declares modulePath.
func isModuleRoot(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) == 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`) == modulePath
		}
	}
	return false
}

package localstack

import (
	"context"
	"fmt"

	"github.com/mcpgate/mcpgate/internal/testenv"
)

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
// <cache>/bin (see testenv.Build). The binaries live outside the
// repository, next to the envtest binaries, so a checkout stays clean.
func Build(ctx context.Context, opts BuildOptions) (Binaries, error) {
	root, err := testenv.ModuleRoot(opts.RepoRoot)
	if err != nil {
		return Binaries{}, err
	}
	pkgs := []string{"./cmd/mcpgate"}
	if opts.ClerkEmulator {
		pkgs = append(pkgs, "./hack/clerk-emulator")
	}
	if opts.SampleServer {
		pkgs = append(pkgs, "./hack/sample-mcp-server")
	}
	bins, err := testenv.Build(ctx, root, testenv.CacheDir(opts.CacheDir), pkgs...)
	if err != nil {
		return Binaries{}, err
	}
	out := Binaries{Mcpgate: bins[0]}
	bins = bins[1:]
	if opts.ClerkEmulator {
		out.ClerkEmulator, bins = bins[0], bins[1:]
	}
	if opts.SampleServer {
		out.SampleServer = bins[0]
	}
	return out, nil
}

// missing reports whether any binary the options need is not set.
func (b Binaries) missing(o Options) bool {
	return b.Mcpgate == "" ||
		(o.Clerk.Mode == Subprocess && b.ClerkEmulator == "") ||
		(o.Sample.Mode == Subprocess && b.SampleServer == "")
}

// Prepare builds mcpgate and finds (or builds) the envtest binaries: what
// a test or benchmark does once before it starts stacks, so that a cold
// cache is filled once. It uses opts.RepoRoot, CacheDir and Progress.
func Prepare(ctx context.Context, opts Options) (Binaries, string, error) {
	assets, err := EnvtestAssets(ctx, opts)
	if err != nil {
		return Binaries{}, "", fmt.Errorf("find envtest binaries: %w", err)
	}
	bins, err := Build(ctx, BuildOptions{RepoRoot: opts.RepoRoot, CacheDir: opts.CacheDir})
	if err != nil {
		return Binaries{}, "", fmt.Errorf("build mcpgate: %w", err)
	}
	return bins, assets, nil
}

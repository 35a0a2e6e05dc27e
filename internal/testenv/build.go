package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Build compiles the packages of the module at root (paths such as
// "./cmd/mcpgate") into <cache>/bin with `go build` and returns the
// binaries' paths, in the order of pkgs. go build leaves an up-to-date
// binary alone, so a warm build costs a fraction of a second while a
// changed source is always picked up.
func Build(ctx context.Context, root, cache string, pkgs ...string) ([]string, error) {
	binDir := filepath.Join(cache, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", binDir, err)
	}
	bins := make([]string, len(pkgs))
	for i, p := range pkgs {
		bins[i] = filepath.Join(binDir, filepath.Base(p))
	}
	// NOTE: two builds into one directory (a demo and a test run, or two
	// test packages run at once) could interleave their writes of one file;
	// a lock file serializes them.
	unlock, err := lockFile(ctx, filepath.Join(binDir, ".build.lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-o", binDir + string(filepath.Separator)}, pkgs...)...)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, out.String())
	}
	return bins, nil
}

// built remembers, per package path, the one build of a test process.
// NOTE: it is package state on purpose: a test binary's packages and
// subtests share one build of each command, however many ask for it.
var built sync.Map // string → func() (string, error)

// Binary builds the module's package pkg (such as "./cmd/mcpgate") into the
// shared cache, once per test process, and returns the binary's path.
func Binary(t testing.TB, pkg string) string {
	t.Helper()
	once, _ := built.LoadOrStore(pkg, sync.OnceValues(func() (string, error) {
		root, err := ModuleRoot("")
		if err != nil {
			return "", err
		}
		bins, err := Build(context.Background(), root, CacheDir(""), pkg)
		if err != nil {
			return "", err
		}
		return bins[0], nil
	}))
	bin, err := once.(func() (string, error))()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

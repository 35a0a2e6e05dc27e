package tsclient

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// fakeNPM writes an npm stand-in that counts its runs in countFile and, like
// npm ci, fills node_modules slowly enough for concurrent installs to
// overlap.
func fakeNPM(t *testing.T, countFile string) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the fake npm is a shell script")
	}
	npm := filepath.Join(t.TempDir(), "npm")
	script := `#!/bin/sh
set -e
[ "$1" = ci ] || { echo "fake npm: want ci, got $*" >&2; exit 2; }
[ -f package-lock.json ] || { echo "fake npm: no package-lock.json" >&2; exit 2; }
if grep -q broken package.json; then echo "fake npm: broken package.json" >&2; exit 1; fi
echo run >> "` + countFile + `"
mkdir -p node_modules/pkg
sleep 0.2
echo done > node_modules/pkg/index.js
`
	if err := os.WriteFile(npm, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return npm
}

// TestInstallIntoConcurrent runs installs the way separate test processes
// would (no shared in-process lock) and checks that exactly one complete
// install ends up at the lockfile's path, no temporary directory is left,
// and a later install reuses it without running npm.
func TestInstallIntoConcurrent(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "npm")
	count := filepath.Join(t.TempDir(), "runs")
	npm := fakeNPM(t, count)
	files := map[string][]byte{"package.json": []byte(`{}`), "package-lock.json": []byte(`{"lockfileVersion":3}`)}

	const racers = 4
	dirs := make([]string, racers)
	errs := make([]error, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() { dirs[i], errs[i] = installInto(t.Context(), parent, files, npm) })
	}
	wg.Wait()
	for i := range racers {
		if errs[i] != nil {
			t.Fatalf("install %d: %v", i, errs[i])
		}
		if dirs[i] != dirs[0] {
			t.Fatalf("installs went to %q and %q", dirs[0], dirs[i])
		}
	}
	if !installed(dirs[0]) {
		t.Fatal("no marker in the install")
	}
	if b, err := os.ReadFile(filepath.Join(dirs[0], "node_modules", "pkg", "index.js")); err != nil || string(b) != "done\n" {
		t.Fatalf("node_modules incomplete: %q, %v", b, err)
	}
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("cache holds %v, want only the install", names)
	}

	before, _ := os.ReadFile(count)
	if dir, err := installInto(t.Context(), parent, files, npm); err != nil || dir != dirs[0] {
		t.Fatalf("reinstall = %q, %v", dir, err)
	}
	if after, _ := os.ReadFile(count); len(after) != len(before) {
		t.Error("a complete install was installed again")
	}
}

// TestInstallIntoFailure checks that a failed npm ci leaves nothing behind
// that a later install would mistake for a complete one.
func TestInstallIntoFailure(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "npm")
	npm := fakeNPM(t, filepath.Join(t.TempDir(), "runs"))
	files := map[string][]byte{"package.json": []byte(`{"broken":true}`), "package-lock.json": []byte(`{}`)}
	_, err := installInto(t.Context(), parent, files, npm)
	if err == nil || !strings.Contains(err.Error(), "broken package.json") {
		t.Fatalf("install = %v, want npm's complaint", err)
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 0 {
		t.Errorf("failed install left %d entries", len(entries))
	}
}

package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

func TestModuleRoot_findsThisModule(t *testing.T) {
	t.Parallel()
	root, err := ModuleRoot("")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"go.mod", "config/samples", "hack/setup-envtest.sh", "cmd/mcpgate"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("repository root %s: %v", root, err)
		}
	}
}

func TestIsModuleRoot(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := map[string]struct {
		gomod string
		want  bool
	}{
		"this module":    {"module github.com/mcpgate/mcpgate\n\ngo 1.26.0\n", true},
		"quoted":         {"module \"github.com/mcpgate/mcpgate\"\n", true},
		"another module": {"module github.com/mcpgate/mcpgate/hack/tools\n", false},
	}
	for name, tc := range tests {
		path := filepath.Join(dir, name+".mod")
		if err := os.WriteFile(path, []byte(tc.gomod), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := isModuleRoot(path); got != tc.want {
			t.Errorf("%s: isModuleRoot = %t, want %t", name, got, tc.want)
		}
	}
}

func TestCacheDir(t *testing.T) {
	t.Setenv("MCPGATE_CACHE_DIR", "/cache/mcpgate")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if got := CacheDir("/given"); got != "/given" {
		t.Errorf("CacheDir(/given) = %s", got)
	}
	if got := CacheDir(""); got != "/cache/mcpgate" {
		t.Errorf("with MCPGATE_CACHE_DIR: %s", got)
	}
	t.Setenv("MCPGATE_CACHE_DIR", "")
	if got := CacheDir(""); got != filepath.Join("/xdg", "mcpgate") {
		t.Errorf("with XDG_CACHE_HOME: %s", got)
	}
}

package testenv

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ModulePath is the module whose checkout the tests, the demo and the
// benchmarks run from.
const ModulePath = "github.com/mcpgate/mcpgate"

// ModuleRoot returns dir (made absolute), or when dir is empty the closest
// directory at or above the working directory whose go.mod declares
// ModulePath. Nested modules (hack/tools) are passed over, so that a test
// or command run from anywhere in the checkout finds config/ and hack/.
func ModuleRoot(dir string) (string, error) {
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
			return "", fmt.Errorf("find the repository: no go.mod of %s at or above %s", ModulePath, wd)
		}
		d = parent
	}
}

// isModuleRoot reports whether the go.mod at path declares ModulePath.
func isModuleRoot(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) == 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`) == ModulePath
		}
	}
	return false
}

// CacheDir returns dir, or when it is empty the cache directory that
// hack/setup-envtest.sh uses: $MCPGATE_CACHE_DIR, else mcpgate under the
// user's cache directory. Binaries and envtest's assets live there, outside
// the checkout, so that it stays clean.
func CacheDir(dir string) string {
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

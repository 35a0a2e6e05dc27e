package openapicheck

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// SpecDirEnv names the directory holding bapi-2026-05-12.yml; .ci/run sets it.
const SpecDirEnv = "CLERK_OPENAPI_DIR"

// BackendSpecFile is the file name of Clerk's Backend API OpenAPI document
// (clerk/openapi-specs bapi/2026-05-12.yml).
const BackendSpecFile = "bapi-2026-05-12.yml"

// fallbackSpecDir is where the spec is looked for, relative to the module
// root, when SpecDirEnv is unset.
var fallbackSpecDir = filepath.Join("..", "shared", "reference", "clerk-openapi")

// Load returns a Checker for the Backend API spec found in $CLERK_OPENAPI_DIR
// or, when that variable is unset, in ../shared/reference/clerk-openapi
// relative to the module root. When the spec file is absent it skips the test
// with a message saying what to set. It fails the test when the file exists
// but cannot be loaded. The parsed spec is cached per process and path, so
// calling Load from many tests costs one load.
func Load(t testing.TB) *Checker {
	t.Helper()
	path, reason := locateSpec()
	if reason != "" {
		t.Skip(reason)
		return nil // reached only with a testing.TB whose Skip returns
	}
	c, err := loadCached(path)
	if err != nil {
		t.Fatalf("openapicheck: %v", err)
		return nil
	}
	return c
}

// locateSpec returns the path of the Backend API spec, or, when it cannot be
// found, why (suitable for t.Skip).
func locateSpec() (path, skipReason string) {
	if dir, ok := os.LookupEnv(SpecDirEnv); ok && dir != "" {
		path = filepath.Join(dir, BackendSpecFile)
		if err := isFile(path); err != nil {
			return "", fmt.Sprintf("openapicheck: Clerk Backend API spec not available: %s=%q but %v; "+
				"point %s at a directory containing %s (clerk/openapi-specs bapi/2026-05-12.yml)",
				SpecDirEnv, dir, err, SpecDirEnv, BackendSpecFile)
		}
		return path, ""
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Sprintf("openapicheck: Clerk Backend API spec not available: %s is unset and the working directory is unknown (%v); "+
			"set %s to the directory containing %s", SpecDirEnv, err, SpecDirEnv, BackendSpecFile)
	}
	root, err := moduleRoot(wd)
	if err != nil {
		return "", fmt.Sprintf("openapicheck: Clerk Backend API spec not available: %s is unset and %v; "+
			"set %s to the directory containing %s", SpecDirEnv, err, SpecDirEnv, BackendSpecFile)
	}
	path = filepath.Join(root, fallbackSpecDir, BackendSpecFile)
	if err := isFile(path); err != nil {
		return "", fmt.Sprintf("openapicheck: Clerk Backend API spec not available: %s is unset and the fallback %s is absent (%v); "+
			"set %s to the directory containing %s", SpecDirEnv, path, err, SpecDirEnv, BackendSpecFile)
	}
	return path, ""
}

func isFile(path string) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s does not exist", path)
	case err != nil:
		return err
	case fi.IsDir():
		return fmt.Errorf("%s is a directory", path)
	}
	return nil
}

// moduleRoot walks up from dir to the nearest directory holding go.mod.
func moduleRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if fi, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil && !fi.IsDir() {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod found in the working directory or its parents")
		}
		dir = parent
	}
}

type cacheEntry struct {
	once sync.Once
	c    *Checker
	err  error
}

var (
	cacheMu sync.Mutex
	cache   = map[string]*cacheEntry{}
)

// loadCached returns the Checker for path, building it at most once per
// process.
func loadCached(path string) (*Checker, error) {
	key := path
	if abs, err := filepath.Abs(path); err == nil {
		key = abs
	}
	cacheMu.Lock()
	e := cache[key]
	if e == nil {
		e = &cacheEntry{}
		cache[key] = e
	}
	cacheMu.Unlock()
	e.once.Do(func() { e.c, e.err = New(key) })
	return e.c, e.err
}

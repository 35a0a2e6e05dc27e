package openapicheck

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeTB records Skip and Fatal calls instead of ending the test, so that
// Load's skip path can be tested without skipping the calling test.
type fakeTB struct {
	testing.TB // the real test, for Helper, Logf, ...
	skipped    bool
	failed     bool
	msg        string
}

func (f *fakeTB) Skip(args ...any) { f.skipped, f.msg = true, fmt.Sprint(args...) }
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped, f.msg = true, fmt.Sprintf(format, args...)
}
func (f *fakeTB) SkipNow()          { f.skipped = true }
func (f *fakeTB) Fatal(args ...any) { f.failed, f.msg = true, fmt.Sprint(args...) }
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
}
func (f *fakeTB) FailNow() { f.failed = true }

func TestLoadSkipsWhenSpecIsAbsent(t *testing.T) {
	t.Run("CLERK_OPENAPI_DIR is an empty directory", func(t *testing.T) {
		dir := t.TempDir()
		t.Setenv(SpecDirEnv, dir)

		path, reason := locateSpec()
		if path != "" || reason == "" {
			t.Fatalf("locateSpec() = %q, %q; want no path and a reason", path, reason)
		}
		for _, s := range []string{SpecDirEnv, BackendSpecFile, dir} {
			if !strings.Contains(reason, s) {
				t.Errorf("skip reason lacks %q: %s", s, reason)
			}
		}

		f := &fakeTB{TB: t}
		if c := Load(f); c != nil {
			t.Errorf("Load returned a Checker although the spec is absent")
		}
		if !f.skipped || f.failed || f.msg != reason {
			t.Errorf("Load: skipped=%v failed=%v msg=%q; want a skip with %q", f.skipped, f.failed, f.msg, reason)
		}
	})

	t.Run("unset variable falls back beside the module root", func(t *testing.T) {
		// A module at tmp/main with the spec expected at
		// tmp/shared/reference/clerk-openapi, tested from a package dir.
		tmp := t.TempDir()
		mod := filepath.Join(tmp, "main")
		pkg := filepath.Join(mod, "clerk", "clerktest")
		if err := os.MkdirAll(pkg, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module example.com/m\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Setenv(SpecDirEnv, "") // restores the variable afterwards
		if err := os.Unsetenv(SpecDirEnv); err != nil {
			t.Fatal(err)
		}
		t.Chdir(pkg)

		want := filepath.Join(tmp, "shared", "reference", "clerk-openapi", BackendSpecFile)
		path, reason := locateSpec()
		if path != "" || !strings.Contains(reason, SpecDirEnv) || !strings.Contains(reason, filepath.Join(mod, fallbackSpecDir, BackendSpecFile)) {
			t.Errorf("without a spec: locateSpec() = %q, %q; want a reason naming %s and the fallback path", path, reason, SpecDirEnv)
		}
		f := &fakeTB{TB: t}
		if Load(f) != nil || !f.skipped {
			t.Errorf("Load did not skip: %+v", f)
		}

		if err := os.MkdirAll(filepath.Dir(want), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(want, []byte("openapi: 3.0.3\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		path, reason = locateSpec()
		if reason != "" || filepath.Clean(path) != want {
			t.Errorf("with a spec: locateSpec() = %q, %q; want %q", path, reason, want)
		}
	})

	t.Run("unloadable spec fails instead of skipping", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, BackendSpecFile), []byte("openapi: [not, a, spec\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Setenv(SpecDirEnv, dir)
		f := &fakeTB{TB: t}
		if Load(f) != nil || f.skipped || !f.failed || !strings.Contains(f.msg, BackendSpecFile) {
			t.Errorf("Load: %+v; want a failure naming the file", f)
		}
	})
}

func TestNewErrors(t *testing.T) {
	if _, err := New(filepath.Join(t.TempDir(), BackendSpecFile)); err == nil {
		t.Error("New accepted a missing file")
	}
	path := filepath.Join(t.TempDir(), "empty.yml")
	if err := os.WriteFile(path, []byte("openapi: 3.0.3\ninfo: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(path); err == nil {
		t.Error("New accepted an invalid document")
	}
}

// TestLoadOnce checks that Load caches the Checker and reports how long
// building it took.
func TestLoadOnce(t *testing.T) {
	start := time.Now()
	c1 := Load(t)
	c2 := Load(t)
	if c1 != c2 {
		t.Error("Load built the Checker twice")
	}
	t.Logf("spec %s: building the Checker took %v (parse, validate, router); Load calls in this test took %v",
		c1.SpecPath(), c1.loadTime.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// BenchmarkNew measures building a Checker from the spec (uncached).
func BenchmarkNew(b *testing.B) {
	path, reason := locateSpec()
	if reason != "" {
		b.Skip(reason)
	}
	for b.Loop() {
		if _, err := New(path); err != nil {
			b.Fatal(err)
		}
	}
}

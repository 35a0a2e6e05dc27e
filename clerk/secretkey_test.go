package clerk

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretKeyFromFile checks trimming, pick-up of an in-place rewrite and
// of a Kubernetes-style symlink swap, and that errors never show the key.
func TestSecretKeyFromFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "secret-key")
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	get := SecretKeyFromFile(path)
	if _, err := get(ctx); err == nil {
		t.Fatal("missing file: want an error")
	}

	write(path, "  sk_test_first\n")
	if k, err := get(ctx); err != nil || k != "sk_test_first" {
		t.Fatalf("got %q, %v; want sk_test_first", k, err)
	}
	write(path, "sk_test_second_longer\n")
	if k, err := get(ctx); err != nil || k != "sk_test_second_longer" {
		t.Fatalf("after rewrite got %q, %v", k, err)
	}

	// Kubernetes: <dir>/..data -> <dir>/..<timestamp>, key -> ..data/key.
	mount := t.TempDir()
	for _, v := range []string{"a", "b"} {
		if err := os.Mkdir(filepath.Join(mount, ".."+v), 0o700); err != nil {
			t.Fatal(err)
		}
		write(filepath.Join(mount, ".."+v, "key"), "sk_live_"+v+"\n")
	}
	if err := os.Symlink("..a", filepath.Join(mount, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "key"), filepath.Join(mount, "key")); err != nil {
		t.Fatal(err)
	}
	get = SecretKeyFromFile(filepath.Join(mount, "key"))
	if k, err := get(ctx); err != nil || k != "sk_live_a" {
		t.Fatalf("got %q, %v; want sk_live_a", k, err)
	}
	if err := os.Symlink("..b", filepath.Join(mount, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(mount, "..data_tmp"), filepath.Join(mount, "..data")); err != nil {
		t.Fatal(err)
	}
	if k, err := get(ctx); err != nil || k != "sk_live_b" {
		t.Fatalf("after the symlink swap got %q, %v; want sk_live_b", k, err)
	}

	write(path, " \n\t")
	get = SecretKeyFromFile(path)
	if _, err := get(ctx); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("blank file: got %v, want an 'empty' error", err)
	}
	write(path, strings.Repeat("x", maxSecretKeyFileSize+1))
	if _, err := get(ctx); err == nil || strings.Contains(err.Error(), "xxx") {
		t.Fatalf("oversized file: got %v, want an error without the content", err)
	}
}

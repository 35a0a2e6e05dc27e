package gateway_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSecurityDocListsEveryCase keeps SECURITY.md's table of hostile input
// complete: every case of TestRefusedRequests is a row of it.
func TestSecurityDocListsEveryCase(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("auth_test.go")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join("..", "SECURITY.md"))
	if err != nil {
		t.Fatal(err)
	}
	table, _, _ := strings.Cut(string(src)[strings.Index(string(src), "func TestRefusedRequests"):], "\nfunc ")
	names := regexp.MustCompile(`(?m)^\t\tname: +"([^"]+)"`).FindAllStringSubmatch(table, -1)
	if len(names) < 30 {
		t.Fatalf("found %d cases in TestRefusedRequests; the pattern is out of date", len(names))
	}
	for _, n := range names {
		if !strings.Contains(string(doc), "| "+n[1]+" |") {
			t.Errorf("SECURITY.md has no row for the case %q", n[1])
		}
	}
}

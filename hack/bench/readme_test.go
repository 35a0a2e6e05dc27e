package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeHasTheCommittedTargets keeps the README's Performance section
// from drifting: its targets table is the one in bench/results.md.
func TestReadmeHasTheCommittedTargets(t *testing.T) {
	root := filepath.Join("..", "..")
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	results, err := os.ReadFile(filepath.Join(root, "bench", "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "<!-- bench:targets -->\n")
	inReadme, _, ok2 := strings.Cut(rest, "<!-- /bench:targets -->")
	if !ok || !ok2 || strings.TrimSpace(inReadme) == "" {
		t.Fatal("README.md has no <!-- bench:targets --> section")
	}
	_, rest, ok = strings.Cut(string(results), "## Targets\n\n")
	inResults, _, _ := strings.Cut(rest, "\n\n")
	if !ok || strings.TrimSpace(inReadme) != strings.TrimSpace(inResults) {
		t.Errorf("the README's targets differ from bench/results.md; copy them over.\nREADME:\n%s\nresults.md:\n%s", inReadme, inResults)
	}
}

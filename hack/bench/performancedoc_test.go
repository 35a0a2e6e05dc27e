package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPerformanceDocHasTheCommittedTargets keeps docs/performance.md from
// drifting: its targets table is the one in bench/results.md.
func TestPerformanceDocHasTheCommittedTargets(t *testing.T) {
	root := filepath.Join("..", "..")
	doc, err := os.ReadFile(filepath.Join(root, "docs", "performance.md"))
	if err != nil {
		t.Fatal(err)
	}
	results, err := os.ReadFile(filepath.Join(root, "bench", "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "<!-- bench:targets -->\n")
	inDoc, _, ok2 := strings.Cut(rest, "<!-- /bench:targets -->")
	if !ok || !ok2 || strings.TrimSpace(inDoc) == "" {
		t.Fatal("docs/performance.md has no <!-- bench:targets --> section")
	}
	_, rest, ok = strings.Cut(string(results), "## Targets\n\n")
	inResults, _, _ := strings.Cut(rest, "\n\n")
	if !ok || strings.TrimSpace(inDoc) != strings.TrimSpace(inResults) {
		t.Errorf("the targets in docs/performance.md differ from bench/results.md; copy them over.\ndocs/performance.md:\n%s\nresults.md:\n%s", inDoc, inResults)
	}
}

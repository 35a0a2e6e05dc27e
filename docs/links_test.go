// Package docs holds no code: its test keeps the relative links of the
// README and of these pages pointing at files and headings that exist, as
// text moves between them.
package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var (
	// fence matches a fenced code block, whose text is not Markdown.
	fence = regexp.MustCompile("(?s)```.*?```")
	// heading matches an ATX heading and captures its text.
	heading = regexp.MustCompile(`(?m)^#{1,6} (.*)$`)
	// link matches an inline link and captures its target.
	link = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	// notInAnchor is what GitHub drops from a heading to make its anchor.
	notInAnchor = regexp.MustCompile(`[^\p{L}\p{N}_\- ]`)
	// scheme marks a link that leaves the repository.
	scheme = regexp.MustCompile(`^[a-z][a-z0-9+.-]*:`)
)

// anchors lists the anchors GitHub gives the headings of a Markdown text:
// lowercase, punctuation dropped, spaces as '-', repeats numbered.
func anchors(text string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, m := range heading.FindAllStringSubmatch(fence.ReplaceAllString(text, ""), -1) {
		a := strings.ReplaceAll(notInAnchor.ReplaceAllString(strings.ToLower(strings.TrimSpace(m[1])), ""), " ", "-")
		if n := seen[a]; n > 0 {
			out[a+"-"+strconv.Itoa(n)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}

// brokenLinks returns the relative links of the Markdown file at path that
// name a missing file, or a heading its target does not have.
func brokenLinks(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var broken []string
	for _, m := range link.FindAllStringSubmatch(fence.ReplaceAllString(string(data), ""), -1) {
		target := m[1]
		if scheme.MatchString(target) {
			continue
		}
		file, frag, _ := strings.Cut(target, "#")
		resolved := path
		if file != "" {
			resolved = filepath.Join(filepath.Dir(path), file)
		}
		if _, err := os.Stat(resolved); err != nil {
			broken = append(broken, target+" (no such file)")
			continue
		}
		if frag == "" || !strings.HasSuffix(resolved, ".md") {
			continue
		}
		text, err := os.ReadFile(resolved)
		if err != nil {
			t.Fatal(err)
		}
		if !anchors(string(text))[frag] {
			broken = append(broken, target+" (no such heading)")
		}
	}
	return broken
}

// TestLinksResolve: every relative link in README.md, SECURITY.md and
// docs/*.md names a file that exists and, for a Markdown file, a heading
// it has.
func TestLinksResolve(t *testing.T) {
	pages, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) < 10 {
		t.Fatalf("found only %d pages in docs/: %v", len(pages), pages)
	}
	pages = append(pages, filepath.Join("..", "README.md"), filepath.Join("..", "SECURITY.md"))
	for _, page := range pages {
		for _, b := range brokenLinks(t, page) {
			t.Errorf("%s: broken link %s", page, b)
		}
	}
}

// TestBrokenLinksAreFound: the check itself finds a missing file, a missing
// heading and a repeated heading's second anchor.
func TestBrokenLinksAreFound(t *testing.T) {
	dir := t.TempDir()
	page := filepath.Join(dir, "page.md")
	text := "# Title\n\n## The `flag` (new)\n\n## Again\n\n## Again\n\n" +
		"[ok](#the-flag-new) [ok](#again-1) [ok](page.md#title) [web](https://example.com/x)\n" +
		"```\n[in code](#nowhere)\n```\n" +
		"[bad](#nowhere) [bad](missing.md) [bad](page.md#again-2)\n"
	if err := os.WriteFile(page, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	got := brokenLinks(t, page)
	want := []string{"#nowhere (no such heading)", "missing.md (no such file)", "page.md#again-2 (no such heading)"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("broken links = %q, want %q", got, want)
	}
}

package compat_test

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mcpgate/mcpgate/internal/sampleserver"
)

// The values of a cell's dimensions, as the matrix spells them.
const (
	tokenJWT    = "JWT"
	tokenOpaque = "opaque"

	regDCR  = "DCR"
	regCIMD = "CIMD"

	// ruleRegistered holds a dynamically registered client to its
	// registered scope (the emulator's default); ruleInstance lets it ask
	// for any scope the instance knows. ruleNone: the rule does not apply
	// (metadata document clients have no registered scope).
	ruleRegistered = "registered"
	ruleInstance   = "instance"
	ruleNone       = "-"

	// remedyOff: the 401 challenge names the server's scope only, tool
	// scopes come in a 403 insufficient_scope (step-up). remedyAtSignIn:
	// every tool scope is in the 401 challenge too.
	remedyOff      = "off"
	remedyAtSignIn = "AtSignIn"
)

// cell is one session: a client, set up one way, calling one tool.
type cell struct {
	client       string // driver key
	tool         string // sampleserver.ToolWhoami (basic call) or ToolDeleteRepo (tool scope)
	token        string // tokenJWT or tokenOpaque
	registration string // regDCR or regCIMD
	rule         string // ruleRegistered, ruleInstance or ruleNone
	remedy       string // remedyOff or remedyAtSignIn
}

// id names the cell in test names and the expectations.
func (c cell) id() string {
	return strings.Join([]string{c.client, c.tool, c.token, c.registration, c.rule, c.remedy}, "/")
}

// column is the cell's column in its table.
func (c cell) column() string {
	if c.tool == sampleserver.ToolWhoami {
		return c.token + ", " + c.registration
	}
	col := c.registration
	if c.rule != ruleNone {
		col += ", rule " + c.rule
	}
	if c.remedy == remedyOff {
		return col + ", step-up"
	}
	return col + ", remedy " + c.remedy
}

// cells lists the matrix, pruned:
//
//   - The token format matters for the basic call only. It changes how the
//     gateway verifies a token (JWKS or the Backend API), not which scopes a
//     client asks for or what it does with a 403, so step-up cells use JWT.
//   - The emulator's scope rule applies to dynamically registered clients
//     only: a metadata document client has no registered scope.
//   - The basic call needs no scope but the server's, so neither the rule
//     nor the remedy can change it: basic cells run with the defaults.
//   - With the remedy, every scope is asked for at sign-in and no later
//     request widens it, so the rule cannot matter: DCR cells run with the
//     default rule only.
func cells() []cell {
	var all []cell
	for _, d := range drivers {
		for _, reg := range registrations {
			rule := ruleRegistered
			if reg == regCIMD {
				rule = ruleNone
			}
			for _, tok := range []string{tokenJWT, tokenOpaque} {
				all = append(all, cell{client: d.key, tool: sampleserver.ToolWhoami, token: tok, registration: reg, rule: rule, remedy: remedyOff})
			}
		}
		for _, remedy := range remedies {
			for _, reg := range registrations {
				rules := scopeRules
				switch {
				case reg == regCIMD:
					rules = []string{ruleNone}
				case remedy != remedyOff:
					// Every scope is asked for at sign-in: no request
					// ever widens, so the rule cannot matter.
					rules = []string{ruleRegistered}
				}
				for _, rule := range rules {
					all = append(all, cell{client: d.key, tool: sampleserver.ToolDeleteRepo, token: tokenJWT, registration: reg, rule: rule, remedy: remedy})
				}
			}
		}
	}
	return all
}

// TestClientCompatibility runs every cell of the client compatibility
// matrix, checks each against expectations, and checks that docs/clients.md
// shows what the run produced (UPDATE_CLIENTS_DOC=1 rewrites it).
func TestClientCompatibility(t *testing.T) {
	t.Parallel()
	all := cells()
	for id := range expectations {
		if !slices.ContainsFunc(all, func(c cell) bool { return c.id() == id }) {
			t.Errorf("expectation for %s, which is no cell of the matrix", id)
		}
	}
	var (
		mu      sync.Mutex
		results = map[cell]string{}
	)
	t.Run("cells", func(t *testing.T) {
		for _, c := range all {
			t.Run(c.id(), func(t *testing.T) {
				t.Parallel()
				got := runCell(t, c)
				mu.Lock()
				results[c] = got
				mu.Unlock()
				want, ok := expectations[c.id()]
				switch {
				case !ok:
					t.Errorf("no expectation for %s; this run: %q", c.id(), got)
				case got != want:
					t.Errorf("%s: got %q, want %q", c.id(), got, want)
				}
			})
		}
	})
	if len(results) != len(all) {
		t.Logf("%d of %d cells ran: docs/clients.md not checked", len(results), len(all))
		return
	}
	checkDoc(t, renderMatrix(all, results))
}

// runCell runs one session and describes its outcome as the matrix shows it.
func runCell(t *testing.T, c cell) string {
	t.Helper()
	d := driverOf(c.client)
	st := startStack(t, c)
	out := d.run(t, st, c)
	t.Logf("%s: ok=%v authorizations=%d client ids=%q error=%q", c.id(), out.ok, out.authorizations, out.clientIDs, out.err)
	if c.registration == regCIMD && st.em.Calls("POST /oauth/register") > 0 {
		// The client registered after all: the cell is not a CIMD result.
		return "registered instead (DCR)"
	}
	if out.ok {
		return fmt.Sprintf("ok (%s)", plural(out.authorizations, "authorization"))
	}
	return "fails: " + reason(out.err)
}

func driverOf(key string) driver {
	for _, d := range drivers {
		if d.key == key {
			return d
		}
	}
	panic("no driver " + key)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// reasons turn a client's error into the short, stable reason the matrix
// shows: the first pattern found in the error wins.
var reasons = []struct {
	pattern string
	reason  string
}{
	{"403 after trying upscoping", "refreshes instead of re-authorizing, and a refresh cannot widen the scope: 403 again (typescript-sdk#2255)"},
	{"scope not allowed for this client", "re-authorizes the same registered client for the tool scope: invalid_scope, outside its registration"},
	{"insufficient_scope", "403 insufficient_scope"},
}

// volatile matches what differs between runs: ports, IDs, URLs.
var volatile = regexp.MustCompile(`https?://[^\s"']+|\b(client|user|oat|ins)_[A-Za-z0-9]+`)

// What a failed cell adds about the gateway's JSON-RPC error, whose
// message says which scopes are missing and what a person can do: whether
// the client's error carried it to the person.
const (
	explanationShown    = "; the client shows the gateway's explanation"
	explanationNotShown = "; the gateway's explanation does not reach the person"
)

// explanationMarker is in the gateway's insufficient_scope message.
const explanationMarker = "The MCP client must authorize again"

// reason describes a client's error for the matrix.
func reason(err string) string {
	suffix := explanationNotShown
	if strings.Contains(err, explanationMarker) {
		suffix = explanationShown
	}
	for _, r := range reasons {
		if strings.Contains(err, r.pattern) {
			return r.reason + suffix
		}
	}
	s := volatile.ReplaceAllString(err, "…")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return "unexpected: " + s + suffix
}

// renderMatrix writes the matrix as Markdown tables: one for the basic
// call, one for the tool with a tool scope.
func renderMatrix(all []cell, results map[cell]string) string {
	var b bytes.Buffer
	for _, tool := range []struct{ name, title string }{
		{sampleserver.ToolWhoami, "A tool that needs only the server's scope (`whoami`)"},
		{sampleserver.ToolDeleteRepo, "A tool with a tool scope (`delete_repo` needs `" + toolScope + "`; JWT tokens)"},
	} {
		var cols []string
		for _, c := range all {
			if c.tool == tool.name && !slices.Contains(cols, c.column()) {
				cols = append(cols, c.column())
			}
		}
		fmt.Fprintf(&b, "\n#### %s\n\n| Client | %s |\n|---|%s\n", tool.title, strings.Join(cols, " | "), strings.Repeat("---|", len(cols)))
		// A failure's reason is too long for a cell: the cell points to a
		// numbered note under the table.
		var notes []string
		for _, d := range drivers {
			row := make([]string, len(cols))
			for _, c := range all {
				if c.client != d.key || c.tool != tool.name {
					continue
				}
				text := results[c]
				if why, failed := strings.CutPrefix(text, "fails: "); failed {
					if !slices.Contains(notes, why) {
						notes = append(notes, why)
					}
					text = fmt.Sprintf("**fails** (%d)", slices.Index(notes, why)+1)
				}
				row[slices.Index(cols, c.column())] = text
			}
			fmt.Fprintf(&b, "| %s | %s |\n", d.name, strings.Join(row, " | "))
		}
		if len(notes) > 0 {
			b.WriteString("\n")
		}
		for i, n := range notes {
			fmt.Fprintf(&b, "%d. %s\n", i+1, n)
		}
	}
	return b.String()
}

// The generated part of docs/clients.md sits between these markers.
const (
	docPath     = "../../docs/clients.md"
	beginMarker = "<!-- BEGIN MATRIX: generated by TestClientCompatibility in test/compat; UPDATE_CLIENTS_DOC=1 go test ./test/compat rewrites it -->"
	endMarker   = "<!-- END MATRIX -->"
)

// checkDoc compares the matrix in docs/clients.md with matrix, or writes it
// there when UPDATE_CLIENTS_DOC is set.
func checkDoc(t *testing.T, matrix string) {
	t.Helper()
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok1 := strings.Cut(string(doc), beginMarker)
	_, after, ok2 := strings.Cut(rest, endMarker)
	if !ok1 || !ok2 {
		t.Fatalf("%s: no %q ... %q block", docPath, beginMarker, endMarker)
	}
	want := before + beginMarker + "\n" + matrix + "\n" + endMarker + after
	if want == string(doc) {
		return
	}
	if os.Getenv("UPDATE_CLIENTS_DOC") != "" {
		if err := os.WriteFile(docPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the matrix in %s", docPath)
		return
	}
	t.Errorf("%s does not show this run's matrix; run UPDATE_CLIENTS_DOC=1 go test ./test/compat and commit it. This run:\n%s", docPath, matrix)
}

// What the matrix says of a cell.
const (
	okOnce  = "ok (1 authorization)"
	okTwice = "ok (2 authorizations)"
	// TypeScript SDK 1.32.2 on a 403 insufficient_scope.
	failRefreshes = "fails: refreshes instead of re-authorizing, and a refresh cannot widen the scope: 403 again (typescript-sdk#2255)" + explanationNotShown
	// TypeScript SDK 2.4.0 and mcp-remote on a 403 insufficient_scope, with
	// a DCR client held to its registered scope.
	failHeldToRegistration = "fails: re-authorizes the same registered client for the tool scope: invalid_scope, outside its registration" + explanationNotShown
)

// expectations are the outcome each cell must have, as the matrix shows it,
// by cell ID (client/tool/token/registration/rule/remedy).
var expectations = map[string]string{
	// The basic call works for every client, token format and registration.
	"go/whoami/JWT/DCR/registered/off":            okOnce,
	"go/whoami/opaque/DCR/registered/off":         okOnce,
	"go/whoami/JWT/CIMD/-/off":                    okOnce,
	"go/whoami/opaque/CIMD/-/off":                 okOnce,
	"ts1/whoami/JWT/DCR/registered/off":           okOnce,
	"ts1/whoami/opaque/DCR/registered/off":        okOnce,
	"ts1/whoami/JWT/CIMD/-/off":                   okOnce,
	"ts1/whoami/opaque/CIMD/-/off":                okOnce,
	"ts2/whoami/JWT/DCR/registered/off":           okOnce,
	"ts2/whoami/opaque/DCR/registered/off":        okOnce,
	"ts2/whoami/JWT/CIMD/-/off":                   okOnce,
	"ts2/whoami/opaque/CIMD/-/off":                okOnce,
	"mcp-remote/whoami/JWT/DCR/registered/off":    okOnce,
	"mcp-remote/whoami/opaque/DCR/registered/off": okOnce,
	"mcp-remote/whoami/JWT/CIMD/-/off":            okOnce,
	"mcp-remote/whoami/opaque/CIMD/-/off":         okOnce,

	// Step-up. The Go SDK registers a new client for each authorization
	// (DCR), so no rule on registered scopes stands in its way; with CIMD
	// it re-authorizes the same client_id, which has no registered scope.
	"go/delete_repo/JWT/DCR/registered/off": okTwice,
	"go/delete_repo/JWT/DCR/instance/off":   okTwice,
	"go/delete_repo/JWT/CIMD/-/off":         okTwice,
	// 1.32.2 never re-authorizes while it holds a refresh token, however
	// the client is registered.
	"ts1/delete_repo/JWT/DCR/registered/off": failRefreshes,
	"ts1/delete_repo/JWT/DCR/instance/off":   failRefreshes,
	"ts1/delete_repo/JWT/CIMD/-/off":         failRefreshes,
	// 2.4.0 re-authorizes its one client for the union of scopes: refused
	// for a DCR client held to its registration, granted otherwise.
	"ts2/delete_repo/JWT/DCR/registered/off": failHeldToRegistration,
	"ts2/delete_repo/JWT/DCR/instance/off":   okTwice,
	"ts2/delete_repo/JWT/CIMD/-/off":         okTwice,
	// mcp-remote bundles a 2.x SDK and does the same.
	"mcp-remote/delete_repo/JWT/DCR/registered/off": failHeldToRegistration,
	"mcp-remote/delete_repo/JWT/DCR/instance/off":   okTwice,
	"mcp-remote/delete_repo/JWT/CIMD/-/off":         okTwice,

	// The remedy: every tool scope is asked for at sign-in, so no client
	// needs to step up, whatever the rule and registration.
	"go/delete_repo/JWT/DCR/registered/AtSignIn":         okOnce,
	"go/delete_repo/JWT/CIMD/-/AtSignIn":                 okOnce,
	"ts1/delete_repo/JWT/DCR/registered/AtSignIn":        okOnce,
	"ts1/delete_repo/JWT/CIMD/-/AtSignIn":                okOnce,
	"ts2/delete_repo/JWT/DCR/registered/AtSignIn":        okOnce,
	"ts2/delete_repo/JWT/CIMD/-/AtSignIn":                okOnce,
	"mcp-remote/delete_repo/JWT/DCR/registered/AtSignIn": okOnce,
	"mcp-remote/delete_repo/JWT/CIMD/-/AtSignIn":         okOnce,
}

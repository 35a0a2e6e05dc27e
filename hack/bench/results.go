package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// machine describes where the figures were taken.
type machine struct {
	Date      string `json:"date"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	CPU       string `json:"cpu"`
	Cores     int    `json:"cores"`
	MemoryGiB int    `json:"memory_gib"`
}

// target is one figure we hold ourselves to.
type target struct {
	Name     string `json:"name"`
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
}

// results is the whole run: what results.json holds.
type results struct {
	Machine  machine         `json:"machine"`
	Settings map[string]any  `json:"settings"`
	Gateway  gatewaySuite    `json:"gateway"`
	Streams  *streamsResult  `json:"streams,omitempty"`
	Operator *operatorResult `json:"operator,omitempty"`
	Targets  []target        `json:"targets"`
}

func describeMachine(repo string) machine {
	m := machine{
		Date:      time.Now().UTC().Format(time.RFC3339),
		GoVersion: runtime.Version(),
		OS:        runtime.GOOS + "/" + runtime.GOARCH,
		Cores:     runtime.NumCPU(),
	}
	if out, err := exec.Command("git", "-C", repo, "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
		if out, err := exec.Command("git", "-C", repo, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(out) > 0 {
			m.Commit += "-dirty"
		}
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if name, value, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
				m.CPU = strings.TrimSpace(value)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(data), "MemTotal: %d kB", &kb); err == nil {
			m.MemoryGiB = int((kb + 1<<19) >> 20)
		}
	}
	return m
}

// findRow returns the row of a mode at the reference point of the targets.
func findRow(rows []gatewayRow, mode, upstream, response string, concurrency int) (gatewayRow, bool) {
	for _, r := range rows {
		if r.Mode == mode && r.Upstream == upstream && r.Response == response && r.Concurrency == concurrency {
			return r, true
		}
	}
	return gatewayRow{}, false
}

// evaluateTargets checks the figures we hold ourselves to. A target whose
// figure was not measured in this run (a smaller matrix) is left out.
func evaluateTargets(r *results, refConcurrency int) []target {
	var ts []target
	jwt, okJ := findRow(r.Gateway.Rows, modeJWT, "trivial", "json", refConcurrency)
	bare, okB := findRow(r.Gateway.Rows, modeBare, "trivial", "json", refConcurrency)
	warm, okW := findRow(r.Gateway.Rows, modeOpaqueWarm, "trivial", "json", refConcurrency)
	at := fmt.Sprintf("trivial upstream, JSON, concurrency %d", refConcurrency)
	if okJ && okB {
		ts = append(ts,
			target{"JWT throughput vs bare proxy (" + at + ")", ">= 80%",
				fmt.Sprintf("%.0f%%", 100*jwt.RatioBare), jwt.RatioBare >= 0.80},
			target{"JWT p99 added to bare proxy (" + at + ")", "<= 1 ms",
				fmt.Sprintf("%+.2f ms", jwt.P99-bare.P99), jwt.P99-bare.P99 <= 1.0})
	}
	if okJ && okW {
		ratio := warm.RatioJWT
		ts = append(ts, target{"warm opaque throughput vs JWT (" + at + ")", "within 5% (>= 95%)",
			fmt.Sprintf("%.0f%%", 100*ratio), ratio >= 0.95})
	}
	// Modes held to a share of the JWT row's throughput.
	for _, vs := range []struct {
		mode, what string
		min        float64
	}{
		{modeAccess, "access throughput vs JWT", 0.95},
		{modeUserToken, "user token throughput vs JWT", 0.95},
		{modeAudit, "audit stream on: throughput vs JWT", 0.95},
		{modeTracing, "tracing on at 1%: throughput vs JWT", 0.97},
	} {
		if row, ok := findRow(r.Gateway.Rows, vs.mode, "trivial", "json", refConcurrency); ok && okJ {
			ts = append(ts, target{vs.what + " (" + at + ")", fmt.Sprintf(">= %.0f%%", 100*vs.min),
				ratioJWTMeasured(row), row.RatioJWT >= vs.min})
		}
	}
	// The broker's hop, unqueued: one client, so that p50 is a
	// verification's latency rather than a wait for the gateway's core.
	cold, okC := findRow(r.Gateway.Rows, modeOpaqueCold, "trivial", "json", 1)
	viaBroker, okV := findRow(r.Gateway.Rows, modeOpaqueColdBroker, "trivial", "json", 1)
	if okC && okV {
		added := viaBroker.P50 - cold.P50
		ts = append(ts, target{"cold opaque verification through the key broker: added p50 (trivial upstream, JSON, concurrency 1)", "<= 1 ms",
			fmt.Sprintf("%+.2f ms", added), added <= 1.0})
	}
	var connectedUsers, tokenLookups int
	for _, row := range r.Gateway.Rows {
		if row.Mode == modeUserToken {
			connectedUsers += row.NewUsers
			tokenLookups += row.TokenCalls
		}
	}
	if connectedUsers > 0 {
		// No lookup at all would mean the token was never asked for.
		ts = append(ts, target{"Backend API calls per user and provider (user token)", "<= 1 per token lifetime",
			fmt.Sprintf("%d token lookups for %d users", tokenLookups, connectedUsers),
			tokenLookups > 0 && tokenLookups <= connectedUsers})
	}
	var coldSent, coldCalls, newUsers, lookups, userLookups int
	for _, row := range r.Gateway.Rows {
		switch row.Mode {
		case modeOpaqueCold:
			coldSent += row.Sent
			coldCalls += row.VerifyCalls
		case modeAccess:
			newUsers += row.NewUsers
			lookups += row.LookupCalls
			userLookups += row.UserCalls
		}
	}
	if coldSent > 0 {
		ts = append(ts, target{"Backend API calls per cold opaque token", "exactly 1",
			fmt.Sprintf("%d calls for %d tokens", coldCalls, coldSent), coldCalls == coldSent})
	}
	if newUsers > 0 {
		// No lookup at all would mean the rule was not enforced.
		ts = append(ts, target{"Backend API calls per new user (organization rule)", "<= 1 per endpoint (memberships; no user lookups)",
			fmt.Sprintf("%d memberships + %d user calls for %d users", lookups, userLookups, newUsers),
			lookups > 0 && lookups <= newUsers && userLookups == 0})
	}
	if tl := r.Gateway.ToolsList; tl != nil {
		_, okP := findRow(tl.Rows, modeJWT, "tools-list", "json", tl.Concurrency)
		_, okA := findRow(tl.Rows, modeAccess, "tools-list", "json", tl.Concurrency)
		if okP && okA {
			added := tl.AddedP50
			ts = append(ts, target{fmt.Sprintf("tools/list filtering of a %d-tool list: added p50", tl.Tools), "<= 0.5 ms",
				fmt.Sprintf("%+.2f ms (%d of %d tools listed)", added, tl.ListedFiltered, tl.Tools),
				added <= 0.5 && tl.ListedFiltered == tl.Tools-tl.Hidden && tl.ListedUnfiltered == tl.Tools})
		}
	}
	if r.Gateway.IdleRSSMiB > 0 {
		ts = append(ts, target{"gateway idle RSS", "<= 30 MiB",
			fmt.Sprintf("%.1f MiB", r.Gateway.IdleRSSMiB), r.Gateway.IdleRSSMiB <= 30})
	}
	if s := r.Streams; s != nil {
		ts = append(ts, target{fmt.Sprintf("SSE events delivered through %d concurrent streams", s.Streams), "all sent",
			fmt.Sprintf("%d of %d (%d streams failed)", s.EventsDelivered, s.EventsSent, s.FailedStreams),
			s.EventsDelivered == s.EventsSent && s.EventsSent == int64(s.Streams*s.EventsPerStream) && s.FailedStreams == 0})
	}
	if o := r.Operator; o != nil {
		ts = append(ts,
			target{fmt.Sprintf("%d McpServers reconciled", o.McpServers), "<= 60 s",
				fmt.Sprintf("%.1f s", o.CreateSettleSeconds), o.CreateSettleSeconds <= 60},
			target{"manager peak RSS", "< 250 MiB", fmt.Sprintf("%.0f MiB", o.ManagerPeakRSSMiB), o.ManagerPeakRSSMiB < 250},
			// Each instance needs one settings read and at most one write per
			// phase; anything proportional to McpServers would be far above.
			target{fmt.Sprintf("Backend API calls for %d McpServers on %d Clerk instances", o.McpServers, o.ClerkInstances),
				fmt.Sprintf("<= %d (grows with instances)", 4*o.ClerkInstances),
				fmt.Sprintf("%d", o.BackendAPICalls), o.BackendAPICalls <= 4*o.ClerkInstances})
	}
	return ts
}

// ratioJWTMeasured is a row's share of jwt's throughput as a target reports
// it; from ABBA blocks, with how many, their quartiles and the CPU per
// request, so that a reader sees whether the spread allows the verdict.
func ratioJWTMeasured(row gatewayRow) string {
	if row.JWTBlocks == 0 {
		return fmt.Sprintf("%.0f%%", 100*row.RatioJWT)
	}
	return fmt.Sprintf("%.1f%% (median of %d ABBA blocks, quartiles %.1f%%–%.1f%%; CPU per request %+.1f%%)",
		100*row.RatioJWT, row.JWTBlocks, 100*row.RatioJWTQ1, 100*row.RatioJWTQ3, 100*(row.CPURatioJWT-1))
}

// writeResults writes results.json and results.md into dir and returns the
// Markdown.
func writeResults(dir string, r *results) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(data, '\n'), 0o644); err != nil {
		return "", err
	}
	md := markdown(r)
	return md, os.WriteFile(filepath.Join(dir, "results.md"), []byte(md), 0o644)
}

// markdown renders the results as the tables of results.md and docs/performance.md.
func markdown(r *results) string {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "# mcpgate benchmark results\n\n")
	fmt.Fprintf(&b, "%s, commit %s, %s, %s; %d cores (%s), %d GiB.\n", m.Date, m.Commit, m.GoVersion, m.OS, m.Cores, m.CPU, m.MemoryGiB)
	fmt.Fprintf(&b, "Settings: %s. Reproduce with `make bench`.\n\n", settingsLine(r.Settings))

	fmt.Fprintf(&b, "## Targets\n\n| target | goal | measured | met |\n| --- | --- | --- | --- |\n")
	for _, t := range r.Targets {
		met := "yes"
		if !t.Met {
			met = "**no**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", t.Name, t.Goal, t.Measured, met)
	}

	if len(r.Gateway.Rows) > 0 {
		gatewayTable(&b, r)
		accessTable(&b, r)
	}
	if tl := r.Gateway.ToolsList; tl != nil {
		toolsListTable(&b, tl)
	}
	if s := r.Streams; s != nil {
		fmt.Fprintf(&b, "\n## Gateway: concurrent SSE streams\n\n")
		fmt.Fprintf(&b, "| streams | events each | sent | delivered | failed streams | idle RSS MiB | peak RSS MiB | RSS per stream KiB | seconds |\n| --: | --: | --: | --: | --: | --: | --: | --: | --: |\n")
		fmt.Fprintf(&b, "| %d | %d | %d | %d | %d | %.1f | %.1f | %.1f | %.1f |\n",
			s.Streams, s.EventsPerStream, s.EventsSent, s.EventsDelivered, s.FailedStreams, s.IdleRSSMiB, s.PeakRSSMiB, s.RSSPerStreamKiB, s.Seconds)
	}
	if o := r.Operator; o != nil {
		fmt.Fprintf(&b, "\n## Operator: scale (envtest)\n\n")
		instances := fmt.Sprint(o.ClerkInstances)
		if o.ClerkReferences != "" && o.ClerkReferences != "inline" {
			instances += " (" + o.ClerkReferences + ")"
		}
		fmt.Fprintf(&b, "| McpServers | namespaces | Clerk instances | create settled s | update settled s | manager peak RSS MiB | manager CPU s | Backend API calls |\n| --: | --: | --: | --: | --: | --: | --: | --: |\n")
		fmt.Fprintf(&b, "| %d | %d | %s | %.1f | %.1f | %.0f | %.1f | %d |\n",
			o.McpServers, o.Namespaces, instances, o.CreateSettleSeconds, o.UpdateSettleSeconds, o.ManagerPeakRSSMiB, o.ManagerCPUSeconds, o.BackendAPICalls)
		for _, g := range slices.Sorted(maps.Keys(o.UpdateSettleByReferences)) {
			fmt.Fprintf(&b, "\nThe %s McpServers settled in %.1f s (create) and %.1f s (update), in the same run.\n",
				g, o.CreateSettleByReferences[g], o.UpdateSettleByReferences[g])
		}
	}
	return b.String()
}

func settingsLine(s map[string]any) string {
	keys := []string{"duration", "warmup", "rounds", "abba_blocks", "abba_duration", "concurrency", "driver_cpus", "proxy_cpus", "streams", "mcpservers"}
	var parts []string
	for _, k := range keys {
		if v, ok := s[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %v", k, v))
		}
	}
	return strings.Join(parts, ", ")
}

// gatewayTable writes the gateway table.
func gatewayTable(b *strings.Builder, r *results) {
	fmt.Fprintf(b, "\n## Gateway: `tools/call` throughput and latency\n\n")
	fmt.Fprintf(b, "Closed loop: each of *c* clients sends its next call when the last is answered. Ratios compare with direct, bare and jwt at the same upstream, response type and *c*: each round measures every mode moments apart, and a ratio is the median over the rounds of that round's ratio. At the targets' concurrency, the audit and tracing rows' vs jwt is instead the median over ABBA blocks (short cells of jwt, the mode, the mode, jwt, each block's ratio from its sums, so that a steady drift of the machine cancels); results.json has their count and quartiles. CPU and peak RSS are the proxy process's (bare proxy or gateway). Gateway idle RSS: %.1f MiB.\n\n", r.Gateway.IdleRSSMiB)
	fmt.Fprintf(b, "| upstream | response | c | mode | req/s | p50 ms | p90 ms | p99 ms | vs direct | vs bare | vs jwt | CPU s/10k req | peak RSS MiB |\n")
	fmt.Fprintf(b, "| --- | --- | --: | --- | --: | --: | --: | --: | --: | --: | --: | --: | --: |\n")
	for _, row := range r.Gateway.Rows {
		cpu, rss := "-", "-"
		if row.Mode != modeDirect {
			cpu, rss = fmt.Sprintf("%.2f", row.CPUPer10k), fmt.Sprintf("%.1f", row.PeakRSSMiB)
		}
		fmt.Fprintf(b, "| %s | %s | %d | %s | %.0f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %s | %s |\n",
			row.Upstream, row.Response, row.Concurrency, row.Mode, row.RPS, row.P50, row.P90, row.P99, row.RatioDirect, row.RatioBare, row.RatioJWT, cpu, rss)
	}
}

// accessTable writes what the access rows cost in Backend API lookups.
func accessTable(b *strings.Builder, r *results) {
	var rows []gatewayRow
	for _, row := range r.Gateway.Rows {
		if row.Mode == modeAccess {
			rows = append(rows, row)
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(b, "\n## Gateway: access rules (organization)\n\n")
	fmt.Fprintf(b, "The `access` rows go through a second gateway whose McpServer admits members of organization `%s` and has tool rules (`echo` for members; `delete_repo` and %d listed tools for admins). Every worker of every round is a new member with a JWT, so each cell starts with cold caches: the first call of each user looks up its memberships (Backend API), the rest find them cached. Lookups are counted over the whole cell, warmup included.\n\n", benchOrg, hiddenTools())
	fmt.Fprintf(b, "| upstream | response | c | new users | membership lookups | user lookups | requests sent |\n| --- | --- | --: | --: | --: | --: | --: |\n")
	for _, row := range rows {
		fmt.Fprintf(b, "| %s | %s | %d | %d | %d | %d | %d |\n",
			row.Upstream, row.Response, row.Concurrency, row.NewUsers, row.LookupCalls, row.UserCalls, row.Sent)
	}
}

// toolsListTable writes the tools/list filtering measurement.
func toolsListTable(b *strings.Builder, tl *toolsListResult) {
	fmt.Fprintf(b, "\n## Gateway: `tools/list` of %d tools (concurrency %d)\n\n", tl.Tools, tl.Concurrency)
	fmt.Fprintf(b, "The upstream lists %d tools (JSON). Through the `jwt` gateway (no tool rules) the list passes as is (%d tools); through the `access` gateway a member's list loses the %d admins' tools (%d listed). The filter adds %+.2f ms to the p50: the median over the rounds of each round's difference.\n\n",
		tl.Tools, tl.ListedUnfiltered, tl.Hidden, tl.ListedFiltered, tl.AddedP50)
	fmt.Fprintf(b, "| mode | tools listed | req/s | p50 ms | p90 ms | p99 ms | CPU s/10k req | peak RSS MiB |\n| --- | --: | --: | --: | --: | --: | --: | --: |\n")
	for _, row := range tl.Rows {
		listed, cpu, rss := tl.Tools, "-", "-"
		if row.Mode == modeAccess {
			listed = tl.ListedFiltered
		} else if row.Mode == modeJWT {
			listed = tl.ListedUnfiltered
		}
		if row.Mode != modeDirect {
			cpu, rss = fmt.Sprintf("%.2f", row.CPUPer10k), fmt.Sprintf("%.1f", row.PeakRSSMiB)
		}
		fmt.Fprintf(b, "| %s | %d | %.0f | %.2f | %.2f | %.2f | %s | %s |\n",
			row.Mode, listed, row.RPS, row.P50, row.P90, row.P99, cpu, rss)
	}
}
